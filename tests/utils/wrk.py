"""``wrk`` (the native HTTP load generator) posting multipart ``/predict`` requests.

A Python client on two cores would measure itself; wrk leaves the CPU to the server (its own CPU
is reported: :attr:`WrkResult.client_cpu_s`, from the kernel's accounting of the wrk process).
The Lua script cycles through prebuilt request bodies (real rows and images, or a text-only
product), counts answers per status and 503s without ``Retry-After``, keeps the request id of
every 200, and reports latency percentiles; wrk reports socket errors (connect, read, write,
timeout), i.e. dropped connections. Used by the reliability tests and the serving benchmarks.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.utils.products import Product, multipart_body

TEXT_ONLY = Product(
    "Piscine tubulaire ronde 3,66 x 0,76 m", "Piscine hors sol avec pompe de filtration", None
)

_SCRIPT = r"""
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer __TOKEN__"
wrk.headers["Content-Type"] = "multipart/form-data; boundary=__BOUNDARY__"
local count = __COUNT__
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("offset", #threads * 7)
end
function init(args)
  statuses = {}; no_retry_after = 0; ids = {}; requests = {}
  for i = 1, count do
    local f = assert(io.open(string.format("__DIR__/body-%05d.bin", i), "rb"))
    requests[i] = wrk.format(nil, nil, nil, f:read("*all"))
    f:close()
  end
  next_request = offset % count
end
function request()
  next_request = next_request % count + 1
  return requests[next_request]
end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status == 200 then ids[#ids + 1] = body:match('"request_id":"(%x+)"') end
  if status == 503 and headers["retry-after"] == nil and headers["Retry-After"] == nil then
    no_retry_after = no_retry_after + 1
  end
end
function done(summary, latency, requests)
  local totals, missing = {}, 0
  local out = io.open("__IDS__", "w")
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("statuses")) do totals[code] = (totals[code] or 0) + n end
    missing = missing + t:get("no_retry_after")
    for _, id in ipairs(t:get("ids")) do out:write(id, "\n") end
  end
  out:close()
  for code, n in pairs(totals) do io.write(string.format("STATUS %d %d\n", code, n)) end
  io.write(string.format("NO_RETRY_AFTER %d\n", missing))
  local e = summary.errors
  io.write(string.format("SOCKET_ERRORS %d %d %d %d %d\n",
    e.connect, e.read, e.write, e.timeout, e.status))
  io.write(string.format("LATENCY_MS %.2f %.2f %.2f %.2f\n", latency:percentile(50) / 1000,
    latency:percentile(95) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
  io.write(string.format("REQUESTS %d DURATION_S %.3f\n", summary.requests,
    summary.duration / 1e6))
end
"""


class WrkNotInstalledError(RuntimeError):
    """``wrk`` is not on PATH (``scripts/system-deps.sh`` installs it)."""


@dataclass
class WrkResult:
    statuses: dict[int, int] = field(default_factory=dict)
    no_retry_after: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    requests: int = 0
    duration_s: float = 0.0
    client_cpu_s: float = 0.0
    output: str = ""
    ok_ids: list[str] = field(default_factory=list)

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def rps(self) -> float:
        """Answered requests (any status) per second."""
        return self.requests / max(self.duration_s, 1e-9)

    @property
    def non_2xx(self) -> int:
        return sum(n for code, n in self.statuses.items() if not 200 <= code < 300)

    @property
    def transport_errors(self) -> int:
        """Connect, read, write and timeout errors (``status`` counts non-2xx/3xx answers)."""
        return sum(n for name, n in self.socket_errors.items() if name != "status")

    @property
    def server_errors(self) -> int:
        return sum(n for code, n in self.statuses.items() if code >= 500)

    def summary(self) -> str:
        return (
            f"{self.requests} requests in {self.duration_s:.1f}s ({self.rps:.1f}/s), "
            f"statuses {self.statuses}, 503 without Retry-After {self.no_retry_after}, "
            f"socket errors {self.socket_errors}, latency p50 {self.p50_ms:.0f} ms "
            f"p99 {self.p99_ms:.0f} ms max {self.max_ms:.0f} ms, wrk CPU {self.client_cpu_s:.2f}s"
        )


def write_script(
    token: str, workdir: Path, products: Sequence[Product] = (TEXT_ONLY,)
) -> tuple[Path, Path]:
    """The Lua script and its request bodies under ``workdir``; returns (script, ids file)."""
    boundary = uuid.uuid4().hex
    bodies = workdir / f"wrk-bodies-{boundary[:8]}"
    bodies.mkdir(parents=True)
    for i, product in enumerate(products, start=1):
        (bodies / f"body-{i:05d}.bin").write_bytes(multipart_body(product, boundary))
    script, ids = workdir / f"predict-{boundary[:8]}.lua", workdir / "ok-request-ids.txt"
    text = (
        _SCRIPT.replace("__TOKEN__", token)
        .replace("__BOUNDARY__", boundary)
        .replace("__COUNT__", str(len(products)))
        .replace("__DIR__", str(bodies))
        .replace("__IDS__", str(ids))
    )
    script.write_text(text, encoding="utf-8")
    return script, ids


def run_wrk(
    base_url: str,
    token: str,
    *,
    connections: int,
    duration_s: float,
    workdir: Path,
    products: Sequence[Product] = (TEXT_ONLY,),
    script: tuple[Path, Path] | None = None,
    timeout_s: float = 30.0,
) -> WrkResult:
    """``wrk -c connections`` on ``base_url/predict`` for ``duration_s`` seconds.

    ``script`` reuses what :func:`write_script` wrote (else it is written for ``products``).
    An answer slower than ``timeout_s`` counts as a ``timeout`` socket error.
    Raises:
        WrkNotInstalledError: no ``wrk`` binary.
    """
    binary = shutil.which("wrk")
    if binary is None:
        raise WrkNotInstalledError("wrk is not installed (scripts/system-deps.sh installs it)")
    lua, ids = script or write_script(token, workdir, products)
    threads = min(2, connections)
    command = [binary, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration_s))}s"]
    command += ["--timeout", f"{timeout_s:g}s", "-s", str(lua), f"{base_url}/predict"]
    log = workdir / f"wrk-{uuid.uuid4().hex[:8]}.out"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + duration_s + 120
        # wait4: the exit status and the CPU of exactly this process (RUSAGE_CHILDREN would
        # mix in every other child of the caller, e.g. server processes).
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.05)
        process.returncode = os.waitstatus_to_exitcode(status)
    output = log.read_text(encoding="utf-8", errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"wrk exited with {process.returncode}: {output[-2000:]}")
    result = parse(output)
    result.client_cpu_s = usage.ru_utime + usage.ru_stime
    result.ok_ids = ids.read_text(encoding="utf-8").split() if ids.exists() else []
    return result


def parse(output: str) -> WrkResult:
    result = WrkResult(output=output)
    for line in output.splitlines():
        if m := re.match(r"STATUS (\d+) (\d+)", line):
            result.statuses[int(m[1])] = int(m[2])
        elif m := re.match(r"NO_RETRY_AFTER (\d+)", line):
            result.no_retry_after = int(m[1])
        elif m := re.match(r"SOCKET_ERRORS (\d+) (\d+) (\d+) (\d+) (\d+)", line):
            names = ("connect", "read", "write", "timeout", "status")
            result.socket_errors = dict(zip(names, map(int, m.groups()), strict=True))
        elif m := re.match(r"LATENCY_MS ([\d.]+) ([\d.]+) ([\d.]+) ([\d.]+)", line):
            result.p50_ms, result.p95_ms, result.p99_ms, result.max_ms = map(float, m.groups())
        elif m := re.match(r"REQUESTS (\d+) DURATION_S ([\d.]+)", line):
            result.requests, result.duration_s = int(m[1]), float(m[2])
    return result
