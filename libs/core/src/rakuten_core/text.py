"""Text cleaning: the one implementation used by preparation, training, batch and serving.

Rakuten descriptions are HTML fragments with entities (sometimes escaped twice, e.g.
``&amp;eacute;``), non-breaking spaces and control characters. Cleaning keeps accents, digits,
punctuation and case (the model lower-cases inside its own vectoriser), so the cleaned text stays
readable in reports and prediction records.
"""

from __future__ import annotations

import html
import re
import unicodedata

_TAG = re.compile(r"<[^<>]{0,2000}>")
_BLOCK_TAG = re.compile(r"<\s*/?\s*(br|p|div|li|ul|ol|tr|td|th|h[1-6]|table)\b[^<>]{0,2000}>", re.I)
_SCRIPT = re.compile(r"<\s*(script|style)\b.*?<\s*/\s*\1\s*>", re.I | re.S)
_CONTROL = re.compile(r"[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u200b-\u200d\ufeff]")
_SPACE = re.compile(r"\s+")
_MAX_UNESCAPE_ROUNDS = 3


def clean_text(value: str | None) -> str:
    """Return ``value`` without HTML tags and entities, NFKC-normalised, whitespace collapsed.

    ``None`` and float NaN (what pandas reads for an empty CSV cell) give ``""``.
    """
    if value is None or (isinstance(value, float) and value != value):
        return ""
    text = str(value)
    for _ in range(_MAX_UNESCAPE_ROUNDS):
        unescaped = html.unescape(text)
        if unescaped == text:
            break
        text = unescaped
    text = _SCRIPT.sub(" ", text)
    text = _BLOCK_TAG.sub(" ", text)
    text = _TAG.sub("", text)
    text = unicodedata.normalize("NFKC", text)
    text = _CONTROL.sub(" ", text)
    return _SPACE.sub(" ", text).strip()


def product_text(designation: str | None, description: str | None) -> str:
    """The model's text input: cleaned designation, then cleaned description when present."""
    title = clean_text(designation)
    body = clean_text(description)
    if title and body:
        return f"{title} {body}"
    return title or body
