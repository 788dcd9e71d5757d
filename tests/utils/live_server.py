"""An app object served by a real uvicorn server in a background thread, on a free port.

In-process, so a test can hand it an already loaded model (no second model load) and still
talk HTTP over real sockets: keep-alive connections, dropped connections and request bodies
streamed by uvicorn behave as in production.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn
from fastapi import FastAPI

from tests.utils.postgres import free_port


@contextmanager
def live_server(
    app: FastAPI, *, timeout_s: float = 120.0, health_path: str = "/health/live"
) -> Iterator[str]:
    """Serve ``app`` on ``http://127.0.0.1:<free port>`` until the block exits."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    try:
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on {base_url}")
            time.sleep(0.05)
        httpx.get(f"{base_url}{health_path}", timeout=10).raise_for_status()
        yield base_url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def local_port(response: httpx.Response) -> int:
    """The client-side port of the connection that carried ``response`` (same port: same
    connection, so the server did not drop it)."""
    stream = response.extensions["network_stream"]
    return int(stream.get_extra_info("socket").getsockname()[1])
