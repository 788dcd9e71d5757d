"""A local HTTP server on 127.0.0.1 that answers like the Hugging Face Hub for one dataset repo.

It implements what ``huggingface_hub.hf_hub_download`` and ``get_hf_file_metadata`` really call:

* ``HEAD|GET /datasets/{repo}/resolve/{revision}/{filename}`` (revision: the branch name or the
  commit). Small (git) files answer 200 with ``ETag`` = git blob sha1 and ``X-Repo-Commit``. LFS
  files answer like the Hub does: a 302 to a CDN URL on another host name (``localhost``) with
  ``X-Linked-Etag`` (the sha256), ``X-Linked-Size`` and ``X-Repo-Commit``, so the client follows
  it only for the GET and drops the ``Authorization`` header there, as with the real CDN.
* ``GET /cdn/{sha256}``: the LFS content, with ``Range`` support (206 + ``Content-Range``).
* ``GET /api/datasets/{repo}/revision/{revision}``: the repo info (sha, siblings).

Unknown repos, revisions and files get 404 with the Hub's ``X-Error-Code``. Faults can be
injected per file: cut the connection after N bytes on the first GET (``cut_once``), hang after
N bytes until ``release`` is set (``stall_once``, to kill a client mid-file), or serve bytes that
differ from the advertised hash (``corrupt``), or answer everything with an error status
(``fail_with``). Every request is recorded.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import unquote, urlsplit

COMMIT = "4f1c2d3e5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d"
_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


@dataclass(frozen=True)
class Seen:
    """One request as the server saw it."""

    method: str
    path: str
    range: str | None
    authorization: str | None


@dataclass
class HubState:
    """Files of the repo, injected faults and the request log (shared with the handler)."""

    repo_id: str
    files: dict[str, bytes]
    lfs: set[str]
    cut_once: dict[str, int] = field(default_factory=dict)
    stall_once: dict[str, int] = field(default_factory=dict)
    release: threading.Event = field(default_factory=threading.Event)
    corrupt: set[str] = field(default_factory=set)
    fail_with: int | None = None  # answer every request with this HTTP status (Hub outage)
    requests: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def sha256(self, name: str) -> str:
        return hashlib.sha256(self.files[name]).hexdigest()

    def git_sha1(self, name: str) -> str:
        data = self.files[name]
        return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()

    def served_bytes(self, name: str) -> bytes:
        data = self.files[name]
        if name in self.corrupt:
            middle = len(data) // 2
            return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]
        return data

    def gets(self, name: str) -> list[Seen]:
        """GET requests that transferred ``name`` (resolve URL or its CDN URL)."""
        targets = {f"/cdn/{self.sha256(name)}"} if name in self.lfs else set()
        return [
            r
            for r in self.requests
            if r.method == "GET" and (r.path in targets or r.path.endswith(f"/{name}"))
        ]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - silence stderr
        return

    @property
    def state(self) -> HubState:
        return self.server.state

    def _record(self) -> str:
        path = unquote(urlsplit(self.path).path)
        with self.state.lock:
            self.state.requests.append(
                Seen(
                    self.command,
                    path,
                    self.headers.get("Range"),
                    self.headers.get("Authorization"),
                )
            )
        return path

    def _error(self, status: int, code: str) -> None:
        body = json.dumps({"error": code}).encode()
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:  # noqa: N802 - http.server naming
        self._route()

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._route()

    def _route(self) -> None:
        path = self._record()
        if self.state.fail_with is not None:
            return self._error(self.state.fail_with, "ServiceUnavailable")
        prefix = f"/datasets/{self.state.repo_id}/resolve/"
        api = f"/api/datasets/{self.state.repo_id}/revision/"
        if path.startswith("/cdn/"):
            names = [n for n in self.state.lfs if self.state.sha256(n) == path[len("/cdn/") :]]
            return self._content(names[0]) if names else self._error(404, "EntryNotFound")
        if path.startswith(api):
            return self._api(path[len(api) :])
        if not path.startswith(f"/datasets/{self.state.repo_id}/"):
            return self._error(404, "RepoNotFound")
        if not path.startswith(prefix):
            return self._error(404, "EntryNotFound")
        revision, _, name = path[len(prefix) :].partition("/")
        if revision not in ("main", COMMIT):
            return self._error(404, "RevisionNotFound")
        if name not in self.state.files:
            return self._error(404, "EntryNotFound")
        if name in self.state.lfs:
            return self._lfs_redirect(name)
        return self._content(name, etag=self.state.git_sha1(name))

    def _api(self, revision: str) -> None:
        if revision not in ("main", COMMIT):
            return self._error(404, "RevisionNotFound")
        siblings = [{"rfilename": name} for name in sorted(self.state.files)]
        body = json.dumps({"id": self.state.repo_id, "sha": COMMIT, "siblings": siblings}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _lfs_redirect(self, name: str) -> None:
        sha = self.state.sha256(name)
        self.send_response(302)
        self.send_header("Location", f"http://localhost:{self.server.server_port}/cdn/{sha}")
        self.send_header("ETag", f'"{self.state.git_sha1(name)}"')  # the pointer file's oid
        self.send_header("X-Linked-Etag", f'"{sha}"')
        self.send_header("X-Linked-Size", str(len(self.state.files[name])))
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _content(self, name: str, *, etag: str | None = None) -> None:
        data = self.state.served_bytes(name)
        start, end = 0, len(data) - 1
        match = _RANGE.match(self.headers.get("Range", ""))
        if match:
            start = int(match.group(1))
            end = int(match.group(2)) if match.group(2) else end
        body = data[start : end + 1]
        self.send_response(206 if match else 200)
        if match:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"{etag or self.state.sha256(name)}"')
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "HEAD":
            return
        with self.state.lock:
            cut = self.state.cut_once.pop(name, None)
            stall = self.state.stall_once.pop(name, None)
        if cut is not None:  # the first transfer dies mid-file, like a dropped connection
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        if stall is not None:  # the first transfer hangs mid-file until the test releases it
            self.wfile.write(body[:stall])
            self.wfile.flush()
            self.state.release.wait(timeout=60)
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: HubState


class HubServer:
    """Context manager running the stand-in Hub on a free port of 127.0.0.1."""

    def __init__(self, repo_id: str, files: dict[str, bytes], *, lfs: set[str]) -> None:
        self.state = HubState(repo_id=repo_id, files=dict(files), lfs=set(lfs))
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.state = self.state
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> HubServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.state.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
