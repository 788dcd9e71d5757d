"""Image decoding: real challenge JPEGs, format sniffing, orientation, and hostile inputs."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rakuten_core.errors import InputTooLargeError, InvalidInputError, UnsupportedMediaError
from rakuten_core.image import decode_image, decode_image_file, sniff_format
from rakuten_core.schema import ImageLimits
from tests.utils.paths import shared_data


def _encode(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def test_real_challenge_images_decode_to_square_rgb() -> None:
    files = sorted(shared_data("images", "train").glob("*.jpg"))[:10]
    assert files
    for file in files:
        arr = decode_image_file(file, size=64)
        assert arr.shape == (64, 64, 3) and arr.dtype == np.uint8
        assert 0 < arr.mean() < 255


def test_decoding_is_deterministic() -> None:
    file = sorted(shared_data("images", "test").glob("*.jpg"))[0]
    first = decode_image(file.read_bytes(), size=48)
    second = decode_image_file(file, size=48)
    np.testing.assert_array_equal(first, second)


def test_format_is_sniffed_not_trusted() -> None:
    png = _encode(Image.new("RGB", (10, 10), "red"), "PNG")
    assert sniff_format(png) == "PNG"
    assert sniff_format(b"GIF89a not really") is None
    assert sniff_format(b"%PDF-1.4 ...") is None


def test_transparent_png_is_flattened_on_white() -> None:
    img = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    img.paste((255, 0, 0, 255), (0, 0, 10, 20))
    arr = decode_image(_encode(img, "PNG"), size=20)
    assert tuple(arr[10, 2]) == (255, 0, 0)
    assert tuple(arr[10, 17]) == (255, 255, 255)


def test_exif_orientation_is_applied() -> None:
    # A 40x20 image, left half red and right half blue, stored with "rotate 90 CW" (6).
    img = Image.new("RGB", (40, 20), "blue")
    img.paste((255, 0, 0), (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _encode(img, "JPEG", exif=exif.tobytes(), quality=95)
    arr = decode_image(data, size=40)
    # After rotating 90 degrees clockwise, red (left) ends up on top.
    top, bottom = arr[:15].mean(axis=(0, 1)), arr[-15:].mean(axis=(0, 1))
    assert top[0] > 200 and top[2] < 60
    assert bottom[2] > 200 and bottom[0] < 60


def test_palette_and_greyscale_images_become_rgb() -> None:
    grey = decode_image(_encode(Image.new("L", (8, 8), 128), "PNG"), size=8)
    gif = decode_image(_encode(Image.new("P", (8, 8), 3), "GIF"), size=8)
    assert grey.shape == gif.shape == (8, 8, 3)
    assert np.all(grey == 128)


@pytest.mark.parametrize(
    "payload",
    [b"not an image at all", b"%PDF-1.7\n%binary", b"<svg xmlns='http://www.w3.org/2000/svg'/>"],
)
def test_non_images_are_refused_as_unsupported(payload: bytes) -> None:
    with pytest.raises(UnsupportedMediaError, match="accepted formats"):
        decode_image(payload, size=32)


def test_format_outside_the_accepted_set_is_refused() -> None:
    tiff = _encode(Image.new("RGB", (8, 8)), "TIFF")
    with pytest.raises(UnsupportedMediaError, match="TIFF is not accepted"):
        decode_image(tiff, size=8)


def test_empty_bytes_are_invalid() -> None:
    with pytest.raises(InvalidInputError, match="empty"):
        decode_image(b"", size=8)


def test_truncated_jpeg_is_a_clear_decode_error() -> None:
    data = _encode(Image.effect_noise((200, 200), 50).convert("RGB"), "JPEG")
    with pytest.raises(InvalidInputError, match="could not be decoded"):
        decode_image(data[: len(data) // 3], size=32)


def test_byte_limit_is_checked_before_decoding() -> None:
    data = _encode(Image.new("RGB", (64, 64), "green"), "PNG")
    with pytest.raises(InputTooLargeError, match="bytes"):
        decode_image(data, size=8, limits=ImageLimits(max_bytes=len(data) - 1))


def test_pixel_limit_stops_a_decompression_bomb() -> None:
    # 4000x4000 of one colour compresses to a few kB but would be 48 MB decoded.
    bomb = _encode(Image.new("RGB", (4000, 4000), "white"), "PNG", optimize=True)
    assert len(bomb) < 200_000
    with pytest.raises(InputTooLargeError, match="4000x4000"):
        decode_image(bomb, size=8, limits=ImageLimits(max_pixels=1_000_000))


def test_file_over_the_byte_limit_is_refused_without_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    path.write_bytes(b"\xff\xd8" + b"0" * 2048)
    with pytest.raises(InputTooLargeError):
        decode_image_file(path, size=8, limits=ImageLimits(max_bytes=1024))
