"""The quick start's alert receiver: every notification Alertmanager sends, in the monitor's log.

A stack where nobody configured an SMTP server or a chat still needs its alerts to reach a
person without failing. Alertmanager's ``people``, ``oncall`` and ``deadmansswitch`` receivers
(monitoring/alertmanager/alertmanager.yml) post here through its Slack integration, so the log
holds the very message a chat would show (monitoring/alertmanager/templates/rakuten.tmpl):

- ``POST /notifications``: one log record per notification, WARNING while firing and INFO once
  resolved, with the receiver (the message's ``username``), the title and one line per alert
  (severity, labels, summary, description, runbook and dashboard);
- ``POST /heartbeat``: the Watchdog, every 5 minutes while the alerting pipeline works: logged
  at DEBUG only, its time kept for ``/health`` (``last_heartbeat``).

Both count in ``rakuten_monitor_notifications_total{kind}`` (firing, resolved, heartbeat) and
need ``Authorization: Bearer <token>`` (``RAKUTEN_MONITOR_NOTIFICATIONS_TOKEN_FILE``): the
monitor's other routes are read by scrapes and need nothing, these write into its log. They
answer Slack's ``{"ok": true}`` (JSON): Alertmanager 0.27's Slack integration checks it.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, status
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field, SecretStr

logger = logging.getLogger(__name__)

MAX_LOGGED_CHARS = 8000  # a storm of alerts in one message: the log keeps the start


class SlackAttachment(BaseModel):
    """The part of an attachment Alertmanager fills from the receiver's templates."""

    model_config = ConfigDict(extra="ignore")

    title: str = Field(default="", max_length=2_000)
    text: str = Field(default="", max_length=200_000)


class SlackMessage(BaseModel):
    """A Slack incoming-webhook message, as Alertmanager's ``slack_configs`` posts it."""

    model_config = ConfigDict(extra="ignore")

    username: str = Field(default="", max_length=200)
    text: str = Field(default="", max_length=200_000)
    attachments: list[SlackAttachment] = Field(default_factory=list, max_length=20)


class SlackAnswer(BaseModel):
    ok: bool = True


class NotificationLog:
    """What the two routes share: the token, the counter and the last heartbeat's time."""

    def __init__(
        self, token: SecretStr, counter: Counter, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._token = token.get_secret_value().encode("utf-8")
        self._counter = counter
        self._clock = clock
        self._lock = threading.Lock()
        self._last_heartbeat: float | None = None

    def last_heartbeat(self) -> float | None:
        """Unix time of the last Watchdog heartbeat; None before the first."""
        with self._lock:
            return self._last_heartbeat

    def authorize(self, authorization: str | None) -> None:
        scheme, _, presented = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(
            presented.strip().encode("utf-8"), self._token
        ):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "a valid bearer token is required",
                headers={"WWW-Authenticate": "Bearer"},
            )

    def notification(self, message: SlackMessage) -> None:
        titles = [a.title for a in message.attachments if a.title]
        title = " / ".join(titles) or "(no title)"
        body = "\n".join(t for t in [message.text, *(a.text for a in message.attachments)] if t)
        resolved = title.startswith("[RESOLVED")
        self._counter.labels(kind="resolved" if resolved else "firing").inc()
        logger.log(
            logging.INFO if resolved else logging.WARNING,
            "alert notification to %s: %s\n%s",
            message.username or "?",
            title,
            body[:MAX_LOGGED_CHARS].rstrip(),
        )

    def heartbeat(self) -> None:
        with self._lock:
            self._last_heartbeat = self._clock()
        self._counter.labels(kind="heartbeat").inc()
        logger.debug("alerting pipeline heartbeat (RakutenWatchdog)")


def notifications_router(log: NotificationLog) -> APIRouter:
    """``/notifications`` and ``/heartbeat``, both behind the bearer token."""
    router = APIRouter(tags=["alert notifications"])

    @router.post(
        "/notifications",
        response_model=SlackAnswer,
        summary="Alertmanager's notifications (Slack-compatible), logged",
    )
    def notification(
        message: SlackMessage, authorization: Annotated[str | None, Header()] = None
    ) -> SlackAnswer:
        log.authorize(authorization)
        log.notification(message)
        return SlackAnswer()

    @router.post(
        "/heartbeat",
        response_model=SlackAnswer,
        summary="The Watchdog's heartbeat (dead man's switch), timed",
    )
    def heartbeat(
        message: SlackMessage, authorization: Annotated[str | None, Header()] = None
    ) -> SlackAnswer:
        log.authorize(authorization)
        log.heartbeat()
        return SlackAnswer()

    return router
