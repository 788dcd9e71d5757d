"""`rakuten-data download` through the real huggingface_hub client against a local Hub.

The server (tests/utils/hub_server.py) is a real HTTP server on 127.0.0.1 answering the calls
huggingface_hub makes; nothing in the client is replaced. HF_ENDPOINT and HF_TOKEN are set in
the environment, as a user would, and read through the data service's settings.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from huggingface_hub import HfApi, constants
from typer.testing import CliRunner

from rakuten_core import dataset
from rakuten_data.cli import app
from rakuten_data.download import MANIFEST_FILE
from rakuten_data.sample import SampleSpec, write_sample
from rakuten_data.settings import get_settings
from tests.utils.hub_server import COMMIT, HubServer, closed_port
from tests.utils.paths import REPO_ROOT

pytestmark = pytest.mark.integration

REPO = "ndiguesene/ml-datasets-image-rakuten-ecommerce"
TOKEN = "hf_TestTokenThatMustNeverBeLogged42"
CSVS = (dataset.X_TRAIN_FILE, dataset.Y_TRAIN_FILE, dataset.X_TEST_FILE)
LFS = {dataset.X_TRAIN_FILE, "images.zip"}


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def hub_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """A tiny dataset in the Hub's format: 8 train rows (2 classes), 3 test rows, a zip of JPEGs."""
    source = tmp_path_factory.mktemp("hub") / "sample"
    write_sample(source, SampleSpec(train_rows=170, test_rows=3, image_size=16), label_table=None)
    x = pd.read_csv(source / dataset.X_TRAIN_FILE, index_col=0, dtype=str, keep_default_na=False)
    y = pd.read_csv(source / dataset.Y_TRAIN_FILE, index_col=0, dtype=str)
    test = pd.read_csv(source / dataset.X_TEST_FILE, index_col=0, dtype=str, keep_default_na=False)
    keep = y.index[y["prdtypecode"].isin(["2583", "1560"])][:8]  # two classes: splittable
    x, y = x.loc[keep], y.loc[keep]
    members = {}
    for split_dir, frame in (("image_train", x), ("image_test", test)):
        for imageid, productid in zip(frame["imageid"], frame["productid"], strict=True):
            name = dataset.image_filename(int(imageid), int(productid))
            members[f"images/{split_dir}/{name}"] = (
                source / "images" / split_dir / name
            ).read_bytes()
    return {
        dataset.X_TRAIN_FILE: x.to_csv(lineterminator="\n").encode(),
        dataset.Y_TRAIN_FILE: y.to_csv(lineterminator="\n").encode(),
        dataset.X_TEST_FILE: test.to_csv(lineterminator="\n").encode(),
        "images.zip": _zip(members),
    }


@pytest.fixture
def hub(hub_files: dict[str, bytes]) -> Iterator[HubServer]:
    with HubServer(REPO, hub_files, lfs=LFS) as server:
        yield server


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """A clean environment: token set, logs in tmp, no cached settings."""
    for name in ("HF_ENDPOINT", "HF_HUB_CACHE", "RAKUTEN_HF_CACHE_DIR", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("RAKUTEN_LOG_DIR", str(tmp_path / "logs"))
    get_settings.cache_clear()
    yield tmp_path / "logs"
    get_settings.cache_clear()


def _download(
    monkeypatch: pytest.MonkeyPatch, endpoint: str, out: Path, *extra: str
) -> tuple[int, str]:
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    get_settings.cache_clear()
    cache = out.parent / "hf-cache"
    result = CliRunner().invoke(
        app, ["download", "--out", str(out), "--cache-dir", str(cache), "--no-progress", *extra]
    )
    return result.exit_code, result.output


def _pad_archive(hub: HubServer) -> None:
    """Grow images.zip past one huggingface_hub chunk (10 MiB) with a member that is skipped."""
    with zipfile.ZipFile(io.BytesIO(hub.state.files["images.zip"])) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    padding = np.random.default_rng(0).bytes(constants.DOWNLOAD_CHUNK_SIZE + 1024 * 1024)
    members["rakuten/padding.bin"] = padding  # outside the image folders
    hub.state.files["images.zip"] = _zip(members)


def _image_names(out: Path, split_dir: str) -> set[str]:
    return {p.name for p in (out / "images" / split_dir).iterdir()}


def test_full_download_and_extraction(
    hub: HubServer, env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    out = tmp_path / "raw"
    code, output = _download(monkeypatch, hub.url, out)
    assert code == 0, output
    assert f"{REPO}@{COMMIT[:12]}" in output and "8 train and 3 test images" in output
    for name in CSVS:
        assert (out / name).read_bytes() == hub.state.files[name]
    with zipfile.ZipFile(io.BytesIO(hub.state.files["images.zip"])) as archive:
        names = archive.namelist()
    assert _image_names(out, "image_train") == {
        n.rsplit("/", 1)[1] for n in names if "/image_train/" in n
    }
    assert len(_image_names(out, "image_test")) == 3
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["commit"] == COMMIT
    assert manifest["archive"]["etag"] == hub.state.sha256("images.zip")
    x_sha = hashlib.sha256(hub.state.files[dataset.X_TRAIN_FILE]).hexdigest()
    assert manifest["files"][dataset.X_TRAIN_FILE]["sha256"] == x_sha
    # The token goes to the Hub, never to the CDN host, and never into output or logs.
    heads = [r for r in hub.state.requests if r.method == "HEAD"]
    assert heads and all(r.authorization == f"Bearer {TOKEN}" for r in heads)
    assert all(r.authorization is None for r in hub.state.requests if r.path.startswith("/cdn/"))
    logged = "".join(p.read_text() for p in env.glob("*.log*"))
    assert "resolves to commit" in logged
    assert TOKEN not in output and TOKEN not in logged


def test_downloaded_data_prepares(
    hub: HubServer, env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    out = tmp_path / "raw"
    assert _download(monkeypatch, hub.url, out)[0] == 0
    result = CliRunner().invoke(
        app, ["prepare", "--raw", str(out), "--out", str(tmp_path / "processed"), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert "prepared 8 of 8 rows" in result.output and "8 readable, 0 missing" in result.output


def test_second_run_downloads_and_extracts_nothing(
    hub: HubServer, env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    out = tmp_path / "raw"
    assert _download(monkeypatch, hub.url, out)[0] == 0
    image = next((out / "images" / "image_train").iterdir())
    stamp = image.stat().st_mtime_ns
    first_run = len(hub.state.requests)
    code, output = _download(monkeypatch, hub.url, out)
    assert code == 0, output
    second = hub.state.requests[first_run:]
    assert [r.method for r in second] == ["HEAD"] * 4  # metadata only, no GET
    assert "downloaded nothing" in output
    assert image.stat().st_mtime_ns == stamp  # not re-extracted


def test_interrupted_download_resumes_with_a_range_request(
    hub: HubServer, env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The server drops the connection mid-file; huggingface_hub resumes with a Range request.

    huggingface_hub writes what it received in chunks of DOWNLOAD_CHUNK_SIZE (10 MiB), so it
    resumes from the last complete chunk: the archive is padded past one chunk to show it.
    """
    _pad_archive(hub)
    cut = constants.DOWNLOAD_CHUNK_SIZE + 512 * 1024
    hub.state.cut_once["images.zip"] = cut
    out = tmp_path / "raw"
    code, output = _download(monkeypatch, hub.url, out)
    assert code == 0, output
    transfers = hub.state.gets("images.zip")
    # Resumed from the last chunk written, not restarted from byte 0.
    assert [r.range for r in transfers] == [None, f"bytes={constants.DOWNLOAD_CHUNK_SIZE}-"]
    assert len(_image_names(out, "image_train")) == 8
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["archive"]["sha256"] == hub.state.sha256("images.zip")


@pytest.mark.slow
def test_download_killed_mid_file_continues_in_the_next_run(
    hub: HubServer, env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A process killed mid-archive leaves its partial file; the next run asks only for the rest.

    huggingface_hub >= 1.0 alone would restart from byte 0 (it deletes its partial files), so
    big files go through rakuten_data.transfer; the threshold is lowered to use it here.
    """
    _pad_archive(hub)
    hub.state.stall_once["images.zip"] = constants.DOWNLOAD_CHUNK_SIZE + 512 * 1024
    monkeypatch.setenv("RAKUTEN_HF_RESUMABLE_MIN_BYTES", str(1024 * 1024))
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    out, cache = tmp_path / "raw", tmp_path / "hf-cache"
    command = [sys.executable, "-m", "rakuten_data", "download",
               "--out", str(out), "--cache-dir", str(cache), "--no-progress"]  # fmt: skip
    sha = hub.state.sha256("images.zip")
    part = cache / "rakuten-data" / REPO.replace("/", "--") / f"images.zip.{sha}.part"
    process = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while not (part.is_file() and part.stat().st_size >= constants.DOWNLOAD_CHUNK_SIZE):
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "the first chunk never reached the disk"
            time.sleep(0.05)
        process.kill()  # no clean-up code runs: the harshest interruption
    finally:
        process.wait(timeout=30)
        hub.state.release.set()
    assert part.stat().st_size == constants.DOWNLOAD_CHUNK_SIZE

    code, output = _download(monkeypatch, hub.url, out)
    assert code == 0, output
    ranges = [r.range for r in hub.state.gets("images.zip")]
    assert ranges == [None, f"bytes={constants.DOWNLOAD_CHUNK_SIZE}-"]
    assert len(_image_names(out, "image_train")) == 8 and not part.exists()
    assert json.loads((out / MANIFEST_FILE).read_text())["archive"]["sha256"] == sha


def test_corrupted_file_is_detected(
    hub: HubServer, env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    hub.state.corrupt.add(dataset.X_TRAIN_FILE)
    out = tmp_path / "raw"
    code, output = _download(monkeypatch, hub.url, out)
    assert code == 1
    expected = hub.state.sha256(dataset.X_TRAIN_FILE)
    assert (
        "X_train_update.csv: sha256" in output and f"does not match the Hub's {expected}" in output
    )
    assert len(hub.state.gets(dataset.X_TRAIN_FILE)) == 2  # evicted and fetched once more
    assert not (out / dataset.X_TRAIN_FILE).exists()
    assert not list((tmp_path / "hf-cache").rglob(expected))  # no corrupt blob left in the cache


def test_corrupted_small_file_is_detected_by_git_hash(
    hub: HubServer, env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    hub.state.corrupt.add(dataset.Y_TRAIN_FILE)
    code, output = _download(monkeypatch, hub.url, tmp_path / "raw")
    assert code == 1
    assert "Y_train_CVw08PX.csv: git blob sha1 does not match" in output


def test_corrupt_archive_fails_then_only_the_archive_is_fetched_again(
    hub: HubServer, env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    good = hub.state.files["images.zip"]
    hub.state.files["images.zip"] = good[: len(good) // 2]  # consistent hash, broken zip
    out = tmp_path / "raw"
    code, output = _download(monkeypatch, hub.url, out)
    assert code == 1 and "images.zip is not a valid zip archive" in output
    hub.state.files["images.zip"] = good
    before = len(hub.state.requests)
    code, output = _download(monkeypatch, hub.url, out)
    assert code == 0, output
    fetched = {r.path.rsplit("/", 1)[-1] for r in hub.state.requests[before:] if r.method == "GET"}
    assert fetched == {hub.state.sha256("images.zip")}  # the CSVs of the failed run were kept
    assert "unchanged X_train_update.csv, Y_train_CVw08PX.csv, X_test_update.csv" in output


def test_unreachable_endpoint_fails_clearly(
    env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    code, output = _download(monkeypatch, endpoint, tmp_path / "raw")
    assert code == 3  # EXIT_HUB_UNREACHABLE: the code `data.source: auto` falls back on
    assert f"Cannot reach the Hugging Face Hub at {endpoint}" in output
    assert "rakuten-data sample --out" in output and "copy the real files" in output
    assert "Traceback" not in output and TOKEN not in output
    assert not (tmp_path / "raw").exists()  # nothing written


def test_hub_outage_is_reported_like_unreachable(
    hub: HubServer, env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    hub.state.fail_with = 503
    code, output = _download(monkeypatch, hub.url, tmp_path / "raw")
    assert code == 3
    assert "the Hub answered HTTP 503" in output and "rakuten-data sample --out" in output


def test_offline_rerun_of_a_complete_download_succeeds(
    hub: HubServer, env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    out = tmp_path / "raw"
    assert _download(monkeypatch, hub.url, out)[0] == 0
    code, output = _download(monkeypatch, f"http://127.0.0.1:{closed_port()}", out)
    assert code == 0, output
    assert "Hub unreachable, local copy is complete" in output
    (out / dataset.Y_TRAIN_FILE).write_text(",prdtypecode\n0,10\n")  # no longer intact
    code, output = _download(monkeypatch, f"http://127.0.0.1:{closed_port()}", out)
    assert code == 3 and "Cannot reach the Hugging Face Hub" in output


def test_unknown_revision_and_repo_are_named(
    hub: HubServer, env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    code, output = _download(monkeypatch, hub.url, tmp_path / "a", "--revision", "v9")
    assert code == 1 and "revision 'v9'" in output and "not found" in output
    code, output = _download(monkeypatch, hub.url, tmp_path / "b", "--repo-id", "someone/else")
    assert code == 1 and "dataset someone/else not found" in output


def test_sample_replaces_a_failed_download_but_not_a_complete_one(
    hub: HubServer, env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`sample` may replace a download that failed half-way, never a complete one.

    (`data.source: auto` falls back to `sample` when the connection is lost mid-download.)
    """
    out = tmp_path / "raw"
    hub.state.files["images.zip"] = b"not a zip at all"
    assert _download(monkeypatch, hub.url, out)[0] == 1  # CSVs written, images failed
    sample = ["sample", "--out", str(out), "--train-rows", "170", "--image-size", "8"]
    result = CliRunner().invoke(app, sample)
    assert result.exit_code == 0, result.output
    assert not (out / MANIFEST_FILE).exists()
    assert len(pd.read_csv(out / dataset.Y_TRAIN_FILE)) == 170

    complete = tmp_path / "complete"
    hub.state.files["images.zip"] = _zip({"images/image_train/image_1_product_2.jpg": b"x"})
    assert _download(monkeypatch, hub.url, complete)[0] == 0
    result = CliRunner().invoke(app, ["sample", "--out", str(complete)])
    assert result.exit_code == 2 and "not generated by `rakuten-data sample`" in result.output


def test_stand_in_answers_the_hub_api_like_the_hub(hub: HubServer) -> None:
    """The stand-in's repo info endpoint, read by huggingface_hub's own HfApi."""
    info = HfApi(endpoint=hub.url, token=False).dataset_info(REPO, revision="main")
    assert info.sha == COMMIT
    assert sorted(s.rfilename for s in info.siblings or []) == sorted(hub.state.files)


def _data_stage(out: Path, endpoint: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """``scripts/data-stage.sh`` (the DVC data stage) as DVC runs it, with the venv on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "RAKUTEN_HF"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        HF_ENDPOINT=endpoint,
        HF_HUB_CACHE=str(out.parent / "hf-cache"),
        RAKUTEN_LOG_DIR=str(out.parent / "logs"),
    )
    command = ["bash", str(REPO_ROOT / "scripts" / "data-stage.sh"), "--out", str(out),
               "--train-rows", "170", "--test-rows", "3", "--seed", "7", *extra]  # fmt: skip
    return subprocess.run(
        command, cwd=out.parent, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_auto_source_falls_back_to_the_sample_when_the_hub_is_unreachable(
    tmp_path: Path,
) -> None:
    out = tmp_path / "raw"
    result = _data_stage(out, f"http://127.0.0.1:{closed_port()}", "--source", "auto")
    assert result.returncode == 0, result.stderr
    assert "Cannot reach the Hugging Face Hub" in result.stderr
    assert "falling back to the offline sample" in result.stderr
    labels = pd.read_csv(out / dataset.Y_TRAIN_FILE, index_col=0)
    assert len(labels) == 170 and (out / "images" / "image_test").is_dir()


def test_auto_source_downloads_when_the_hub_answers(hub: HubServer, tmp_path: Path) -> None:
    out = tmp_path / "raw"
    result = _data_stage(out, hub.url, "--source", "auto")
    assert result.returncode == 0, result.stderr
    assert "falling back" not in result.stderr
    assert len(pd.read_csv(out / dataset.Y_TRAIN_FILE, index_col=0)) == 8  # the Hub's 8 rows
    assert (out / MANIFEST_FILE).is_file()


def test_auto_source_does_not_hide_other_download_failures(hub: HubServer, tmp_path: Path) -> None:
    """An unknown revision (or a corrupt file) fails the stage: no silent switch to fake data."""
    out = tmp_path / "raw"
    result = _data_stage(out, hub.url, "--source", "auto", "--revision", "v9")
    assert result.returncode == 1
    assert "revision 'v9'" in result.stderr and "falling back" not in result.stderr
    assert not (out / dataset.Y_TRAIN_FILE).exists()


def test_data_stage_rejects_an_unknown_source(tmp_path: Path) -> None:
    result = _data_stage(tmp_path / "raw", "http://127.0.0.1:9", "--source", "s3")
    assert result.returncode == 2
    assert "data.source must be 'auto', 'hub' or 'sample', got 's3'" in result.stderr
