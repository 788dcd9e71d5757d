"""``--reuse``: the data jobs do nothing when their output is up to date, and only then."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner, Result

from rakuten_core.job_stamp import read_stamp
from rakuten_data.cli import app

SAMPLE = ["--train-rows", "300", "--test-rows", "20", "--image-size", "32", "--seed", "7"]


def _run(*args: str | Path, log_dir: Path) -> Result:
    result = CliRunner().invoke(app, [str(a) for a in args], env={"RAKUTEN_LOG_DIR": str(log_dir)})
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def _mtimes(root: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_sample_and_prepare_reuse_their_output_until_an_input_changes(tmp_path: Path) -> None:
    raw, processed, logs = tmp_path / "raw", tmp_path / "processed", tmp_path / "logs"
    first = _run("sample", "--out", raw, *SAMPLE, "--reuse", log_dir=logs)
    assert "sample written" in first.output
    _run("prepare", "--raw", raw, "--out", processed, "--no-progress", "--reuse", log_dir=logs)
    before_raw, before_processed = _mtimes(raw), _mtimes(processed)
    raw_stamp, processed_stamp = read_stamp(raw), read_stamp(processed)
    assert raw_stamp is not None and processed_stamp is not None
    assert processed_stamp.inputs["raw"] == raw_stamp.fingerprint  # the chain

    again = _run("sample", "--out", raw, *SAMPLE, "--reuse", log_dir=logs)
    assert f"is up to date (sample {raw_stamp.short()}): reused" in again.output
    prepared = _run(
        "prepare", "--raw", raw, "--out", processed, "--no-progress", "--reuse", log_dir=logs
    )
    assert "reused, nothing to do" in prepared.output
    assert _mtimes(raw) == before_raw and _mtimes(processed) == before_processed

    # without --reuse (DVC decided) the job runs, and stamps again what it wrote
    forced = _run("sample", "--out", raw, *SAMPLE, log_dir=logs)
    assert "sample written" in forced.output
    assert read_stamp(raw) is not None and read_stamp(raw).fingerprint == raw_stamp.fingerprint  # type: ignore[union-attr]

    # another seed is other data: sample runs, and prepare sees its input changed
    changed = [*SAMPLE[:-1], "8"]
    _run("sample", "--out", raw, *changed, "--reuse", log_dir=logs)
    new_raw = read_stamp(raw)
    assert new_raw is not None and new_raw.fingerprint != raw_stamp.fingerprint
    rerun = _run(
        "prepare", "--raw", raw, "--out", processed, "--no-progress", "--reuse", log_dir=logs
    )
    assert "prepared" in rerun.output and "reused" not in rerun.output
    new_processed = read_stamp(processed)
    assert new_processed is not None and new_processed.inputs["raw"] == new_raw.fingerprint

    # a prepare option is an input too
    split = _run(
        "prepare", "--raw", raw, "--out", processed, "--no-progress", "--reuse",
        "--test-size", "0.2", log_dir=logs,
    )  # fmt: skip
    assert "prepared" in split.output


def test_an_interrupted_sample_leaves_no_stamp_and_runs_again(tmp_path: Path) -> None:
    raw, logs = tmp_path / "raw", tmp_path / "logs"
    small = ["--train-rows", "162", "--test-rows", "0", "--image-size", "32"]
    _run("sample", "--out", raw, *small, "--reuse", log_dir=logs)
    stamp = read_stamp(raw)
    assert stamp is not None
    (raw / ".rakuten-stamp.json").unlink()  # what a run killed mid-way leaves
    again = _run("sample", "--out", raw, *small, "--reuse", log_dir=logs)
    assert "sample written" in again.output
    assert read_stamp(raw) is not None
