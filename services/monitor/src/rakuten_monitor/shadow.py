"""Champion vs challenger on the requests serve scored in shadow (``shadow_predictions``).

The window is the latest ``RAKUTEN_MONITOR_WINDOW`` shadow rows *of the current challenger*
(the version of the newest row): figures never mix two challengers. Over it:

* **agreement**: share of requests where the challenger predicted the champion's code; absent
  below ``RAKUTEN_MONITOR_MIN_PREDICTIONS`` rows;
* **live accuracy of each model on the same requests**: the latest feedback rows of shadowed
  requests, the true code against the champion's and the challenger's code; absent below
  ``RAKUTEN_MONITOR_MIN_FEEDBACK`` rows. Both models are judged on exactly the same requests,
  so the difference is the challenger's, not the sample's.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from rakuten_core.categories import CategoryIndex
from rakuten_core.records import Feedback, ShadowPrediction
from rakuten_core.scoring import classification_metrics


def _accuracy(truth: list[int], predicted: list[int]) -> float:
    """The accuracy evaluation and the monitor's live quality compute (one implementation)."""
    return float(classification_metrics(truth, predicted, CategoryIndex())["accuracy"])


@dataclass(frozen=True)
class ShadowFigures:
    """What the window of the current challenger shows (``None``: too little data)."""

    challenger_version: str
    predictions: int
    feedback: int
    agreement: float | None = None
    champion_accuracy: float | None = None
    challenger_accuracy: float | None = None


def read_shadow(
    engine: Engine, size: int, *, min_predictions: int, min_feedback: int
) -> ShadowFigures | None:
    """The current challenger's figures, or ``None`` when nothing was scored in shadow.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database cannot be read (or predates the table).
    """
    with Session(engine) as session:
        version = session.scalar(
            select(ShadowPrediction.challenger_model_version)
            .order_by(ShadowPrediction.created_at.desc(), ShadowPrediction.request_id.desc())
            .limit(1)
        )
        if version is None:
            return None
        pairs = session.execute(
            select(ShadowPrediction.champion_prdtypecode, ShadowPrediction.challenger_prdtypecode)
            .where(ShadowPrediction.challenger_model_version == version)
            .order_by(ShadowPrediction.created_at.desc(), ShadowPrediction.request_id.desc())
            .limit(size)
        ).all()
        judged = session.execute(
            select(
                Feedback.true_prdtypecode,
                ShadowPrediction.champion_prdtypecode,
                ShadowPrediction.challenger_prdtypecode,
            )
            .join(ShadowPrediction, ShadowPrediction.request_id == Feedback.request_id)
            .where(ShadowPrediction.challenger_model_version == version)
            .order_by(Feedback.created_at.desc(), Feedback.id.desc())
            .limit(size)
        ).all()
    agreement = champion = challenger = None
    if pairs and len(pairs) >= min_predictions:
        agreement = sum(a == b for a, b in pairs) / len(pairs)
    if judged and len(judged) >= min_feedback:
        truth = [int(t) for t, _, _ in judged]
        champion = _accuracy(truth, [int(a) for _, a, _ in judged])
        challenger = _accuracy(truth, [int(b) for _, _, b in judged])
    return ShadowFigures(
        challenger_version=version,
        predictions=len(pairs),
        feedback=len(judged),
        agreement=agreement,
        champion_accuracy=champion,
        challenger_accuracy=challenger,
    )
