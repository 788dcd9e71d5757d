"""Image archive extraction: layout variants, zip-slip refusal, corrupt archives."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from rakuten_core.errors import DownloadError
from rakuten_data.archive import UnsafeArchiveError, count_images, extract_images

JPEG = b"\xff\xd8\xff\xe0" + b"\0" * 64 + b"\xff\xd9"


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_standard_layout(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "images.zip", {
        "images/image_train/image_1_product_2.jpg": JPEG,
        "images/image_train/image_3_product_4.jpg": JPEG + b"x",
        "images/image_test/image_5_product_6.jpg": JPEG,
    })  # fmt: skip
    extracted = extract_images(archive, tmp_path / "raw", progress=False)
    assert (extracted.train_images, extracted.test_images, extracted.skipped) == (2, 1, 0)
    root = tmp_path / "raw" / "images"
    assert (root / "image_train" / "image_3_product_4.jpg").read_bytes() == JPEG + b"x"
    assert (root / "image_test" / "image_5_product_6.jpg").read_bytes() == JPEG
    assert count_images(tmp_path / "raw") == {"image_train": 2, "image_test": 1}
    assert not list(root.rglob("*.part"))


def test_extra_top_folder_and_junk_are_handled(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "images.zip", {
        "rakuten/images/image_train/image_1_product_2.jpg": JPEG,
        "rakuten/image_test/image_5_product_6.jpg": JPEG,
        "__MACOSX/rakuten/images/image_train/._image_1_product_2.jpg": b"junk",
        "rakuten/README.txt": b"hello",
    })  # fmt: skip
    extracted = extract_images(archive, tmp_path / "raw", progress=False)
    assert (extracted.train_images, extracted.test_images, extracted.skipped) == (1, 1, 2)
    assert (tmp_path / "raw/images/image_train/image_1_product_2.jpg").read_bytes() == JPEG
    assert (tmp_path / "raw/images/image_test/image_5_product_6.jpg").is_file()
    assert not (tmp_path / "raw" / "rakuten").exists()


@pytest.mark.parametrize(
    "evil",
    ["../../evil.jpg", "images/image_train/../../../evil.jpg", "/tmp/evil.jpg",
     "C:/evil/image_train/x.jpg", "images\\image_train\\..\\..\\evil.jpg"],
)  # fmt: skip
def test_zip_slip_is_refused_before_writing_anything(tmp_path: Path, evil: str) -> None:
    archive = _zip(tmp_path / "images.zip", {
        "images/image_train/image_1_product_2.jpg": JPEG,
        evil: b"owned",
    })  # fmt: skip
    with pytest.raises(UnsafeArchiveError, match="unsafe path"):
        extract_images(archive, tmp_path / "raw", progress=False)
    assert not (tmp_path / "raw" / "images" / "image_train").exists()
    assert not list(tmp_path.rglob("evil.jpg"))


def test_reextraction_replaces_previous_images(tmp_path: Path) -> None:
    first = _zip(tmp_path / "a.zip", {"images/image_train/image_1_product_2.jpg": JPEG})
    second = _zip(tmp_path / "b.zip", {"images/image_train/image_3_product_4.jpg": JPEG})
    extract_images(first, tmp_path / "raw", progress=False)
    extract_images(second, tmp_path / "raw", progress=False)
    names = [p.name for p in (tmp_path / "raw/images/image_train").iterdir()]
    assert names == ["image_3_product_4.jpg"]


def test_not_a_zip_and_crc_errors_are_download_errors(tmp_path: Path) -> None:
    not_zip = tmp_path / "images.zip"
    not_zip.write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(DownloadError, match="not a valid zip archive"):
        extract_images(not_zip, tmp_path / "raw", progress=False)

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("images/image_train/image_1_product_2.jpg", JPEG)
    data = bytearray(buffer.getvalue())
    data[data.index(JPEG) + 10] ^= 0xFF  # flip a byte of the stored member: CRC mismatch
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(bytes(data))
    with pytest.raises(DownloadError, match="corrupt"):
        extract_images(damaged, tmp_path / "raw2", progress=False)
    assert not [p for p in (tmp_path / "raw2").rglob("*") if p.is_file()]  # no partial files


def test_archive_without_image_folders_is_refused(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "images.zip", {"photos/x.jpg": JPEG})
    with pytest.raises(DownloadError, match="holds no image_train/image_test folder"):
        extract_images(archive, tmp_path / "raw", progress=False)
