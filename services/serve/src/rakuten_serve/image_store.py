"""Keeps the images clients send, so a prediction with feedback is a complete labelled example.

On only when ``RAKUTEN_IMAGE_STORE_DIR`` is set (docs/serving.md, "Image store", says what is
kept and for how long). The layout is :mod:`rakuten_core.stored_images`: one file per distinct
content, named by its SHA-256.

The request path only hands the bytes to a bounded in-memory queue (no I/O, no hashing: the
digest was computed when the image was decoded). One writer thread per process writes each image
to a temporary name in the target folder and renames it, so a reader never sees half a file
and two workers writing the same image both end with the same complete file. An image already
stored is not written again; its modification time is refreshed, so retention counts from the
last time an image was received. A separate sweeper thread deletes images older than the
retention and then the oldest ones until the folder is under the size cap; it runs on a timer
and as soon as a write takes the folder over the cap. Nothing here can fail a prediction: a full
queue, a full disk or an unwritable folder is counted in
``rakuten_image_store_writes{outcome="dropped"|"failed"}`` and logged (at most once a minute).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from rakuten_core.image import sniff_format
from rakuten_core.stored_images import is_sha256, stored_image_path
from rakuten_serve.telemetry import Telemetry

logger = logging.getLogger(__name__)

_STOP = object()
_WARN_EVERY_S = 60.0
_STALE_TMP_S = 3600.0  # a temporary file this old belongs to a write that died


@dataclass(frozen=True)
class SweepResult:
    """What one sweep removed and what the folder holds after it."""

    expired: int
    evicted: int
    files: int
    bytes: int


class ImageStore:
    """Background writer and sweeper of the image store (see the module docstring)."""

    def __init__(
        self,
        root: Path,
        *,
        telemetry: Telemetry,
        max_bytes: int,
        retention_days: float,
        queue_bytes: int = 64 * 1024 * 1024,
        sweep_interval_s: float = 300.0,
    ) -> None:
        self.root = root
        self._telemetry = telemetry
        self._max_bytes = max_bytes
        self._retention_s = retention_days * 86400.0
        self._queue_bytes = queue_bytes
        self._sweep_interval_s = sweep_interval_s
        self._queue: queue.Queue[object] = queue.Queue()
        self._queued_bytes = 0
        self._lock = threading.Lock()
        self._approx_bytes = 0
        self._written_bytes = 0  # ever written by this store: what a sweep's scan may miss
        self._sweep_now = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._last_warning = -_WARN_EVERY_S

    # ---- API used by the app
    def start(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # reported per image by the writer; serving goes on
            self._warn(f"image store folder {self.root} cannot be created: {exc}")
        self._stopping.clear()
        self._threads = [
            threading.Thread(target=self._write_loop, name="image-store-writer", daemon=True),
            threading.Thread(target=self._sweep_loop, name="image-store-sweeper", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        self._sweep_now.set()  # learn the folder's size (and apply the cap) once at start

    def stop(self, timeout_s: float = 10.0) -> None:
        """Write what is queued, then stop both threads."""
        self._queue.put(_STOP)
        self._stopping.set()
        self._sweep_now.set()
        for thread in self._threads:
            thread.join(timeout_s)
        self._threads = []

    def submit(self, data: bytes, sha256: str) -> None:
        """Queue one image for writing; never blocks, never raises."""
        if not is_sha256(sha256):
            self._telemetry.image_store_write("failed")
            return
        with self._lock:
            if self._queued_bytes + len(data) > self._queue_bytes:
                full = True
            else:
                full = False
                self._queued_bytes += len(data)
        if full:
            self._telemetry.image_store_write("dropped")
            self._warn("image store queue is full: an image was not kept")
            return
        self._queue.put((data, sha256))

    def wait_idle(self, timeout_s: float) -> bool:
        """True once every submitted image is written (tests, shutdown)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if self._queued_bytes == 0 and self._queue.empty():
                    return True
            time.sleep(0.02)
        return False

    # ---- writing
    def write(self, data: bytes, sha256: str) -> str:
        """Write one image now (the writer thread's work); returns the outcome reported."""
        target = stored_image_path(self.root, sha256, sniff_format(data))
        try:
            os.utime(target)  # already stored: retention restarts from now
            return "duplicate"
        except FileNotFoundError:
            pass
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{sha256}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            tmp.write_bytes(data)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        with self._lock:
            self._approx_bytes += len(data)
            self._written_bytes += len(data)
            over = self._approx_bytes > self._max_bytes
        if over:
            self._sweep_now.set()
        return "stored"

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            assert isinstance(item, tuple)
            data: bytes = item[0]
            sha256: str = item[1]
            try:
                outcome = self.write(data, sha256)
            except Exception as exc:  # full disk, permissions, folder gone: the image is lost
                # (any exception: a dead writer thread would silently drop every later image)
                outcome = "failed"
                self._warn(f"image not kept in the image store ({type(exc).__name__}: {exc})")
            finally:
                with self._lock:
                    self._queued_bytes -= len(data)
            self._telemetry.image_store_write(outcome)

    # ---- retention and size cap
    def sweep(self, now: float | None = None) -> SweepResult:
        """Delete expired images, then the oldest until under the cap; returns what it did."""
        now = time.time() if now is None else now
        with self._lock:
            written_before = self._written_bytes
        files: list[tuple[float, int, Path]] = []
        for folder in self._folders():
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                try:
                    info = entry.stat()
                except OSError:
                    continue  # removed meanwhile (another worker's sweep)
                if entry.name.startswith("."):
                    if now - info.st_mtime > _STALE_TMP_S:
                        Path(entry.path).unlink(missing_ok=True)
                    continue
                files.append((info.st_mtime, info.st_size, Path(entry.path)))
        files.sort()
        expired = [f for f in files if now - f[0] > self._retention_s]
        kept = files[len(expired) :]
        total = sum(size for _, size, _ in kept)
        evicted = 0
        while evicted < len(kept) and total > self._max_bytes:
            _, size, path = kept[evicted]
            path.unlink(missing_ok=True)
            total -= size
            evicted += 1
        kept = kept[evicted:]
        for _, _, path in expired:
            path.unlink(missing_ok=True)
        with self._lock:
            # images written while the folders were scanned may be missing from ``total``:
            # counting them (perhaps twice) keeps the next write's over-the-cap check honest
            self._approx_bytes = total + self._written_bytes - written_before
            over = self._approx_bytes > self._max_bytes
        if over:
            self._sweep_now.set()  # one of them went over the cap: sweep again
        self._telemetry.image_store_swept(
            expired=len(expired), evicted=evicted, size_bytes=total, files=len(kept)
        )
        if expired or evicted:
            logger.info(
                "image store: %d images past retention and %d over the size cap deleted; "
                "%d images, %d bytes kept",
                len(expired),
                evicted,
                len(kept),
                total,
            )
        return SweepResult(expired=len(expired), evicted=evicted, files=len(kept), bytes=total)

    def _folders(self) -> list[str]:
        try:
            return [e.path for e in os.scandir(self.root) if e.is_dir() and len(e.name) == 2]
        except OSError:
            return []

    def _sweep_loop(self) -> None:
        while not self._stopping.is_set():
            self._sweep_now.wait(self._sweep_interval_s)
            self._sweep_now.clear()
            if self._stopping.is_set():
                return
            try:
                self.sweep()
            except Exception as exc:  # never let the sweeper die; try again next time
                logger.warning("image store sweep failed: %s", exc)

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_warning >= _WARN_EVERY_S:
            self._last_warning = now
            logger.warning("%s (repeats are counted in rakuten_image_store_writes)", message)
