"""Hostile text and multipart bodies: a clear 4xx (or a 200 stored as sent), never a 500.

Runs against a real uvicorn server (in this process) so that body streaming, oversized uploads
and keep-alive connections behave as in production.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from rakuten_core.records import Prediction
from rakuten_serve.app import create_app
from rakuten_serve.db.engine import build_engine
from rakuten_serve.predictor import Predictor
from rakuten_serve.settings import ServeSettings
from tests.utils.live_server import live_server
from tests.utils.serve_app import (
    DEFAULT_USERS,
    PASSWORD,
    jpeg_bytes,
    migrate_and_add_users,
    serve_settings,
)

pytestmark = [pytest.mark.slow]

SQL = "Chaise'); DROP TABLE predictions; -- \" OR 1=1"
HTML = 'Lampe <img src=x onerror="alert(1)"><script>alert(document.cookie)</script>'


class Api:
    def __init__(self, base_url: str, settings: ServeSettings, app: object) -> None:
        self.base_url = base_url
        self.settings = settings
        self.app = app
        self.http = httpx.Client(base_url=base_url, timeout=60)
        token = self.http.post("/token", data={"username": "alice", "password": PASSWORD})
        self.headers = {"Authorization": f"Bearer {token.json()['access_token']}"}

    def predict(self, headers: dict[str, str] | None = None, **kwargs: object) -> httpx.Response:
        merged = {**self.headers, **(headers or {})}
        return self.http.post("/predict", headers=merged, **kwargs)  # type: ignore[arg-type]

    def stored(self, request_id: str) -> Prediction:
        recorder = self.app.state.serve.recorder  # type: ignore[attr-defined]
        assert recorder.wait_idle(30)
        engine = build_engine(self.settings.database_url)
        try:
            with Session(engine) as session:
                row = session.scalar(select(Prediction).where(Prediction.request_id == request_id))
                assert row is not None
                return row
        finally:
            engine.dispose()


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory, serve_bundle_dir: Path, shared_predictor: Predictor
) -> Iterator[Api]:
    tmp = tmp_path_factory.mktemp("hostile-requests")
    settings = serve_settings(tmp, model_path=str(serve_bundle_dir), image_max_bytes=1_000_000)
    migrate_and_add_users(settings, DEFAULT_USERS)
    app = create_app(settings, shared_predictor)
    with live_server(app) as base_url:
        client = Api(base_url, settings, app)
        yield client
        client.http.close()


def _error(response: httpx.Response, status: int, error: str, message: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    assert message in str(body["detail"])
    assert body["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize(
    ("designation", "message"),
    [("", "designation"), ("   \t\n ", "blank"), ("Chaise\x00longue", "NUL")],
)
def test_unusable_designation_is_422(api: Api, designation: str, message: str) -> None:
    _error(api.predict(data={"designation": designation}), 422, "invalid_input", message)


def test_missing_or_misnamed_designation_is_422(api: Api) -> None:
    _error(api.predict(data={"title": "Chaise"}), 422, "invalid_input", "designation")


def test_oversized_text_is_413(api: Api) -> None:
    _error(api.predict(data={"designation": "a" * 1001}), 413, "input_too_large", "1001")
    long = {"designation": "Chaise", "description": "b" * 20_001}
    _error(api.predict(data=long), 413, "input_too_large", "20001")


@pytest.mark.parametrize("payload", [SQL, HTML, "Tab\there, bell\x07, escape\x1b[31m, é ü ✓ 🚀"])
def test_payloads_are_stored_as_sent(api: Api, payload: str) -> None:
    response = api.predict(data={"designation": payload, "description": payload})
    assert response.status_code == 200, response.text
    row = api.stored(response.json()["request_id"])
    assert row.designation == payload
    assert row.description == payload
    engine = build_engine(api.settings.database_url)
    try:
        assert "predictions" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_invalid_utf8_is_not_a_500(api: Api) -> None:
    raw = b"Chaise \xff\xfe\xc3 bois"
    boundary = "xyz"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="designation"\r\n\r\n'.encode()
        + raw
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = api.predict(
        content=body, headers={"content-type": f"multipart/form-data; boundary={boundary}"}
    )
    # Starlette decodes a form field that is not UTF-8 as Latin-1: every byte is kept
    assert response.status_code == 200, response.text
    assert api.stored(response.json()["request_id"]).designation == raw.decode("latin-1")


def test_repeated_fields_use_the_last_one(api: Api) -> None:
    response = api.predict(data={"designation": ["Premier", "Dernier"]})
    assert response.status_code == 200, response.text
    assert api.stored(response.json()["request_id"]).designation == "Dernier"
    # a valid image then an empty one: the last one counts, and it is refused
    files = [("image", ("a.jpg", jpeg_bytes(), "image/jpeg")), ("image", ("b.jpg", b"", ""))]
    _error(api.predict(data={"designation": "Chaise"}, files=files), 422, "invalid_input", "empty")


def test_text_field_over_the_part_limit_is_400(api: Api) -> None:
    # Starlette refuses a non-file part over 1 MiB while parsing, before our text limit.
    response = api.predict(files={"designation": (None, "x" * (1024 * 1024 + 10))})
    _error(response, 400, "bad_request", "maximum size")


def test_missing_boundary_is_400(api: Api) -> None:
    response = api.predict(
        content=b"--abc\r\n\r\n", headers={"content-type": "multipart/form-data"}
    )
    _error(response, 400, "bad_request", "Missing boundary")


def test_garbage_multipart_is_a_4xx(api: Api) -> None:
    response = api.predict(
        content=b"\x00\x01not multipart at all" * 100,
        headers={"content-type": "multipart/form-data; boundary=zzz"},
    )
    assert response.status_code in (400, 422), response.text
    assert response.json()["request_id"] == response.headers["x-request-id"]


def test_hundreds_of_parts(api: Api) -> None:
    extra = [(f"extra{i}", (None, "v")) for i in range(300)]
    ok = api.predict(files=[("designation", (None, "Chaise")), *extra])
    assert ok.status_code == 200, ok.text
    flood = [(f"extra{i}", (None, "v")) for i in range(1500)]
    _error(api.predict(files=[("designation", (None, "Chaise")), *flood]), 400, "bad_request", "")


def test_json_body_instead_of_a_form_is_422(api: Api) -> None:
    _error(api.predict(json={"designation": "Chaise"}), 422, "invalid_input", "designation")


def _raw_request(base_url: str, head: bytes, body_chunks: Iterator[bytes]) -> tuple[bytes, int]:
    """Send a request over a raw socket; return the answer and how many body bytes went out."""
    host, port = base_url.removeprefix("http://").split(":")
    sent = 0
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head)
        sock.settimeout(0.0)
        answer = b""
        for chunk in body_chunks:
            try:
                answer += sock.recv(65536)
            except BlockingIOError:
                pass
            if answer:
                break
            try:
                sock.sendall(chunk)
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        sock.settimeout(30)
        deadline = time.monotonic() + 30
        while b"\r\n\r\n" not in answer and time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not data:
                break
            answer += data
    return answer, sent


def test_50_mb_upload_is_refused_before_it_is_read(api: Api) -> None:
    size = 50 * 1024 * 1024
    head = (
        "POST /predict HTTP/1.1\r\nHost: test\r\n"
        f"Authorization: {api.headers['Authorization']}\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {size}\r\n\r\n"
    ).encode()
    chunks = (b"\0" * 65536 for _ in range(size // 65536))
    answer, sent = _raw_request(api.base_url, head, chunks)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"input_too_large" in answer
    assert sent < size // 2  # answered long before the client finished sending


def test_chunked_upload_over_the_limit_is_413(api: Api) -> None:
    def body() -> Iterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\n'
        for _ in range(40):  # 20 MB, no Content-Length
            yield b"\0" * (512 * 1024)

    response = api.predict(
        content=body(), headers={"content-type": "multipart/form-data; boundary=b"}
    )
    _error(response, 413, "input_too_large", "request body is over")
