"""What the bundle's ``serving/text.json`` holds: the text layers' vocabularies and settings.

:func:`rakuten_train.export.serving.text_spec` writes it from the Keras model;
:class:`rakuten_core.text_vectors.TextVectors` applies it. Also the names of the ONNX graph's
text inputs and the mark that stands in for a space inside a character n-gram.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# Stands in for a space inside a character n-gram, so n-grams stay whitespace-free tokens
# (rakuten_train.layers.CharNgrams writes it too).
SPACE_MARK = "\u2581"


class Vocabulary(BaseModel):
    """One ``TextVectorization`` layer's lookup, as ``get_vocabulary()`` lists it."""

    model_config = ConfigDict(extra="forbid")

    tokens: list[str] = Field(description="Index i holds token i (0: padding or OOV bucket).")
    mode: str = Field(pattern="^(int|count|multi_hot|tf_idf)$")
    ngrams: int = Field(default=1, ge=1, description="Word n-grams 1..ngrams (count mode).")
    sequence_length: int | None = Field(default=None, ge=1, description="int mode: pad/cut.")
    normalized: bool = Field(default=True, description="Tokens of the normalised text.")
    idf: list[float] | None = Field(default=None, description="tf_idf mode: weight per index.")


class CharNgramSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_n: int = Field(ge=1)
    max_n: int = Field(ge=1)
    max_chars: int = Field(ge=1)
    word_bounded: bool = False


WideRole = Literal["words", "chars"]


class WideSpec(BaseModel):
    """The wide part computed outside ONNX: each role's counts -> sublinear TF-IDF (one L2 norm
    per role), concatenated in ``parts`` order, -> one Dense layer. Its weights are the bundle's
    ``serving/wide.npz`` (:meth:`WideLayer.load`)."""

    model_config = ConfigDict(extra="forbid")

    parts: list[WideRole] = Field(min_length=1, description="Roles, in the kernel's row order.")
    activation: Literal["relu", "linear"]


class TextSpec(BaseModel):
    """Everything :class:`TextVectors` needs; the bundle's ``serving/text.json``."""

    model_config = ConfigDict(extra="forbid")

    sequences: Vocabulary | None = Field(default=None, description="The LSTM's token ids.")
    words: Vocabulary | None = Field(default=None, description="Word n-gram counts.")
    chars: Vocabulary | None = Field(default=None, description="Character n-gram counts.")
    char_ngrams: CharNgramSpec | None = None
    wide: WideSpec | None = Field(
        default=None, description="Set when the ONNX graph takes the wide part's output."
    )


WIDE_FEATURES = "wide_features"  # the ONNX input the wide part's output feeds
INPUT_NAMES = {"sequences": "tokens", "words": "word_counts", "chars": "char_counts"}
