"""The metadata training writes is bundle.json's layout from when its sections were dictionaries."""

from __future__ import annotations

import json

import numpy as np

from rakuten_core.bundle_fields import HeldOutMetrics
from rakuten_core.categories import CATEGORIES, CODES, CategoryIndex
from rakuten_core.drift import build_reference
from rakuten_core.scoring import modality_metrics
from rakuten_train.evaluation import Evaluation
from rakuten_train.params import load_params
from rakuten_train.training import _metadata
from tests.utils.drift_data import draw_features

KEYS = [
    "schema_version",
    "model_name",
    "model_version",
    "created",
    "categories",
    "image_size",
    "text",
    "params",
    "metrics",
    "data_fingerprint",
    "reference",
    "git_commit",
    "mlflow_run_id",
]


def test_training_metadata_dumps_to_the_dictionaries_it_was_built_from() -> None:
    params = load_params(None, {"text.char_ngram_max": 4})
    rng = np.random.default_rng(3)
    truth = rng.choice(CODES, 60).tolist()
    predictions = {m: rng.choice(CODES, 60).tolist() for m in ("fused", "text_only", "image_only")}
    metrics = modality_metrics(truth, predictions, CategoryIndex(CATEGORIES), split="test")
    reference = build_reference(draw_features(rng, 60), codes=CODES)
    evaluation = Evaluation(
        metrics=HeldOutMetrics.model_validate(metrics),
        y_true=np.zeros(60, dtype=np.int64),
        probs={},
        reference=reference,
    )
    meta = _metadata(params, evaluation, "fingerprint", "abc123", "0f3e1c2d4b5a6978")
    dumped = meta.model_dump(mode="json")
    assert list(dumped) == KEYS
    before = {  # what training passed to BundleMetadata when these were dict[str, Any]
        "text": {
            "input": "rakuten_core.text.product_text(designation, description)",
            "normalizer": "rakuten_train.layers.TextNormalizer (Unicode lower, punctuation)",
            "sequence_length": params.text.sequence_length,
            "word_ngrams": params.text.word_ngrams,
            "char_ngrams": [params.text.char_ngram_min, 4],
        },
        "params": params.model_dump(mode="json"),
        "metrics": metrics,
        "reference": reference.model_dump(mode="json"),
    }
    for section, value in before.items():
        assert json.dumps(dumped[section]) == json.dumps(value), section  # key order too
