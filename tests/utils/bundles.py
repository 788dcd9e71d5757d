"""A small but real bundle: generated sample -> prepare -> a short training run.

Used by the ``small_bundle_dir`` fixture (``tests/conftest.py``) for training, serving and
batch-prediction tests. Everything is real (``rakuten_data`` writes the raw layout and the
parquet splits, ``rakuten_train`` fits the production architecture, shrunk by
:data:`SMALL_PARAMS`); only sizes are small so it builds in about a minute on 2 CPU cores.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Production architecture, tiny sizes: seconds per epoch on 2 cores.
SMALL_PARAMS: dict[str, Any] = {
    "epochs": 6,
    "batch_size": 32,
    "learning_rate": 0.005,
    "image_size": 32,
    "early_stopping_patience": 0,
    "deterministic": True,
    "text.max_tokens": 3000,
    "text.sequence_length": 32,
    "text.embedding_dim": 16,
    "text.lstm_units": 16,
    "text.word_max_tokens": 4000,
    "text.char_max_tokens": 4000,
    "text.char_ngram_min": 3,
    "text.char_ngram_max": 4,
    "text.char_max_chars": 300,
    "text.wide_units": 64,
    "image.filters": [8, 16],
    "image.units": 16,
}


def cli_set_args(params: dict[str, Any]) -> list[str]:
    """``--set key=value`` arguments for ``rakuten-train train`` (values as JSON, read as YAML)."""
    import json  # noqa: PLC0415

    args: list[str] = []
    for key, value in params.items():
        args += ["--set", f"{key}={json.dumps(value)}"]
    return args


@dataclass(frozen=True)
class SmallData:
    raw: Path
    processed: Path


def make_small_data(
    root: str | Path, *, train_rows: int = 400, seed: int = 7, real_texts: Path | None = None
) -> SmallData:
    """Generate the offline sample and prepare it (train/val/test parquet) under ``root``.

    With ``real_texts`` (a ``text,prdtypecode`` CSV such as ``text_fr/products.csv``), each
    training row of a class found there gets one of that class's real texts instead of its
    generated one (each text once, while they last): the vocabularies then fill up as on real
    data, so the model has the width of one trained on the full set.
    """
    from rakuten_data.prepare import PrepareOptions, prepare  # noqa: PLC0415
    from rakuten_data.sample import SampleSpec, write_sample  # noqa: PLC0415
    from tests.utils.paths import SHARED_DATA  # noqa: PLC0415

    base = Path(root)
    raw, processed = base / "raw", base / "processed"
    table = SHARED_DATA / "labels" / "train_ids.csv"
    write_sample(
        raw,
        SampleSpec(train_rows=train_rows, test_rows=10, seed=seed, image_size=64),
        label_table=table if table.is_file() else None,
    )
    if real_texts is not None:
        _use_real_texts(raw, real_texts)
    prepare(raw, processed, PrepareOptions(seed=seed, val_size=0.15, test_size=0.2, progress=False))
    return SmallData(raw=raw, processed=processed)


def _use_real_texts(raw: Path, real_texts: Path) -> None:
    import pandas as pd  # noqa: PLC0415

    from rakuten_core import dataset  # noqa: PLC0415

    texts = pd.read_csv(real_texts, dtype={"text": str}, keep_default_na=False)
    by_class = {code: list(group["text"]) for code, group in texts.groupby("prdtypecode")}
    x = pd.read_csv(raw / dataset.X_TRAIN_FILE, index_col=0, dtype=str, keep_default_na=False)
    y = pd.read_csv(raw / dataset.Y_TRAIN_FILE, index_col=0)
    for index, code in y[dataset.LABEL_COLUMN].items():
        if by_class.get(code):
            x.loc[index, "designation"] = by_class[code].pop()
            x.loc[index, "description"] = ""
    x.to_csv(raw / dataset.X_TRAIN_FILE, encoding="utf-8", lineterminator="\n")


def build_small_bundle(
    root: str | Path,
    *,
    train_rows: int = 400,
    seed: int = 7,
    overrides: dict[str, Any] | None = None,
    real_texts: Path | None = None,
) -> Path:
    """Sample, prepare and train; returns the bundle directory ``<root>/bundle``.

    No MLflow run is made (``track=False``); ``<root>/reports`` holds the evaluation reports.
    ``real_texts``: as :func:`make_small_data`.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from rakuten_train.params import load_params  # noqa: PLC0415
    from rakuten_train.training import train  # noqa: PLC0415

    data = make_small_data(root, train_rows=train_rows, seed=seed, real_texts=real_texts)
    params = load_params(None, {**SMALL_PARAMS, "seed": seed, **(overrides or {})})
    result = train(
        data=data.processed,
        raw=data.raw,
        params=params,
        bundle_out=Path(root) / "bundle",
        reports=Path(root) / "reports",
        track=False,
        verbose=0,
    )
    return result.bundle_dir
