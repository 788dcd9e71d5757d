"""configure_logging: JSON lines on disk, request ids, rotation, idempotence."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from rakuten_core.logs import configure_logging, request_id


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_root_logger")
def test_json_lines_carry_the_request_id(tmp_path: Path) -> None:
    log_file = configure_logging("unit", log_dir=tmp_path / "logs", console=False)
    assert log_file == tmp_path / "logs" / "unit.log"
    log = logging.getLogger("rakuten.test")
    log.info("outside")
    token = request_id.set("req-123")
    try:
        log.warning("inside %s", "a request")
    finally:
        request_id.reset(token)
    records = [json.loads(line) for line in log_file.read_text(encoding="utf-8").splitlines()]
    mine = [r for r in records if r["name"] == "rakuten.test"]
    assert [(r["message"], r["request_id"], r["level"]) for r in mine] == [
        ("outside", "-", "INFO"),
        ("inside a request", "req-123", "WARNING"),
    ]
    assert all("time" in r for r in mine)
    assert {r["pid"] for r in mine} == {os.getpid()}  # workers share one file


@pytest.mark.usefixtures("restore_root_logger")
def test_configuring_twice_does_not_duplicate_lines(tmp_path: Path) -> None:
    configure_logging("twice", log_dir=tmp_path, console=False)
    log_file = configure_logging("twice", log_dir=tmp_path, console=False)
    logging.getLogger("rakuten.twice").info("once")
    lines = [ln for ln in log_file.read_text().splitlines() if "rakuten.twice" in ln]
    assert len(lines) == 1


@pytest.mark.usefixtures("restore_root_logger")
def test_file_rotates_by_size(tmp_path: Path) -> None:
    log_file = configure_logging(
        "rot", log_dir=tmp_path, console=False, max_bytes=500, backup_count=2
    )
    for i in range(40):
        logging.getLogger("rakuten.rot").info("line %03d %s", i, "x" * 40)
    assert log_file.exists() and (tmp_path / "rot.log.1").exists()
    assert not (tmp_path / "rot.log.3").exists()
    assert log_file.stat().st_size <= 500
