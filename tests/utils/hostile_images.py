"""Hostile and unusual image files, made in memory with Pillow (and a few patched headers).

Each factory returns the bytes a client would upload. Header "bombs" take a real small file of
the format and patch the dimensions it declares, so the pixel count is a lie the decoder must
catch before allocating; "real" bombs are honest large images that compress to a few KB.
"""

from __future__ import annotations

import io
import random
import struct
import zlib

from PIL import Image

_EXIF_ORIENTATION = 0x0112


def _save(img: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, fmt, **options)
    return buffer.getvalue()


def noise(size: tuple[int, int] = (96, 96), seed: int = 0) -> Image.Image:
    rng = random.Random(seed)
    return Image.frombytes(
        "RGB", size, bytes(rng.randrange(256) for _ in range(size[0] * size[1] * 3))
    )


def encoded(fmt: str, size: tuple[int, int] = (96, 96), mode: str = "RGB") -> bytes:
    img = noise(size).convert(mode) if mode != "RGB" else noise(size)
    return _save(img, fmt)


def real_bomb(fmt: str, side: int = 1200) -> bytes:
    """An honest ``side`` x ``side`` single-colour image: tiny on disk, large in memory."""
    mode = "P" if fmt == "GIF" else "RGB"
    return _save(Image.new(mode, (side, side), 1 if mode == "P" else (9, 9, 9)), fmt)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + _png_chunk(b"IEND", b"")
    )


def header_bomb(fmt: str, width: int, height: int) -> bytes:
    """A small real file of ``fmt`` whose header declares ``width`` x ``height`` pixels."""
    if fmt == "PNG":
        return png_declaring(width, height)
    data = bytearray(encoded(fmt, (16, 16)))
    if fmt == "JPEG":
        sof = data.index(b"\xff\xc0")
        data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    elif fmt == "GIF":
        data[6:10] = struct.pack("<HH", width, height)
    elif fmt == "BMP":
        data[18:26] = struct.pack("<ii", width, height)
    elif fmt == "WEBP":
        start = data.index(b"VP8 ") + 8 + 6  # chunk header, frame tag, start code
        data[start : start + 4] = struct.pack("<HH", width & 0x3FFF, height & 0x3FFF)
    else:
        raise ValueError(fmt)
    return bytes(data)


def animated(fmt: str, frames: int = 6) -> bytes:
    images = [Image.new("RGB", (48, 48), (i * 40 % 256, 80, 160)) for i in range(frames)]
    return _save(images[0], fmt, save_all=True, append_images=images[1:], duration=50, loop=0)


def sixteen_bit_png() -> bytes:
    img = Image.new("I;16", (64, 64))
    img.putdata([(x * 1024) % 65536 for x in range(64 * 64)])
    return _save(img, "PNG")


def palette_png_with_transparency() -> bytes:
    img = noise((64, 64)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return _save(img, "PNG", transparency=0)


def exif_rotated_jpeg() -> bytes:
    """60x30: red left half, blue right half, tagged "rotate 90 clockwise" (orientation 6).

    Displayed (and decoded) correctly it is 30x60 with red on top and blue below.
    """
    img = Image.new("RGB", (60, 30), (220, 20, 20))
    img.paste((20, 20, 220), (30, 0, 60, 30))
    exif = Image.Exif()
    exif[_EXIF_ORIENTATION] = 6
    return _save(img, "JPEG", exif=exif.tobytes(), quality=95)


def truncated_jpeg() -> bytes:
    data = encoded("JPEG", (256, 256))
    return data[: len(data) // 2]


def corrupt_jpeg(seed: int = 3) -> bytes:
    """A JPEG whose entropy-coded data is overwritten with random bytes."""
    data = bytearray(encoded("JPEG", (128, 128)))
    rng = random.Random(seed)
    start = data.index(b"\xff\xda") + 20
    for i in range(start, len(data) - 2):
        data[i] = rng.randrange(256)
    return bytes(data)


def polyglot_jpeg_zip() -> bytes:
    """A JPEG with a ZIP archive appended (opens as both)."""
    import zipfile  # noqa: PLC0415

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("payload.sh", "echo owned\n")
    return encoded("JPEG") + archive.getvalue()


def polyglot_gif_script() -> bytes:
    """A GIF whose header is also valid JavaScript (the classic GIF/JS polyglot)."""
    data = bytearray(encoded("GIF", (16, 16)))
    return bytes(data) + b"*/=1;alert(document.domain);/*"


def html_then_png() -> bytes:
    """An HTML page with a PNG appended: the bytes do not start as an image."""
    return b"<html><script>alert(1)</script></html>" + encoded("PNG")
