"""The two calls the alert webhook makes to Airflow's stable REST API (``/api/v1``).

Basic auth with a service account (Airflow's ``basic_auth`` backend); the password never
appears in a URL, a log line or an error message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

logger = logging.getLogger(__name__)
ACTIVE_STATES = ("queued", "running")


class AirflowError(RuntimeError):
    """Airflow could not be reached or refused the call (the webhook answers 502)."""


@dataclass(frozen=True)
class AirflowClient:
    base_url: str
    username: str
    password: str = field(repr=False)  # not in the repr either
    dag_id: str
    timeout_s: float = 30.0

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        url = f"{self.base_url}/api/v1/dags/{self.dag_id}/{path}"
        try:
            response = httpx.request(
                method, url, auth=(self.username, self.password), timeout=self.timeout_s, **kwargs
            )
        except httpx.HTTPError as exc:
            raise AirflowError(f"Airflow unreachable ({type(exc).__name__})") from None
        if response.status_code >= 300:
            title = ""
            try:
                title = str(response.json().get("title", ""))[:200]
            except ValueError:
                pass
            raise AirflowError(
                f"Airflow answered {response.status_code} to {method} {path} {title}"
            )
        body: dict[str, Any] = response.json()
        return body

    def active_runs(self) -> list[str]:
        """Ids of the DAG's runs that are queued or running."""
        body = self._request(
            "GET", "dagRuns", params=[("state", s) for s in ACTIVE_STATES] + [("limit", "20")]
        )
        return [str(run["dag_run_id"]) for run in body.get("dag_runs", [])]

    def trigger(self, conf: dict[str, Any]) -> str:
        """Start a run with ``conf``; returns its id."""
        run_id = f"alert__{datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}"
        body = self._request("POST", "dagRuns", json={"dag_run_id": run_id, "conf": conf})
        return str(body.get("dag_run_id", run_id))
