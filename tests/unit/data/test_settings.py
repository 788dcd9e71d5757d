"""Data settings: ecosystem variable names, and the token kept out of every repr."""

from __future__ import annotations

from pathlib import Path

import pytest

from rakuten_data.hub import HubSource, RemoteFile, safe_url
from rakuten_data.settings import DEFAULT_ENDPOINT, DEFAULT_REPO_ID, DataSettings

SECRET = "hf_ThisIsNotARealTokenButMustStayHidden"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HF_TOKEN", "HF_ENDPOINT", "HF_HUB_CACHE", "RAKUTEN_HF_TOKEN",
                 "RAKUTEN_HF_ENDPOINT", "RAKUTEN_HF_CACHE_DIR", "RAKUTEN_HF_REPO_ID"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(Path(__file__).parent)  # no stray .env file


def test_defaults_are_anonymous_public_hub() -> None:
    settings = DataSettings()
    assert settings.token is None
    assert settings.hf_endpoint == DEFAULT_ENDPOINT and settings.hf_repo_id == DEFAULT_REPO_ID


def test_ecosystem_names_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.setenv("HF_ENDPOINT", "http://mirror.local:8080")
    monkeypatch.setenv("HF_HUB_CACHE", "/tmp/hf")
    settings = DataSettings()
    assert settings.token == SECRET
    assert settings.hf_endpoint == "http://mirror.local:8080"
    assert settings.hf_cache_dir == Path("/tmp/hf")
    assert SECRET not in repr(settings) and SECRET not in str(settings.model_dump())


def test_token_never_in_source_repr() -> None:
    source = HubSource(repo_id="a/b", revision="main", endpoint="http://h", token=SECRET,
                       cache_dir=None)  # fmt: skip
    remote = RemoteFile("f", "c" * 40, "e" * 64, 1, location="https://cdn/x?X-Amz-Signature=s")
    assert SECRET not in repr(source) and "Signature" not in repr(remote)


def test_safe_url_drops_credentials_and_query() -> None:
    assert safe_url("https://user:pw@hub.example:8443/x?sig=1") == "https://hub.example:8443/x"
