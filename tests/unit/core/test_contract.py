"""Product schema, categories, model inputs, settings and errors of the contract package."""

from __future__ import annotations

import csv
import secrets

import numpy as np
import pytest
from pydantic import SecretStr, ValidationError

from rakuten_core.categories import CATEGORIES, CODES, NUM_CLASSES, Category, CategoryIndex
from rakuten_core.errors import ConfigurationError
from rakuten_core.inputs import HAS_IMAGE_INPUT, IMAGE_INPUT, TEXT_INPUT, model_inputs
from rakuten_core.schema import DESCRIPTION_MAX_CHARS, DESIGNATION_MAX_CHARS, Product
from rakuten_core.settings import RakutenSettings, is_placeholder, require_secret
from tests.utils.paths import shared_data


def test_categories_match_the_shared_reference_names() -> None:
    with shared_data("categories.csv").open(encoding="utf-8", newline="") as fh:
        reference = {
            int(r["prdtypecode"]): (r["name_fr"], r["name_en"]) for r in csv.DictReader(fh)
        }
    assert NUM_CLASSES == 27
    assert {c.code: (c.name_fr, c.name_en) for c in CATEGORIES} == reference


def test_categories_cover_every_code_of_the_full_label_file() -> None:
    with shared_data("labels", "train_ids.csv").open(encoding="utf-8", newline="") as fh:
        codes = {int(r["prdtypecode"]) for r in csv.DictReader(fh)}
    assert codes == set(CODES)


def test_category_index_round_trips_and_names_unknown_codes() -> None:
    index = CategoryIndex()
    for i, code in enumerate(CODES):
        assert index.index_of(code) == i and index.code_of(i) == code
    assert 2583 in index and 9999 not in index
    with pytest.raises(KeyError, match="9999"):
        index.index_of(9999)
    custom = CategoryIndex([Category(code=2583, name_fr="a", name_en="b"), CATEGORIES[0]])
    assert custom.index_of(10) == 1
    with pytest.raises(ValueError, match="duplicate"):
        CategoryIndex([CATEGORIES[0], CATEGORIES[0]])


def test_product_requires_a_non_blank_designation() -> None:
    assert Product(designation="Piscine").description is None
    for bad in ("", "   \n"):
        with pytest.raises(ValidationError, match="designation"):
            Product(designation=bad)
    with pytest.raises(ValidationError):
        Product.model_validate({"description": "no title"})


def test_product_limits_and_blank_description() -> None:
    assert Product(designation="x", description="  ").description is None
    with pytest.raises(ValidationError, match=str(DESIGNATION_MAX_CHARS)):
        Product(designation="x" * (DESIGNATION_MAX_CHARS + 1))
    with pytest.raises(ValidationError, match=str(DESCRIPTION_MAX_CHARS)):
        Product(designation="x", description="y" * (DESCRIPTION_MAX_CHARS + 1))
    with pytest.raises(ValidationError):
        Product(designation="x", productid=-1)
    with pytest.raises(ValidationError, match="extra"):
        Product.model_validate({"designation": "x", "price": 3})


def test_model_inputs_shapes_and_missing_images() -> None:
    img = np.full((8, 8, 3), 200, dtype=np.uint8)
    inputs = model_inputs(["un", "deux"], [img, None], image_size=8)
    assert inputs[TEXT_INPUT].shape == (2, 1) and inputs[TEXT_INPUT][1, 0] == "deux"
    assert inputs[IMAGE_INPUT].shape == (2, 8, 8, 3) and inputs[IMAGE_INPUT].dtype == np.uint8
    assert not inputs[IMAGE_INPUT][1].any()
    np.testing.assert_array_equal(inputs[HAS_IMAGE_INPUT], [[1.0], [0.0]])
    assert inputs[HAS_IMAGE_INPUT].dtype == np.float32
    empty = model_inputs([], [], image_size=8)
    assert empty[IMAGE_INPUT].shape == (0, 8, 8, 3)


def test_model_inputs_refuse_mismatches() -> None:
    with pytest.raises(ValueError, match="1 texts but 2 images"):
        model_inputs(["a"], [None, None], image_size=8)
    with pytest.raises(ValueError, match="8x8x3"):
        model_inputs(["a"], [np.zeros((4, 4, 3), dtype=np.uint8)], image_size=8)


def test_settings_read_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAKUTEN_ENVIRONMENT", "production")
    monkeypatch.setenv("RAKUTEN_LOG_LEVEL", "DEBUG")
    settings = RakutenSettings(_env_file=None)  # type: ignore[call-arg]
    assert settings.environment == "production" and not settings.is_development
    assert settings.log_level == "DEBUG"
    monkeypatch.setenv("RAKUTEN_ENVIRONMENT", "staging")
    with pytest.raises(ValidationError):
        RakutenSettings(_env_file=None)  # type: ignore[call-arg]


@pytest.mark.parametrize("value", ["changeme", "secret", "CHANGE-ME-please", "example-key", ""])
def test_placeholder_secrets_are_refused_in_production(value: str) -> None:
    assert is_placeholder(SecretStr(value))
    with pytest.raises(ConfigurationError) as info:
        require_secret(SecretStr(value), name="RAKUTEN_JWT_SECRET", environment="production")
    assert "RAKUTEN_JWT_SECRET" in str(info.value)
    if len(value) > 6:  # the longer placeholders are not words the message itself uses
        assert value not in str(info.value)


def test_short_secrets_are_refused_in_production_and_real_ones_accepted() -> None:
    short = SecretStr("k7#Pq2")
    with pytest.raises(ConfigurationError, match="at least 32"):
        require_secret(short, name="S", environment="production", min_chars=32)
    strong = SecretStr(secrets.token_hex(20))  # a literal would be a published value
    assert require_secret(strong, name="S", environment="production", min_chars=32) is strong
    assert require_secret(SecretStr("changeme"), name="S", environment="development")
    with pytest.raises(ConfigurationError, match="must be set"):
        require_secret(None, name="S", environment="development")
