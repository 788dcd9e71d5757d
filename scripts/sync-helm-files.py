"""Copy the single sources the Helm chart ships into the chart: Helm reads no file outside it.

    python scripts/sync-helm-files.py          # rewrite the chart's copies
    python scripts/sync-helm-files.py --check  # exit 1 naming every copy that differs

Each folder of ``deploy/helm/rakuten/files/`` is a byte copy of one folder of the repository
(SOURCES below); a file of the chart's folder that has no source any more is removed. The copies
are committed, so ``helm install`` from a checkout or a packaged chart needs nothing else;
``make helm-files`` rewrites them and tests/unit/deploy/test_chart_monitoring.py fails when they
drift from their sources.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = ROOT / "deploy" / "helm" / "rakuten" / "files"


@dataclass(frozen=True)
class Source:
    """One folder of the chart's files/, copied from the files of a folder matching a pattern."""

    folder: Path
    pattern: str
    target: Path

    def sources(self) -> dict[str, Path]:
        return {p.name: p for p in sorted(self.folder.glob(self.pattern)) if p.is_file()}


SOURCES = (
    Source(ROOT / "monitoring/prometheus/rules", "*.yml", FILES / "prometheus/rules"),
    Source(ROOT / "monitoring/grafana/dashboards", "*.json", FILES / "grafana/dashboards"),
    Source(ROOT / "monitoring/alertmanager/templates", "*.tmpl", FILES / "alertmanager/templates"),
    Source(ROOT / "docker/postgres", "roles.sh", FILES / "postgres"),
    Source(ROOT / "docker/mlflow", "users.py", FILES / "mlflow"),
)


def differences() -> list[str]:
    """What --check reports: one line per chart file that is missing, different or stale."""
    found = []
    for source in SOURCES:
        wanted = source.sources()
        if not wanted:
            found.append(f"{source.folder.relative_to(ROOT)}/{source.pattern}: no source file")
        for name, path in wanted.items():
            copy = source.target / name
            if not copy.is_file():
                found.append(f"missing: {copy.relative_to(ROOT)}")
            elif copy.read_bytes() != path.read_bytes():
                found.append(f"differs: {copy.relative_to(ROOT)} (from {path.relative_to(ROOT)})")
        if source.target.is_dir():
            for copy in sorted(source.target.iterdir()):
                if copy.name not in wanted:
                    found.append(f"stale: {copy.relative_to(ROOT)}")
    return found


def sync() -> list[str]:
    """Rewrite the chart's copies; return the files written or removed."""
    changed = []
    for source in SOURCES:
        wanted = source.sources()
        source.target.mkdir(parents=True, exist_ok=True)
        for copy in sorted(source.target.iterdir()):
            if copy.name not in wanted:
                copy.unlink()
                changed.append(f"removed {copy.relative_to(ROOT)}")
        for name, path in wanted.items():
            copy = source.target / name
            data = path.read_bytes()
            if not copy.is_file() or copy.read_bytes() != data:
                copy.write_bytes(data)
                copy.chmod(path.stat().st_mode & 0o777)
                changed.append(f"wrote {copy.relative_to(ROOT)}")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 naming every difference"
    )
    args = parser.parse_args(argv)
    if args.check:
        found = differences()
        for line in found:
            sys.stdout.write(f"{line}\n")
        if found:
            sys.stderr.write("the chart's copies are out of date: run `make helm-files`\n")
        return 1 if found else 0
    for line in sync():
        sys.stdout.write(f"{line}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
