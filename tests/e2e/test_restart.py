"""A restart reuses what exists: `down` then `up` on the same volumes trains nothing.

Issue #23: every `docker compose up` used to regenerate the data, retrain and register a new
version of an unchanged model. On the session's stack (tests/utils/compose_stack.py), after
every other test, the stack is taken down (its volumes kept) and started again as a user would:
each job must find its output up to date, the registry must hold the same versions and the
same champion, and the API must answer. The time from `up` to the first 200 through the proxy
is logged (a figure for docs/pipeline.md, not an assertion: this machine is shared).
"""

from __future__ import annotations

import logging
import time

import httpx
import pytest

from tests.utils.compose_stack import JOBS, MODEL_NAME, Stack, wait_healthy

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.stack_restart,
    pytest.mark.timeout(900),
]
logger = logging.getLogger(__name__)

# what each job prints when it reuses its output, and what it prints when it works
REUSED = {
    "data": "is up to date (sample",
    "prepare": "reused, nothing to do",
    "train": "model up to date",
    "predict": "reused, nothing predicted",
}
WORKED = {
    "data": "sample written",
    "prepare": "prepared ",
    "train": "Epoch 1/",
    "predict": " rows -> ",
}


def _registry(stack: Stack) -> tuple[list[str], str]:
    with stack.admin("mlflow") as mlflow:
        found = mlflow.get(
            "/api/2.0/mlflow/model-versions/search", params={"filter": f"name='{MODEL_NAME}'"}
        )
        assert found.status_code == 200, found.text
        champion = mlflow.get(
            "/api/2.0/mlflow/registered-models/alias",
            params={"name": MODEL_NAME, "alias": "champion"},
        )
        assert champion.status_code == 200, champion.text
    versions = sorted(v["version"] for v in found.json().get("model_versions", []))
    return versions, str(champion.json()["model_version"]["version"])


def _status(client: httpx.Client, path: str) -> int:
    try:
        return client.get(path).status_code
    except httpx.TransportError:  # the proxy is still starting
        return 0


def test_down_and_up_again_reuses_data_model_and_predictions(compose_stack: Stack) -> None:
    stack = compose_stack
    versions, champion = _registry(stack)
    with stack.https() as client:
        served_before = client.get("/model").json()["model_version"]

    stack.compose("down", "--timeout", "10", timeout=300)  # containers go, volumes stay
    started = time.monotonic()
    stack.compose("up", "-d", "--scale", "serve=2", *stack.services, timeout=900)
    up_returned = time.monotonic() - started
    deadline = time.monotonic() + 300
    with stack.https() as client:  # what a user sees: the first 200 through the proxy
        while _status(client, "/health/ready") != 200:
            assert time.monotonic() < deadline, "the API never became ready after the restart"
            time.sleep(0.5)
        ready = time.monotonic() - started
        served_after = client.get("/model").json()["model_version"]
    wait_healthy(stack, "serve", 2, deadline)
    wait_healthy(stack, "proxy", 1, deadline)
    logger.info(
        "compose restart: up returned after %.0f s, the first 200 through the proxy after %.0f s",
        up_returned,
        ready,
    )
    stack.timings["restart_ready_s"] = ready

    for job in JOBS:
        (container,) = stack.container_ids(job)
        assert stack.inspect(container, "{{.State.ExitCode}}") == "0", job
        output = stack.compose("logs", "--no-color", job, timeout=60)
        assert REUSED[job] in output, f"{job} did not reuse its output:\n{output[-2000:]}"
        assert WORKED[job] not in output, f"{job} worked again:\n{output[-2000:]}"
    assert _registry(stack) == (versions, champion)
    assert served_after == served_before
