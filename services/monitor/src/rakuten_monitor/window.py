"""The recent records the monitor judges: the latest predictions and the latest feedback.

Read through the shared table definitions (:mod:`rakuten_core.records`), only the columns
needed, newest first, at most ``size`` rows each. The engine is built for a reader that must
not hang: a short connect timeout on Postgres and ``pool_pre_ping``, so a database that went
away and came back is picked up on the next run.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, create_engine, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from rakuten_core.drift import ProductFeatures
from rakuten_core.records import FEATURE_COLUMNS, Feedback, Prediction, prediction_features

CONNECT_TIMEOUT_S = 3


@dataclass(frozen=True)
class Window:
    """Features of the latest predictions, and (true, predicted) codes of the latest feedback."""

    predictions: list[ProductFeatures]
    true_codes: list[int]
    predicted_codes: list[int]

    @property
    def feedback(self) -> int:
        return len(self.true_codes)


def build_engine(url: str) -> Engine:
    """An engine for serve's database; it never creates anything in it."""
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        return create_engine(url, connect_args={"timeout": 15}, pool_pre_ping=True)
    connect_args: dict[str, object] = {}
    if backend == "postgresql":
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    return create_engine(url, pool_pre_ping=True, pool_size=2, connect_args=connect_args)


def read_window(engine: Engine, size: int, *, model_version: str | None = None) -> Window:
    """The latest ``size`` predictions and the latest ``size`` feedback rows.

    With ``model_version``, only the predictions that version answered: drift is the traffic
    against the reference of the model that served it, so after a promotion the window starts
    anew with the new champion (its gauges wait for ``min_predictions`` of its own answers)
    instead of comparing the old traffic with the new reference. Feedback is not filtered: live
    quality is the recent quality of whatever answered.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database cannot be reached or read.
    """
    predictions = (
        select(*FEATURE_COLUMNS)
        .order_by(Prediction.created_at.desc(), Prediction.request_id.desc())
        .limit(size)
    )
    if model_version is not None:
        predictions = predictions.where(Prediction.model_version == model_version)
    with Session(engine) as session:
        rows = session.execute(predictions).all()
        feedback = session.execute(
            select(Feedback.true_prdtypecode, Feedback.predicted_prdtypecode)
            .order_by(Feedback.created_at.desc(), Feedback.id.desc())
            .limit(size)
        ).all()
    return Window(
        predictions=[prediction_features(row) for row in rows],
        true_codes=[int(r.true_prdtypecode) for r in feedback],
        predicted_codes=[int(r.predicted_prdtypecode) for r in feedback],
    )
