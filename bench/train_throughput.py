"""Benchmark (3): training throughput, real file-based tf.data pipeline vs in-memory tensors.

Same model (``params.yaml``), same generated sample, same batch size. Three feeds:

- ``files, no cache``: every epoch reads and decodes the JPEGs through
  ``rakuten_core.image.decode_image_file`` in a parallel ``map`` (the worst case);
- ``files, cached``: the training default (``cache_images: true``), epochs after the first;
- ``in-memory``: all inputs pre-decoded into tensors, ``from_tensor_slices`` + batch + prefetch.

Each figure is examples/s over full epochs after one warm-up epoch (graph tracing excluded).

    uv run --frozen python bench/train_throughput.py [--rows 2000] [--epochs 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    from rakuten_core.categories import CATEGORIES
    from rakuten_core.inputs import HAS_IMAGE_INPUT, IMAGE_INPUT, TEXT_INPUT
    from rakuten_data.prepare import PrepareOptions, prepare
    from rakuten_data.sample import SampleSpec, write_sample
    from rakuten_train.model import build_model, compile_model
    from rakuten_train.params import load_params
    from rakuten_train.pipeline import make_dataset
    from rakuten_train.splits import decode_or_blank, load_split

    params = load_params(ROOT / "params.yaml", {"deterministic": False})
    keras.utils.set_random_seed(params.seed)
    with tempfile.TemporaryDirectory() as tmp:
        raw, processed = Path(tmp) / "raw", Path(tmp) / "processed"
        table = ROOT.parent / "shared" / "data" / "rakuten" / "labels" / "train_ids.csv"
        write_sample(
            raw, SampleSpec(train_rows=args.rows, test_rows=0), label_table=table
            if table.is_file() else None,
        )  # fmt: skip
        prepare(raw, processed, PrepareOptions(progress=False))
        split = load_split(processed, "train", raw)
        n, size, bs = len(split), params.image_size, params.batch_size
        model = build_model(params, split.texts.tolist(), len(CATEGORIES))
        compile_model(model, params)

        decoded = [decode_or_blank(str(p), size) for p in split.image_paths]
        memory = (
            tf.data.Dataset.from_tensor_slices(
                (
                    {
                        TEXT_INPUT: tf.constant(split.texts.astype(str).reshape(-1, 1).tolist()),
                        IMAGE_INPUT: tf.constant(np.stack([d[0] for d in decoded])),
                        HAS_IMAGE_INPUT: tf.constant([[d[1]] for d in decoded], dtype=tf.float32),
                    },
                    split.labels,
                )
            )
            .shuffle(n, seed=1)
            .batch(bs)
            .prefetch(tf.data.AUTOTUNE)
        )

        def files(cache: bool) -> tf.data.Dataset:
            return make_dataset(
                split, image_size=size, batch_size=bs, shuffle=True, seed=1, cache=cache
            )

        def rate(ds: tf.data.Dataset) -> float:
            model.fit(ds, epochs=1, verbose=0, shuffle=False)  # warm-up (and cache fill)
            start = time.perf_counter()
            model.fit(ds, epochs=args.epochs, verbose=0, shuffle=False)
            return n * args.epochs / (time.perf_counter() - start)

        # Decoding alone, for scale: how fast the input pipeline can produce batches.
        start = time.perf_counter()
        for _ in files(False):
            pass
        decode_rate = n / (time.perf_counter() - start)

        results = {
            "in-memory tensors": rate(memory),
            "files, no cache": rate(files(False)),
            "files, cached (default)": rate(files(True)),
        }
        base = results["in-memory tensors"]
        print(f"{n} training rows, image {size}px, batch {bs}, {os.cpu_count()} CPUs")
        print(f"{'input pipeline alone (decode + batch)':40s} {decode_rate:8.1f} examples/s")
        for name, value in results.items():
            print(f"{name:40s} {value:8.1f} examples/s  ratio {value / base:.2f}")


if __name__ == "__main__":
    main()
