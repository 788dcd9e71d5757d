"""Benchmark (4): on the generated sample, fused vs text-only vs image-only weighted F1.

Generates the default offline sample (``rakuten-data sample``: 2000 training rows), prepares it,
trains the bundle with ``params.yaml`` exactly as ``rakuten-train train`` does (no MLflow) and
prints the test-split figures of the one model fed with both inputs, text only (no image) and
image only (empty text), plus the wall time of the training job.

    uv run --frozen python bench/train_sample_modalities.py [--rows 2000] [--set text.key=value]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--set", action="append", default=[], help="param override key=value")
    args = parser.parse_args()
    import yaml

    overrides = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}

    from rakuten_data.prepare import PrepareOptions, prepare
    from rakuten_data.sample import SampleSpec, write_sample
    from rakuten_train.params import load_params
    from rakuten_train.training import train

    with tempfile.TemporaryDirectory() as tmp:
        raw, processed = Path(tmp) / "raw", Path(tmp) / "processed"
        table = ROOT.parent / "shared" / "data" / "rakuten" / "labels" / "train_ids.csv"
        write_sample(
            raw, SampleSpec(train_rows=args.rows, test_rows=0),
            label_table=table if table.is_file() else None,
        )  # fmt: skip
        prepare(raw, processed, PrepareOptions(progress=False))
        start = time.perf_counter()
        result = train(
            data=processed,
            raw=raw,
            params=load_params(ROOT / "params.yaml", overrides),
            bundle_out=Path(tmp) / "bundle",
            reports=Path(tmp) / "reports",
            track=False,
            verbose=0,
        )
        seconds = time.perf_counter() - start
    print(
        f"sample {args.rows} rows, overrides={overrides}, {result.epochs_run} epochs, "
        f"training job {seconds:.0f}s, load average {os.getloadavg()[0]:.1f}"
    )
    for modality, values in result.metrics["modalities"].items():
        print(
            f"{modality:12s} weighted_f1={values['weighted_f1']:.4f} "
            f"macro_f1={values['macro_f1']:.4f} accuracy={values['accuracy']:.4f} n={values['n']}"
        )


if __name__ == "__main__":
    main()
