"""Synthetic product pictures that carry class signal, for the offline sample.

Each class has a style: a hue, a shape (disc, box, triangle, stripes, cross) and a background
lightness. Hues of neighbouring classes are close and pictures are noisy, and a fraction of the
pictures is drawn in another class's style, so the image helps a model (most where the text of
one family is ambiguous) without being a perfect shortcut.
"""

from __future__ import annotations

import colorsys
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("disc", "box", "triangle", "stripes", "cross")
JPEG_QUALITY = 85


@dataclass(frozen=True)
class Style:
    """How pictures of one class look."""

    hue: float
    shape: str
    background: float


def class_styles(num_classes: int) -> list[Style]:
    """One style per class index; hue and shape cycle at different rates so pairs are unique."""
    return [
        Style(
            hue=(i * 0.37) % 1.0,
            shape=SHAPES[i % len(SHAPES)],
            background=0.78 + 0.06 * (i % 3),
        )
        for i in range(num_classes)
    ]


def _rgb(hue: float, lightness: float, saturation: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hls_to_rgb(hue % 1.0, lightness, saturation)
    return int(r * 255), int(g * 255), int(b * 255)


def _draw_shape(
    draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], fill: tuple[int, ...]
) -> None:
    x0, y0, x1, y1 = box
    if shape == "disc":
        draw.ellipse(box, fill=fill)
    elif shape == "box":
        draw.rectangle(box, fill=fill)
    elif shape == "triangle":
        draw.polygon([((x0 + x1) // 2, y0), (x1, y1), (x0, y1)], fill=fill)
    elif shape == "stripes":
        step = max(2, (y1 - y0) // 5)
        for y in range(y0, y1, step * 2):
            draw.rectangle((x0, y, x1, min(y + step, y1)), fill=fill)
    else:  # cross
        width = max(2, (x1 - x0) // 4)
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        draw.rectangle((cx - width // 2, y0, cx + width // 2, y1), fill=fill)
        draw.rectangle((x0, cy - width // 2, x1, cy + width // 2), fill=fill)


def render_picture(style: Style, *, size: int, rng: np.random.Generator) -> bytes:
    """A JPEG picture in ``style``: 1-3 jittered shapes on a tinted background, plus noise."""
    hue = style.hue + rng.normal(0.0, 0.03)
    background = _rgb(hue + 0.5, float(np.clip(style.background + rng.normal(0, 0.04), 0, 1)), 0.2)
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(1, 4))):
        side = int(rng.integers(size // 4, size * 3 // 4))
        x0 = int(rng.integers(0, size - side + 1))
        y0 = int(rng.integers(0, size - side + 1))
        lightness = float(np.clip(0.45 + rng.normal(0, 0.08), 0.15, 0.8))
        fill = _rgb(hue + rng.normal(0, 0.02), lightness, 0.75)
        _draw_shape(draw, style.shape, (x0, y0, x0 + side, y0 + side), fill)
    pixels = np.asarray(image, dtype=np.int16)
    noise = rng.normal(0.0, 18.0, size=pixels.shape)
    noisy = np.clip(pixels + noise, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noisy, mode="RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()
