"""Behavioural tests of a small real bundle (``small_bundle_dir``): what users rely on.

- invariance: casing, extra whitespace and HTML wrapping do not change the prediction (the
  serving path cleans with ``product_text``, the model lower-cases inside);
- minimum functionality: unmistakable products land in their class;
- direction: adding strongly class-specific words moves probability toward that class;
- missing modality: text-only and image-only inputs give valid, different answers.

Inputs go through the serving code path (``product_text`` + ``model_inputs``), no image unless
stated, so these check the bundle as the API uses it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rakuten_core.bundle import Bundle, load_bundle
from rakuten_core.image import decode_image
from rakuten_core.inputs import model_inputs
from rakuten_core.text import product_text

pytestmark = pytest.mark.slow

OBVIOUS = {
    2583: "Piscine Hors Sol Tubulaire Intex Pompe De Filtration Skimmer Liner Chlore",
    2220: "Collier Chien Nylon Réglable Laisse Gamelle Chat Litière Animaux",
    1160: "Carte Pokemon Holo Ultra Rare Booster Deck Carte Yu-Gi-Oh Carte Magic",
    2522: "Cahier A4 Grands Carreaux Stylo Classeur Agenda Ramette Papier Trousse",
    1920: "Housse De Couette Coton 240x220 Drap Housse Oreiller Parure De Lit",
    2905: "Jeu Pc Clé Steam Jeu À Télécharger Windows 10 Version Digitale Dlc",
    1940: "Café Thé Chocolat Bonbons Épices Biscuits Bio Sans Gluten Confiserie",
    2585: "Perceuse Sans Fil 18v Bosch Tondeuse Scie Outillage Nettoyeur Haute Pression",
}


@pytest.fixture(scope="module")
def bundle(small_bundle_dir: Path) -> Bundle:
    return load_bundle(small_bundle_dir)


def _probs(
    bundle: Bundle, designations: list[str], descriptions: list[str] | None = None
) -> np.ndarray:
    descs = descriptions or [""] * len(designations)
    texts = [product_text(d, s) for d, s in zip(designations, descs, strict=True)]
    return bundle.predict_proba(
        model_inputs(texts, [None] * len(texts), image_size=bundle.image_size)
    )


def _codes(bundle: Bundle, probs: np.ndarray) -> list[int]:
    return [bundle.categories.code_of(int(i)) for i in probs.argmax(axis=1)]


def test_minimum_functionality_on_unmistakable_products(bundle: Bundle) -> None:
    predicted = _codes(bundle, _probs(bundle, list(OBVIOUS.values())))
    hits = [code for code, got in zip(OBVIOUS, predicted, strict=True) if code == got]
    # A 400-row, few-epoch model: allow one miss out of eight, not more.
    assert len(hits) >= len(OBVIOUS) - 1, dict(zip(OBVIOUS, predicted, strict=True))


@pytest.mark.parametrize(
    "variant",
    [
        str.upper,
        str.lower,
        lambda t: "   " + t.replace(" ", "  \t ") + " \n",
        lambda t: f"<p><b>{t}</b></p>",
        lambda t: t.replace(" ", "&nbsp;"),
    ],
    ids=["upper", "lower", "whitespace", "html", "entities"],
)
def test_casing_whitespace_and_html_do_not_change_the_prediction(
    bundle: Bundle, variant: object
) -> None:
    originals = list(OBVIOUS.values())
    changed = [variant(t) for t in originals]  # type: ignore[operator]
    base, other = _probs(bundle, originals), _probs(bundle, changed)
    assert _codes(bundle, base) == _codes(bundle, other)
    np.testing.assert_allclose(other, base, atol=1e-5)


def test_html_in_the_description_is_invariant_too(bundle: Bundle) -> None:
    title = ["Piscine Hors Sol Tubulaire"]
    plain = _probs(bundle, title, ["Pompe de filtration incluse. Liner renforcé."])
    html = _probs(
        bundle, title, ["<ul><li>Pompe de filtration incluse.</li><li>Liner renforcé.</li></ul>"]
    )
    np.testing.assert_allclose(html, plain, atol=1e-5)


@pytest.mark.parametrize(
    ("base", "code", "words"),
    [
        ("Lot De 2 Noir Neuf", 2583, "Piscine Hors Sol Pompe De Filtration Skimmer"),
        ("Lot De 2 Noir Neuf", 2220, "Collier Chien Laisse Gamelle Chat"),
        ("Collection Cadeau Original", 2522, "Cahier A4 Stylo Classeur Agenda"),
    ],
)
def test_class_specific_words_move_probability_toward_their_class(
    bundle: Bundle, base: str, code: int, words: str
) -> None:
    index = bundle.categories.index_of(code)
    before, after = _probs(bundle, [base, f"{base} {words}"])
    assert after[index] > max(3 * before[index], before[index] + 0.05)
    top3 = [bundle.categories.code_of(int(i)) for i in np.argsort(after)[::-1][:3]]
    assert code in top3


def test_text_only_and_image_only_inputs_give_valid_distinct_answers(
    bundle: Bundle, small_bundle_dir: Path
) -> None:
    import pandas as pd

    raw = small_bundle_dir.parent / "raw"
    row = pd.read_parquet(small_bundle_dir.parent / "processed" / "test.parquet").iloc[0]
    image = decode_image((raw / row.image_path).read_bytes(), size=bundle.image_size)
    probs = bundle.predict_proba(
        model_inputs([row.text, row.text, ""], [image, None, image], image_size=bundle.image_size)
    )
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(probs[0], probs[1])  # the image is used when present
    assert not np.allclose(probs[0], probs[2])  # and the text too
