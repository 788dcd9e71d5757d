"""What keeping images costs ``/predict``: the same app with the image store off and on.

Two apps (the real ``create_app``, one model shared, SQLite, a raised rate limit) run in this
process behind FastAPI's TestClient: one without ``RAKUTEN_IMAGE_STORE_DIR``, one with it. Rounds
alternate between them (off, on, off, on, ...) so machine noise hits both alike; each round sends
the same sequence of real multipart requests (real Rakuten JPEGs from
``../shared/data/rakuten/images/train``, each made unique by a few appended bytes so that every
request is a new file to write, the worst case). The writer thread shares the process and its
GIL with the requests, as in a real worker. Reported: p50/p95 latency per mode, the
request-path cost of ``ImageStore.submit`` alone, and the write time per image off the path,
with the load average.

Prints a table; asserts nothing.

    uv run --frozen python bench/serve_image_store.py [--model models/current] [--rounds 6]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "rakuten"
sys.path.insert(0, str(ROOT))  # tests.utils helpers (settings, users, bundle building)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="bundle dir (default: a small test bundle)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--requests", type=int, default=40, help="per round and mode")
    args = parser.parse_args()

    from fastapi.testclient import TestClient  # noqa: PLC0415

    from rakuten_serve.app import create_app  # noqa: PLC0415
    from rakuten_serve.image_store import ImageStore  # noqa: PLC0415
    from rakuten_serve.predictor import Predictor, load_model  # noqa: PLC0415
    from rakuten_serve.telemetry import Telemetry  # noqa: PLC0415
    from tests.utils.serve_app import (  # noqa: PLC0415
        DEFAULT_USERS,
        bearer,
        get_token,
        migrate_and_add_users,
        serve_settings,
    )
    from tests.utils.serve_bundle import make_serve_bundle  # noqa: PLC0415

    images = [p.read_bytes() for p in sorted((SHARED / "images" / "train").glob("*.jpg"))]
    with tempfile.TemporaryDirectory(prefix="bench-image-store-") as tmp_name:
        tmp = Path(tmp_name)
        model = args.model or make_serve_bundle(tmp / "bundle")
        predictor = Predictor(load_model(str(model), cache_dir=tmp / "cache"), top_k=5)
        latencies: dict[str, list[float]] = {"off": [], "on": []}
        with ExitStack() as stack:
            clients = {}
            for mode in ("off", "on"):
                folder = tmp / mode
                folder.mkdir()
                extra = {"image_store_dir": folder / "store"} if mode == "on" else {}
                settings = serve_settings(
                    folder, model_path=str(model), predict_rate_limit="100000/minute", **extra
                )
                migrate_and_add_users(settings, DEFAULT_USERS)
                client = stack.enter_context(TestClient(create_app(settings, predictor)))
                clients[mode] = (client, bearer(get_token(client)))
            counter = 0
            for round_ in range(args.rounds + 1):  # round 0 warms both up, not recorded
                for mode in ("off", "on"):
                    client, headers = clients[mode]
                    for i in range(args.requests):
                        counter += 1
                        image = images[i % len(images)] + counter.to_bytes(8, "big")
                        started = time.perf_counter()
                        response = client.post(
                            "/predict",
                            headers=headers,
                            data={"designation": f"Produit {i}"},
                            files={"image": ("p.jpg", image, "image/jpeg")},
                        )
                        elapsed = time.perf_counter() - started
                        assert response.status_code == 200, response.text
                        if round_:
                            latencies[mode].append(elapsed * 1000)
            store = clients["on"][0].app.state.serve.image_store  # type: ignore[attr-defined]
            store.wait_idle(60)

        # the two halves of the store's cost, alone: the request path and the writer's work
        direct = ImageStore(
            tmp / "direct",
            telemetry=Telemetry(),
            max_bytes=10**12,
            retention_days=30,
            queue_bytes=10**12,
        )
        payloads = [img + n.to_bytes(8, "big") for n, img in enumerate(images * 4)]
        digests = [hashlib.sha256(p).hexdigest() for p in payloads]
        started = time.perf_counter()
        for data, digest in zip(payloads, digests, strict=True):
            direct.submit(data, digest)
        submit_us = (time.perf_counter() - started) / len(payloads) * 1e6
        direct.start()
        started = time.perf_counter()
        direct.wait_idle(120)
        write_ms = (time.perf_counter() - started) / len(payloads) * 1000
        direct.stop()

    load = os.getloadavg()
    print(
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
        f"{args.rounds} rounds x {args.requests} requests per mode, alternating"
    )
    print(f"{'image store':<12} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8}")
    for mode, values in latencies.items():
        print(
            f"{mode:<12} {percentile(values, 50):>8.2f} {percentile(values, 95):>8.2f} "
            f"{statistics.fmean(values):>8.2f}"
        )
    print(
        f"ImageStore.submit on the request path: {submit_us:.1f} us per image; "
        f"write off the path: {write_ms:.2f} ms per image ({len(payloads)} images, "
        f"mean {statistics.fmean(len(p) for p in payloads) / 1024:.0f} KiB)"
    )


if __name__ == "__main__":
    main()
