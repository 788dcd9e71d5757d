"""Batch prediction throughput: end to end (CSV + JPEG files -> predictions CSV) vs raw model.

Builds a test set shaped like the official one (``--rows`` products, default 13,812) from the real
challenge rows and real 500x500 JPEGs in ``../shared/data/rakuten`` (the real texts cycled, each
product pointing at one of the ~200 real images through a symlink named after it), then measures:

- **raw model**: ``Bundle.predict_proba`` on already-decoded, already-stacked batches (the upper
  bound: no CSV, no text cleaning, no JPEG decoding);
- **end to end**: the real ``rakuten-predict predict`` CLI in a subprocess, for several decode
  thread counts; rows/s from its summary (model load excluded, everything else included) and the
  process's peak RSS, also on a quarter of the rows to show memory does not grow with the file.

Prints a table; asserts nothing.

    uv run --frozen python bench/predict_throughput.py --model models/current
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "rakuten"
sys.path.insert(0, str(ROOT))  # for the tests.utils tiny bundle when no model is given


def build_dataset(work: Path, rows: int) -> tuple[Path, Path]:
    """A challenge-format CSV of ``rows`` products and an image folder of symlinks to real JPEGs."""
    with (SHARED / "raw_sample" / "X_test_update.csv").open(encoding="utf-8", newline="") as fh:
        texts = [(r[1], r[2]) for r in list(csv.reader(fh))[1:]]
    jpegs = sorted((SHARED / "images" / "test").glob("*.jpg")) + sorted(
        (SHARED / "images" / "train").glob("*.jpg")
    )
    images = work / "images"
    images.mkdir(parents=True, exist_ok=True)
    path = work / "X_test.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["", "designation", "description", "productid", "imageid"])
        for i in range(rows):
            designation, description = texts[i % len(texts)]
            productid, imageid = 10_000_000 + i, 20_000_000 + i
            writer.writerow([84_916 + i, designation, description, productid, imageid])
            link = images / f"image_{imageid}_product_{productid}.jpg"
            if not link.exists():
                link.symlink_to(jpegs[i % len(jpegs)])
    return path, images


def raw_model_throughput(
    model_dir: Path, csv_path: Path, images: Path, batch: int, rows: int
) -> tuple[float, float]:
    """Rows/s and CPU ms/row of the model alone on pre-decoded batches, after a warm-up call."""
    from rakuten_core.bundle import load_bundle
    from rakuten_core.inputs import model_inputs
    from rakuten_predict.engine import prepare_row
    from rakuten_predict.reader import ProductCsv, batched

    bundle = load_bundle(model_dir)
    batches = []
    for rows_ in batched(ProductCsv(csv_path).rows(), batch):
        size = bundle.image_size
        prepared = [prepare_row(r, images_dir=images, image_size=size) for r in rows_]
        texts, decoded = [p.text for p in prepared], [p.image for p in prepared]
        batches.append(model_inputs(texts, decoded, image_size=size))
        if len(batches) == 4:
            break
    bundle.predict_proba(batches[0])  # trace / warm up
    done, started, cpu = 0, time.perf_counter(), time.process_time()
    while done < rows:
        inputs = batches[(done // batch) % len(batches)]
        done += len(bundle.predict_proba(inputs))
    return done / (time.perf_counter() - started), (time.process_time() - cpu) * 1000 / done


def end_to_end(
    model_dir: Path, csv_path: Path, images: Path, out: Path, *, batch: int, workers: int
) -> dict[str, float]:
    """Run the real CLI in a child process; its rows/s (load excluded), wall time and peak RSS."""
    cli = Path(sys.executable).with_name("rakuten-predict")
    started = time.perf_counter()
    child = subprocess.Popen(
        [
            str(cli), "predict", "--model", str(model_dir), "--csv", str(csv_path),
            "--images", str(images), "--out", str(out), "--batch-size", str(batch),
            "--workers", str(workers), "--no-progress",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "RAKUTEN_LOG_DIR": str(out.parent / "logs")},
    )  # fmt: skip
    _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage (peak RSS in KiB)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"rakuten-predict failed with status {os.waitstatus_to_exitcode(status)}")
    summary = json.loads(out.with_suffix(".summary.json").read_text(encoding="utf-8"))
    return {
        "rows_per_s": summary["throughput"]["rows_per_second"],
        # CPU of the prediction loop (all threads), as the CLI measures it: no start-up, no load
        "cpu_ms_per_row": summary["throughput"]["cpu_seconds"] * 1000 / summary["rows"],
        "wall_s": wall,
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "workers": summary["throughput"]["workers"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", type=Path, help="bundle dir (default: models/current, else tiny)"
    )
    parser.add_argument("--rows", type=int, default=13_812)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 0])
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-predict-"))
    model_dir = args.model
    if model_dir is None and (ROOT / "models" / "current").is_dir():
        model_dir = ROOT / "models" / "current"
    if model_dir is None:
        from tests.utils.predict_bundle import make_predict_bundle

        model_dir = make_predict_bundle(work / "tiny-bundle", image_size=64)
        print("no --model and no models/current: using the tiny test bundle (64 px)")
    from rakuten_core.bundle import read_metadata

    meta = read_metadata(model_dir)
    print(f"model {meta.model_name} {meta.model_version}, image {meta.image_size}px, {model_dir}")
    print(f"cpu cores {os.cpu_count()}, rows {args.rows}, batch {args.batch_size}")

    csv_path, images = build_dataset(work, args.rows)
    quarter_csv, _ = build_dataset(work / "quarter", max(1, args.rows // 4))
    shutil.rmtree(work / "quarter" / "images")
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    raw, raw_cpu = raw_model_throughput(model_dir, csv_path, images, args.batch_size, args.rows)

    results = []
    for workers in args.workers:
        r = end_to_end(
            model_dir, csv_path, images, work / f"out-w{workers}" / "pred.csv",
            batch=args.batch_size, workers=workers,
        )  # fmt: skip
        results.append((f"end to end, {r['workers']} decode threads, {args.rows} rows", r))
    quarter = end_to_end(
        model_dir, quarter_csv, images, work / "out-quarter" / "pred.csv",
        batch=args.batch_size, workers=args.workers[-1],
    )  # fmt: skip
    results.append((f"end to end, {quarter['workers']} threads, {args.rows // 4} rows", quarter))

    print(f"load average after: {os.getloadavg()[0]:.1f} (cores: {os.cpu_count()})")
    print()
    head = ("run", "rows/s", "/ raw", "wall s", "CPU ms/row", "peak RSS MiB")
    widths = (48, 8, 6, 7, 10, 12)
    print(
        "| "
        + " | ".join(
            f"{h:<{w}}" if i == 0 else f"{h:>{w}}"
            for i, (h, w) in enumerate(zip(head, widths, strict=True))
        )
        + " |"
    )
    print(f"|{'-' * 50}|{'-' * 10}|{'-' * 8}|{'-' * 9}|{'-' * 12}|{'-' * 14}|")
    name = "raw model on decoded tensors"
    print(f"| {name:<48} | {raw:>8.1f} | {1.0:>6.2f} | {'':>7} | {raw_cpu:>10.2f} | {'':>12} |")
    for name, r in results:
        print(
            f"| {name:<48} | {r['rows_per_s']:>8.1f} | {r['rows_per_s'] / raw:>6.2f} "
            f"| {r['wall_s']:>7.1f} | {r['cpu_ms_per_row']:>10.2f} | {r['peak_rss_mib']:>12.0f} |"
        )
    print(
        "\nrows/s and CPU ms/row exclude process start-up and model load (the CLI's own figures);"
        "\nwith C free cores a run cannot exceed about C * 1000 / (CPU ms/row) rows/s."
    )
    if args.keep:
        print(f"\nwork folder kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
