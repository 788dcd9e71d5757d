"""The streaming prediction loop: parallel preprocessing overlapped with model calls.

Rows arrive in batches from the CSV reader. Each row's text cleaning and image decoding run in a
pool of ``workers`` processes (one chunk of a batch per process), ``prefetch`` batches ahead of
the model, so while the model predicts batch *k* the pool is already decoding batches
*k+1..k+prefetch*. At most ``(prefetch + 1) * batch_size`` decoded images are alive at any time:
memory is bounded by the batch size, never by the file size.

Processes, not threads: decoding is about two thirds of a row's CPU and much of it is Python
(Pillow's JPEG header parsing, EXIF, text cleaning) holding the GIL, so two decode threads and the
model's thread fought over it and every row cost more CPU than the parts alone
(docs/performance.md, "Batch prediction"). The pool starts its processes with ``spawn``: the
parent runs the model runtime's threads (ONNX Runtime's), and a ``fork`` of a
process with running threads can deadlock in the child. A child imports this module (NumPy,
Pillow), never a model runtime.

Preprocessing is exactly the serving path's: :func:`rakuten_core.text.product_text`,
:func:`rakuten_core.image.decode_image` (through ``decode_image_file``) and
:func:`rakuten_core.inputs.model_inputs`; nothing here transforms text or pixels itself.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from rakuten_core.dataset import image_filename
from rakuten_core.errors import InvalidInputError, RakutenError
from rakuten_core.image import ImageArray, decode_image_file
from rakuten_core.inputs import ModelInputs, model_inputs
from rakuten_core.text import product_text
from rakuten_predict.reader import ProductRow

logger = logging.getLogger(__name__)

# Seconds a batch may take to decode once the model waits for it (a batch of 256 takes about
# half a second on 2 cores) before its processes are taken for hung, killed and restarted.
DEFAULT_DECODE_TIMEOUT_S = 300.0

ImageStatus = Literal["ok", "missing", "unreadable"]


class DecodeProcessError(RakutenError):
    """Decoding one batch kept killing its decode process (CLI exit 4)."""


class Predictor(Protocol):
    """What the loop needs from a model: :class:`rakuten_core.bundle.Bundle` satisfies it."""

    @property
    def image_size(self) -> int: ...

    def predict_proba(self, inputs: ModelInputs) -> NDArray[np.float32]: ...


@dataclass(frozen=True, slots=True)
class PreparedRow:
    """A row after the shared preprocessing, with why its image is absent if it is."""

    row: ProductRow
    text: str
    image: ImageArray | None
    image_status: ImageStatus
    image_error: str | None = None


@dataclass(frozen=True, slots=True)
class BatchResult:
    """Predicted probabilities ``(N, C)`` for ``rows``, in the bundle's category order."""

    rows: list[PreparedRow]
    probabilities: NDArray[np.float32]


def prepare_row(row: ProductRow, *, images_dir: Path, image_size: int) -> PreparedRow:
    """Clean the text and decode the image of one row; a bad image becomes ``None``."""
    text = product_text(row.designation, row.description)
    path = images_dir / image_filename(row.imageid, row.productid)
    try:
        image = decode_image_file(path, size=image_size)
    except FileNotFoundError:
        return PreparedRow(row, text, None, "missing")
    except (InvalidInputError, OSError) as exc:
        return PreparedRow(row, text, None, "unreadable", str(exc))
    return PreparedRow(row, text, image, "ok")


def prepare_rows(rows: list[ProductRow], images_dir: Path, image_size: int) -> list[PreparedRow]:
    """:func:`prepare_row` for each of ``rows``: one task of a decode process."""
    return [prepare_row(row, images_dir=images_dir, image_size=image_size) for row in rows]


def predict_batches(
    predictor: Predictor,
    batches: Iterable[list[ProductRow]],
    *,
    images_dir: Path,
    workers: int,
    prefetch: int = 2,
    warm_up: bool = True,
    decode_timeout_s: float = DEFAULT_DECODE_TIMEOUT_S,
) -> Iterator[BatchResult]:
    """Yield one :class:`BatchResult` per input batch, in input order.

    A batch still decoding ``decode_timeout_s`` after the model started waiting for it is
    taken for hung: its processes are killed and it is decoded again (see :class:`_DecodePool`).

    Every model call gets the first batch's size (a shorter last batch is padded with empty rows
    whose outputs are dropped): ONNX Runtime sizes its buffers for the shapes it sees, so one
    shape keeps every call on the same plan. With ``warm_up`` the first call is made on an
    empty batch while the pool decodes the first real ones, instead of after them.
    """
    if workers < 1 or prefetch < 1 or decode_timeout_s <= 0:
        raise ValueError("workers and prefetch must be >= 1, decode_timeout_s > 0")
    size = predictor.image_size
    source = iter(batches)
    pool = _DecodePool(workers, images_dir, size, decode_timeout_s)
    pending: deque[_Decoding] = deque()
    width = 0  # rows per model call, fixed by the first batch

    def submit_next() -> None:
        nonlocal width
        batch = next(source, None)
        if batch is not None:
            width = width or len(batch)
            pending.append(_Decoding(batch, pool.submit(batch)))

    try:
        for _ in range(prefetch):
            submit_next()
        if warm_up and pending:
            predictor.predict_proba(model_inputs([""] * width, [None] * width, image_size=size))
        while pending:
            decoding = pending.popleft()
            submit_next()  # keep the pool busy while this batch goes through the model
            prepared = pool.result(decoding, pending)
            pad = max(0, width - len(prepared))
            inputs = model_inputs(
                [p.text for p in prepared] + [""] * pad,
                [p.image for p in prepared] + [None] * pad,
                image_size=size,
            )
            yield BatchResult(prepared, predictor.predict_proba(inputs)[: len(prepared)])
    finally:
        # An error or an abandoned generator drops the queued work; its processes are killed
        # rather than awaited, since one of them may be the hung one.
        pool.shutdown(kill=bool(pending))


@dataclass
class _Decoding:
    """One input batch and the decode tasks of its chunks."""

    rows: list[ProductRow]
    futures: list[Future[list[PreparedRow]]]
    restarts: int = 0


class _DecodePool:
    """The decode processes; replaced when one of them dies or hangs.

    A decode process that dies (killed for memory, or a crash in an image library) breaks the
    whole :class:`ProcessPoolExecutor`: every queued chunk fails with ``BrokenProcessPool``.
    One that hangs (a read from a stalled network mount, a decoder stuck on crafted bytes)
    would hold the run forever, so when a batch is not decoded ``timeout_s`` after the model
    started waiting for it, the pool's processes are killed, which breaks it the same way.
    The batches are still here, so a new pool decodes them again. A batch that breaks
    ``MAX_RESTARTS + 1`` pools in a row stops the run with an error naming its CSV lines
    (nothing is written: the output is renamed into place only at the end).
    """

    MAX_RESTARTS = 2

    def __init__(self, workers: int, images_dir: Path, image_size: int, timeout_s: float) -> None:
        self._workers = workers
        self._images_dir = images_dir
        self._image_size = image_size
        self._timeout_s = timeout_s
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self._workers, mp_context=multiprocessing.get_context("spawn")
        )

    def submit(self, rows: list[ProductRow]) -> list[Future[list[PreparedRow]]]:
        try:
            return self._submit(rows)
        except BrokenProcessPool:  # a process died after its last task, before this batch
            self._restart(
                f"a decode process died before CSV lines {rows[0].line}-{rows[-1].line} were queued"
            )
        try:
            return self._submit(rows)
        except BrokenProcessPool as exc:  # the new pool broke at once: result() counts it
            failed: Future[list[PreparedRow]] = Future()
            failed.set_exception(exc)
            return [failed]

    def _submit(self, rows: list[ProductRow]) -> list[Future[list[PreparedRow]]]:
        step = -(-len(rows) // self._workers)  # one chunk per process
        try:
            return [
                self._pool.submit(
                    prepare_rows, rows[i : i + step], self._images_dir, self._image_size
                )
                for i in range(0, len(rows), step)
            ]
        except OSError as exc:
            # CPython 3.11: a submit that starts a process to replace a dead one pickles the
            # call queue for it, and can race the executor's thread that is marking the pool
            # broken and closing that queue's pipe (OSError "handle is closed"). The pool is
            # broken all the same: the chunks already queued fail with it, decoded again.
            raise BrokenProcessPool(
                f"the decode pool broke while a batch was queued: {exc}"
            ) from exc

    def _restart(self, event: str) -> None:
        logger.warning("%s; starting new decode processes", event)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = self._new_pool()

    def result(self, decoding: _Decoding, queued: deque[_Decoding]) -> list[PreparedRow]:
        """The prepared rows of ``decoding``; on a broken or hung pool, a new pool decodes it
        and every ``queued`` batch again."""
        while True:
            deadline = time.monotonic() + self._timeout_s
            hung = False
            try:
                prepared: list[PreparedRow] = []
                for future in decoding.futures:
                    try:
                        chunk = future.result(timeout=max(0.0, deadline - time.monotonic()))
                    except TimeoutError:
                        hung = True
                        self._kill()
                        chunk = future.result()  # BrokenProcessPool, unless it ended meanwhile
                    prepared.extend(chunk)
                return prepared
            except BrokenProcessPool as exc:
                decoding.restarts += 1
                n = decoding.restarts
                lines = f"CSV lines {decoding.rows[0].line}-{decoding.rows[-1].line}"
                if n > self.MAX_RESTARTS:
                    raise DecodeProcessError(
                        f"decoding {lines} did not finish within {self._timeout_s:g} s {n} times "
                        "(a hung image read or decoder?); nothing was written"
                        if hung
                        else f"a decode process died {n} times while decoding {lines} (killed "
                        "for memory, or an image that crashes the decoder?); nothing was written"
                    ) from exc
                event = (
                    f"decoding {lines} did not finish within {self._timeout_s:g} s: its decode "
                    "processes were killed"
                    if hung
                    else f"a decode process died while decoding {lines}"
                )
                self._restart(
                    f"{event} (restart {n} of at most {self.MAX_RESTARTS}); the waiting batches "
                    "are decoded again"
                )
                with contextlib.suppress(BrokenProcessPool):  # died again: the loop counts it
                    for again in (decoding, *queued):
                        again.futures = self._submit(again.rows)

    def _kill(self) -> None:
        """SIGKILL the pool's processes; the pool then fails its futures with
        ``BrokenProcessPool``. ``ProcessPoolExecutor`` has no public way to stop a running task
        before Python 3.14 (``kill_workers``), hence its ``_processes``."""
        for process in list((self._pool._processes or {}).values()):  # noqa: SLF001
            process.kill()

    def shutdown(self, *, kill: bool = False) -> None:
        if kill:
            self._kill()
        self._pool.shutdown(wait=True, cancel_futures=True)
