"""Input limits: every violation is a 4xx with a clear message, never a 500."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from rakuten_serve.app import create_app
from rakuten_serve.predictor import Predictor
from tests.utils.serve_app import (
    DEFAULT_USERS,
    bearer,
    get_token,
    jpeg_bytes,
    migrate_and_add_users,
    png_bytes,
    serve_settings,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def strict(
    tmp_path: Path, serve_bundle_dir: Path, shared_predictor: Predictor
) -> Iterator[tuple[TestClient, dict[str, str]]]:
    settings = serve_settings(
        tmp_path,
        model_path=str(serve_bundle_dir),
        image_max_bytes=50_000,
        image_max_pixels=300 * 300,
        image_formats="JPEG,PNG",
        designation_max_chars=200,
        description_max_chars=1000,
    )
    migrate_and_add_users(settings, DEFAULT_USERS)
    with TestClient(create_app(settings, shared_predictor)) as client:
        yield client, bearer(get_token(client))


def _post(
    client: TestClient,
    headers: dict[str, str],
    data: dict[str, str],
    image: bytes | None = None,
    name: str = "p.jpg",
    ctype: str = "image/jpeg",
):  # type: ignore[no-untyped-def]
    files = {"image": (name, image, ctype)} if image is not None else None
    return client.post("/predict", headers=headers, data=data, files=files)


def _noisy_jpeg(side: int) -> bytes:
    import numpy as np

    pixels = (np.random.default_rng(0).random((side, side, 3)) * 255).astype("uint8")
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def test_accepted_inputs(strict: tuple[TestClient, dict[str, str]]) -> None:
    client, headers = strict
    text_only = _post(
        client, headers, {"designation": "Coussin velours", "description": "<b>Doux</b>"}
    )
    assert text_only.status_code == 200
    assert text_only.json()["used_image"] is False
    # a PNG sent as "application/octet-stream" is accepted: the format is sniffed
    png = _post(
        client,
        headers,
        {"designation": "Coussin"},
        png_bytes(),
        "x.bin",
        "application/octet-stream",
    )
    assert png.status_code == 200
    assert png.json()["used_image"] is True


def test_image_over_byte_limit_is_413(strict: tuple[TestClient, dict[str, str]]) -> None:
    client, headers = strict
    big = _noisy_jpeg(290)
    assert len(big) > 50_000
    response = _post(client, headers, {"designation": "Photo"}, big)
    assert response.status_code == 413
    assert "50000 bytes" in response.json()["detail"]


def test_request_body_over_limit_is_413_before_parsing(
    strict: tuple[TestClient, dict[str, str]],
) -> None:
    client, headers = strict
    response = _post(client, headers, {"designation": "Photo"}, b"\xff" * 400_000)
    assert response.status_code == 413
    assert response.json()["error"] == "input_too_large"
    assert "request body" in response.json()["detail"]


def test_image_over_pixel_limit_is_413(strict: tuple[TestClient, dict[str, str]]) -> None:
    client, headers = strict
    wide = jpeg_bytes((2000, 100))  # small file, 200k pixels > 90k
    response = _post(client, headers, {"designation": "Photo"}, wide)
    assert response.status_code == 413
    assert "pixels" in response.json()["detail"]


def test_not_an_image_is_415_whatever_the_content_type(
    strict: tuple[TestClient, dict[str, str]],
) -> None:
    client, headers = strict
    response = _post(
        client, headers, {"designation": "Photo"}, b"%PDF-1.4 not an image", "a.jpg", "image/jpeg"
    )
    assert response.status_code == 415
    assert "JPEG" in response.json()["detail"]


def test_format_outside_the_accepted_list_is_415(strict: tuple[TestClient, dict[str, str]]) -> None:
    client, headers = strict
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buffer, "GIF")
    response = _post(
        client, headers, {"designation": "Photo"}, buffer.getvalue(), "a.gif", "image/gif"
    )
    assert response.status_code == 415
    assert "GIF" in response.json()["detail"]


def test_truncated_jpeg_is_422(strict: tuple[TestClient, dict[str, str]]) -> None:
    client, headers = strict
    data = _noisy_jpeg(120)
    response = _post(client, headers, {"designation": "Photo"}, data[: len(data) // 3])
    assert response.status_code == 422
    assert "decoded" in response.json()["detail"]


def test_empty_named_image_is_422(strict: tuple[TestClient, dict[str, str]]) -> None:
    client, headers = strict
    response = _post(client, headers, {"designation": "Photo"}, b"", "a.jpg")
    assert response.status_code == 422
    assert "empty" in response.json()["detail"]


@pytest.mark.parametrize(
    ("data", "status", "needle"),
    [
        ({"designation": "x" * 201}, 413, "designation is 201 characters"),
        ({"designation": "ok", "description": "y" * 1001}, 413, "description is 1001"),
        ({"designation": "   "}, 422, "blank"),
        ({"description": "no designation"}, 422, "designation"),
        ({"designation": "<p></p>"}, 422, "no text left"),
        ({"designation": "ok", "productid": "-3"}, 422, "productid"),
    ],
)
def test_text_limits(
    strict: tuple[TestClient, dict[str, str]], data: dict[str, str], status: int, needle: str
) -> None:
    client, headers = strict
    response = _post(client, headers, data)
    assert response.status_code == status, response.text
    assert needle in str(response.json()["detail"])
    assert response.json()["request_id"] == response.headers["x-request-id"]
