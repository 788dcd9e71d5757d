"""Safe extraction of the Hub's image archive into ``<raw>/images/image_train|image_test``.

The archive is planned before anything is written: every member path is checked (absolute
paths, drive letters and ``..`` are refused as zip-slip, and the whole archive with them), and
each image is placed by the ``image_train``/``image_test`` folder it sits in, wherever that
folder is in the archive (``images/image_train/...`` or ``<top>/images/image_train/...``).
Files outside those folders (``__MACOSX``, read-mes) are skipped. Each file is written to a
temporary name and renamed, so an interrupted extraction never leaves a half-written JPEG;
CRC errors surface as a corrupt-archive error.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from rakuten_core import dataset
from rakuten_core.errors import DownloadError

logger = logging.getLogger(__name__)

_SPLIT_DIRS = (dataset.TRAIN_IMAGES_DIR, dataset.TEST_IMAGES_DIR)
_DRIVE = re.compile(r"^[A-Za-z]:")
_CHUNK = 1024 * 1024


class UnsafeArchiveError(DownloadError):  # type: ignore[misc, unused-ignore]  # core: no py.typed
    """The archive has a member that would be written outside the target folder."""


@dataclass(frozen=True)
class Extracted:
    """Counts of what an extraction wrote."""

    train_images: int
    test_images: int
    skipped: int


def _target(name: str) -> PurePosixPath | None:
    """Where member ``name`` goes under ``images/``; ``None`` to skip it. Raises on zip-slip."""
    clean = name.replace("\\", "/")
    parts = PurePosixPath(clean).parts
    if clean.startswith("/") or _DRIVE.match(clean) or ".." in parts:
        raise UnsafeArchiveError(
            f"the image archive contains an unsafe path {name!r} (absolute or with '..'); "
            "refusing to extract anything from it"
        )
    if "__MACOSX" in parts or parts[-1].startswith("._"):
        return None
    for position, part in enumerate(parts[:-1]):
        if part in _SPLIT_DIRS:
            return PurePosixPath(part, *parts[position + 1 :])
    return None


def plan(archive: zipfile.ZipFile) -> tuple[list[tuple[zipfile.ZipInfo, PurePosixPath]], int]:
    """Members to extract with their target under ``images/``, and how many are skipped."""
    members: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
    skipped = 0
    seen: set[PurePosixPath] = set()
    for info in archive.infolist():
        if info.is_dir():
            continue
        target = _target(info.filename)
        if target is None or target in seen:
            skipped += 1
            continue
        seen.add(target)
        members.append((info, target))
    return members, skipped


def extract_images(zip_path: Path, raw_dir: Path, *, progress: bool = True) -> Extracted:
    """Extract the images of ``zip_path`` under ``raw_dir/images``, replacing earlier ones.

    Raises:
        DownloadError: not a zip file, a corrupt member (CRC), or no image folder inside.
        UnsafeArchiveError: a zip-slip path.
    """
    images_root = raw_dir / dataset.IMAGES_DIR
    try:
        with zipfile.ZipFile(zip_path) as archive:
            members, skipped = plan(archive)
            if not members:
                raise DownloadError(
                    f"{zip_path.name} holds no {'/'.join(_SPLIT_DIRS)} folder with images"
                )
            for split_dir in _SPLIT_DIRS:
                shutil.rmtree(images_root / split_dir, ignore_errors=True)
            root = images_root.resolve()
            for info, target in tqdm(
                members, desc=f"extracting {zip_path.name}", unit="file", disable=not progress
            ):
                destination = images_root.joinpath(*target.parts)
                if not destination.resolve().is_relative_to(root):  # defence in depth
                    raise UnsafeArchiveError(f"unsafe archive member {info.filename!r}")
                destination.parent.mkdir(parents=True, exist_ok=True)
                partial = destination.with_name(destination.name + ".part")
                try:
                    with archive.open(info) as source, partial.open("wb") as sink:
                        shutil.copyfileobj(source, sink, _CHUNK)
                except BaseException:
                    partial.unlink(missing_ok=True)
                    raise
                os.replace(partial, destination)
    except zipfile.BadZipFile as exc:
        raise DownloadError(
            f"{zip_path.name} is not a valid zip archive or is corrupt ({exc}); "
            "it will be downloaded again on the next run"
        ) from None
    counts = {d: sum(1 for _, t in members if t.parts[0] == d) for d in _SPLIT_DIRS}
    logger.info(
        "extracted %d train and %d test images from %s (%d entries skipped)",
        counts[dataset.TRAIN_IMAGES_DIR],
        counts[dataset.TEST_IMAGES_DIR],
        zip_path.name,
        skipped,
    )
    return Extracted(
        train_images=counts[dataset.TRAIN_IMAGES_DIR],
        test_images=counts[dataset.TEST_IMAGES_DIR],
        skipped=skipped,
    )


def count_images(raw_dir: Path) -> dict[str, int]:
    """Files currently in each image folder (used to tell whether an extraction is intact)."""
    root = raw_dir / dataset.IMAGES_DIR
    return {
        d: sum(1 for p in (root / d).rglob("*") if p.is_file() and not p.name.endswith(".part"))
        if (root / d).is_dir()
        else 0
        for d in _SPLIT_DIRS
    }
