"""Reload every serve replica and check that each of its workers serves the new version.

A replica URL whose host name resolves to several addresses (``http://serve:8000`` behind
``docker compose --scale serve=3``) is expanded to one URL per address, so no replica is left
on the old model. The service account's token comes from ``POST /token`` (password from a
secret file); neither is ever logged. ``POST /admin/reload`` answers once every worker of the
replica has swapped, listing them in ``workers``; each must report the expected version, and
``GET /model`` on fresh connections must agree.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

logger = logging.getLogger(__name__)
MODEL_CHECKS = 4  # GET /model on fresh connections after a reload, per replica


class ReloadError(RuntimeError):
    """A replica did not end up serving the expected version."""


@dataclass(frozen=True)
class ReplicaResult:
    url: str
    previous_version: str | None
    workers: list[dict[str, object]]
    model_version: str


def expand_replicas(urls: tuple[str, ...]) -> list[str]:
    """One base URL per address of each URL's host (IP literals stay as they are)."""
    out: list[str] = []
    for url in urls:
        parts = urlsplit(url.rstrip("/"))
        host = parts.hostname or ""
        try:
            ipaddress.ip_address(host)
            addresses = [host]
        except ValueError:
            infos = socket.getaddrinfo(host, parts.port or 80, proto=socket.IPPROTO_TCP)
            addresses = sorted({str(info[4][0]) for info in infos})
        for address in addresses:
            netloc = f"[{address}]" if ":" in address else address
            if parts.port:
                netloc = f"{netloc}:{parts.port}"
            base = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
            if base not in out:
                out.append(base)
    return out


def fetch_token(client: httpx.Client, base_url: str, username: str, password: str) -> str:
    """An access token of the service account (admin scope)."""
    response = client.post(
        f"{base_url}/token", data={"username": username, "password": password, "scope": "admin"}
    )
    if response.status_code != 200:
        raise ReloadError(f"{base_url}: POST /token answered {response.status_code}")
    token: str = response.json()["access_token"]
    return token


def _model_version(base_url: str, timeout_s: float) -> str:
    # a new client each time: a fresh connection may land on another worker
    with httpx.Client(timeout=timeout_s) as client:
        response = client.get(f"{base_url}/model")
    if response.status_code != 200:
        raise ReloadError(f"{base_url}: GET /model answered {response.status_code}")
    return str(response.json()["model_version"])


def reload_replica(
    client: httpx.Client, base_url: str, token: str, *, model: str, expected: str
) -> ReplicaResult:
    """Reload one replica; raise :class:`ReloadError` unless all its workers serve ``expected``."""
    response = client.post(
        f"{base_url}/admin/reload",
        headers={"Authorization": f"Bearer {token}"},
        json={"model": model},
    )
    if response.status_code != 200:
        detail = response.text[:500]
        raise ReloadError(f"{base_url}: reload answered {response.status_code}: {detail}")
    body = response.json()
    version = str(body["model"]["model_version"])
    workers = body.get("workers")
    if workers is None:
        # a serve older than the all-workers reload: only the fresh-connection checks below
        logger.warning("%s does not list its workers; checking GET /model only", base_url)
        workers = []
    stale = [w for w in workers if str(w.get("model_version")) != expected]
    if version != expected or stale:
        raise ReloadError(
            f"{base_url}: expected version {expected}, reload answered {version}, "
            f"workers on another version: {stale}"
        )
    seen = {_model_version(base_url, client.timeout.read or 30.0) for _ in range(MODEL_CHECKS)}
    if seen != {expected}:
        raise ReloadError(f"{base_url}: GET /model answered {sorted(seen)}, expected {expected}")
    logger.info(
        "%s serves %s on %d worker(s) (was %s)",
        base_url,
        expected,
        len(workers) or 1,
        body.get("previous_version"),
    )
    return ReplicaResult(base_url, body.get("previous_version"), workers, version)


def reload_all(
    urls: tuple[str, ...],
    *,
    username: str,
    password: str,
    model: str,
    expected: str,
    timeout_s: float,
) -> list[ReplicaResult]:
    """Reload the replicas one after the other (the others keep serving meanwhile).

    Every replica is tried even after a failure, so one broken replica does not leave the rest
    on the old model; the failures are raised together at the end.
    """
    replicas = expand_replicas(urls)
    if not replicas:
        raise ReloadError(f"no replica address found for {list(urls)}")
    results: list[ReplicaResult] = []
    failures: list[str] = []
    with httpx.Client(timeout=timeout_s) as client:
        token: str | None = None
        for base_url in replicas:
            try:
                token = token or fetch_token(client, base_url, username, password)
                results.append(
                    reload_replica(client, base_url, token, model=model, expected=expected)
                )
            except (ReloadError, httpx.HTTPError, KeyError, ValueError) as exc:
                failures.append(f"{base_url}: {exc}")
                logger.error("reload failed on %s: %s", base_url, exc)
    if failures:
        raise ReloadError(
            f"{len(failures)} of {len(replicas)} replica(s) do not serve {expected}: {failures}"
        )
    return results
