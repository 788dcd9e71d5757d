"""params.yaml ``train:`` section: defaults, overrides, refusal of unknown keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from rakuten_train.params import TrainParams, load_params
from tests.utils.paths import REPO_ROOT


def test_the_repository_params_file_is_valid_and_small_enough_for_two_cores() -> None:
    params = load_params(REPO_ROOT / "params.yaml")
    assert params.image_size <= 64
    assert params.class_weight != "none"
    assert params.registry.model_name


def test_missing_file_or_section_gives_defaults(tmp_path: Path) -> None:
    assert load_params(tmp_path / "absent.yaml") == TrainParams()
    (tmp_path / "p.yaml").write_text("data: {seed: 1}\ntrain: {}\n")
    assert load_params(tmp_path / "p.yaml") == TrainParams()


def test_dotted_overrides_apply_on_top_of_the_file(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("train:\n  epochs: 3\n  text:\n    lstm_units: 32\n")
    params = load_params(tmp_path / "p.yaml", {"text.embedding_dim": 8, "epochs": 2})
    assert (params.epochs, params.text.lstm_units, params.text.embedding_dim) == (2, 32, 8)
    assert params.flat()["text.embedding_dim"] == 8
    assert "registry.promotion_margin" not in params.flat()  # the gate's margin decides


def test_the_old_promotion_margin_is_refused_with_where_it_went(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("train:\n  registry:\n    promotion_margin: 0.01\n")
    with pytest.raises(ValueError, match=r"promotion follows gate\.test_margin"):
        load_params(tmp_path / "p.yaml")


@pytest.mark.parametrize(
    "section",
    ["train: {epoch: 3}", "train: {text: {char_ngram_min: 6, char_ngram_max: 3}}",
     "train: {class_weight: inverse}", "train: {image: {backbone: resnet}}",
     "train: {text: {char_analyzer: word}}"],
)  # fmt: skip
def test_typos_and_invalid_values_are_refused(tmp_path: Path, section: str) -> None:
    (tmp_path / "p.yaml").write_text(section + "\n")
    with pytest.raises(ValidationError):
        load_params(tmp_path / "p.yaml")
