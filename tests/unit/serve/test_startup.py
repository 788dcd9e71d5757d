"""What startup leaves behind: the model warmed up on the batch sizes it will see, the heap
frozen, the cores shared between the workers' ONNX Runtime thread pools.

See ``rakuten_serve.heap`` and ``LoadedModel.warm_up``; the timings themselves are in
``bench/serve_predict.py`` and docs/performance.md, never asserted here.
"""

from __future__ import annotations

import gc
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import uvicorn
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from rakuten_core.bundle import INTRA_OP_THREADS_ENV, load_bundle
from rakuten_serve.app import create_app
from rakuten_serve.asgi import size_model_threads
from rakuten_serve.cli import app as cli_app
from rakuten_serve.predictor import LoadedModel, Predictor, load_model
from rakuten_serve.settings import ServeSettings, get_settings
from tests.utils.serve_app import bearer, get_token, serve_settings, settings_env
from tests.utils.serve_fixtures import copy_bundle_as

pytestmark = pytest.mark.slow


def test_warm_up_runs_the_smallest_and_the_largest_batch(serve_bundle_dir: Path) -> None:
    loaded = LoadedModel(load_bundle(serve_bundle_dir), str(serve_bundle_dir))
    assert loaded.bundle.runtime_name == "onnx"
    sizes: list[int] = []
    runtime = loaded.bundle.runtime
    original = runtime.predict_proba

    def spy(inputs: dict[str, np.ndarray]) -> np.ndarray:
        sizes.append(len(inputs["has_image"]))
        return original(inputs)

    runtime.predict_proba = spy  # type: ignore[method-assign]
    assert loaded.warm_up(8) >= 0
    assert sizes == [1, 8]  # text-only and with-image products both ran
    sizes.clear()
    loaded.warm_up(1)
    assert sizes == [1]


def test_heap_is_frozen_while_serving_and_released_after(
    settings: ServeSettings, serve_bundle_dir: Path, tmp_path: Path
) -> None:
    gc.unfreeze()
    predictor = Predictor(load_model(str(serve_bundle_dir), cache_dir=Path("unused")))
    with TestClient(create_app(settings, predictor)) as client:
        frozen = gc.get_freeze_count()
        assert frozen > 10_000  # the model's and the libraries' objects
        # a reload swaps models: the old one's cycles are collected, the new heap refrozen
        v2 = copy_bundle_as(serve_bundle_dir, tmp_path / "v2", "v2-frozen")
        root = bearer(get_token(client, "root"))
        answer = client.post("/admin/reload", headers=root, json={"model": str(v2)})
        assert answer.status_code == 200, answer.text
        assert gc.get_freeze_count() > 10_000
        answer = client.post(
            "/predict", headers=bearer(get_token(client)), data={"designation": "Lampe"}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_version"] == "v2-frozen"
    assert gc.get_freeze_count() == 0  # handed back at shutdown


def test_every_swap_refreezes_the_heap_once(
    serve_bundle_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one swap method owns the refreeze: a reload by spec and a swap of a model loaded
    elsewhere (the replica's paths) each collect and refreeze exactly once."""
    from rakuten_serve import heap

    calls: list[int] = []
    monkeypatch.setattr(heap, "refreeze", lambda: calls.append(1))
    first = load_model(str(serve_bundle_dir), cache_dir=Path("unused"))
    predictor = Predictor(first)
    predictor.reload(str(serve_bundle_dir), cache_dir=Path("unused"), warm_up_batch=1)
    assert len(calls) == 1 and predictor.model is not first
    predictor.reload_with(first)
    assert len(calls) == 2 and predictor.model is first


def test_workers_share_the_cores_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(INTRA_OP_THREADS_ENV, raising=False)
    size_model_threads(1)  # one worker: ONNX Runtime's default (every core)
    assert INTRA_OP_THREADS_ENV not in os.environ
    cores = len(os.sched_getaffinity(0))
    size_model_threads(2)
    assert os.environ[INTRA_OP_THREADS_ENV] == str(max(1, cores // 2))
    monkeypatch.delenv(INTRA_OP_THREADS_ENV)
    size_model_threads(4 * cores)  # more workers than cores: one thread each, never zero
    assert os.environ[INTRA_OP_THREADS_ENV] == "1"
    monkeypatch.setenv(INTRA_OP_THREADS_ENV, "7")
    size_model_threads(2)  # set by the operator: kept
    assert os.environ[INTRA_OP_THREADS_ENV] == "7"


def test_one_worker_started_by_the_cli_sizes_its_threads_for_the_cli_count(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`run --workers 1` wins over RAKUTEN_WORKERS, in the in-process worker's settings too."""
    env = settings_env(serve_settings(tmp_path)) | {
        "RAKUTEN_WORKERS": "3",
        "RAKUTEN_RUN_DIR": str(tmp_path / "run"),
        "RAKUTEN_METRICS_ENABLED": "false",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    seen: list[tuple[int, str]] = []
    monkeypatch.setattr(
        uvicorn,
        "run",
        lambda *_, **__: seen.append((get_settings().workers, os.environ["RAKUTEN_WORKERS"])),
    )
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli_app, ["run", "--workers", "1", "--no-migrate"])
    finally:
        get_settings.cache_clear()
        logging.getLogger().handlers.clear()  # the CLI's log file lives in tmp_path
    assert result.exit_code == 0, result.output
    assert seen == [(1, "1")]  # what asgi.build() reads in this process


def test_the_default_is_one_worker_per_usable_core(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """RAKUTEN_WORKERS=0 (the default): as many workers as the CPU set allows (a container's
    cpuset, not the host's core count)."""
    env = settings_env(serve_settings(tmp_path)) | {
        "RAKUTEN_WORKERS": "0",
        "RAKUTEN_RUN_DIR": str(tmp_path / "run"),
        "RAKUTEN_METRICS_ENABLED": "false",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2})
    seen: list[tuple[int, int, str]] = []
    monkeypatch.setattr(
        uvicorn,
        "run",
        lambda *_, **options: seen.append(
            (options["workers"], get_settings().workers, os.environ["RAKUTEN_WORKERS"])
        ),
    )
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli_app, ["run", "--no-migrate"])
    finally:
        get_settings.cache_clear()
        logging.getLogger().handlers.clear()
    assert result.exit_code == 0, result.output
    assert seen == [(3, 3, "3")]
