"""What the records journal costs a request: ``PredictionRecorder.submit`` with it and without.

Two recorders run in this process, each with its writer thread inserting into its own SQLite
database in a temporary folder (or ``--folder``, e.g. the spool volume's file system): one with
the journal (``RAKUTEN_RECORD_JOURNAL=true``, the default), one without. Rounds alternate
between them (off, on, off, on, ...) so machine noise hits both alike; each round submits
``--records`` records shaped like the ``/predict`` handler's (texts, five top-k classes, the drift
features), timing each ``submit`` call: what the request path pays, on the event loop. The
writer threads share the GIL, as in a server. Then, on the same file system, the journal's
write alone (one ``os.write`` of such a line on an ``O_APPEND`` descriptor) against a write
followed by ``fsync``: what journaling with an fsync per record would cost instead.

Prints a table; asserts nothing.

    uv run --frozen python bench/record_journal.py [--rounds 6] [--records 5000] [--folder DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def record(request_id: str) -> dict[str, Any]:
    """A record of the shape ``routers/predict.py`` submits (texts of a typical product)."""
    return {
        "request_id": request_id,
        "username": "bench",
        "created_at": datetime.now(UTC),
        "model_name": "rakuten-multimodal",
        "model_version": "7",
        "designation": "Piscine tubulaire ronde 4,57 x 1,22 m avec pompe de filtration",
        "description": "Structure acier, liner PVC renforcé, échelle et bâche incluses. " * 3,
        "productid": 3804725264,
        "imageid": 1263597046,
        "image_sha256": "9f" * 32,
        "image_bytes": 48213,
        "prdtypecode": 2583,
        "probability": 0.83,
        "top_k": [{"prdtypecode": c, "probability": 0.1} for c in (2583, 2582, 1302, 2585, 10)],
        "latency_ms": 41.7,
        "text_length": 242,
        "has_description": True,
        "has_image": True,
        "image_brightness": 0.54,
    }


def timed_submits(recorder: Any, tag: str, count: int) -> tuple[list[float], float]:
    """Wall µs per call, and this thread's CPU µs per call (without the waits for the GIL)."""
    times, cpu = [], 0
    for i in range(count):
        item = record(f"{tag}-{i:07d}")
        cpu_started, started = time.thread_time_ns(), time.perf_counter()
        recorder.submit(item)
        times.append((time.perf_counter() - started) * 1e6)
        cpu += time.thread_time_ns() - cpu_started
    return times, cpu / count / 1000


def raw_writes(folder: Path, line: bytes, count: int, *, fsync: bool) -> list[float]:
    path = folder / f"raw-{'fsync' if fsync else 'write'}.wal"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    times = []
    try:
        for _ in range(count):
            started = time.perf_counter()
            os.write(fd, line)
            if fsync:
                os.fsync(fd)
            times.append((time.perf_counter() - started) * 1e6)
    finally:
        os.close(fd)
        path.unlink()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--records", type=int, default=5000, help="per round and mode")
    parser.add_argument("--fsyncs", type=int, default=500, help="write+fsync samples")
    parser.add_argument("--folder", type=Path, help="where the journals go (default: a tmp dir)")
    args = parser.parse_args()

    from rakuten_serve.db.engine import build_engine  # noqa: PLC0415
    from rakuten_serve.db.migrate import upgrade  # noqa: PLC0415
    from rakuten_serve.db.recorder import PredictionRecorder, _encode  # noqa: PLC0415
    from rakuten_serve.telemetry import Telemetry  # noqa: PLC0415

    base = args.folder or Path(tempfile.gettempdir())
    work = Path(tempfile.mkdtemp(prefix="rakuten-bench-journal-", dir=base))
    recorders, engines = {}, []
    for mode in ("off", "on"):
        url = f"sqlite:///{work / f'{mode}.db'}"
        upgrade(url)
        engines.append(engine := build_engine(url))
        recorders[mode] = PredictionRecorder(
            engine,
            telemetry=Telemetry(),
            spool_dir=work / f"spool-{mode}",
            queue_size=args.records * args.rounds + 1,
            journal_enabled=mode == "on",
        )
        recorders[mode].start()
    samples: dict[str, list[float]] = {"off": [], "on": []}
    cpus: dict[str, list[float]] = {"off": [], "on": []}
    try:
        timed_submits(recorders["off"], "warm-off", 500)
        timed_submits(recorders["on"], "warm-on", 500)
        for n in range(args.rounds):
            for mode in ("off", "on"):
                times, cpu = timed_submits(recorders[mode], f"{mode}{n}", args.records)
                samples[mode] += times
                cpus[mode].append(cpu)
                recorders[mode].wait_idle(120)  # the next round starts with empty queues
        line = (_encode(record("x" * 32)) + "\n").encode()
        plain = raw_writes(work, line, args.records, fsync=False)
        synced = raw_writes(work, line, args.fsyncs, fsync=True)
    finally:
        for recorder in recorders.values():
            recorder.stop()
        for engine in engines:
            engine.dispose()
        for path in sorted(work.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        work.rmdir()

    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"journal folder on {base} ({os.cpu_count()} cores, load {load}); a line: {len(line)} B")
    print(f"{args.rounds} rounds x {args.records} submits per mode, alternating\n")
    print("| what | µs mean | µs p50 | µs p95 | µs p99 | CPU µs of the calling thread |")
    print("|---|---|---|---|---|---|")
    rows = {
        "submit, journal off": (samples["off"], statistics.median(cpus["off"])),
        "submit, journal on": (samples["on"], statistics.median(cpus["on"])),
        "os.write of one line (O_APPEND)": (plain, None),
        "os.write + fsync of one line": (synced, None),
    }
    for name, (values, cpu) in rows.items():
        cells = [statistics.fmean(values), *(percentile(values, q) for q in (50, 95, 99))]
        mean_cpu = "-" if cpu is None else f"{cpu:.1f}"
        print(f"| {name} | " + " | ".join(f"{v:.1f}" for v in cells) + f" | {mean_cpu} |")
    extra = statistics.median(samples["on"]) - statistics.median(samples["off"])
    extra_cpu = statistics.median(cpus["on"]) - statistics.median(cpus["off"])
    print(f"\njournal cost per submit: {extra:.1f} µs p50 wall, {extra_cpu:.1f} µs CPU mean")
    print(
        "(the mean and the tail of the wall time with the journal include waits for the GIL: "
        "os.write releases it, and the writer thread, busy inserting, takes it meanwhile)"
    )
    print(f"an fsync per record instead: {statistics.median(synced):.0f} µs p50 per answer")


if __name__ == "__main__":
    main()
