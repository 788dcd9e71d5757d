"""The download stage: Hub dataset -> ``<raw>`` in the layout of :mod:`rakuten_core.dataset`.

A small manifest (``<raw>/.rakuten-download.json``) records, per file, the Hub etag and the
sha256 of what was written, and for the archive how many images it gave. A second run asks the
Hub for the etags only (HEAD requests), finds nothing changed and neither downloads nor
re-extracts anything. If the Hub is unreachable but the manifest shows a complete, intact copy of
the same revision, the stage succeeds offline; otherwise it fails naming the offline options.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ValidationError

from rakuten_core import dataset
from rakuten_core.errors import DownloadError
from rakuten_data.archive import count_images, extract_images
from rakuten_data.hub import (
    HubSource,
    HubUnreachableError,
    RemoteFile,
    describe,
    evict,
    fetch,
    safe_url,
    sha256_file,
)
from rakuten_data.sample import DOWNLOAD_MANIFEST, SAMPLE_MARKER
from rakuten_data.transfer import fetch_resumable

logger = logging.getLogger(__name__)

MANIFEST_FILE = DOWNLOAD_MANIFEST
DEFAULT_ARCHIVE = "images.zip"
CSV_FILES = (dataset.X_TRAIN_FILE, dataset.Y_TRAIN_FILE, dataset.X_TEST_FILE)
_PRODUCTS_HEADER = "," + ",".join(dataset.RAW_TEXT_COLUMNS)
EXPECTED_HEADERS = {
    dataset.X_TRAIN_FILE: _PRODUCTS_HEADER,
    dataset.Y_TRAIN_FILE: f",{dataset.LABEL_COLUMN}",
    dataset.X_TEST_FILE: _PRODUCTS_HEADER,
}


class FileRecord(BaseModel):
    etag: str
    size: int
    sha256: str


class ArchiveRecord(FileRecord):
    filename: str
    train_images: int
    test_images: int


class Manifest(BaseModel):
    """What a completed download wrote, to make the next run a no-op."""

    repo_id: str
    revision: str
    commit: str
    files: dict[str, FileRecord] = {}
    archive: ArchiveRecord | None = None


@dataclass
class DownloadSummary:
    commit: str
    downloaded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    train_images: int = 0
    test_images: int = 0
    offline: bool = False


def offline_message(source: HubSource, out: Path, reason: str) -> str:
    """The one-paragraph explanation printed when the Hub cannot be reached."""
    return (
        f"Cannot reach the Hugging Face Hub at {safe_url(source.endpoint)} to download the "
        f"dataset {source.repo_id} (revision {source.revision}): {reason}. To work offline, either "
        f"generate the synthetic dataset in the same layout with `rakuten-data sample --out {out}`"
        f", or copy the real files ({', '.join(CSV_FILES)} and the extracted "
        f"images/{dataset.TRAIN_IMAGES_DIR}/ and images/{dataset.TEST_IMAGES_DIR}/ folders) into "
        f"{out}, then run `rakuten-data prepare --raw {out}`. Behind a mirror or proxy, set "
        "HF_ENDPOINT; for a private or gated copy, set HF_TOKEN."
    )


def load_manifest(out: Path, source: HubSource) -> Manifest | None:
    """The manifest of an earlier download of the same dataset and revision, if any."""
    path = out / MANIFEST_FILE
    try:
        manifest = Manifest.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValidationError):
        return None
    if (manifest.repo_id, manifest.revision) != (source.repo_id, source.revision):
        return None
    return manifest


def _intact(out: Path, manifest: Manifest, archive: str) -> bool:
    if set(manifest.files) != set(CSV_FILES) or manifest.archive is None:
        return False
    if manifest.archive.filename != archive:
        return False
    for name, record in manifest.files.items():
        if not (out / name).is_file() or sha256_file(out / name) != record.sha256:
            return False
    expected = {
        dataset.TRAIN_IMAGES_DIR: manifest.archive.train_images,
        dataset.TEST_IMAGES_DIR: manifest.archive.test_images,
    }
    return count_images(out) == expected


def _check_header(path: Path, name: str) -> None:
    with path.open("rb") as handle:
        first = handle.readline(4096).decode("utf-8-sig", "replace").rstrip("\r\n")
    if first != EXPECTED_HEADERS[name]:
        raise DownloadError(
            f"{name} from the Hub has header {first[:80]!r}, expected {EXPECTED_HEADERS[name]!r}"
        )


def _install(source_path: Path, target: Path) -> None:
    partial = target.with_name(target.name + ".part")
    shutil.copyfile(source_path, partial)
    os.replace(partial, target)


def _get(source: HubSource, remote: RemoteFile) -> tuple[Path, str]:
    """Big files resume across runs (transfer.py); the others go through hf_hub_download."""
    if remote.size is not None and remote.size >= source.resumable_min_bytes and remote.location:
        return fetch_resumable(source, remote)
    return fetch(source, remote)


def _fetch_csv(
    source: HubSource,
    remote: RemoteFile,
    out: Path,
    summary: DownloadSummary,
    previous: FileRecord | None,
) -> FileRecord:
    target = out / remote.filename
    if previous is not None and previous.etag == remote.etag and target.is_file():
        if sha256_file(target) == previous.sha256:
            summary.unchanged.append(remote.filename)
            return previous
    path, sha256 = _get(source, remote)
    _check_header(path, remote.filename)
    _install(path, target)
    summary.downloaded.append(remote.filename)
    return FileRecord(etag=remote.etag, size=target.stat().st_size, sha256=sha256)


def _fetch_archive(
    source: HubSource,
    remote: RemoteFile,
    out: Path,
    summary: DownloadSummary,
    previous: ArchiveRecord | None,
    progress: bool,
) -> ArchiveRecord:
    if previous is not None and previous.etag == remote.etag:
        expected = {
            dataset.TRAIN_IMAGES_DIR: previous.train_images,
            dataset.TEST_IMAGES_DIR: previous.test_images,
        }
        if count_images(out) == expected:
            summary.unchanged.append(remote.filename)
            return previous
    path, sha256 = _get(source, remote)
    try:
        extracted = extract_images(path, out, progress=progress)
    except DownloadError:
        evict(path)  # a corrupt archive must not be reused from the cache
        raise
    summary.downloaded.append(remote.filename)
    return ArchiveRecord(
        filename=remote.filename,
        etag=remote.etag,
        size=path.stat().st_size,
        sha256=sha256,
        train_images=extracted.train_images,
        test_images=extracted.test_images,
    )


def download(
    source: HubSource, out: Path, *, archive: str = DEFAULT_ARCHIVE, progress: bool = True
) -> DownloadSummary:
    """Bring ``out`` up to date with the Hub dataset; see the module docstring.

    Raises:
        HubUnreachableError: no answer from the Hub and no intact earlier download.
        DownloadError: the Hub answered with an error, or a file failed verification.
    """
    previous = load_manifest(out, source)
    try:
        remotes = [describe(source, name) for name in (*CSV_FILES, archive)]
    except HubUnreachableError as exc:
        if previous is not None and _intact(out, previous, archive):
            logger.warning(
                "Hub unreachable (%s); %s already holds revision %s", exc, out, previous.commit
            )
            assert previous.archive is not None
            return DownloadSummary(
                commit=previous.commit,
                unchanged=[*CSV_FILES, archive],
                train_images=previous.archive.train_images,
                test_images=previous.archive.test_images,
                offline=True,
            )
        raise HubUnreachableError(offline_message(source, out, str(exc))) from None
    logger.info(
        "dataset %s at %s resolves to commit %s", source.repo_id, source.revision, remotes[0].commit
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / SAMPLE_MARKER).unlink(missing_ok=True)  # whatever was here is being replaced
    summary = DownloadSummary(commit=remotes[0].commit)
    manifest = Manifest(repo_id=source.repo_id, revision=source.revision, commit=summary.commit)
    try:
        for remote in remotes[:-1]:
            old = previous.files.get(remote.filename) if previous else None
            manifest.files[remote.filename] = _fetch_csv(source, remote, out, summary, old)
        old_archive = previous.archive if previous and previous.archive else None
        if old_archive is not None and old_archive.filename != archive:
            old_archive = None
        manifest.archive = _fetch_archive(source, remotes[-1], out, summary, old_archive, progress)
    except HubUnreachableError as exc:
        raise HubUnreachableError(offline_message(source, out, str(exc))) from None
    finally:
        (out / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2) + "\n", "utf-8")
    summary.train_images = manifest.archive.train_images
    summary.test_images = manifest.archive.test_images
    return summary
