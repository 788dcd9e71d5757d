"""Batch prediction when a decode process dies or hangs: new processes, the same answers, or
exit 4."""

from __future__ import annotations

import logging
import os
import re
import signal
import threading
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
from typer.testing import CliRunner

from rakuten_core.dataset import image_filename
from rakuten_predict.cli import app
from rakuten_predict.engine import DecodeProcessError, predict_batches
from rakuten_predict.reader import ProductCsv, ProductRow, batched
from tests.utils.proc_stats import spawned_children

pytestmark = pytest.mark.slow  # spawns decode processes and runs a real model


def _decode_processes() -> list[int]:
    """This process's decode workers, not the resource tracker."""
    return spawned_children(os.getpid())


def _answers(
    bundle: Any, rows: Iterable[ProductRow], images: Path, **options: Any
) -> tuple[list[int], np.ndarray]:
    """Every row's index and probabilities, predicted in batches of 8 by 2 decode processes."""
    results = list(
        predict_batches(bundle, batched(iter(rows), 8), images_dir=images, workers=2, **options)
    )
    return [p.row.index for r in results for p in r.rows], np.concatenate(
        [r.probabilities for r in results]
    )


def _assert_same(got: tuple[list[int], np.ndarray], expected: Any, rows: list[ProductRow]) -> None:
    assert got[0] == expected[0] == [r.index for r in rows]  # every row, in order
    np.testing.assert_allclose(got[1], expected[1], atol=1e-6)


def _rows(data: Path) -> list[ProductRow]:
    return list(ProductCsv(data / "x.csv").rows())


@dataclass
class _Undisturbed:
    """The products' rows and images, and the answers of a run nothing interfered with."""

    rows: list[ProductRow]
    images: Path
    answers: tuple[list[int], np.ndarray]


@pytest.fixture
def undisturbed(predict_bundle: Any, labelled_products: Path) -> _Undisturbed:
    rows, images = _rows(labelled_products), labelled_products / "images"
    return _Undisturbed(rows, images, _answers(predict_bundle, rows, images))


def test_a_killed_decode_process_is_replaced_and_the_answers_do_not_change(
    predict_bundle: Any, undisturbed: _Undisturbed, caplog: pytest.LogCaptureFixture
) -> None:
    rows = undisturbed.rows
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
        got = _answers(predict_bundle, killing_rows(), undisturbed.images)
    assert killed
    _assert_same(got, undisturbed.answers, rows)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and all("a decode process died" in w for w in warnings), warnings
    assert killed[0] not in _decode_processes()  # the pool was shut down


@pytest.mark.parametrize("racing", [1, 2])
def test_a_pool_that_breaks_while_a_batch_is_queued_is_replaced_with_the_same_answers(
    racing: int,
    predict_bundle: Any,
    undisturbed: _Undisturbed,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """CPython 3.11's race: a submit that starts a replacement process can find the call queue
    closed by the executor's thread marking the pool broken, and raise OSError "handle is
    closed" (seen once in CI, under a killer). The first ``racing`` pools fail every submit so."""
    from rakuten_predict import engine

    real_new_pool = engine._DecodePool._new_pool  # noqa: SLF001
    pools: list[Any] = []

    def new_pool(self: Any) -> Any:
        pool = real_new_pool(self)
        if len(pools) < racing:

            def closed(*args: object, **kwargs: object) -> None:
                raise OSError("handle is closed")

            pool.submit = closed
        pools.append(pool)
        return pool

    monkeypatch.setattr(engine._DecodePool, "_new_pool", new_pool)  # noqa: SLF001
    with caplog.at_level(logging.WARNING, logger="rakuten_predict.engine"):
        got = _answers(predict_bundle, undisturbed.rows, undisturbed.images)
    _assert_same(got, undisturbed.answers, undisturbed.rows)
    assert len(pools) > racing
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("were queued" in w for w in warnings), warnings


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
    assert result.exit_code == 4, result.output + "".join(
        traceback.format_exception(*result.exc_info) if result.exc_info else []
    )
    assert "a decode process died 3 times while decoding CSV lines" in result.output
    assert list(out.parent.iterdir()) == []  # no output, and no temporary one left behind


def _hang_image(data: Path, rows: list[ProductRow], start: int) -> tuple[Path, bytes, ProductRow]:
    """Replace the first real JPEG at or after ``rows[start]`` by a named pipe with no writer:
    reading it blocks forever, as a read from a stalled network mount does."""
    for row in rows[start:]:
        path = data / "images" / image_filename(row.imageid, row.productid)
        jpeg = path.read_bytes() if path.is_file() else b""
        if jpeg[:2] == b"\xff\xd8":
            path.unlink()
            os.mkfifo(path)
            return path, jpeg, row
    raise AssertionError("no real JPEG to replace")


class _Mend(logging.Handler):
    """Puts the JPEG back in place of the pipe when the engine reports the hung batch, before it
    starts new decode processes: the second try reads the real image."""

    def __init__(self, path: Path, jpeg: bytes) -> None:
        super().__init__(logging.WARNING)
        self.path, self.jpeg, self.mended = path, jpeg, False

    def emit(self, record: logging.LogRecord) -> None:
        if "did not finish within" in record.getMessage() and not self.mended:
            self.path.unlink()
            self.path.write_bytes(self.jpeg)
            self.mended = True


def _line_ranges(messages: list[str]) -> list[range]:
    return [
        range(int(m[1]), int(m[2]) + 1)
        for message in messages
        for m in re.finditer(r"CSV lines (\d+)-(\d+)", message)
    ]


@pytest.mark.timeout(300)  # without the timeout the run waits forever: fail fast
def test_a_hung_decode_is_killed_and_decoded_again_with_the_same_answers(
    predict_bundle: Any,
    labelled_products: Path,
    undisturbed: _Undisturbed,
    caplog: pytest.LogCaptureFixture,
) -> None:
    rows = undisturbed.rows
    path, jpeg, hung_row = _hang_image(labelled_products, rows, 20)
    mend = _Mend(path, jpeg)
    engine_log = logging.getLogger("rakuten_predict.engine")
    engine_log.addHandler(mend)
    try:
        with caplog.at_level(logging.WARNING, logger="rakuten_predict.engine"):
            # 10 s: far above a batch of 8 on a loaded machine, process start included
            got = _answers(predict_bundle, rows, undisturbed.images, decode_timeout_s=10)
    finally:
        engine_log.removeHandler(mend)
    assert mend.mended
    _assert_same(got, undisturbed.answers, rows)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    hung = [w for w in warnings if "did not finish within 10 s" in w]
    assert hung and all("its decode processes were killed" in w for w in hung), warnings
    assert any(hung_row.line in lines for lines in _line_ranges(hung)), (hung_row.line, hung)
    assert _decode_processes() == []  # none left behind, hung or not


@pytest.mark.timeout(300)  # without the timeout the run waits forever: fail fast
def test_the_cli_exits_4_naming_the_batch_whose_decoding_keeps_hanging(
    predict_bundle_dir: Path, labelled_products: Path, tmp_path: Path
) -> None:
    rows = _rows(labelled_products)
    # in the first batch: a false timeout on a loaded machine would name that batch too
    _hang_image(labelled_products, rows, 0)
    out = tmp_path / "predictions" / "pred.csv"
    out.parent.mkdir()
    result = CliRunner().invoke(
        app,
        [
            "predict", "--model", str(predict_bundle_dir),
            "--csv", str(labelled_products / "x.csv"),
            "--images", str(labelled_products / "images"),
            "--out", str(out), "--workers", "2", "--batch-size", "8",
            "--decode-timeout", "2", "--no-progress",
        ],
    )  # fmt: skip
    assert result.exit_code == 4, result.output
    assert (
        f"decoding CSV lines {rows[0].line}-{rows[7].line} did not finish within 2 s 3 times"
        in result.output
    )
    assert list(out.parent.iterdir()) == []  # no output, and no temporary one left behind
    assert _decode_processes() == []  # the hung ones were killed
