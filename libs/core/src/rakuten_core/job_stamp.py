"""When a job may reuse what it made before: the one rule behind "up to date".

``docker compose up`` runs the jobs data -> prepare -> train -> predict at every start, and DVC
does not run inside the images (they hold the installed packages, not the repository). So each
job computes a fingerprint of everything that decides its output, and writes it beside that
output (a *stamp*) once the output is complete:

- the job's own inputs: its options, and the stamps of the outputs it reads (a chain: prepare
  names raw's stamp, train names processed's and raw's), so a change upstream reaches downstream
  without hashing gigabytes of images again;
- the code: the installed files of the packages that do the work, and the versions of the
  distributions that shape the result (TensorFlow for training).

A job run with ``--reuse`` whose output carries a stamp with the same fingerprint does nothing.
The stamp is removed before a job rewrites its output and written after it succeeds, so an
interrupted run is never taken for a finished one. Without ``--reuse`` (DVC decides itself) the
job always runs and still stamps what it wrote.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

logger = logging.getLogger(__name__)

STAMP_NAME = ".rakuten-stamp.json"
_SKIPPED_PARTS = frozenset({"__pycache__"})
_SKIPPED_SUFFIXES = frozenset({".pyc", ".pyo"})


class JobStamp(BaseModel):
    """What a job's output was made from; ``fingerprint`` is the digest of the rest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job: str
    fingerprint: str = Field(description="sha256 of job and inputs (canonical JSON)")
    inputs: dict[str, str] = Field(description="each input, as text, for a person to compare")

    def short(self) -> str:
        return self.fingerprint[:12]


def make_stamp(
    job: str,
    inputs: Mapping[str, object],
    *,
    packages: Iterable[str],
    distributions: Iterable[str] = (),
) -> JobStamp:
    """The stamp ``job`` would write for ``inputs`` run by this process's code."""
    values = {key: _text(value) for key, value in inputs.items()}
    values["code"] = code_fingerprint(tuple(sorted(packages)), tuple(sorted(distributions)))
    canonical = json.dumps({"job": job, "inputs": values}, sort_keys=True, separators=(",", ":"))
    return JobStamp(
        job=job, fingerprint=hashlib.sha256(canonical.encode()).hexdigest(), inputs=values
    )


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Path):
        return value.as_posix()
    return json.dumps(value, sort_keys=True, default=str)


@cache
def code_fingerprint(packages: tuple[str, ...], distributions: tuple[str, ...] = ()) -> str:
    """sha256 over the installed files of ``packages`` and the versions of ``distributions``.

    The files are read where Python imports them from (site-packages in an image, the source
    tree in an editable install), so an image knows its code without a build-time step. A
    distribution that is not installed counts as ``absent``.
    """
    digest = hashlib.sha256()
    for name in packages:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ModuleNotFoundError(f"cannot fingerprint {name!r}: it is not installed")
        root = Path(spec.origin).parent
        for path in sorted(_package_files(root)):
            digest.update(f"{name}/{path.relative_to(root).as_posix()}\0".encode())
            digest.update(path.read_bytes())
    for dist in distributions:  # one that is not installed counts as such (tensorflow-cpu
        try:  # in the images, tensorflow elsewhere: name both)
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            version = "absent"
        digest.update(f"{dist}=={version}\0".encode())
    return digest.hexdigest()


def _package_files(root: Path) -> Iterable[Path]:
    for path in root.rglob("*"):
        if path.is_file() and path.suffix not in _SKIPPED_SUFFIXES:
            if not _SKIPPED_PARTS.intersection(path.relative_to(root).parts):
                yield path


def stamp_path(output: Path) -> Path:
    """Where the stamp of ``output`` lives: inside a folder, beside a file (hidden)."""
    if output.is_dir() or not output.suffix:
        return output / STAMP_NAME
    return output.with_name(f".{output.name}{STAMP_NAME}")


def read_stamp(output: Path) -> JobStamp | None:
    """The stamp written for ``output``, or None (absent, unreadable or from another format)."""
    path = stamp_path(output)
    try:
        return JobStamp.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValidationError) as exc:
        logger.warning("ignoring the unreadable stamp %s: %s", path, exc)
        return None


def upstream(output: Path) -> str:
    """The fingerprint of an input another job made, for a downstream stamp's inputs.

    An input without a stamp (made by hand, or by an older version) gives a value that no stamp
    can hold, so the downstream job always runs.
    """
    found = read_stamp(output)
    return found.fingerprint if found is not None else f"unstamped:{os.urandom(8).hex()}"


def is_current(output: Path, stamp: JobStamp) -> bool:
    """True when ``output`` exists and was made from exactly ``stamp``'s inputs and code."""
    found = read_stamp(output)
    return output.exists() and found is not None and found.fingerprint == stamp.fingerprint


def reusable(output: Path, stamp: JobStamp, *, reuse: bool) -> bool:
    """Whether the job may skip its work; when it may not, its old stamp is removed first.

    Every job asks this once, before it touches ``output``: with ``reuse`` and a current stamp
    the answer is True and nothing changes; otherwise the stamp goes and the job runs.
    """
    if reuse and is_current(output, stamp):
        logger.info("%s is up to date (%s %s): reused", output, stamp.job, stamp.short())
        return True
    clear_stamp(output)
    return False


def clear_stamp(output: Path) -> None:
    """Forget ``output``'s stamp before rewriting it (an interrupted run leaves none)."""
    stamp_path(output).unlink(missing_ok=True)


def write_stamp(output: Path, stamp: JobStamp) -> Path:
    """Record that ``output`` is complete for ``stamp`` (atomic: a temporary file, renamed).

    The file holds no time (its own modification time tells when): the same inputs write the
    same bytes, so DVC, which hashes ``data/raw`` with its stamp, sees an unchanged output.
    """
    path = stamp_path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp")
    tmp.write_text(stamp.model_dump_json(indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path
