"""``rakuten-data export-feedback``: layout, rules, holdout, images, empty case, bad input."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from rakuten_core import dataset
from rakuten_core.stored_images import stored_image_path
from rakuten_data.cli import app
from rakuten_data.feedback_export import SYNTHETIC_ID_BASE, export_feedback, open_database
from rakuten_data.feedback_slice import (
    HOLDOUT_DIR,
    HOLDOUT_LABELS_FILE,
    MANIFEST_FILE,
    PROVENANCE_FILE,
    TRAIN_DIR,
    SliceManifest,
)
from rakuten_data.report import Issue
from rakuten_data.tables import read_table
from tests.utils.feedback_records import Labelled, add_labelled, create_schema, picture
from tests.utils.postgres import free_port

CODES = [10, 2280, 50, 1280, 2705]


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    create_schema(url)
    return url


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    path.mkdir()
    return path


def _export(db: str, store: Path, out: Path, **kwargs: object) -> SliceManifest:
    engine = open_database(db)
    try:
        return export_feedback(engine, images_dir=store, out=out, **kwargs)  # type: ignore[arg-type]
    finally:
        engine.dispose()


def _part(out: Path, name: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    holdout = name == HOLDOUT_DIR
    x_file = dataset.X_TEST_FILE if holdout else dataset.X_TRAIN_FILE
    y_file = HOLDOUT_LABELS_FILE if holdout else dataset.Y_TRAIN_FILE
    read = {"index_col": 0, "dtype": str, "keep_default_na": False}
    return (
        pd.read_csv(out / name / x_file, **read),  # type: ignore[arg-type]
        pd.read_csv(out / name / y_file, **read),  # type: ignore[arg-type]
        pd.read_csv(out / name / PROVENANCE_FILE, **read),  # type: ignore[arg-type]
    )


def test_a_slice_in_the_raw_layout_with_images_provenance_and_a_recent_holdout(
    db: str, store: Path, tmp_path: Path
) -> None:
    rows = [
        Labelled(
            f"r{i}",
            CODES[i],
            minutes=i,
            productid=1000 + i,
            imageid=500 + i,
            image=picture(i),
            designation=f"Produit {i}",
            model_version=f"v{i % 2}",
        )
        for i in range(5)
    ]
    add_labelled(db, rows, store)
    out = tmp_path / "feedback"
    manifest = _export(db, store, out, holdout_share=0.2)

    x, y, provenance = _part(out, TRAIN_DIR)
    assert list(x.columns) == list(dataset.RAW_TEXT_COLUMNS)
    assert (out / TRAIN_DIR / dataset.X_TRAIN_FILE).read_text().splitlines()[0] == (
        ",designation,description,productid,imageid"  # byte-for-byte the raw header
    )
    assert list(x["designation"]) == [f"Produit {i}" for i in range(4)]  # oldest four
    assert list(y[dataset.LABEL_COLUMN]) == [str(c) for c in CODES[:4]]
    assert list(provenance["request_id"]) == ["r0", "r1", "r2", "r3"]
    assert list(provenance["model_version"]) == ["v0", "v1", "v0", "v1"]
    for i in range(4):
        image = (
            out / TRAIN_DIR / "images" / "image_train" / f"image_{500 + i}_product_{1000 + i}.jpg"
        )
        assert image.read_bytes() == picture(i)
        assert provenance.at[i, "image_sha256"] == hashlib.sha256(picture(i)).hexdigest()
    hx, hy, hprov = _part(out, HOLDOUT_DIR)
    assert list(hprov["request_id"]) == ["r4"] and list(hy[dataset.LABEL_COLUMN]) == ["2705"]
    assert (out / HOLDOUT_DIR / "images" / "image_test" / "image_504_product_1004.jpg").is_file()

    on_disk = SliceManifest.model_validate_json((out / MANIFEST_FILE).read_text())
    assert on_disk == manifest
    assert (manifest.train.rows, manifest.holdout.rows) == (4, 1)
    assert manifest.train.model_versions == {"v0": 2, "v1": 2}
    assert manifest.holdout.first_feedback_at == manifest.holdout.last_feedback_at
    assert manifest.train.last_feedback_at is not None and manifest.holdout.first_feedback_at
    assert manifest.train.last_feedback_at < manifest.holdout.first_feedback_at
    for relative, digest in manifest.files.items():
        assert hashlib.sha256((out / relative).read_bytes()).hexdigest() == digest
    issues: list[Issue] = []
    read_table(
        out / TRAIN_DIR / dataset.X_TRAIN_FILE, columns=dataset.RAW_TEXT_COLUMNS, issues=issues
    )
    assert issues == []  # the data service reads it as it reads data/raw


def test_the_same_database_gives_the_same_slice(db: str, store: Path, tmp_path: Path) -> None:
    add_labelled(
        db, [Labelled(f"r{i}", CODES[i], minutes=i, image=picture(i)) for i in range(4)], store
    )
    first = _export(db, store, tmp_path / "a")
    second = _export(db, store, tmp_path / "b")
    assert first.slice_id == second.slice_id and first.files == second.files


def test_latest_feedback_wins_and_a_tie_between_codes_drops_the_product(
    db: str, store: Path, tmp_path: Path
) -> None:
    add_labelled(
        db,
        [
            # product 1: relabelled later -> the latest code wins
            Labelled("a1", 10, minutes=1, productid=1),
            Labelled("a2", 2280, minutes=5, productid=1),
            # product 2: two codes at the same instant -> dropped
            Labelled("b1", 10, minutes=3, productid=2),
            Labelled("b2", 50, minutes=3, productid=2),
            # no productid: the same text and image is one product; agreeing feedback merges
            Labelled("c1", 1280, minutes=2, designation="Peluche", image=picture(9)),
            Labelled("c2", 1280, minutes=4, designation="Peluche", image=picture(9)),
            # the same text with another image is another product
            Labelled("d1", 2705, minutes=6, designation="Peluche", image=picture(8)),
        ],
        store,
    )
    out = tmp_path / "feedback"
    manifest = _export(db, store, out, holdout_share=0.0)
    x, y, provenance = _part(out, TRAIN_DIR)
    assert list(provenance["request_id"]) == ["c2", "a2", "d1"]  # by feedback time
    assert list(y[dataset.LABEL_COLUMN]) == ["1280", "2280", "2705"]
    assert manifest.counts["overridden"] == 1
    assert manifest.counts["merged"] == 1
    assert manifest.counts["conflict_ties_dropped"] == 2
    assert "conflicting_feedback_dropped" in {i.code for i in manifest.issues}
    synthetic = [int(p) for p in x["productid"]][0]
    assert synthetic >= SYNTHETIC_ID_BASE and synthetic < 2**62


def test_one_users_share_is_capped_to_their_most_recent_rows(
    db: str, store: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """300 wrong answers from one labeller: at most the cap (200 by default) reach the slice."""
    wrong = [
        Labelled(f"m{i:03d}", 2705, minutes=i / 10, productid=5000 + i, username="mallory")
        for i in range(300)
    ]
    honest = [
        Labelled(f"a{i}", CODES[i], minutes=40 + i, productid=9000 + i, username="alice")
        for i in range(5)
    ]
    add_labelled(db, wrong + honest, store)
    out = tmp_path / "feedback"
    manifest = _export(db, store, out, holdout_share=0.2)
    ids = [rid for part in (TRAIN_DIR, HOLDOUT_DIR) for rid in _part(out, part)[2]["request_id"]]
    from_mallory = [rid for rid in ids if rid.startswith("m")]
    assert len(from_mallory) == 200
    assert sorted(from_mallory) == [f"m{i:03d}" for i in range(100, 300)]  # the most recent
    assert sorted(rid for rid in ids if rid.startswith("a")) == [f"a{i}" for i in range(5)]
    assert manifest.counts["feedback_rows"] == 305
    assert manifest.counts["user_cap_dropped"] == 100 and manifest.counts["users_capped"] == 1
    assert manifest.counts["rows"] == 205
    capped = {i.code: i for i in manifest.issues}["user_cap_dropped"]
    assert capped.count == 100 and capped.examples == ["mallory: 100"]
    assert manifest.rules["user_cap"].startswith("at most 200 ")
    assert "100 feedback rows dropped by the cap of 200 rows per user (mallory: 100)" in caplog.text

    args = ["export-feedback", "--database-url", db, "--images-dir", str(store), "--out"]
    result = CliRunner().invoke(app, [*args, str(tmp_path / "small"), "--max-rows-per-user", "4"])
    assert result.exit_code == 0, result.output
    assert "297 over the per-user cap" in result.output  # 300 - 4 and 5 - 4
    small = SliceManifest.model_validate_json((tmp_path / "small" / MANIFEST_FILE).read_text())
    assert small.counts["rows"] == 8 and small.counts["users_capped"] == 2
    refused = CliRunner().invoke(app, [*args, str(tmp_path / "none"), "--max-rows-per-user", "0"])
    assert refused.exit_code == 2 and not (tmp_path / "none").exists()


def test_users_who_disagree_drop_the_product_and_users_who_agree_give_one_row(
    db: str, store: Path, tmp_path: Path
) -> None:
    add_labelled(
        db,
        [
            # product 1: two users disagree -> dropped, however late the second answer is
            Labelled("p1a", 10, minutes=1, productid=1, username="alice"),
            Labelled("p1m", 2705, minutes=9, productid=1, username="mallory"),
            # product 2: two users agree -> one row, the latest
            Labelled("p2a", 50, minutes=2, productid=2, username="alice"),
            Labelled("p2b", 50, minutes=3, productid=2, username="bob"),
            # product 3: alice corrects herself and then agrees with bob -> kept
            Labelled("p3a", 10, minutes=1, productid=3, username="alice"),
            Labelled("p3b", 1280, minutes=2, productid=3, username="bob"),
            Labelled("p3c", 1280, minutes=4, productid=3, username="alice"),
            # no productid: the same content from two users who disagree -> dropped too
            Labelled("c1", 1280, minutes=5, designation="Peluche", image=picture(3)),
            Labelled(
                "c2", 2280, minutes=6, designation="Peluche", image=picture(3), username="bob"
            ),
        ],
        store,
    )
    out = tmp_path / "feedback"
    manifest = _export(db, store, out, holdout_share=0.0)
    _, y, provenance = _part(out, TRAIN_DIR)
    assert list(provenance["request_id"]) == ["p2b", "p3c"]
    assert list(y[dataset.LABEL_COLUMN]) == ["50", "1280"]
    assert manifest.counts["conflict_users_products"] == 2
    assert manifest.counts["conflict_users_dropped"] == 4
    assert manifest.counts["merged"] == 2  # p2a and p3b agree with the kept rows
    assert manifest.counts["overridden"] == 1  # alice's own first answer on product 3
    assert manifest.counts["conflict_ties_dropped"] == 0
    conflict = {i.code: i for i in manifest.issues}["conflicting_users_dropped"]
    assert conflict.count == 2 and "different users" in conflict.message


def test_unknown_codes_are_dropped_and_duplicated_texts_are_reported(
    db: str, store: Path, tmp_path: Path
) -> None:
    add_labelled(
        db,
        [
            Labelled("u1", 999, minutes=1, productid=5),
            Labelled("k1", 10, minutes=2, productid=6, designation="Livre"),
            Labelled("k2", 2280, minutes=3, productid=7, designation="Livre"),
        ],
        store,
    )
    manifest = _export(db, store, tmp_path / "feedback", holdout_share=0.0)
    codes = {i.code: i for i in manifest.issues}
    assert manifest.counts["unknown_code_dropped"] == 1 and manifest.train.rows == 2
    assert codes["unknown_labels_dropped"].examples == ["999"]
    # validate.check_duplicates: the same listing under two codes (two productids)
    assert "conflicting_labels" in codes


def test_a_row_without_its_image_is_kept_text_only_and_a_previous_copy_is_reused(
    db: str, store: Path, tmp_path: Path
) -> None:
    kept, evicted = picture(1), picture(2)
    add_labelled(
        db,
        [
            Labelled("k", 10, minutes=1, productid=1, imageid=11, image=kept),
            Labelled("e", 50, minutes=2, productid=2, imageid=22, image=evicted),
            Labelled("n", 2280, minutes=3, productid=3, imageid=33),  # sent without an image
        ],
        store,
    )
    out = tmp_path / "feedback"
    first = _export(db, store, out, holdout_share=0.0)
    assert first.counts["without_image"] == 1 and first.train.with_image == 2
    stored_image_path(store, hashlib.sha256(evicted).hexdigest(), "JPEG").unlink()  # retention
    second = _export(db, store, out, holdout_share=0.0)
    images = out / TRAIN_DIR / "images" / "image_train"
    assert (images / "image_22_product_2.jpg").read_bytes() == evicted
    assert second.counts["image_from_previous_slice"] == 1
    assert second.train.with_image == 2
    third = _export(db, store, tmp_path / "fresh", holdout_share=0.0)  # no previous slice
    assert third.counts["without_image"] == 2 and third.train.rows == 3


def test_holdout_is_the_most_recent_share_rounded_half_up_and_since_filters(
    db: str, store: Path, tmp_path: Path
) -> None:
    add_labelled(db, [Labelled(f"r{i}", CODES[i % 5], minutes=i, productid=i) for i in range(10)])
    manifest = _export(db, store, tmp_path / "a", holdout_share=0.25)
    assert (manifest.train.rows, manifest.holdout.rows) == (7, 3)  # 2.5 -> 3
    _, _, provenance = _part(tmp_path / "a", HOLDOUT_DIR)
    assert list(provenance["request_id"]) == ["r7", "r8", "r9"]
    result = CliRunner().invoke(
        app,
        [
            "export-feedback",
            "--database-url",
            db,
            "--images-dir",
            str(store),
            "--out",
            str(tmp_path / "b"),
            "--since",
            "2026-11-01T12:05:00",
            "--holdout-share",
            "0",
        ],
    )
    assert result.exit_code == 0, result.output
    manifest = SliceManifest.model_validate_json((tmp_path / "b" / MANIFEST_FILE).read_text())
    assert manifest.train.rows == 5 and manifest.since == "2026-11-01T12:05:00+00:00"


def test_no_feedback_writes_an_empty_slice_and_exits_0(
    db: str, store: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "feedback"
    result = CliRunner().invoke(
        app,
        ["export-feedback", "--database-url", db, "--images-dir", str(store), "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "0 train rows, 0 holdout rows" in result.output
    assert "no usable feedback" in caplog.text
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["train"]["rows"] == 0 and manifest["holdout"]["rows"] == 0
    x = (out / TRAIN_DIR / dataset.X_TRAIN_FILE).read_text()
    assert x == ",designation,description,productid,imageid\n"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--database-url": "sqlite:///{tmp}/missing.db"}, "does not exist"),
        ({"--database-url": "not a url"}, "not a usable database URL"),
        ({"--database-url": "sqlite:///{tmp}/other.db"}, "no predictions/feedback tables"),
        ({"--images-dir": "{tmp}/nowhere"}, "image store folder"),
        ({"--holdout-share": "1.5"}, "holdout-share"),
        ({"--since": "yesterday"}, "not an ISO 8601"),
        ({"--out": "{tmp}/a-file"}, "not a folder"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(
    db: str, store: Path, tmp_path: Path, change: dict[str, str], message: str
) -> None:
    (tmp_path / "a-file").write_text("x")
    create_schema_free = tmp_path / "other.db"
    create_schema_free.touch()  # a SQLite file that is not serve's database
    options = {"--database-url": db, "--images-dir": str(store), "--out": str(tmp_path / "fb")}
    options.update({k: v.format(tmp=tmp_path) for k, v in change.items()})
    args = ["export-feedback"] + [item for pair in options.items() for item in pair]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_an_unreachable_database_exits_1_without_printing_the_url(
    store: Path, tmp_path: Path
) -> None:
    url = f"postgresql+psycopg://rakuten:s3cret-pw@127.0.0.1:{free_port()}/rakuten"
    result = CliRunner().invoke(
        app,
        [
            "export-feedback",
            "--database-url",
            url,
            "--images-dir",
            str(store),
            "--out",
            str(tmp_path / "fb"),
        ],
    )
    assert result.exit_code == 1, result.output
    assert "cannot be read" in result.output and "s3cret" not in result.output
