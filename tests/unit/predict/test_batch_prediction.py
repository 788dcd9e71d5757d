"""Batch prediction end to end through the CLI, on real challenge rows and images."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score
from typer.testing import CliRunner

from rakuten_core.bundle import read_metadata
from rakuten_core.dataset import image_filename
from rakuten_core.image import decode_image
from rakuten_core.inputs import model_inputs
from rakuten_core.text import product_text
from rakuten_predict.cli import app
from rakuten_predict.engine import predict_batches
from rakuten_predict.output import output_columns
from rakuten_predict.reader import ProductCsv, ProductRow, batched
from rakuten_predict.runner import cpu_seconds
from tests.utils.predict_data import EMPTY_TEXT_ROW, GARBAGE_IMAGE

pytestmark = pytest.mark.slow  # loads TensorFlow and a real Keras model


def _invoke(*args: str | Path) -> Any:
    result = CliRunner().invoke(app, ["predict", *map(str, args), "--no-progress"])
    return result


def _predict(
    bundle_dir: Path, data: Path, out: Path, *extra: str | Path
) -> tuple[Any, pd.DataFrame | None]:
    result = _invoke(
        "--model", bundle_dir, "--csv", data / "x.csv", "--images", data / "images",
        "--out", out, *extra,
    )  # fmt: skip
    frame = pd.read_csv(out, index_col=0) if out.exists() else None
    return result, frame


def test_every_row_is_predicted_and_degraded_rows_are_listed(
    predict_bundle_dir: Path, labelled_products: Path, tmp_path: Path
) -> None:
    out = tmp_path / "pred" / "test.csv"
    result, frame = _predict(
        predict_bundle_dir, labelled_products, out,
        "--labels", labelled_products / "y.csv", "--metrics", tmp_path / "metrics.json",
        "--summary", tmp_path / "summary.json", "--batch-size", "16",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert frame is not None
    source = pd.read_csv(labelled_products / "x.csv", index_col=0)
    assert list(frame.index) == list(source.index)
    assert ["", *frame.columns] == output_columns()
    pd.testing.assert_frame_equal(frame[["productid", "imageid"]], source[["productid", "imageid"]])
    assert (frame["prdtypecode"] == frame["top1_code"]).all()
    assert (frame["top1_probability"] >= frame["top2_probability"]).all()
    assert (frame["top2_probability"] >= frame["top3_probability"]).all()
    assert frame["probability"].between(0, 1).all()

    images = labelled_products / "images"
    expected_missing = {
        i for i, r in source.iterrows()
        if not (images / image_filename(r["imageid"], r["productid"])).exists()
    }  # fmt: skip
    expected_unreadable = {
        i for i, r in source.iterrows()
        if (images / image_filename(r["imageid"], r["productid"])).exists()
        and (images / image_filename(r["imageid"], r["productid"])).read_bytes() == GARBAGE_IMAGE
    }  # fmt: skip
    summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert summary["rows"] == len(source)
    assert {r["index"] for r in summary["missing_image"]} == expected_missing
    assert {r["index"] for r in summary["unreadable_image"]} == expected_unreadable
    assert len(expected_missing) > 5 and len(expected_unreadable) == 1
    assert [r["index"] for r in summary["empty_text"]] == [EMPTY_TEXT_ROW]
    assert summary["empty_text"][0]["line"] == 7
    assert sum(c["count"] for c in summary["counts"].values()) == len(source)
    assert summary["counts"][str(frame["prdtypecode"].iloc[0])]["count"] >= 1
    assert summary["mean_confidence"] == pytest.approx(frame["probability"].mean(), abs=1e-5)
    assert summary["model"]["version"] == read_metadata(predict_bundle_dir).model_version
    assert summary["throughput"]["rows_per_second"] > 0

    truth = pd.read_csv(labelled_products / "y.csv", index_col=0)["prdtypecode"]
    metrics = json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))
    assert metrics == summary["metrics"]
    assert metrics["n"] == len(source)
    assert metrics["weighted_f1"] == pytest.approx(
        f1_score(truth.loc[frame.index], frame["prdtypecode"], average="weighted"), abs=1e-6
    )
    assert metrics["accuracy"] == pytest.approx(
        float((truth.loc[frame.index] == frame["prdtypecode"]).mean()), abs=1e-6
    )


def test_batch_gives_the_serving_path_answer(
    predict_bundle: Any, predict_bundle_dir: Path, labelled_products: Path, tmp_path: Path
) -> None:
    """Serving decodes the uploaded bytes and cleans the form fields, one product per call."""
    out = tmp_path / "pred.csv"
    result, frame = _predict(
        predict_bundle_dir, labelled_products, out, "--batch-size", "7", "--workers", "3"
    )
    assert result.exit_code == 0, result.output
    assert frame is not None
    images = labelled_products / "images"
    size = predict_bundle.image_size
    checked_with_image = 0
    for row in ProductCsv(labelled_products / "x.csv").rows():
        file = images / image_filename(row.imageid, row.productid)
        image = None
        if file.exists() and file.read_bytes() != GARBAGE_IMAGE:  # the API refuses garbage (415)
            image = decode_image(file.read_bytes(), size=size)
            checked_with_image += 1
        elif file.exists():
            continue
        inputs = model_inputs(
            [product_text(row.designation, row.description or None)], [image], image_size=size
        )
        probs = predict_bundle.predict_proba(inputs)[0]
        top = np.argsort(-probs, kind="stable")[:3]
        expected = [predict_bundle.categories.code_of(int(i)) for i in top]
        got = frame.loc[row.index]
        assert [got["top1_code"], got["top2_code"], got["top3_code"]] == expected, row.index
        np.testing.assert_allclose(
            [got["top1_probability"], got["top2_probability"], got["top3_probability"]],
            probs[top],
            atol=2e-6,
        )
    assert checked_with_image >= 10


def test_the_answer_does_not_depend_on_batch_size_or_threads(
    predict_bundle_dir: Path, labelled_products: Path, tmp_path: Path
) -> None:
    _, big = _predict(predict_bundle_dir, labelled_products, tmp_path / "a.csv")
    _, small = _predict(
        predict_bundle_dir, labelled_products, tmp_path / "b.csv",
        "--batch-size", "5", "--workers", "1",
    )  # fmt: skip
    assert big is not None and small is not None
    pd.testing.assert_frame_equal(
        big.drop(columns=[c for c in big.columns if "probab" in c]),
        small.drop(columns=[c for c in small.columns if "probab" in c]),
    )
    np.testing.assert_allclose(big["probability"], small["probability"], atol=2e-6)


def test_malformed_csv_exits_2_naming_the_line_and_writes_nothing(
    predict_bundle_dir: Path, labelled_products: Path, tmp_path: Path
) -> None:
    lines = (labelled_products / "x.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    lines.insert(4, "999,broken row,,12,34,extra\n")
    (labelled_products / "x.csv").write_text("".join(lines), encoding="utf-8")
    out = tmp_path / "pred.csv"
    result, frame = _predict(predict_bundle_dir, labelled_products, out)
    assert result.exit_code == 2
    assert "line 5: expected 5 fields as in the header, found 6" in result.output
    assert frame is None and not list(tmp_path.glob("*.summary.json"))


def test_bad_labels_and_missing_model_have_distinct_exit_codes(
    predict_bundle_dir: Path, labelled_products: Path, tmp_path: Path
) -> None:
    labels = tmp_path / "y.csv"
    labels.write_text(",prdtypecode\n0,10\n1,40\n", encoding="utf-8")
    result, _ = _predict(
        predict_bundle_dir, labelled_products, tmp_path / "a.csv", "--labels", labels
    )
    assert result.exit_code == 2 and "have no label, first index 2" in result.output
    result, _ = _predict(
        predict_bundle_dir, labelled_products, tmp_path / "a.csv", "--metrics", tmp_path / "m"
    )
    assert result.exit_code == 2 and "--metrics needs --labels" in result.output
    result, _ = _predict(tmp_path / "no-bundle", labelled_products, tmp_path / "a.csv")
    assert result.exit_code == 3 and "model bundle directory not found" in result.output


def test_memory_is_bounded_by_the_batch_not_the_file(
    predict_bundle: Any, labelled_products: Path
) -> None:
    """At each model call, the reader is at most ``prefetch`` batches ahead of the model."""
    consumed: list[int] = []

    def counting_rows() -> Any:
        for row in ProductCsv(labelled_products / "x.csv").rows():
            consumed.append(row.index)
            yield row

    class Recording:
        image_size = predict_bundle.image_size
        ahead: list[int] = []

        shapes: set[int] = set()

        def predict_proba(self, inputs: Any) -> Any:
            self.ahead.append(len(consumed))
            self.shapes.add(len(inputs["has_image"]))
            return predict_bundle.predict_proba(inputs)

    recorder = Recording()
    batch, prefetch = 8, 2
    results = list(
        predict_batches(
            recorder,
            batched(counting_rows(), batch),
            images_dir=labelled_products / "images",
            workers=2,
            prefetch=prefetch,
        )
    )
    assert sum(len(r.rows) for r in results) == 60
    # call 0 is the warm-up on an empty batch, made once the first `prefetch` batches are queued
    assert recorder.ahead[0] == prefetch * batch
    assert len(recorder.ahead) == 1 + len(results)
    for k, seen in enumerate(recorder.ahead[1:]):
        assert seen <= (k + 1 + prefetch) * batch  # bounded read-ahead
    assert recorder.ahead[1] == (1 + prefetch) * batch  # and it does read ahead (overlap)
    assert recorder.shapes == {batch}  # the last, shorter batch is padded: no retrace


def test_rows_keep_their_order_and_text(predict_bundle: Any, tmp_path: Path) -> None:
    rows = [
        ProductRow(line=i + 2, index=100 + i, designation=f"piscine {i}", description="",
                   productid=i, imageid=i)
        for i in range(5)
    ]  # fmt: skip
    results = list(
        predict_batches(predict_bundle, batched(iter(rows), 2), images_dir=tmp_path, workers=3)
    )
    prepared = [p for r in results for p in r.rows]
    assert [p.row.index for p in prepared] == [100, 101, 102, 103, 104]
    assert [p.text for p in prepared] == [f"piscine {i}" for i in range(5)]
    assert all(p.image_status == "missing" and p.image is None for p in prepared)
    assert all(r.probabilities.shape == (len(r.rows), 27) for r in results)


def test_output_is_a_readable_csv(
    predict_bundle_dir: Path, labelled_products: Path, tmp_path: Path
) -> None:
    out = tmp_path / "p.csv"
    _predict(predict_bundle_dir, labelled_products, out)
    with out.open(encoding="utf-8", newline="") as fh:
        header = next(csv.reader(fh))
    assert header[:4] == ["", "productid", "imageid", "prdtypecode"]
    assert oct(out.stat().st_mode & 0o777) == oct(0o644)


def test_the_cpu_figure_counts_the_ended_decode_processes() -> None:
    """The summary's cpu_seconds: this process and its ended children (the decode pool)."""
    before = cpu_seconds()
    spin = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"
    subprocess.run([sys.executable, "-c", spin], check=True)
    assert cpu_seconds() - before >= 0.25


def test_reuse_predicts_nothing_until_the_model_or_an_input_changes(
    predict_bundle_dir: Path, labelled_products: Path, tmp_path: Path
) -> None:
    out = tmp_path / "pred" / "test.csv"
    first, _ = _predict(predict_bundle_dir, labelled_products, out, "--reuse")
    assert first.exit_code == 0, first.output
    written = out.stat().st_mtime_ns
    again, _ = _predict(predict_bundle_dir, labelled_products, out, "--reuse")
    assert again.exit_code == 0, again.output
    assert "is up to date" in again.output and "reused, nothing predicted" in again.output
    assert out.stat().st_mtime_ns == written

    csv = labelled_products / "x.csv"
    csv.write_text(csv.read_text(encoding="utf-8") + "\n", encoding="utf-8")  # other bytes
    changed, _ = _predict(predict_bundle_dir, labelled_products, out, "--reuse")
    assert changed.exit_code == 0, changed.output
    assert "rows ->" in changed.output and out.stat().st_mtime_ns != written

    (out.with_suffix(".summary.json")).unlink()  # predictions without their summary
    lost, _ = _predict(predict_bundle_dir, labelled_products, out, "--reuse")
    assert lost.exit_code == 0 and "rows ->" in lost.output
