"""The one rule behind "up to date" (``rakuten_core.job_stamp``)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rakuten_core.job_stamp import (
    STAMP_NAME,
    clear_stamp,
    code_fingerprint,
    is_current,
    make_stamp,
    read_stamp,
    reusable,
    stamp_path,
    upstream,
    write_stamp,
)


@pytest.fixture
def toy_package(tmp_path: Path) -> Iterator[Path]:
    """An importable package of its own, whose files a test may change."""
    root = tmp_path / "site"
    package = root / "toy_stamped_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("VALUE = 1\n", encoding="utf-8")
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"compiled")
    sys.path.insert(0, str(root))
    code_fingerprint.cache_clear()
    yield package
    sys.path.remove(str(root))
    sys.modules.pop("toy_stamped_pkg", None)
    code_fingerprint.cache_clear()


def test_the_fingerprint_follows_inputs_and_code_and_nothing_else(toy_package: Path) -> None:
    def stamp(**inputs: object) -> str:
        code_fingerprint.cache_clear()
        return make_stamp("job", inputs, packages=["toy_stamped_pkg"]).fingerprint

    first = stamp(rows=2000, source="sample")
    assert stamp(source="sample", rows=2000) == first  # order of the inputs does not matter
    assert stamp(rows=2001, source="sample") != first
    assert make_stamp("other", {"rows": 2000, "source": "sample"}, packages=[]).fingerprint != first
    (toy_package / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"recompiled")
    assert stamp(rows=2000, source="sample") == first  # byte code is not the code
    (toy_package / "__init__.py").write_text("VALUE = 2\n", encoding="utf-8")
    assert stamp(rows=2000, source="sample") != first
    (toy_package / "__init__.py").write_text("VALUE = 1\n", encoding="utf-8")
    (toy_package / "extra.py").write_text("", encoding="utf-8")
    assert stamp(rows=2000, source="sample") != first  # a new file is new code


def test_a_package_that_is_not_installed_cannot_be_fingerprinted() -> None:
    with pytest.raises(ModuleNotFoundError, match="no_such_package_here"):
        code_fingerprint(("no_such_package_here",))


def test_distribution_versions_are_part_of_the_code() -> None:
    plain = make_stamp("train", {}, packages=["rakuten_core"])
    with_pydantic = make_stamp("train", {}, packages=["rakuten_core"], distributions=["pydantic"])
    assert plain.fingerprint != with_pydantic.fingerprint
    assert plain.inputs["code"] != with_pydantic.inputs["code"]


def test_a_stamped_output_is_current_until_anything_changes(tmp_path: Path) -> None:
    out = tmp_path / "raw"
    out.mkdir()
    stamp = make_stamp("sample", {"rows": 10}, packages=["rakuten_core"])
    assert not is_current(out, stamp)  # never stamped
    written = write_stamp(out, stamp)
    assert written == out / STAMP_NAME and not list(out.glob("*.tmp"))
    assert is_current(out, stamp)
    found = read_stamp(out)
    assert found is not None and found == stamp
    first_bytes = written.read_bytes()
    write_stamp(out, stamp)
    assert written.read_bytes() == first_bytes  # no time inside: DVC sees the same output
    assert found.fingerprint == stamp.fingerprint and found.inputs["rows"] == "10"
    assert not is_current(out, make_stamp("sample", {"rows": 11}, packages=["rakuten_core"]))
    clear_stamp(out)
    assert not is_current(out, stamp) and read_stamp(out) is None


def test_reusable_skips_only_with_reuse_and_clears_the_stamp_otherwise(tmp_path: Path) -> None:
    out = tmp_path / "processed"
    out.mkdir()
    stamp = make_stamp("prepare", {"seed": 42}, packages=[])
    write_stamp(out, stamp)
    assert reusable(out, stamp, reuse=True)
    assert read_stamp(out) is not None  # a skip changes nothing
    assert not reusable(out, stamp, reuse=False)  # DVC runs it: the job will rewrite OUT
    assert read_stamp(out) is None  # so an interrupted rewrite is never taken as done
    assert not reusable(out, stamp, reuse=True)


def test_a_file_output_keeps_its_stamp_beside_it(tmp_path: Path) -> None:
    out = tmp_path / "predictions" / "test.csv"
    assert stamp_path(out) == tmp_path / "predictions" / f".test.csv{STAMP_NAME}"
    stamp = make_stamp("predict", {"model": "m/1"}, packages=[])
    write_stamp(out, stamp)
    assert not is_current(out, stamp)  # the stamp alone is not the output
    out.write_text("x\n", encoding="utf-8")
    assert is_current(out, stamp)


def test_unreadable_or_foreign_stamps_and_unstamped_inputs_are_never_current(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "raw"
    out.mkdir()
    stamp = make_stamp("sample", {}, packages=[])
    (out / STAMP_NAME).write_text("{not json", encoding="utf-8")
    assert read_stamp(out) is None and not is_current(out, stamp)
    assert "ignoring the unreadable stamp" in caplog.text
    (out / STAMP_NAME).write_text('{"job": "sample", "fingerprint": "x"}', encoding="utf-8")
    assert read_stamp(out) is None  # another format (no inputs): ignored
    assert upstream(tmp_path / "made-by-hand") != upstream(tmp_path / "made-by-hand")
    write_stamp(out, stamp)
    assert upstream(out) == stamp.fingerprint
