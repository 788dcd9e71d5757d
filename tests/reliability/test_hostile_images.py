"""Every image the decoder refuses is a 4xx with a clear message; the odd ones it accepts work.

The app runs with a 1 Mpx pixel limit so that honest "real size" bombs stay cheap to build.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from rakuten_core.image import decode_image
from rakuten_serve.app import create_app
from rakuten_serve.predictor import Predictor
from tests.utils import hostile_images as h
from tests.utils.serve_app import (
    DEFAULT_USERS,
    bearer,
    get_token,
    migrate_and_add_users,
    serve_settings,
)

pytestmark = [pytest.mark.slow]

FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP")


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory, serve_bundle_dir: Path, shared_predictor: Predictor
) -> Iterator[tuple[TestClient, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("hostile-images")
    settings = serve_settings(tmp, model_path=str(serve_bundle_dir), image_max_pixels=1_000_000)
    migrate_and_add_users(settings, DEFAULT_USERS)
    with TestClient(create_app(settings, shared_predictor)) as client:
        yield client, bearer(get_token(client))


def _post(api: tuple[TestClient, dict[str, str]], data: bytes, name: str = "photo.jpg"):  # type: ignore[no-untyped-def]
    client, headers = api
    return client.post(
        "/predict",
        headers=headers,
        data={"designation": "Coussin de jardin"},
        files={"image": (name, data, "image/jpeg")},
    )


REFUSED: list[tuple[str, Callable[[], bytes], int, str, str]] = [
    *[
        (
            f"header-bomb-{f}",
            lambda f=f: h.header_bomb(f, 5000, 5000),
            413,
            "input_too_large",
            "5000x5000 pixels",
        )
        for f in FORMATS
    ],
    *[
        (
            f"pillow-guard-bomb-{f}",
            lambda f=f: h.header_bomb(f, 16383, 16383),
            413,
            "input_too_large",
            "too many pixels",
        )
        for f in FORMATS
    ],
    *[
        (f"real-bomb-{f}", lambda f=f: h.real_bomb(f), 413, "input_too_large", "1200x1200")
        for f in FORMATS
    ],
    (
        "png-30000-squared",
        lambda: h.png_declaring(30000, 30000),
        413,
        "input_too_large",
        "too many pixels",
    ),
    ("truncated-jpeg", h.truncated_jpeg, 422, "invalid_input", "could not be decoded"),
    ("corrupt-jpeg", h.corrupt_jpeg, 422, "invalid_input", "could not be decoded"),
    ("zero-bytes", lambda: b"", 422, "invalid_input", "image is empty"),
    (
        "random-bytes",
        lambda: bytes(np.random.default_rng(1).integers(0, 256, 4096, np.uint8)),
        415,
        "unsupported_media_type",
        "not a readable image",
    ),
    ("tiff", lambda: h.encoded("TIFF"), 415, "unsupported_media_type", "TIFF is not accepted"),
    (
        "ico",
        lambda: h.encoded("ICO", (32, 32)),
        415,
        "unsupported_media_type",
        "ICO is not accepted",
    ),
    ("pdf", lambda: h.encoded("PDF"), 415, "unsupported_media_type", "not a readable image"),
    (
        "svg",
        lambda: b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        415,
        "unsupported_media_type",
        "not a readable image",
    ),
    ("html-then-png", h.html_then_png, 415, "unsupported_media_type", "not a readable image"),
]


@pytest.mark.parametrize(
    ("factory", "status", "error", "message"),
    [pytest.param(f, s, e, m, id=name) for name, f, s, e, m in REFUSED],
)
def test_refused_images_are_a_clear_4xx(
    api: tuple[TestClient, dict[str, str]],
    factory: Callable[[], bytes],
    status: int,
    error: str,
    message: str,
) -> None:
    response = _post(api, factory())
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    assert message in body["detail"]
    assert len(body["request_id"]) == 32
    assert response.headers["x-request-id"] == body["request_id"]


ACCEPTED: list[tuple[str, Callable[[], bytes]]] = [
    *[(f"animated-{f}", lambda f=f: h.animated(f)) for f in ("GIF", "WEBP", "PNG")],
    ("cmyk-jpeg", lambda: h.encoded("JPEG", mode="CMYK")),
    ("16-bit-png", h.sixteen_bit_png),
    ("palette-png-transparent", h.palette_png_with_transparency),
    ("grey-alpha-png", lambda: h.encoded("PNG", mode="LA")),
    ("1-bit-bmp", lambda: h.encoded("BMP", mode="1")),
    ("exif-rotated-jpeg", h.exif_rotated_jpeg),
    ("polyglot-jpeg-zip", h.polyglot_jpeg_zip),
    ("polyglot-gif-js", h.polyglot_gif_script),
]


@pytest.mark.parametrize("factory", [pytest.param(f, id=n) for n, f in ACCEPTED])
def test_unusual_but_valid_images_are_used(
    api: tuple[TestClient, dict[str, str]], factory: Callable[[], bytes]
) -> None:
    response = _post(api, factory(), name="photo.bin")
    assert response.status_code == 200, response.text
    assert response.json()["used_image"] is True


def test_exif_orientation_is_applied() -> None:
    """Red left / blue right, tagged rotate-90-clockwise: decoded red on top, blue below."""
    pixels = decode_image(h.exif_rotated_jpeg(), size=32).astype(int)
    top, bottom = pixels[:12].mean(axis=(0, 1)), pixels[-12:].mean(axis=(0, 1))
    assert top[0] > 150 > top[2]
    assert bottom[2] > 150 > bottom[0]


def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    pixels = decode_image(h.sixteen_bit_png(), size=64)
    # the source spans 0..65535: clipped at 255 it would be almost all white
    assert pixels.min() < 40
    assert 80 < pixels.mean() < 180
