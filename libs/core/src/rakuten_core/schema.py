"""The product schema and the input limits every entry point enforces.

API requests, batch rows and training rows are all validated with :class:`Product`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

DESIGNATION_MAX_CHARS = 1_000
DESCRIPTION_MAX_CHARS = 20_000


class ImageLimits(BaseModel):
    """Limits applied before and during image decoding (decompression-bomb protection)."""

    model_config = ConfigDict(frozen=True)

    max_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    max_pixels: int = Field(default=25_000_000, gt=0)
    formats: frozenset[str] = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP"})


DEFAULT_IMAGE_LIMITS = ImageLimits()


class Product(BaseModel):
    """One product as the platform sees it, before text cleaning."""

    model_config = ConfigDict(str_strip_whitespace=False, extra="forbid")

    designation: str = Field(
        min_length=1,
        max_length=DESIGNATION_MAX_CHARS,
        description="Product title; required.",
        examples=["Piscine gonflable 262 x 159 x 46 cm"],
    )
    description: str | None = Field(
        default=None,
        max_length=DESCRIPTION_MAX_CHARS,
        description="Free-text description, may contain HTML; optional.",
        examples=["Piscine autoportante <b>familiale</b>, montage facile."],
    )
    productid: int | None = Field(default=None, ge=0, description="Rakuten product id.")
    imageid: int | None = Field(default=None, ge=0, description="Rakuten image id.")

    @field_validator("designation")
    @classmethod
    def _designation_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("designation must not be blank")
        return value

    @field_validator("description")
    @classmethod
    def _blank_description_is_none(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return value
