"""``POST /feedback``: the true code of an earlier prediction (training data, live quality).

A label is trusted data: the export turns it into training rows and the monitor into live
accuracy, so it needs the ``label`` scope (``predict`` does not imply it), only the user who
asked for the prediction (or an admin who holds ``label``) may give it, each user has
``RAKUTEN_FEEDBACK_RATE_LIMIT`` of them, and the first answer for a request id is final: a
second one, from anyone, is refused with 409 and changes nothing. A unique index on
``feedback.request_id`` (migration 0005) keeps that true for two answers sent at the same time.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from slowapi import Limiter
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from rakuten_core.errors import ConflictError, DatabaseUnavailableError, InvalidInputError
from rakuten_core.records import Feedback, Prediction
from rakuten_serve.deps import LabelUser, PredictorDep, StateDep
from rakuten_serve.ratelimit import user_key
from rakuten_serve.schemas import ErrorResponse, FeedbackRequest, FeedbackResponse
from rakuten_serve.settings import ServeSettings


def _stored_prediction(sessions: sessionmaker[Session], rid: str) -> tuple[str, int] | None:
    with sessions() as session:
        row = session.execute(
            select(Prediction.username, Prediction.prdtypecode).where(Prediction.request_id == rid)
        ).first()
        return None if row is None else (row[0], row[1])


def _insert_first(sessions: sessionmaker[Session], feedback: Feedback) -> bool:
    """Insert ``feedback`` unless its request already has an answer; ``False`` when it has."""
    with sessions() as session:
        try:
            with session.begin():
                answered = session.scalar(
                    select(Feedback.id).where(Feedback.request_id == feedback.request_id).limit(1)
                )
                if answered is not None:
                    return False
                session.add(feedback)
        except IntegrityError:  # another first answer committed in between (the unique index)
            return False
    return True


def build_router(limiter: Limiter, settings: ServeSettings) -> APIRouter:
    router = APIRouter(tags=["feedback"])

    @router.post(
        "/feedback",
        response_model=FeedbackResponse,
        summary="Report the true product type code of an earlier prediction",
        description=(
            "Give the `request_id` returned by `/predict` and the true `prdtypecode`. Needs the "
            "`label` scope (a `predict`-only token is refused with 403). Only the user who asked "
            "for the prediction (or an admin who also holds `label`) can give its feedback. The "
            "first answer is final: another one for the same `request_id`, from anyone, is "
            "refused with 409 and the stored label is unchanged. Rate limit per user: "
            f"{settings.feedback_rate_limit}. Counted in "
            "`rakuten_feedback_total{correct, prdtypecode}`; the monitor service computes live "
            "accuracy from the stored feedback and `rakuten-data export-feedback` turns it into "
            "training data."
        ),
        responses={
            401: {"model": ErrorResponse, "description": "Missing, invalid or expired token"},
            403: {"model": ErrorResponse, "description": "Token lacks the label scope"},
            404: {"model": ErrorResponse, "description": "No prediction of yours with that id"},
            409: {
                "model": ErrorResponse,
                "description": "This prediction already has its feedback; the first is final",
            },
            422: {"model": ErrorResponse, "description": "Unknown prdtypecode"},
            429: {"model": ErrorResponse, "description": "Rate limit reached; see Retry-After"},
            503: {"model": ErrorResponse, "description": "Database unavailable"},
        },
    )
    @limiter.limit(settings.feedback_rate_limit, key_func=user_key)
    async def feedback(
        request: Request,
        response: Response,
        body: FeedbackRequest,
        user: LabelUser,
        state: StateDep,
        predictor: PredictorDep,
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
            if owner_code is None or (
                owner_code[0] != user.username and "admin" not in user.scopes
            ):
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
            inserted = await run_in_threadpool(_insert_first, state.sessions, row)
        except SQLAlchemyError:
            raise DatabaseUnavailableError("the database is unavailable; retry shortly") from None
        if not inserted:
            raise ConflictError(
                "this prediction already has its feedback; the first answer is final and is "
                "kept unchanged"
            )
        state.telemetry.feedback_received(correct=correct, true_prdtypecode=body.prdtypecode)
        return FeedbackResponse(
            request_id=body.request_id,
            predicted_prdtypecode=owner_code[1],
            true_prdtypecode=body.prdtypecode,
            correct=correct,
        )

    return router
