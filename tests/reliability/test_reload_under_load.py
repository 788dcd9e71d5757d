"""Model reloads while clients keep predicting: no failed request, one version per answer,
versions switch once and for good, a broken bundle is refused and the old model keeps serving."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from rakuten_core.records import Prediction
from rakuten_serve.app import create_app
from rakuten_serve.db.engine import build_engine
from rakuten_serve.predictor import Predictor, load_model
from tests.utils.live_server import live_server
from tests.utils.serve_app import (
    DEFAULT_USERS,
    PASSWORD,
    jpeg_bytes,
    migrate_and_add_users,
    serve_settings,
)
from tests.utils.serve_fixtures import copy_bundle_as

pytestmark = [pytest.mark.slow]

CLIENTS = 4
logger = logging.getLogger(__name__)


def _token(base_url: str, user: str) -> dict[str, str]:
    answer = httpx.post(
        f"{base_url}/token", data={"username": user, "password": PASSWORD}, timeout=60
    )
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def test_reload_under_load(tmp_path: Path, serve_bundle_dir: Path) -> None:
    v2 = copy_bundle_as(serve_bundle_dir, tmp_path / "v2", "reloaded-v2")
    broken = tmp_path / "broken"
    shutil.copytree(serve_bundle_dir, broken)
    (broken / "model.keras").write_bytes(b"PK\x03\x04 not a keras archive")
    (broken / "serving" / "model.onnx").write_bytes(b"not an onnx graph")  # the served file
    settings = serve_settings(tmp_path, model_path=str(serve_bundle_dir))
    migrate_and_add_users(settings, DEFAULT_USERS)
    predictor = Predictor(load_model(str(serve_bundle_dir), cache_dir=tmp_path / "c"), top_k=5)
    original = predictor.model.metadata.model_version
    app = create_app(settings, predictor)

    stop = threading.Event()
    seen: list[list[tuple[int, str | None, str | None]]] = [[] for _ in range(CLIENTS)]

    def client(index: int, base_url: str, headers: dict[str, str]) -> None:
        with httpx.Client(base_url=base_url, timeout=120) as http:
            deadline = time.monotonic() + 300
            while not stop.is_set() and time.monotonic() < deadline:
                image = jpeg_bytes(color=(index * 50, len(seen[index]) % 255, 90))
                answer = http.post(
                    "/predict",
                    headers=headers,
                    data={"designation": f"Chaise {index}"},
                    files={"image": ("a.jpg", image, "image/jpeg")},
                )
                body = answer.json() if answer.status_code == 200 else {}
                seen[index].append(
                    (answer.status_code, body.get("model_version"), body.get("request_id"))
                )

    def wait_for_more(n: int) -> None:
        target = [len(s) + n for s in seen]
        deadline = time.monotonic() + 120
        while any(len(s) < t for s, t in zip(seen, target, strict=True)):
            assert time.monotonic() < deadline, "clients stalled"
            time.sleep(0.05)

    with live_server(app) as base_url:
        alice, root = _token(base_url, "alice"), _token(base_url, "root")
        threads = [
            threading.Thread(target=client, args=(i, base_url, alice)) for i in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        try:
            wait_for_more(3)
            started = time.monotonic()
            ok = httpx.post(
                f"{base_url}/admin/reload", headers=root, json={"model": str(v2)}, timeout=300
            )
            assert ok.status_code == 200, ok.text
            reload_s = time.monotonic() - started
            assert ok.json()["previous_version"] == original
            wait_for_more(3)
            refused = httpx.post(
                f"{base_url}/admin/reload", headers=root, json={"model": str(broken)}, timeout=300
            )
            assert refused.status_code == 422, refused.text
            assert "still serving version reloaded-v2" in refused.json()["detail"]
            wait_for_more(3)
            assert httpx.get(f"{base_url}/model").json()["model_version"] == "reloaded-v2"
            metrics = httpx.get(f"{base_url}/metrics").text
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=120)
        assert app.state.serve.recorder.wait_idle(60)

    answers = [a for per_client in seen for a in per_client]
    logger.info(
        "reload under load: %d answers (%d from %s, %d from reloaded-v2), statuses %s, reload "
        "took %.1fs",
        len(answers),
        sum(1 for _, v, _ in answers if v == original),
        original,
        sum(1 for _, v, _ in answers if v == "reloaded-v2"),
        sorted({status for status, _, _ in answers}),
        reload_s,
    )
    assert {status for status, _, _ in answers} == {200}
    for per_client in seen:
        versions = [v for _, v, _ in per_client]
        switch = versions.index("reloaded-v2")
        assert set(versions[:switch]) == {original}
        assert set(versions[switch:]) == {"reloaded-v2"}  # never back to the old one
    assert 'rakuten_model_reloads_total{outcome="failure"} 1.0' in metrics
    assert 'rakuten_model_reloads_total{outcome="success"} 1.0' in metrics
    engine = build_engine(settings.database_url)
    try:
        with Session(engine) as session:
            stored = dict(
                session.execute(select(Prediction.request_id, Prediction.model_version)).all()
            )
    finally:
        engine.dispose()
    assert stored == {rid: version for _, version, rid in answers}
