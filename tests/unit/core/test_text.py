"""Text cleaning on real Rakuten rows, including the messy ones."""

from __future__ import annotations

import csv

import pytest

from rakuten_core.text import clean_text, product_text
from tests.utils.paths import shared_data


@pytest.fixture(scope="module")
def raw_rows() -> dict[str, dict[str, str]]:
    path = shared_data("raw_sample", "X_train.csv")
    with path.open(encoding="utf-8", newline="") as fh:
        return {row[""]: row for row in csv.DictReader(fh)}


def test_entities_are_decoded_and_accents_kept(raw_rows: dict[str, dict[str, str]]) -> None:
    cleaned = clean_text(raw_rows["4"]["description"])
    assert "&eacute;" not in cleaned and "&ecirc;" not in cleaned
    assert "Luc a des idées de grandeur." in cleaned
    assert "être le vainqueur" in cleaned


def test_html_tags_are_removed_between_words(raw_rows: dict[str, dict[str, str]]) -> None:
    raw = raw_rows["2"]["description"]
    assert "<br>" in raw
    cleaned = clean_text(raw)
    assert "<" not in cleaned and ">" not in cleaned
    assert "vga_style2" not in cleaned
    assert "Wii U. Pour un confort optimal" in cleaned
    assert "Ref. Fabricant: SL-3468-BE" in cleaned  # digits and punctuation kept


def test_every_real_row_cleans_to_tag_free_single_spaced_text(
    raw_rows: dict[str, dict[str, str]],
) -> None:
    for row in raw_rows.values():
        text = product_text(row["designation"], row["description"])
        assert text, row[""]
        assert "  " not in text and text == text.strip()
        assert "<br" not in text.lower() and "&nbsp;" not in text


def test_empty_description_gives_designation_only(raw_rows: dict[str, dict[str, str]]) -> None:
    row = raw_rows["0"]
    assert row["description"] == ""
    assert product_text(row["designation"], row["description"]) == clean_text(row["designation"])


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Caf&amp;eacute; cr&egrave;me", "Café crème"),  # escaped twice
        ("a<br/>b<p>c</p>d", "a b c d"),  # block tags separate words
        ("<b>gras</b>dans", "grasdans"),  # inline tags do not
        ("x\u00a0y\tz\n\nw", "x y z w"),  # nbsp, tabs, newlines
        ("e\u0301te\u0301", "été"),  # decomposed accents are composed
        ("<script>alert(1)</script>Jouet", "Jouet"),
        ("ﬁlet 2²", "filet 22"),  # NFKC compatibility forms
        ("zero\u200bwidth", "zero width"),
        (None, ""),
        (float("nan"), ""),
        ("   ", ""),
    ],
)
def test_clean_text_cases(raw: str | None, expected: str) -> None:
    assert clean_text(raw) == expected


def test_product_text_joins_both_fields_and_handles_missing_title() -> None:
    assert product_text("Peluche <i>Donald</i>", "Disneyland&nbsp;2000") == (
        "Peluche Donald Disneyland 2000"
    )
    assert product_text(None, "seulement la description") == "seulement la description"
    assert product_text("", "") == ""


def test_casing_is_kept_for_readability() -> None:
    assert clean_text("PILOT Style") == "PILOT Style"
