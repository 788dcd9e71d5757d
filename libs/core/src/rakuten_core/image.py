"""Image decoding: the one implementation used by preparation, training, batch and serving.

The real format is sniffed from the bytes (a content type or file name is never trusted), sizes
are checked before pixels are decoded (decompression bombs), EXIF orientation is applied, the
image is flattened to RGB on white and resized to a square ``size`` x ``size`` uint8 array.
Animated images (GIF, WebP, APNG) contribute their first frame only, so a long animation costs
no more than one picture; 16-bit images are scaled down to 8 bits rather than clipped.

Hostile bytes can make a Pillow plugin raise almost anything (``struct.error``,
``IndexError``, ...), so every failure of Pillow on the bytes is turned into one of the three
typed errors below: no input reaches the caller as an unexpected exception.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps, UnidentifiedImageError

from rakuten_core.errors import InputTooLargeError, InvalidInputError, UnsupportedMediaError
from rakuten_core.schema import DEFAULT_IMAGE_LIMITS, ImageLimits

ImageArray = NDArray[np.uint8]


def sniff_format(data: bytes) -> str | None:
    """The Pillow format name of ``data`` from its header, or ``None`` if it is not an image."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return str(img.format) if img.format else None
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def decode_image(
    data: bytes, *, size: int, limits: ImageLimits = DEFAULT_IMAGE_LIMITS
) -> ImageArray:
    """Decode ``data`` into a ``(size, size, 3)`` uint8 RGB array.

    Raises:
        InputTooLargeError: more bytes or pixels than ``limits`` allow.
        UnsupportedMediaError: not an image, or a format outside ``limits.formats``.
        InvalidInputError: an image of an accepted format that cannot be decoded (truncated).
    """
    if len(data) == 0:
        raise InvalidInputError("image is empty")
    if len(data) > limits.max_bytes:
        raise InputTooLargeError(
            f"image is {len(data)} bytes; the limit is {limits.max_bytes} bytes"
        )
    try:
        img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        # Pillow's own guard (2x Image.MAX_IMAGE_PIXELS) fires on the header, before ours.
        raise InputTooLargeError("image declares too many pixels") from None
    except Exception:  # any plugin failure on hostile bytes means "not an image we can read"
        raise UnsupportedMediaError(
            f"not a readable image; accepted formats: {', '.join(sorted(limits.formats))}"
        ) from None
    with img:
        fmt = img.format or "unknown"
        if fmt not in limits.formats:
            raise UnsupportedMediaError(
                f"image format {fmt} is not accepted; accepted: {', '.join(sorted(limits.formats))}"
            )
        width, height = img.size
        if width * height > limits.max_pixels:
            raise InputTooLargeError(
                f"image is {width}x{height} pixels; the limit is {limits.max_pixels} pixels"
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                if fmt == "JPEG":
                    # Let libjpeg decode at a reduced scale: much faster, still >= 2x the target.
                    img.draft("RGB", (size * 2, size * 2))
                img.load()
                # In place: without an orientation tag the default returns a full-size copy.
                ImageOps.exif_transpose(img, in_place=True)
                rgb = _to_rgb(img)
                resized = rgb.resize((size, size), Image.Resampling.BILINEAR)
        except (Image.DecompressionBombWarning, Image.DecompressionBombError):
            raise InputTooLargeError("image expands to too many pixels") from None
        except (OSError, ValueError, SyntaxError) as exc:
            raise InvalidInputError(f"image could not be decoded: {exc}") from None
        except Exception as exc:  # a plugin bug on crafted bytes is still the input's fault
            raise InvalidInputError(f"image could not be decoded ({type(exc).__name__})") from None
    return np.asarray(resized, dtype=np.uint8)


def decode_image_file(
    path: str | Path, *, size: int, limits: ImageLimits = DEFAULT_IMAGE_LIMITS
) -> ImageArray:
    """Read and decode an image file; errors as in :func:`decode_image`, plus ``OSError``."""
    file = Path(path)
    if file.stat().st_size > limits.max_bytes:
        raise InputTooLargeError(
            f"{file.name} is {file.stat().st_size} bytes; the limit is {limits.max_bytes} bytes"
        )
    return decode_image(file.read_bytes(), size=size, limits=limits)


def blank_image(size: int) -> ImageArray:
    """The all-zero image the model receives when a product has no usable image."""
    return np.zeros((size, size, 3), dtype=np.uint8)


_WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in _WIDE_MODES:
        # 16-bit (or 32-bit) grey: Pillow's convert() clips at 255, which turns most such images
        # white; scale the 0-65535 range down to 0-255 instead.
        wide = np.asarray(img, dtype=np.float64)
        grey = np.clip(wide / 257.0, 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")
