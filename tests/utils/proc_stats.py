"""CPU and memory of a server process tree, read from the kernel (psutil) while it runs.

Used by the serving benchmarks and the reliability tests: the CPU a server spent per request
and the resident memory of each uvicorn worker.
"""

from __future__ import annotations

from pathlib import Path

import psutil


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU so far of ``pid`` and its live descendants."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def spawned_children(pid: int) -> list[int]:
    """The live processes under ``pid`` started by multiprocessing's ``spawn`` (uvicorn's
    workers, a ``ProcessPoolExecutor``'s processes), not its helpers (resource tracker)."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    spawned = []
    for child in children:
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "spawn_main" in " ".join(child.cmdline()):
                spawned.append(child.pid)
        except psutil.Error:
            continue
    return spawned


def worker_pids(pid: int) -> list[int]:
    """The uvicorn worker processes under ``pid`` (spawned by multiprocessing), else ``[pid]``:
    with one worker uvicorn serves in the main process."""
    if not psutil.pid_exists(pid):
        return []
    return spawned_children(pid) or [pid]


def rss_mib(pid: int) -> tuple[float, float]:
    """(resident, peak resident) memory of ``pid`` in MiB (VmRSS, VmHWM)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]
