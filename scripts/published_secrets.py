"""Collect every secret-like value the repository publishes; keep their digests for the checks.

A value is published when it is given to a secret-like name (…SECRET…, …PASSWORD…, …TOKEN…,
…_KEY…, …CREDENTIAL…) or wrapped in ``SecretStr("…")`` anywhere in the tracked files
(``.env.example``, ``README.md``, ``docs/``, the compose file, the sources, the tests). Only
values of 16 characters or more are kept: no secret of the platform may be shorter
(``rakuten_core.secrets``), so a shorter published value is refused anyway.

    python scripts/published_secrets.py          # rewrite the digest list
    python scripts/published_secrets.py --check  # exit 1 naming what the list lacks

The list is ``libs/core/src/rakuten_core/published_secrets.txt``; ``make published-secrets``
rewrites it. The digests, not the values, are kept, so the list itself publishes nothing new.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIST = ROOT / "libs" / "core" / "src" / "rakuten_core" / "published_secrets.txt"
MIN_CHARS = 16
SKIPPED_SUFFIXES = (".lock", ".png", ".jpg", ".jpeg", ".npz", ".onnx", ".keras", ".txt")
_ASSIGNED = re.compile(
    r"""(?ix)
    \b[a-z0-9_]*(?:secret|password|passwd|token|_key|credential)[a-z0-9_]*["']?
    \s*[:=]\s*(?:SecretStr\()?\s*["']?
    ([A-Za-z0-9_\-.+/=!@#$%^&*~]{16,})
    """
)
_SECRET_LITERAL = re.compile(r"""SecretStr\(\s*["']([A-Za-z0-9_\-.+/=!@#$%^&*~]{16,})["']""")
# Values of those names that are code or configuration, not secrets: paths, dotted names
# (attributes, modules), environment variable names, identifiers. Leaving them out keeps the
# list from changing with every refactoring.
_NOT_A_SECRET = re.compile(
    r"""^(?:[./~-].*|.*/.*|[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+(?:\(\))?|[A-Z][A-Z0-9_]+|[A-Za-z]+)$"""
)
HEADER = (
    "# SHA-256 digests of the secret-like values published in this repository\n"
    "# (scripts/published_secrets.py; rewrite with `make published-secrets`). A secret whose\n"
    "# digest is here is refused by rakuten_core.secrets.check_secret.\n"
)


def tracked_files(root: Path) -> list[Path]:
    out = subprocess.run(  # noqa: S603 - a fixed git command
        ["git", "ls-files", "-z"],  # noqa: S607 - git from PATH, as every developer runs it
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout
    return [root / name for name in out.decode().split("\0") if name]


def published_values(root: Path) -> set[str]:
    """Every secret-like value of 16 characters or more in the tracked files."""
    values: set[str] = set()
    for path in tracked_files(root):
        if path.suffix in SKIPPED_SUFFIXES or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for pattern in (_ASSIGNED, _SECRET_LITERAL):
            values.update(match.group(1) for match in pattern.finditer(text))
    return {v for v in values if len(v) >= MIN_CHARS and not _NOT_A_SECRET.fullmatch(v)}


def digests(values: set[str]) -> set[str]:
    return {hashlib.sha256(value.encode("utf-8")).hexdigest() for value in values}


def listed(path: Path = LIST) -> set[str]:
    if not path.exists():
        return set()
    lines = path.read_text(encoding="utf-8").splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check the list is complete")
    args = parser.parse_args()
    values = published_values(ROOT)
    if args.check:
        missing = sorted(v for v in values if digests({v}).isdisjoint(listed()))
        for value in missing:
            sys.stderr.write(f"published but not listed: {value[:4]}… ({len(value)} chars)\n")
        if missing:
            sys.stderr.write("run `make published-secrets`\n")
        return 1 if missing else 0
    # keep what was listed before: a value once published stays refused after it is removed
    LIST.write_text(HEADER + "".join(f"{d}\n" for d in sorted(digests(values) | listed())))
    sys.stdout.write(f"{LIST.relative_to(ROOT)}: {len(values)} published values\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
