"""The record tables: a prediction's drift features go in and come back out unchanged."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from rakuten_core.drift import ProductFeatures, product_features
from rakuten_core.records import (
    FEATURE_COLUMNS,
    Base,
    Feedback,
    Prediction,
    feature_columns,
    prediction_features,
)


def _prediction(rid: str, features: ProductFeatures | None) -> Prediction:
    extra = feature_columns(features) if features is not None else {}
    return Prediction(
        request_id=rid,
        username="alice",
        created_at=datetime.now(UTC),
        model_name="m",
        model_version="1",
        designation="Piscine",
        description=None,
        prdtypecode=features.prdtypecode if features else 10,
        probability=features.probability if features else 0.5,
        top_k=[],
        latency_ms=1.0,
        **extra,
    )


def test_features_round_trip_through_the_table_and_old_rows_read_as_unknown() -> None:
    image = np.full((4, 4, 3), 60, dtype=np.uint8)
    features = product_features(
        text="Piscine ronde", description=None, image=image, prdtypecode=2583, probability=0.8
    )
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)  # a test database only: serve's Alembic owns real ones
    with Session(engine) as session, session.begin():
        session.add(_prediction("new", features))
        session.add(_prediction("old", None))
        session.add(
            Feedback(
                request_id="new",
                username="alice",
                true_prdtypecode=2583,
                predicted_prdtypecode=2583,
                correct=True,
            )
        )
    with Session(engine) as session:
        full = session.get(Prediction, "new")
        assert full is not None and prediction_features(full) == features
        rows = {r.prdtypecode: r for r in session.execute(select(*FEATURE_COLUMNS)).all()}
        old = ProductFeatures(10, 0.5, None, None, None, None)  # a row from before 0002
        assert {code: prediction_features(r) for code, r in rows.items()} == {
            2583: features,
            10: old,
        }
        [fb] = session.scalars(select(Feedback)).all()
        assert fb.created_at is not None and fb.correct is True
    engine.dispose()


def test_feature_columns_are_the_nullable_drift_columns() -> None:
    table = Prediction.__table__
    for name in ("text_length", "has_description", "has_image", "image_brightness"):
        assert table.c[name].nullable
    assert [c.key for c in FEATURE_COLUMNS] == [
        "prdtypecode", "probability", "text_length", "has_description", "has_image",
        "image_brightness",
    ]  # fmt: skip
