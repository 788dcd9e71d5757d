"""Where serve keeps the images it was sent, so feedback can become a labelled example.

A contract, hence here: serving writes the files (``rakuten_serve.image_store``) and the data
service's ``export-feedback`` reads them; the two never import each other. The layout is
content-addressed: ``<root>/<sha256[:2]>/<sha256>.<ext>`` with the SHA-256 of the bytes as
received (the ``image_sha256`` of the prediction record) and the extension of the format sniffed
from those bytes. The same bytes sent twice are one file; the two-character fan-out keeps
directories small. Files whose name starts with ``.`` are writes in progress (renamed when
complete) and are never read.
"""

from __future__ import annotations

import re
from pathlib import Path

EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp"}
"""File extension per Pillow format name (the formats serving accepts)."""

FALLBACK_EXTENSION = "img"
_SHA256 = re.compile(r"[0-9a-f]{64}")


def is_sha256(value: str) -> bool:
    """True for a lower-case hex SHA-256 digest (anything else never becomes a path)."""
    return bool(_SHA256.fullmatch(value))


def stored_image_path(root: Path, sha256: str, image_format: str | None) -> Path:
    """The path of the image with digest ``sha256`` and Pillow format ``image_format``.

    Raises:
        ValueError: ``sha256`` is not a lower-case hex digest.
    """
    if not is_sha256(sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256[:80]!r}")
    ext = EXTENSIONS.get((image_format or "").upper(), FALLBACK_EXTENSION)
    return root / sha256[:2] / f"{sha256}.{ext}"


def find_stored_image(root: Path, sha256: str) -> Path | None:
    """The stored file of ``sha256`` whatever its extension, or ``None`` (never kept, evicted)."""
    if not is_sha256(sha256):
        return None
    folder = root / sha256[:2]
    for ext in (*EXTENSIONS.values(), FALLBACK_EXTENSION):
        candidate = folder / f"{sha256}.{ext}"
        if candidate.is_file():
            return candidate
    return None
