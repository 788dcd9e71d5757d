"""``wrk`` (the native HTTP load generator) posting multipart /predict requests.

A Python client on two cores would measure itself; wrk leaves the CPU to the server. The Lua
script counts answers per status and 503s without ``Retry-After``, keeps the request id of every
200, and wrk reports socket errors (connect, read, write, timeout), i.e. dropped connections.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

_SCRIPT = r"""
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer __TOKEN__"
wrk.headers["Content-Type"] = "multipart/form-data; boundary=wrkboundary"
wrk.body = "--wrkboundary\r\n" ..
  "Content-Disposition: form-data; name=\"designation\"\r\n\r\n" ..
  "Piscine tubulaire ronde 3,66 x 0,76 m\r\n" ..
  "--wrkboundary\r\n" ..
  "Content-Disposition: form-data; name=\"description\"\r\n\r\n" ..
  "Piscine hors sol avec pompe de filtration\r\n" ..
  "--wrkboundary--\r\n"

local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {}; no_retry_after = 0; ids = {} end
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
  io.write(string.format("LATENCY_MS %.1f %.1f %.1f\n", latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
  io.write(string.format("REQUESTS %d DURATION_S %.2f\n", summary.requests,
    summary.duration / 1e6))
end
"""


@dataclass
class WrkResult:
    statuses: dict[int, int] = field(default_factory=dict)
    no_retry_after: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    requests: int = 0
    duration_s: float = 0.0
    output: str = ""
    ok_ids: list[str] = field(default_factory=list)

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def server_errors(self) -> int:
        return sum(n for code, n in self.statuses.items() if code >= 500)

    def summary(self) -> str:
        return (
            f"{self.requests} requests in {self.duration_s:.1f}s "
            f"({self.requests / max(self.duration_s, 1e-9):.1f}/s), statuses {self.statuses}, "
            f"503 without Retry-After {self.no_retry_after}, socket errors {self.socket_errors}, "
            f"latency p50 {self.p50_ms:.0f} ms p99 {self.p99_ms:.0f} ms max {self.max_ms:.0f} ms"
        )


def run_wrk(
    base_url: str, token: str, *, connections: int, duration_s: int, workdir: Path
) -> WrkResult:
    binary = shutil.which("wrk")
    if binary is None:
        pytest.skip("wrk not installed (scripts/system-deps.sh installs it)")
    script = workdir / "predict.lua"
    ids = workdir / "ok-request-ids.txt"
    script.write_text(
        _SCRIPT.replace("__TOKEN__", token).replace("__IDS__", str(ids)), encoding="utf-8"
    )
    threads = min(2, connections)
    completed = subprocess.run(
        [
            binary,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration_s}s",
            "--timeout",
            "30s",
            "-s",
            str(script),
            f"{base_url}/predict",
        ],
        capture_output=True,
        text=True,
        timeout=duration_s + 120,
        check=True,
    )
    result = parse(completed.stdout)
    result.ok_ids = ids.read_text(encoding="utf-8").split()
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
        elif m := re.match(r"LATENCY_MS ([\d.]+) ([\d.]+) ([\d.]+)", line):
            result.p50_ms, result.p99_ms, result.max_ms = map(float, m.groups())
        elif m := re.match(r"REQUESTS (\d+) DURATION_S ([\d.]+)", line):
            result.requests, result.duration_s = int(m[1]), float(m[2])
    return result
