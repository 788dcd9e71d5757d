"""``POST /token`` time for an unknown user vs a known user with a wrong password.

Both must take about the same time, or timing tells an attacker which user names exist. The app
runs in process (TestClient, SQLite, no model needed for /token) with the production bcrypt cost;
attempts alternate between the two cases so that machine load hits both alike. Prints the
median, p90 and spread per case; asserts nothing.

    uv run --frozen python bench/login_timing.py [--attempts 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.utils helpers (settings, users)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=20)
    args = parser.parse_args()

    from fastapi.testclient import TestClient  # noqa: PLC0415

    from rakuten_serve.app import create_app  # noqa: PLC0415
    from tests.utils.serve_app import migrate_and_add_users, serve_settings  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp:
        settings = serve_settings(
            Path(tmp),
            model_path=str(Path(tmp) / "no-model"),
            token_rate_limit="100000/minute",
            token_user_rate_limit="100000/minute",
        )
        migrate_and_add_users(settings, {"alice": ["predict"]})
        times: dict[str, list[float]] = {"unknown user": [], "wrong password": []}
        with TestClient(create_app(settings)) as client:
            client.post("/token", data={"username": "nobody", "password": "warm-up-password"})
            for _ in range(args.attempts):
                for case, user in (("unknown user", "nobody"), ("wrong password", "alice")):
                    started = time.perf_counter()
                    answer = client.post(
                        "/token", data={"username": user, "password": "wrong-password-123"}
                    )
                    times[case].append((time.perf_counter() - started) * 1000)
                    if answer.status_code != 401:
                        raise SystemExit(f"unexpected answer: {answer.text}")
    print(f"{'case':<16} {'n':>3} {'median ms':>10} {'p90 ms':>8} {'min ms':>8} {'max ms':>8}")
    for case, values in times.items():
        ordered = sorted(values)
        p90 = ordered[int(0.9 * (len(ordered) - 1))]
        print(
            f"{case:<16} {len(values):>3} {statistics.median(values):>10.1f} {p90:>8.1f} "
            f"{ordered[0]:>8.1f} {ordered[-1]:>8.1f}"
        )
    ratio = statistics.median(times["unknown user"]) / statistics.median(times["wrong password"])
    print(f"median ratio unknown/wrong: {ratio:.2f}")


if __name__ == "__main__":
    main()
