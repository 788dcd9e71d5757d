"""French-like listing texts (designation + description) for the offline sample.

The texts copy the habits of the real files: title-cased designations with brands and sizes,
descriptions that are empty for about 40% of the rows, HTML fragments (``<br />``, ``<p>``,
lists), accents written as entities (``&eacute;``), sometimes escaped twice (``&amp;eacute;``).
Some rows borrow words from another class of the same family, so text alone stays imperfect.
"""

from __future__ import annotations

import numpy as np

from rakuten_data.vocab import (
    BRANDS,
    COMMON_PHRASES,
    COMMON_QUALIFIERS,
    FAMILY_WORDS,
    VOCAB,
    ClassVocab,
)

EMPTY_DESCRIPTION_RATE = 0.42
FAMILY_CONFUSION_RATE = 0.12
ANY_CONFUSION_RATE = 0.03
HTML_RATE = 0.55
ENTITY_RATE = 0.35
DOUBLE_ESCAPE_RATE = 0.08

_ENTITIES = {
    "é": "&eacute;",
    "è": "&egrave;",
    "ê": "&ecirc;",
    "à": "&agrave;",
    "ç": "&ccedil;",
    "ô": "&ocirc;",
    "î": "&icirc;",
    "'": "&#39;",
}


def _pick(rng: np.random.Generator, words: tuple[str, ...]) -> str:
    return words[int(rng.integers(len(words)))]


def _source_vocab(code: int, rng: np.random.Generator) -> ClassVocab:
    """The vocabulary a row is written from: usually its own class, sometimes a neighbour's."""
    draw = rng.random()
    if draw < ANY_CONFUSION_RATE:
        return VOCAB[sorted(VOCAB)[int(rng.integers(len(VOCAB)))]]
    if draw < ANY_CONFUSION_RATE + FAMILY_CONFUSION_RATE:
        family = VOCAB[code].family
        siblings = sorted(c for c, v in VOCAB.items() if v.family == family and c != code)
        if siblings:
            return VOCAB[siblings[int(rng.integers(len(siblings)))]]
    return VOCAB[code]


def designation(code: int, rng: np.random.Generator) -> str:
    """A product title for class ``code``."""
    vocab = _source_vocab(code, rng)
    own = VOCAB[code]
    noun = _pick(rng, vocab.nouns)
    qualifier = _pick(rng, vocab.qualifiers)
    pattern = int(rng.integers(5))
    if pattern == 0:
        title = f"{noun} {qualifier} {_pick(rng, BRANDS)}"
    elif pattern == 1:
        title = f"{noun} - {qualifier} - {_pick(rng, COMMON_QUALIFIERS)}"
    elif pattern == 2:
        title = f"{_pick(rng, BRANDS)} {noun} {_pick(rng, FAMILY_WORDS[own.family])} {qualifier}"
    elif pattern == 3:
        title = f"Lot De {int(rng.integers(2, 11))} {noun} {qualifier}"
    else:
        ref = f"{int(rng.integers(100, 99999))}-{int(rng.integers(1, 9))}"
        title = f"{noun} {_pick(rng, own.qualifiers)} Réf. {ref}"
    if rng.random() < 0.3:
        title = f"{title} {_pick(rng, COMMON_QUALIFIERS)}"
    return title


def _escape(text: str, rng: np.random.Generator) -> str:
    for char, entity in _ENTITIES.items():
        text = text.replace(char, entity)
    if rng.random() < DOUBLE_ESCAPE_RATE:
        text = text.replace("&", "&amp;")
    return text


def description(code: int, rng: np.random.Generator) -> str:
    """A description for class ``code``: empty, plain text or an HTML fragment."""
    if rng.random() < EMPTY_DESCRIPTION_RATE:
        return ""
    vocab = _source_vocab(code, rng)
    sentences = [_pick(rng, vocab.phrases)]
    for _ in range(int(rng.integers(0, 3))):
        pool = COMMON_PHRASES if rng.random() < 0.5 else vocab.phrases
        sentences.append(_pick(rng, pool))
    words = " ".join(_pick(rng, FAMILY_WORDS[VOCAB[code].family]).lower() for _ in range(3))
    sentences.append(f"Caractéristiques : {_pick(rng, vocab.nouns).lower()}, {words}.")
    if rng.random() >= HTML_RATE:
        return " ".join(sentences)
    layout = int(rng.integers(3))
    if layout == 0:
        html = "<br />".join(sentences) + "<br />"
    elif layout == 1:
        html = "".join(f"<p>{s}</p>" for s in sentences)
    else:
        items = "".join(f"<li>{s}</li>" for s in sentences[1:])
        html = f"<b>{sentences[0]}</b><ul>{items}</ul>&nbsp;"
    if rng.random() < ENTITY_RATE:
        html = _escape(html, rng)
    return html
