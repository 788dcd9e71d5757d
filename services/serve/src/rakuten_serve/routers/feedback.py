"""``POST /feedback``: the true code of an earlier prediction (feeds live quality monitoring)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from rakuten_core.errors import DatabaseUnavailableError, InvalidInputError
from rakuten_core.records import Feedback, Prediction
from rakuten_serve.deps import CurrentUser, PredictorDep, StateDep
from rakuten_serve.schemas import ErrorResponse, FeedbackRequest, FeedbackResponse

router = APIRouter(tags=["feedback"])


def _stored_prediction(sessions: sessionmaker[Session], rid: str) -> tuple[str, int] | None:
    with sessions() as session:
        row = session.execute(
            select(Prediction.username, Prediction.prdtypecode).where(Prediction.request_id == rid)
        ).first()
        return None if row is None else (row[0], row[1])


def _save_feedback(sessions: sessionmaker[Session], feedback: Feedback) -> None:
    with sessions() as session, session.begin():
        existing = session.scalar(
            select(Feedback).where(
                Feedback.request_id == feedback.request_id,
                Feedback.username == feedback.username,
            )
        )
        if existing is None:
            session.add(feedback)
        else:
            existing.true_prdtypecode = feedback.true_prdtypecode
            existing.correct = feedback.correct
            existing.created_at = feedback.created_at


@router.post(
    "/feedback",
    response_model=FeedbackResponse,
    summary="Report the true product type code of an earlier prediction",
    description=(
        "Give the `request_id` returned by `/predict` and the true `prdtypecode`. Only the user "
        "who asked for the prediction (or an admin) can give its feedback; sending it again "
        "replaces the previous answer. Counted in `rakuten_feedback_total{correct, prdtypecode}`; "
        "the monitor service computes live accuracy from the stored feedback."
    ),
    responses={
        401: {"model": ErrorResponse},
        404: {"model": ErrorResponse, "description": "No prediction with that request id"},
        422: {"model": ErrorResponse, "description": "Unknown prdtypecode"},
        503: {"model": ErrorResponse, "description": "Database unavailable"},
    },
)
async def feedback(
    body: FeedbackRequest, user: CurrentUser, state: StateDep, predictor: PredictorDep
) -> FeedbackResponse:
    known = {c.code for c in predictor.model.bundle.categories.categories}
    if body.prdtypecode not in known:
        raise InvalidInputError(f"unknown prdtypecode {body.prdtypecode}; see GET /model")
    owner_code: tuple[str, int] | None = None
    pending = state.recorder.pending(body.request_id)
    try:
        if pending is not None:
            owner_code = (pending["username"], pending["prdtypecode"])
        else:
            owner_code = await run_in_threadpool(
                _stored_prediction, state.sessions, body.request_id
            )
        if owner_code is None or (owner_code[0] != user.username and "admin" not in user.scopes):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no prediction with this request_id")
        correct = owner_code[1] == body.prdtypecode
        row = Feedback(
            request_id=body.request_id,
            username=user.username,
            true_prdtypecode=body.prdtypecode,
            predicted_prdtypecode=owner_code[1],
            correct=correct,
            created_at=datetime.now(UTC),
        )
        await run_in_threadpool(_save_feedback, state.sessions, row)
    except SQLAlchemyError:
        raise DatabaseUnavailableError("the database is unavailable; retry shortly") from None
    state.telemetry.feedback_received(correct=correct, true_prdtypecode=body.prdtypecode)
    return FeedbackResponse(
        request_id=body.request_id,
        predicted_prdtypecode=owner_code[1],
        true_prdtypecode=body.prdtypecode,
        correct=correct,
    )
