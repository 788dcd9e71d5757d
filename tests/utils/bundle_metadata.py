"""Valid ``bundle.json`` sections, in training's layout, for the tests' hand-made bundles."""

from __future__ import annotations

from typing import Any

from rakuten_core.bundle_fields import HeldOutMetrics, TextSettings
from rakuten_core.categories import CATEGORIES, CategoryIndex
from rakuten_core.scoring import modality_metrics

# what rakuten_train.training records for its model
TRAINING_TEXT: dict[str, Any] = {
    "input": "rakuten_core.text.product_text(designation, description)",
    "normalizer": "rakuten_train.layers.TextNormalizer (Unicode lower, punctuation)",
    "sequence_length": 64,
    "word_ngrams": 2,
    "char_ngrams": (2, 5),
}


def text_settings(**overrides: Any) -> TextSettings:
    """Training's text settings, with ``overrides`` for a test model that reads text otherwise."""
    return TextSettings(**(TRAINING_TEXT | overrides))


def held_out_metrics() -> HeldOutMetrics:
    """Scores of four hand-checkable test rows per modality, computed as evaluation does."""
    truth = [2583, 2583, 10, 1140]
    predictions = {
        "fused": [2583, 2583, 10, 10],
        "text_only": [2583, 10, 10, 10],
        "image_only": [2583, 2583, 2583, 2583],
    }
    raw = modality_metrics(truth, predictions, CategoryIndex(CATEGORIES), split="test")
    return HeldOutMetrics.model_validate(raw)
