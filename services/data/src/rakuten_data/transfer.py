"""Downloads that survive the end of the process, for the big image archive.

huggingface_hub >= 1.0 downloads into a temporary file unique to the process and deletes it when
the download fails or is interrupted (huggingface_hub PR #4228): within one run a dropped
connection is resumed with a ``Range`` request, but after Ctrl-C, a crash or a timeout the next
run starts again from byte 0, which for a 2.5 GB archive is hours on a slow link. So files of at
least ``resumable_min_bytes`` go through huggingface_hub's own ``http_get`` into a partial file
kept in the cache (``<cache>/rakuten-data/<repo>/<file>.<etag>.part``) that the next run
continues from its current size. Same client, headers, retries and progress bar; the result is
verified against the Hub's sha256 like every other file.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from filelock import FileLock
from huggingface_hub import constants
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.file_download import http_get
from huggingface_hub.utils import build_hf_headers  # type: ignore[attr-defined]

from rakuten_core.errors import DownloadError
from rakuten_data.hub import HubSource, HubUnreachableError, RemoteFile, http_status, verify

logger = logging.getLogger(__name__)


def transfer_dir(source: HubSource) -> Path:
    """Where partial and completed resumable downloads of ``source`` live."""
    root = source.cache_dir or Path(constants.HF_HUB_CACHE)
    return root / "rakuten-data" / source.repo_id.replace("/", "--")


def _headers(source: HubSource, url: str) -> dict[str, str]:
    headers = build_hf_headers(token=source.token)
    if urlsplit(url).hostname != urlsplit(source.endpoint).hostname:
        headers.pop("authorization", None)  # the token never leaves the Hub for a CDN
    return headers


def _drop_stale_parts(folder: Path, remote: RemoteFile) -> None:
    for stale in folder.glob(f"{remote.filename}.*.part"):
        if stale.name != f"{remote.filename}.{remote.etag}.part":
            logger.info("removing %s: the file changed on the Hub", stale.name)
            stale.unlink(missing_ok=True)


def fetch_resumable(source: HubSource, remote: RemoteFile) -> tuple[Path, str]:
    """Download ``remote`` continuing any partial file; returns (path, sha256) once verified.

    Raises:
        DownloadError: the finished file does not match the Hub's size or etag (it is deleted,
            so the next run starts afresh).
    """
    folder = transfer_dir(source)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / remote.etag / remote.filename
    # Two runs appending to one partial file would corrupt it: the second waits for the first.
    with FileLock(str(folder / f"{remote.filename}.lock")):
        if final.is_file():  # completed earlier (or by the run we waited for)
            try:
                return final, verify(final, remote)
            except DownloadError:
                final.unlink()
        _drop_stale_parts(folder, remote)
        part = folder / f"{remote.filename}.{remote.etag}.part"
        url = remote.location
        with part.open("ab") as handle:
            done = handle.tell()
            if remote.size is not None and done > remote.size:
                handle.seek(0)
                handle.truncate()
                done = 0
            if done:
                logger.info("resuming %s at byte %d of %s", remote.filename, done, remote.size)
            try:
                http_get(
                    url,
                    handle,
                    resume_size=done,
                    headers=_headers(source, url),
                    expected_size=remote.size,
                    displayed_filename=remote.filename,
                )
            except httpx.TransportError as exc:  # the partial file stays for the next run
                raise HubUnreachableError(
                    f"{type(exc).__name__} while downloading: {exc}"
                ) from None
            except HfHubHTTPError as exc:
                raise DownloadError(
                    f"{remote.filename}: download failed: {http_status(exc)}"
                ) from None
            except OSError as exc:  # size mismatch: the partial file cannot be trusted
                handle.truncate(0)
                raise DownloadError(f"{remote.filename}: download failed: {exc}") from None
        final.parent.mkdir(parents=True, exist_ok=True)
        part.replace(final)
    try:
        return final, verify(final, remote)
    except DownloadError:
        final.unlink(missing_ok=True)
        raise
