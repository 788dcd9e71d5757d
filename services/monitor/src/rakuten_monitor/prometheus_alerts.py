"""What Prometheus itself holds as firing: the evidence the alert webhook asks for before a retrain.

Alertmanager accepts alerts from anyone who can reach its ``/api/v2/alerts``, so a notification
proves nothing by itself. The webhook asks Prometheus' rule evaluator (``GET /api/v1/alerts``)
and acts only on alerts it shows ``firing``. Not the ``ALERTS`` series through
``/api/v1/query``: that is data in the TSDB, which a scraped series could imitate (the
Pushgateway scrape drops ``ALERTS`` too, but the rule evaluator's own state needs no such
guard). Pending alerts are no evidence: their ``for:`` has not elapsed.

Basic auth when configured; the password never appears in a URL, a log line or an error message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import httpx

ALERTS_PATH = "/api/v1/alerts"


class PrometheusError(RuntimeError):
    """Prometheus could not be reached or gave no usable answer (the webhook answers 503)."""


@dataclass(frozen=True)
class PrometheusAlerts:
    base_url: str
    username: str = ""
    password: str = field(default="", repr=False)
    timeout_s: float = 10.0

    def firing(self) -> list[dict[str, str]]:
        """The label sets of the alerts Prometheus holds as firing."""
        auth = (self.username, self.password) if self.username else None
        try:
            response = httpx.get(f"{self.base_url}{ALERTS_PATH}", auth=auth, timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            raise PrometheusError(f"Prometheus unreachable ({type(exc).__name__})") from None
        if response.status_code != 200:
            raise PrometheusError(f"Prometheus answered {response.status_code} to {ALERTS_PATH}")
        try:
            body = response.json()
            if body["status"] != "success":
                raise ValueError(body["status"])
            return [
                {str(k): str(v) for k, v in alert["labels"].items()}
                for alert in body["data"]["alerts"]
                if alert["state"] == "firing"
            ]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise PrometheusError(f"Prometheus gave no alert list at {ALERTS_PATH}") from None


def is_firing(sent: Mapping[str, str], firing: Iterable[Mapping[str, str]]) -> bool:
    """Whether an alert Alertmanager sent is one of Prometheus' firing alerts.

    Same ``alertname``, and every label both sides carry has the same value (``job``,
    ``instance``, ``feature``...). Labels only one side has are not compared: Prometheus adds its
    external labels on the way to Alertmanager, not in its API. A notification with the name
    alone matches any firing alert of that name, which is enough: the retrain then rests on
    what Prometheus evaluated, not on what was posted.
    """
    name = sent.get("alertname")
    if not name:
        return False
    return any(
        alert.get("alertname") == name
        and all(sent[key] == value for key, value in alert.items() if key in sent)
        for alert in firing
    )
