"""Micro-batching: concurrent requests share one model call, off the event loop.

Requests wait in a bounded :class:`asyncio.Queue`; one collector task takes the first waiting
request and what piled up while the model was busy, then waits for more until ``max_size`` or
``max_wait`` has passed, but only while requests are on their way (:meth:`MicroBatcher.coming`:
their images are being decoded): a lone request runs at once instead of waiting ``max_wait`` for
company that is not coming. Each batch runs in a dedicated worker thread. A full queue
raises :class:`~rakuten_core.errors.OverloadedError` (503 + ``Retry-After``) instead of letting
latency grow without bound. :class:`DirectRunner` is the same interface without batching (one
model call per request), kept for the benchmark and for comparison.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from typing import Generic, Protocol, TypeVar

from rakuten_core.errors import OverloadedError
from rakuten_serve.telemetry import Telemetry

logger = logging.getLogger(__name__)

In = TypeVar("In")
Out = TypeVar("Out")
InC = TypeVar("InC", contravariant=True)
OutC = TypeVar("OutC", covariant=True)


class Runner(Protocol[InC, OutC]):
    """What the predict route needs: submit one item, get its result."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def submit(self, item: InC) -> OutC: ...

    def coming(self) -> AbstractContextManager[None]:
        """Around the work that precedes :meth:`submit` (decoding): a request on its way."""
        ...


class MicroBatcher(Generic[In, Out]):
    """Groups submitted items into batches for ``run_batch`` (called in a worker thread)."""

    def __init__(
        self,
        run_batch: Callable[[Sequence[In]], Sequence[Out]],
        *,
        max_size: int,
        max_wait_s: float,
        queue_size: int,
        telemetry: Telemetry,
        retry_after_s: int = 1,
    ) -> None:
        self._run_batch = run_batch
        self._max_size = max_size
        self._max_wait_s = max_wait_s
        self._queue_size = queue_size
        self._telemetry = telemetry
        self._retry_after_s = retry_after_s
        self._queue: asyncio.Queue[tuple[In, asyncio.Future[Out]]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._coming = 0  # requests between coming() and submit(): worth waiting for

    async def start(self) -> None:
        self._queue = asyncio.Queue(maxsize=self._queue_size)
        self._task = asyncio.create_task(self._collect(), name="micro-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._queue is not None:
            while not self._queue.empty():
                _, future = self._queue.get_nowait()
                if not future.done():
                    future.set_exception(OverloadedError("the server is shutting down"))
        self._executor.shutdown(wait=True)

    @contextlib.contextmanager
    def coming(self) -> Iterator[None]:
        """Marks a request as on its way while its input is prepared. Leave it right before
        :meth:`submit` (no ``await`` between): the request then counts in the queue instead."""
        self._coming += 1
        try:
            yield
        finally:
            self._coming -= 1

    async def submit(self, item: In) -> Out:
        queue = self._queue
        if queue is None or self._task is None or self._task.done():
            raise OverloadedError("the model queue is not running", retry_after_s=5)
        if queue.full():
            self._telemetry.overloaded()
            raise OverloadedError(
                f"the model queue is full ({self._queue_size} waiting); retry shortly",
                retry_after_s=self._retry_after_s,
            )
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        queue.put_nowait((item, future))
        self._telemetry.queue_depth(queue.qsize())
        return await future

    async def _gather(self) -> list[tuple[In, asyncio.Future[Out]]]:
        assert self._queue is not None
        queue = self._queue
        batch = [await queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._max_wait_s
        while len(batch) < self._max_size:
            try:
                batch.append(queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            if not self._coming:  # no request on its way: waiting would only add latency
                break
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            assert self._queue is not None
            self._telemetry.queue_depth(self._queue.qsize())
            live = [(item, fut) for item, fut in batch if not fut.done()]
            if not live:
                continue
            started = time.perf_counter()
            try:
                results = await loop.run_in_executor(
                    self._executor, self._run_batch, [item for item, _ in live]
                )
            except Exception as exc:  # handed to every waiting request, mapped to HTTP there
                for _, fut in live:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            finally:
                self._telemetry.batch_ran(size=len(live), seconds=time.perf_counter() - started)
            for (_, fut), result in zip(live, results, strict=True):
                if not fut.done():
                    fut.set_result(result)


class DirectRunner(Generic[In, Out]):
    """No batching: one model call per request, in a thread, still bounded by ``queue_size``."""

    def __init__(
        self,
        run_batch: Callable[[Sequence[In]], Sequence[Out]],
        *,
        queue_size: int,
        telemetry: Telemetry,
        retry_after_s: int = 1,
    ) -> None:
        self._run_batch = run_batch
        self._queue_size = queue_size
        self._telemetry = telemetry
        self._retry_after_s = retry_after_s
        self._in_flight = 0
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="model")

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self._executor.shutdown(wait=True)

    def coming(self) -> AbstractContextManager[None]:
        return nullcontext()  # nothing waits for company

    async def submit(self, item: In) -> Out:
        if self._in_flight >= self._queue_size:
            self._telemetry.overloaded()
            raise OverloadedError(
                f"{self._in_flight} requests are waiting for the model; retry shortly",
                retry_after_s=self._retry_after_s,
            )
        self._in_flight += 1
        self._telemetry.queue_depth(self._in_flight)
        started = time.perf_counter()
        try:
            loop = asyncio.get_running_loop()
            results = await loop.run_in_executor(self._executor, self._run_batch, [item])
            return results[0]
        finally:
            self._in_flight -= 1
            self._telemetry.queue_depth(self._in_flight)
            self._telemetry.batch_ran(size=1, seconds=time.perf_counter() - started)
