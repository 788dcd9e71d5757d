"""Secrets: what is refused, the published list, and the stack's generator (rakuten-secrets)."""

from __future__ import annotations

import base64
import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from rakuten_core.errors import ConfigurationError
from rakuten_core.secrets import check_secret, generate, is_published
from rakuten_core.settings import RakutenSettings, require_secret
from rakuten_core.stack_secrets import STORE, Catalogue, app, ensure, render
from tests.utils.paths import REPO_ROOT

CATALOGUE = REPO_ROOT / "docker" / "secrets.toml"
PUBLISHED = (
    "example-only-jwt-secret-replace-before-production",
    "example-only-postgres-password",
    "test-only-jwt-secret-0123456789abcdef-0123456789",
    "3f9c1d7e5b2a48c6a0e4f8b1d9c7e2a5f0b3c6d9",
)


def test_the_published_list_holds_every_value_the_repository_publishes() -> None:
    result = subprocess.run(  # noqa: S603 - the project's own script
        [sys.executable, str(REPO_ROOT / "scripts" / "published_secrets.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("value", PUBLISHED)
def test_a_published_value_is_refused_whatever_its_length(value: str) -> None:
    assert is_published(value)
    with pytest.raises(ConfigurationError, match="published in the repository") as info:
        check_secret(value, name="RAKUTEN_JWT_SECRET", min_chars=16)
    assert value not in str(info.value)
    with pytest.raises(ConfigurationError):
        require_secret(SecretStr(value), name="S", environment="production", min_chars=16)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "must be set"),
        ("   ", "must be set"),
        ("changeme", "placeholder"),
        ("replace-me-with-a-real-secret-of-forty-chars", "placeholder"),
        ("k7Pq2" * 3, "at least 32"),
    ],
)
def test_unusable_secrets_are_refused_naming_the_variable(value: str | None, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        check_secret(value, name="STACK_THING", min_chars=32)
    assert "STACK_THING" in str(info.value)


def test_a_generated_secret_is_accepted_and_never_twice_the_same() -> None:
    first, second = generate(), generate()
    assert first != second
    assert check_secret(first, name="S", min_chars=32) == first
    assert len(first) == 48


def test_settings_read_secret_files_from_the_secrets_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class WithSecret(RakutenSettings):
        jwt_secret: SecretStr | None = None

    value = generate()
    (tmp_path / "rakuten_jwt_secret").write_text(value)
    monkeypatch.delenv("RAKUTEN_JWT_SECRET", raising=False)
    assert WithSecret(_env_file=None).jwt_secret is None  # type: ignore[call-arg]
    monkeypatch.setenv("RAKUTEN_SECRETS_DIR", str(tmp_path))
    loaded = WithSecret(_env_file=None).jwt_secret  # type: ignore[call-arg]
    assert loaded is not None and loaded.get_secret_value() == value


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to other uids needs root")
def test_ensure_generates_once_and_gives_each_service_only_its_files(tmp_path: Path) -> None:
    catalogue = Catalogue.load(CATALOGUE)
    generated = ensure(catalogue, tmp_path, app_uid=10001)
    assert sorted(generated) == sorted(catalogue.secrets)
    jwt = (tmp_path / STORE / "jwt_secret").read_text()
    assert (tmp_path / "serve" / "rakuten_jwt_secret").read_text() == jwt
    assert _mode(tmp_path / STORE / "jwt_secret") == 0o400
    served = tmp_path / "serve" / "rakuten_jwt_secret"
    assert (served.stat().st_uid, _mode(served)) == (10001, 0o400)
    redis_url = (tmp_path / "serve" / "rakuten_redis_url").read_text()
    password = (tmp_path / STORE / "redis_password").read_text()
    assert redis_url == f"redis://:{password}@redis:6379/0"
    assert (tmp_path / "redis" / "redis.conf").stat().st_uid == 999
    token = tmp_path / "alertmanager" / "webhook_token"
    assert (token.stat().st_uid, token.stat().st_gid, _mode(token)) == (65534, 0, 0o440)
    monitor_password = (tmp_path / STORE / "db_monitor_password").read_text()
    pgpass = (tmp_path / "monitor" / "pgpass").read_text()
    assert pgpass == f"*:*:rakuten:rakuten_monitor:{monitor_password}"
    # the serve volume holds serve's secrets and nothing of the others
    assert sorted(p.name for p in (tmp_path / "serve").iterdir()) == [
        "credentials",
        "pgpass",
        "rakuten_jwt_secret",
        "rakuten_redis_url",
    ]
    # a second start keeps every secret and rewrites the files
    served.unlink()
    assert ensure(catalogue, tmp_path, app_uid=10001) == []
    assert served.read_text() == jwt


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("example-only-postgres-password", "published in the repository"),
        ("short", "at least 32"),
        ("a" * 30 + "!?" + "b" * 10, "letters, digits"),
    ],
)
def test_ensure_refuses_a_bad_stored_secret_naming_it(
    tmp_path: Path, value: str, message: str
) -> None:
    (tmp_path / STORE).mkdir()
    (tmp_path / STORE / "postgres_password").write_text(value)
    result = CliRunner().invoke(
        app,
        ["ensure", f"--catalogue={CATALOGUE}", f"--root={tmp_path}", f"--app-uid={os.geteuid()}"],
    )
    assert result.exit_code == 2
    assert "postgres_password" in result.output and message in result.output
    assert value not in result.output
    assert not (tmp_path / "postgres").exists()  # nothing handed out from a refused secret


def test_set_and_rotate_replace_one_secret(tmp_path: Path) -> None:
    runner = CliRunner()
    common = [f"--catalogue={CATALOGUE}", f"--root={tmp_path}", f"--app-uid={os.geteuid()}"]
    assert runner.invoke(app, ["ensure", *common]).exit_code == 0
    before = {p.name: p.read_text() for p in (tmp_path / STORE).iterdir()}
    chosen = secrets.token_urlsafe(40)
    result = runner.invoke(app, ["set", "jwt_secret", *common], input=chosen + "\n")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "serve" / "rakuten_jwt_secret").read_text() == chosen
    refused = runner.invoke(app, ["set", "jwt_secret", *common], input="changeme-please\n")
    assert refused.exit_code == 2 and "jwt_secret" in refused.output
    assert runner.invoke(app, ["rotate", "redis_password", *common]).exit_code == 0
    after = {p.name: p.read_text() for p in (tmp_path / STORE).iterdir()}
    assert after["redis_password"] != before["redis_password"]
    assert after["postgres_password"] == before["postgres_password"]
    unknown = runner.invoke(app, ["rotate", "nothing", *common])
    assert unknown.exit_code == 2 and "unknown secret" in unknown.output
    assert runner.invoke(app, ["check", common[0], common[1]]).exit_code == 0


def test_render_reads_a_host_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = generate()
    template = "redis://:{value}@{env:K8S_REDIS_HOST}:6379/0"
    rendered = render(template, raw, environ={"K8S_REDIS_HOST": "redis-master.db.svc"})
    assert rendered == f"redis://:{raw}@redis-master.db.svc:6379/0"
    monkeypatch.setenv("K8S_REDIS_HOST", "cache")
    assert render(template, raw) == f"redis://:{raw}@cache:6379/0"  # os.environ by default
    assert render("{env:K8S_REDIS_HOST}-{basic:u}", raw) == (
        "cache-" + base64.b64encode(f"u:{raw}".encode()).decode()
    )


@pytest.mark.parametrize("environ", [{}, {"K8S_POSTGRES_HOST": ""}])
def test_render_refuses_an_unset_variable_naming_it(environ: dict[str, str]) -> None:
    raw = generate()
    with pytest.raises(ConfigurationError, match="K8S_POSTGRES_HOST is not set") as info:
        render("uri = postgresql://u:{value}@{env:K8S_POSTGRES_HOST}/db", raw, environ=environ)
    assert raw not in str(info.value)


def test_an_unset_host_is_refused_before_anything_is_written_or_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalogue = tmp_path / "secrets.toml"
    catalogue.write_text(
        '[secrets.redis_password]\ndescription = "Redis"\nfiles = [\n'
        '  { path = "serve/url", template = "redis://:{value}@{env:K8S_REDIS_HOST}:6379/0" },\n]\n'
    )
    monkeypatch.delenv("K8S_REDIS_HOST", raising=False)
    root = tmp_path / "root"
    args = ["ensure", f"--catalogue={catalogue}", f"--root={root}", f"--app-uid={os.geteuid()}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "serve/url (secret redis_password)" in result.output
    assert "K8S_REDIS_HOST is not set" in result.output
    assert not root.exists()  # nothing generated nor written
    monkeypatch.setenv("K8S_REDIS_HOST", "redis")
    assert CliRunner().invoke(app, args).exit_code == 0
    stored = (root / STORE / "redis_password").read_text()
    monkeypatch.delenv("K8S_REDIS_HOST")
    refused = CliRunner().invoke(app, ["rotate", "redis_password", *args[1:]])
    assert refused.exit_code == 2 and "K8S_REDIS_HOST is not set" in refused.output
    assert stored not in refused.output
    assert (root / STORE / "redis_password").read_text() == stored  # not replaced
