"""Stand-ins for the two APIs the alert webhook calls, real HTTP servers on 127.0.0.1.

- :class:`FakePrometheus`: ``GET /api/v1/alerts`` answering the alerts a test sets, in
  Prometheus' own shape (``{"status": "success", "data": {"alerts": [...]}}``), optionally
  behind basic auth, or failing with a given status;
- :class:`FakeAirflow`: ``GET|POST /api/v1/dags/<dag>/dagRuns`` keeping the runs it was asked
  to start, each in ``run_state`` (``"success"``: finished at once, so the next trigger is not
  deduplicated; ``"queued"``: it stays active).

The webhook talks to them with its real clients (httpx) over real sockets: no client is
mocked. Every request is recorded; both are context managers that stop their server.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Seen:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    authorization: str | None
    body: Any


class _Peer:
    """A threaded HTTP server whose answers come from :meth:`answer`."""

    def __init__(self) -> None:
        self.requests: list[Seen] = []
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                seen = Seen(
                    self.command,
                    url.path,
                    parse_qs(url.query),
                    self.headers.get("Authorization"),
                    json.loads(raw) if raw else None,
                )
                peer.requests.append(seen)
                code, body = peer.answer(seen)
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _handle

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib's name)
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def answer(self, seen: Seen) -> tuple[int, Any]:
        raise NotImplementedError

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> _Peer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def prometheus_alert(alertname: str, state: str = "firing", **labels: str) -> dict[str, Any]:
    """One entry of Prometheus' ``/api/v1/alerts``, with the rule's own labels."""
    return {
        "labels": {"alertname": alertname, "severity": "warning", "component": "model", **labels},
        "annotations": {"summary": alertname},
        "state": state,
        "activeAt": "2026-11-28T09:40:00Z",
        "value": "6e-01",
    }


class FakePrometheus(_Peer):
    """Prometheus' alerts API: ``alerts`` as set by the test (firing and pending ones)."""

    def __init__(
        self,
        alerts: list[dict[str, Any]] | None = None,
        *,
        basic_auth: tuple[str, str] | None = None,
        fail_with: int | None = None,
    ) -> None:
        self.alerts = list(alerts or [])
        self.basic_auth = basic_auth
        self.fail_with = fail_with
        super().__init__()

    def __enter__(self) -> FakePrometheus:
        return self

    def answer(self, seen: Seen) -> tuple[int, Any]:
        if self.basic_auth is not None:
            expected = base64.b64encode(":".join(self.basic_auth).encode()).decode()
            if seen.authorization != f"Basic {expected}":
                return 401, {"error": "Unauthorized"}
        if self.fail_with is not None:
            return self.fail_with, {"status": "error", "error": "injected"}
        if (seen.method, seen.path) != ("GET", "/api/v1/alerts"):
            return 404, {"status": "error", "error": "not found"}
        return 200, {"status": "success", "data": {"alerts": self.alerts}}


class FakeAirflow(_Peer):
    """Airflow's dagRuns API for one DAG: lists the runs in the asked states, starts new ones."""

    def __init__(self, dag_id: str = "rakuten_retrain", *, run_state: str = "success") -> None:
        self.dag_id = dag_id
        self.run_state = run_state
        self.runs: list[dict[str, Any]] = []
        super().__init__()

    def __enter__(self) -> FakeAirflow:
        return self

    def answer(self, seen: Seen) -> tuple[int, Any]:
        if seen.path != f"/api/v1/dags/{self.dag_id}/dagRuns":
            return 404, {"title": "DAG not found"}
        if seen.method == "POST":
            run = {"dag_run_id": seen.body["dag_run_id"], "conf": seen.body["conf"]}
            self.runs.append({**run, "state": self.run_state})
            return 200, self.runs[-1]
        states = set(seen.query.get("state", []))
        listed = [r for r in self.runs if not states or r["state"] in states]
        return 200, {"dag_runs": listed, "total_entries": len(listed)}
