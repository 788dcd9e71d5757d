"""The reload board in-process: publication, a worker that does not follow, a restarted worker.

The multi-process behaviour (two real uvicorn workers under load) is
``tests/integration/test_serve_reload_workers.py``; here one app stands for the receiving
worker, and a real live process that never reads the board stands for a hung worker.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rakuten_serve.app import create_app
from rakuten_serve.reload_board import ReloadBoard, RoleStatus, prepare_run_dir
from rakuten_serve.settings import ServeSettings
from tests.utils.serve_app import bearer, get_token
from tests.utils.serve_fixtures import copy_bundle_as

pytestmark = pytest.mark.slow


@pytest.fixture
def board_settings(settings: ServeSettings, tmp_path: Path) -> ServeSettings:
    return settings.model_copy(
        update={"run_dir": tmp_path / "run", "reload_timeout_s": 1.5, "reload_poll_s": 0.1}
    )


@pytest.fixture
def hung_worker() -> Iterator[int]:
    """A live process that never follows the board."""
    process = subprocess.Popen(["sleep", "120"])
    try:
        yield process.pid
    finally:
        process.kill()
        process.wait(timeout=10)


def test_reload_publishes_and_a_restarted_worker_starts_with_the_published_model(
    board_settings: ServeSettings, serve_bundle_dir: Path, tmp_path: Path
) -> None:
    v2 = copy_bundle_as(serve_bundle_dir, tmp_path / "v2", "v2-published")
    with TestClient(create_app(board_settings)) as client:
        root = bearer(get_token(client, "root"))
        original = client.get("/model").json()["model_version"]
        answer = client.post("/admin/reload", headers=root, json={"model": str(v2)})
        assert answer.status_code == 200, answer.text
        assert answer.json()["workers"] == [{"pid": os.getpid(), "model_version": "v2-published"}]
        assert answer.json()["role"] == "champion"
        desired = json.loads((board_settings.run_dir / "desired-champion.json").read_text())
        assert desired["generation"] == 1 and desired["model_version"] == "v2-published"
        assert desired["spec"] == str(v2) and Path(desired["path"]) == v2.resolve()
    assert original != "v2-published"
    # the same settings (RAKUTEN_MODEL_PATH = the first bundle), a new worker: it takes the
    # published model, as a worker restarted by uvicorn would
    with TestClient(create_app(board_settings)) as client:
        assert client.get("/model").json()["model_version"] == "v2-published"
        assert client.get("/model").json()["source"] == str(v2)
    # its status file was removed when it stopped: it no longer counts as a live worker
    assert ReloadBoard(board_settings.run_dir).workers() == []


def test_a_worker_that_does_not_follow_makes_the_reload_answer_504(
    board_settings: ServeSettings, serve_bundle_dir: Path, tmp_path: Path, hung_worker: int
) -> None:
    v2 = copy_bundle_as(serve_bundle_dir, tmp_path / "v2", "v2-partial")
    with TestClient(create_app(board_settings)) as client:
        original = client.get("/model").json()["model_version"]
        board = ReloadBoard(board_settings.run_dir)
        board.report(hung_worker, {"champion": RoleStatus(0, original)})
        root = bearer(get_token(client, "root"))
        answer = client.post("/admin/reload", headers=root, json={"model": str(v2)})
        assert answer.status_code == 504, answer.text
        detail = answer.json()["detail"]
        assert answer.json()["error"] == "not_followed"
        assert f"{hung_worker} (still loading; serving {original})" in detail["message"]
        assert {w["pid"]: w["model_version"] for w in detail["workers"]} == {
            os.getpid(): "v2-partial",
            hung_worker: original,
        }
        # the receiving worker serves the new model; the published state says so too, so a
        # worker (re)starting now would load it
        assert client.get("/model").json()["model_version"] == "v2-partial"
        assert board.desired("champion").model_version == "v2-partial"


def test_dead_workers_do_not_count_and_a_given_run_dir_starts_clean(tmp_path: Path) -> None:
    board = ReloadBoard(tmp_path / "run")
    dead = subprocess.Popen(["true"])
    dead.wait(timeout=10)
    board.report(dead.pid, {"champion": RoleStatus(3, "old")})
    board.report(os.getpid(), {"champion": RoleStatus(3, "v3")})
    assert [w.pid for w in board.workers()] == [os.getpid()]
    assert not (tmp_path / "run" / f"worker-{dead.pid}.json").exists()
    with board.locked():
        first = board.publish("champion", spec="a", path="/a", model_version="1")
        second = board.publish("champion", spec="b", path="/b", model_version="2")
    assert (first.generation, second.generation) == (1, 2)
    before = os.environ.get("RAKUTEN_RUN_DIR")
    try:
        assert prepare_run_dir(tmp_path / "run") == tmp_path / "run"
        assert os.environ["RAKUTEN_RUN_DIR"] == str(tmp_path / "run")
    finally:
        if before is None:
            os.environ.pop("RAKUTEN_RUN_DIR", None)
        else:
            os.environ["RAKUTEN_RUN_DIR"] = before
    assert board.desired("champion") is None and board.workers() == []
