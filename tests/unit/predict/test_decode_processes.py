"""Batch prediction when a decode process dies: new processes, the same answers, or exit 4."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
from typer.testing import CliRunner

from rakuten_predict.cli import app
from rakuten_predict.engine import BatchResult, DecodeProcessError, predict_batches
from rakuten_predict.reader import ProductCsv, ProductRow, batched
from tests.utils.proc_stats import spawned_children

pytestmark = pytest.mark.slow  # spawns decode processes and runs a real model


def _decode_processes() -> list[int]:
    """This process's decode workers, not the resource tracker."""
    return spawned_children(os.getpid())


def _answers(results: list[BatchResult]) -> tuple[list[int], np.ndarray]:
    rows = [p.row.index for r in results for p in r.rows]
    return rows, np.concatenate([r.probabilities for r in results])


def _rows(data: Path) -> list[ProductRow]:
    return list(ProductCsv(data / "x.csv").rows())


def test_a_killed_decode_process_is_replaced_and_the_answers_do_not_change(
    predict_bundle: Any, labelled_products: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = _rows(labelled_products)
    images = labelled_products / "images"
    expected = _answers(
        list(predict_batches(predict_bundle, batched(iter(rows), 8), images_dir=images, workers=2))
    )
    killed: list[int] = []

    def killing_rows() -> Iterator[ProductRow]:
        for n, row in enumerate(rows):
            if n == 24:  # the pool is decoding batches ahead of the model: kill one of it
                victim = psutil.Process(_decode_processes()[0])
                victim.send_signal(signal.SIGKILL)
                victim.wait(10)
                killed.append(victim.pid)
            yield row

    with caplog.at_level(logging.WARNING, logger="rakuten_predict.engine"):
        got = _answers(
            list(
                predict_batches(
                    predict_bundle, batched(killing_rows(), 8), images_dir=images, workers=2
                )
            )
        )
    assert killed
    assert got[0] == expected[0] == [r.index for r in rows]  # every row, in order
    np.testing.assert_allclose(got[1], expected[1], atol=1e-6)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and all("a decode process died" in w for w in warnings), warnings
    assert killed[0] not in _decode_processes()  # the pool was shut down


class _Killer:
    """Kills every decode process of this test as soon as it appears, until stopped."""

    def __init__(self) -> None:
        self.kills = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            for pid in _decode_processes():
                try:
                    os.kill(pid, signal.SIGKILL)
                    self.kills += 1
                except ProcessLookupError:
                    continue

    def __enter__(self) -> _Killer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def test_a_batch_that_keeps_killing_its_processes_stops_the_run_with_its_lines(
    predict_bundle: Any, labelled_products: Path
) -> None:
    rows = _rows(labelled_products)
    with _Killer() as killer, pytest.raises(DecodeProcessError) as raised:
        list(
            predict_batches(
                predict_bundle,
                batched(iter(rows), 8),
                images_dir=labelled_products / "images",
                workers=2,
            )
        )
    assert killer.kills >= 3
    assert f"CSV lines {rows[0].line}-{rows[7].line}" in str(raised.value)
    assert "died 3 times" in str(raised.value)


def test_the_cli_exits_4_and_writes_nothing_when_decoding_keeps_dying(
    predict_bundle_dir: Path, labelled_products: Path, tmp_path: Path
) -> None:
    out = tmp_path / "predictions" / "pred.csv"
    out.parent.mkdir()
    with _Killer():
        result = CliRunner().invoke(
            app,
            [
                "predict", "--model", str(predict_bundle_dir),
                "--csv", str(labelled_products / "x.csv"),
                "--images", str(labelled_products / "images"),
                "--out", str(out), "--workers", "2", "--no-progress",
            ],
        )  # fmt: skip
    assert result.exit_code == 4, result.output
    assert "a decode process died 3 times while decoding CSV lines" in result.output
    assert list(out.parent.iterdir()) == []  # no output, and no temporary one left behind
