"""Fetching and verifying single files of the Hub dataset with ``huggingface_hub``.

One HEAD request asks the Hub (or the ``HF_ENDPOINT`` mirror) for a file's etag, size and
commit; the download is then pinned to that commit, so the file verified is the file described
and a cached copy is reused without any further request. huggingface_hub streams into its cache,
shows a tqdm bar and, when the connection drops mid-file, resumes with an HTTP ``Range`` request.
It only checks the size, so the content is verified here against the etag: the sha256 of LFS
files, the git blob sha1 of small files. A file that fails is removed from the cache and fetched
once more before giving up.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from tqdm import tqdm

from rakuten_core.errors import DownloadError

logger = logging.getLogger(__name__)

_SHA256 = re.compile(r"[0-9a-f]{64}")
_GIT_SHA1 = re.compile(r"[0-9a-f]{40}")
_HASH_CHUNK = 4 * 1024 * 1024
_HASH_PROGRESS_BYTES = 200 * 1024 * 1024


class HubUnreachableError(DownloadError):  # type: ignore[misc, unused-ignore]  # core: no py.typed
    """The Hub (or mirror) did not answer; offline alternatives exist."""


@dataclass(frozen=True)
class HubSource:
    """Which dataset to read, from where, as whom (the token never leaves this object)."""

    repo_id: str
    revision: str
    endpoint: str
    token: str | None = field(repr=False)  # never in logs, reprs or tracebacks
    cache_dir: Path | None
    timeout_s: float = 10.0
    resumable_min_bytes: int = 256 * 1024 * 1024  # see rakuten_data.transfer


@dataclass(frozen=True)
class RemoteFile:
    """What the Hub says about a file at a revision."""

    filename: str
    commit: str
    etag: str
    size: int | None
    location: str = field(default="", repr=False)  # may be a signed CDN URL: not for logs


def safe_url(url: str) -> str:
    """``url`` without user:password, for messages and logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def http_status(error: HfHubHTTPError) -> str:
    """``HTTP 503`` for an error response, without its URL (CDN URLs carry signatures)."""
    response = getattr(error, "response", None)
    return f"HTTP {response.status_code}" if response is not None else "an HTTP error"


def describe(source: HubSource, filename: str) -> RemoteFile:
    """HEAD the file on the Hub: commit, etag and size.

    Raises:
        HubUnreachableError: no answer (connection refused, DNS, timeout, offline mode).
        DownloadError: the Hub answered with an error (no such repo/revision/file, access).
    """
    url = hf_hub_url(
        source.repo_id,
        filename,
        repo_type="dataset",
        revision=source.revision,
        endpoint=source.endpoint,
    )
    try:
        meta = get_hf_file_metadata(
            url, token=source.token, timeout=source.timeout_s, endpoint=source.endpoint
        )
    except (httpx.TransportError, OfflineModeIsEnabled) as exc:
        raise HubUnreachableError(f"{type(exc).__name__}: {exc}") from None
    except GatedRepoError:
        raise DownloadError(
            f"dataset {source.repo_id} is gated; accept its terms on the Hub and set HF_TOKEN"
        ) from None
    except RepositoryNotFoundError:
        raise DownloadError(
            f"dataset {source.repo_id} not found at {safe_url(source.endpoint)}, or it is private "
            "and HF_TOKEN is missing or lacks access"
        ) from None
    except RevisionNotFoundError:
        raise DownloadError(f"revision {source.revision!r} of {source.repo_id} not found") from None
    except RemoteEntryNotFoundError:
        raise DownloadError(
            f"{filename} not found in {source.repo_id} at revision {source.revision!r}"
        ) from None
    except HfHubHTTPError as exc:
        raise HubUnreachableError(f"the Hub answered {http_status(exc)} for {filename}") from None
    if not meta.commit_hash or not meta.etag:
        raise DownloadError(f"{safe_url(url)} did not answer like the Hub (no commit or etag)")
    return RemoteFile(
        filename=filename,
        commit=meta.commit_hash,
        etag=meta.etag,
        size=meta.size,
        location=meta.location,
    )


def sha256_file(path: Path) -> str:
    """sha256 of a file, with a progress bar for the big archive."""
    digest = hashlib.sha256()
    size = path.stat().st_size
    with (
        path.open("rb") as handle,
        tqdm(
            total=size,
            unit="B",
            unit_scale=True,
            desc=f"verifying {path.name}",
            disable=size < _HASH_PROGRESS_BYTES,
        ) as bar,
    ):
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def _git_blob_sha1(path: Path) -> str:
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode(), usedforsecurity=False)
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: Path, remote: RemoteFile) -> str:
    """Check ``path`` against the Hub's size and etag; returns its sha256.

    Raises:
        DownloadError: size or content differs from what the Hub advertised.
    """
    size = path.stat().st_size
    if remote.size is not None and size != remote.size:
        raise DownloadError(f"{remote.filename}: {size} bytes, the Hub advertises {remote.size}")
    sha256 = sha256_file(path)
    if _SHA256.fullmatch(remote.etag):
        if sha256 != remote.etag:
            raise DownloadError(
                f"{remote.filename}: sha256 {sha256} does not match the Hub's {remote.etag}; "
                "the download is corrupt"
            )
    elif _GIT_SHA1.fullmatch(remote.etag):
        if _git_blob_sha1(path) != remote.etag:
            raise DownloadError(
                f"{remote.filename}: git blob sha1 does not match the Hub's etag {remote.etag}; "
                "the download is corrupt"
            )
    else:
        logger.warning("%s: etag %r is no content hash; size checked only", path.name, remote.etag)
    return sha256


def evict(path: Path) -> None:
    """Remove a cached file (the snapshot link and the blob it points to)."""
    blob = path.resolve()
    path.unlink(missing_ok=True)
    blob.unlink(missing_ok=True)


def fetch(source: HubSource, remote: RemoteFile) -> tuple[Path, str]:
    """Download ``remote`` (or reuse the cached copy), verified; returns (path, sha256).

    Raises:
        HubUnreachableError: the connection failed during the download.
        DownloadError: the file is still corrupt after one fresh download.
    """
    for attempt in (1, 2):
        try:
            path = Path(
                hf_hub_download(
                    source.repo_id,
                    remote.filename,
                    repo_type="dataset",
                    revision=remote.commit,
                    endpoint=source.endpoint,
                    token=source.token,
                    cache_dir=source.cache_dir,
                    etag_timeout=source.timeout_s,
                    force_download=attempt > 1,
                )
            )
        except (httpx.TransportError, LocalEntryNotFoundError) as exc:
            raise HubUnreachableError(f"{type(exc).__name__} while downloading: {exc}") from None
        except HfHubHTTPError as exc:  # its message holds the (signed) URL: keep the status only
            raise DownloadError(f"{remote.filename}: download failed: {http_status(exc)}") from None
        except OSError as exc:  # huggingface_hub's size consistency check
            raise DownloadError(f"{remote.filename}: download failed: {exc}") from None
        try:
            return path, verify(path, remote)
        except DownloadError as exc:
            evict(path)
            if attempt == 2:
                raise DownloadError(
                    f"{exc} (twice; removed from the cache). Check HF_ENDPOINT and any proxy in "
                    "between, then run again"
                ) from None
            logger.warning("%s; removed from the cache, downloading it again", exc)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
