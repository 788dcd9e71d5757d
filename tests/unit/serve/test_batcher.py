"""The micro-batcher: grouping, bounded queue (503), and an event loop that never blocks."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest

from rakuten_core.errors import OverloadedError
from rakuten_serve.app import create_app
from rakuten_serve.batcher import DirectRunner, MicroBatcher
from rakuten_serve.predictor import Predictor
from rakuten_serve.telemetry import PrometheusTelemetry
from tests.utils.prom_text import sample_value
from tests.utils.serve_app import (
    DEFAULT_USERS,
    PASSWORD,
    jpeg_bytes,
    migrate_and_add_users,
    serve_settings,
)


class SlowSquare:
    """A real batch function: squares numbers, takes ``delay`` seconds per call."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.calls: list[int] = []
        self.threads: set[str] = set()

    def __call__(self, items: Sequence[int]) -> list[int]:
        self.calls.append(len(items))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        return [i * i for i in items]


def test_concurrent_requests_share_model_calls() -> None:
    async def scenario() -> tuple[list[int], SlowSquare, PrometheusTelemetry]:
        fn, telemetry = SlowSquare(0.05), PrometheusTelemetry()
        batcher = MicroBatcher(fn, max_size=8, max_wait_s=0.02, queue_size=100, telemetry=telemetry)
        await batcher.start()
        try:
            results = await asyncio.gather(*(batcher.submit(i) for i in range(20)))
        finally:
            await batcher.stop()
        return list(results), fn, telemetry

    results, fn, telemetry = asyncio.run(scenario())
    assert results == [i * i for i in range(20)]
    assert sum(fn.calls) == 20
    assert max(fn.calls) == 8  # capped at max_size
    assert len(fn.calls) <= 4  # 20 items in at most 4 calls instead of 20
    assert all(name.startswith("model") for name in fn.threads)  # never the loop's thread
    exposition = telemetry.exposition().decode()
    assert sample_value(exposition, "rakuten_batch_size_sum") == 20
    assert sample_value(exposition, "rakuten_batch_size_count") == len(fn.calls)
    assert sample_value(exposition, "rakuten_batch_queue_depth") == 0


def test_a_lone_request_runs_at_once_and_one_on_its_way_is_waited_for() -> None:
    """No request coming: the first one runs without waiting ``max_wait`` (30 s here) for
    company. One coming (its image being decoded): the collector waits for it, and both share
    one call. One announced that never comes (its decoding failed): the batch runs at the
    deadline."""

    async def scenario() -> tuple[int, list[int], list[int], SlowSquare]:
        fn = SlowSquare(0.0)
        batcher = MicroBatcher(
            fn, max_size=8, max_wait_s=30.0, queue_size=100, telemetry=PrometheusTelemetry()
        )
        await batcher.start()
        try:
            alone = await asyncio.wait_for(batcher.submit(3), 10)  # not the 30 s max_wait
            with batcher.coming():
                first = asyncio.create_task(batcher.submit(1))
                await asyncio.sleep(0.3)  # the collector holds the first request, waiting
                calls_while_coming = list(fn.calls)
            pair = await asyncio.wait_for(asyncio.gather(first, batcher.submit(2)), 10)
        finally:
            await batcher.stop()
        return alone, calls_while_coming, list(pair), fn

    alone, calls_while_coming, pair, fn = asyncio.run(scenario())
    assert alone == 9
    assert calls_while_coming == [1]  # only the lone request's call so far
    assert pair == [1, 4]
    assert fn.calls == [1, 2]  # the first request waited for the one on its way

    async def withdrawn() -> tuple[int, list[int]]:
        fn = SlowSquare(0.0)
        batcher = MicroBatcher(
            fn, max_size=8, max_wait_s=0.2, queue_size=100, telemetry=PrometheusTelemetry()
        )
        await batcher.start()
        try:
            with contextlib.suppress(ValueError), batcher.coming():
                first = asyncio.create_task(batcher.submit(5))
                await asyncio.sleep(0)
                raise ValueError("the image could not be decoded")  # it never reaches submit
            return await asyncio.wait_for(first, 10), fn.calls
        finally:
            await batcher.stop()

    assert asyncio.run(withdrawn()) == (25, [1])


def test_the_direct_runner_has_nothing_to_wait_for() -> None:
    runner = DirectRunner(lambda items: items, queue_size=4, telemetry=PrometheusTelemetry())
    with runner.coming():
        pass  # a no-op: one model call per request, no batch to gather


def test_event_loop_keeps_running_during_inference() -> None:
    async def scenario() -> int:
        batcher = MicroBatcher(
            SlowSquare(0.3),
            max_size=4,
            max_wait_s=0.0,
            queue_size=10,
            telemetry=PrometheusTelemetry(),
        )
        await batcher.start()
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        await batcher.submit(3)
        task.cancel()
        await batcher.stop()
        return ticks

    assert asyncio.run(scenario()) >= 15  # ~30 ticks fit in the 0.3 s model call


def test_full_queue_raises_overloaded_with_retry_after() -> None:
    async def scenario() -> list[object]:
        batcher = MicroBatcher(
            SlowSquare(0.2),
            max_size=1,
            max_wait_s=0.0,
            queue_size=2,
            telemetry=PrometheusTelemetry(),
            retry_after_s=3,
        )
        await batcher.start()
        try:
            return await asyncio.gather(
                *(batcher.submit(i) for i in range(8)), return_exceptions=True
            )
        finally:
            await batcher.stop()

    outcomes = asyncio.run(scenario())
    refused = [o for o in outcomes if isinstance(o, OverloadedError)]
    assert refused, outcomes
    assert all(o.retry_after_s == 3 for o in refused)
    assert [o for o in outcomes if isinstance(o, int)]  # the queued ones were answered


def test_direct_runner_makes_one_call_per_item() -> None:
    async def scenario() -> SlowSquare:
        fn = SlowSquare(0.01)
        runner = DirectRunner(fn, queue_size=100, telemetry=PrometheusTelemetry())
        await runner.start()
        await asyncio.gather(*(runner.submit(i) for i in range(6)))
        await runner.stop()
        return fn

    assert asyncio.run(scenario()).calls == [1] * 6


@pytest.mark.slow
def test_api_answers_503_with_retry_after_when_the_queue_is_full(
    tmp_path: Path, serve_bundle_dir: Path, shared_predictor: Predictor
) -> None:
    settings = serve_settings(
        tmp_path,
        model_path=str(serve_bundle_dir),
        batch_queue_size=1,
        batch_max_size=1,
        batch_max_wait_ms=0,
        overload_retry_after_s=2,
    )
    migrate_and_add_users(settings, DEFAULT_USERS)
    app = create_app(settings, shared_predictor)
    image = jpeg_bytes((400, 400))

    async def scenario() -> list[httpx.Response]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://serve") as client:
                token = (
                    await client.post("/token", data={"username": "alice", "password": PASSWORD})
                ).json()["access_token"]
                headers = {"Authorization": f"Bearer {token}"}
                return list(
                    await asyncio.gather(
                        *(
                            client.post(
                                "/predict",
                                headers=headers,
                                data={"designation": f"Chaise {i}"},
                                files={"image": ("c.jpg", image, "image/jpeg")},
                            )
                            for i in range(40)
                        )
                    )
                )

    responses = asyncio.run(scenario())
    statuses = sorted({r.status_code for r in responses})
    assert set(statuses) <= {200, 503}, statuses
    overloaded = [r for r in responses if r.status_code == 503]
    assert overloaded, "40 concurrent requests never filled a queue of 1"
    assert overloaded[0].headers["retry-after"] == "2"
    assert overloaded[0].json()["error"] == "overloaded"
    assert any(r.status_code == 200 for r in responses)
