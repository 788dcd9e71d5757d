"""``POST /predict``: one product (multipart text + optional image) -> its product type."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, Response, UploadFile
from pydantic import ValidationError
from slowapi import Limiter

from rakuten_core.drift import input_features, with_answer
from rakuten_core.errors import InputTooLargeError, InvalidInputError
from rakuten_core.logs import request_id
from rakuten_core.records import feature_columns
from rakuten_core.schema import Product
from rakuten_serve.deps import CurrentUser, PredictorDep, StateDep
from rakuten_serve.predictor import PreparedInput, prepare_input
from rakuten_serve.ratelimit import user_key
from rakuten_serve.schemas import CategoryScore, ErrorResponse, PredictionResponse
from rakuten_serve.settings import ServeSettings
from rakuten_serve.state import ServeState


def _check_text(designation: str, description: str | None, settings: ServeSettings) -> Product:
    if len(designation) > settings.designation_max_chars:
        raise InputTooLargeError(
            f"designation is {len(designation)} characters; the limit is "
            f"{settings.designation_max_chars}"
        )
    if description is not None and len(description) > settings.description_max_chars:
        raise InputTooLargeError(
            f"description is {len(description)} characters; the limit is "
            f"{settings.description_max_chars}"
        )
    for name, value in (("designation", designation), ("description", description)):
        if value is not None and "\x00" in value:
            # PostgreSQL cannot store NUL in text: accepting it would answer 200 and then fail
            # the record forever. No product text needs one; other control characters are kept.
            raise InvalidInputError(f"{name} contains a NUL character")
    try:
        return Product(designation=designation, description=description)
    except ValidationError as exc:
        messages = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidInputError(messages) from None


async def _read_image(image: UploadFile | None, settings: ServeSettings) -> bytes | None:
    if image is None:
        return None
    data = await image.read(settings.image_max_bytes + 1)
    if not data and not image.filename:
        return None  # an empty file input submitted by a browser form
    if len(data) > settings.image_max_bytes:
        raise InputTooLargeError(
            f"image is over {settings.image_max_bytes} bytes; the limit is "
            f"{settings.image_max_bytes} bytes"
        )
    return data


def _record(
    state: ServeState,
    *,
    rid: str,
    username: str,
    product: Product,
    productid: int | None,
    imageid: int | None,
    prepared: PreparedInput,
    response: PredictionResponse,
) -> dict[str, Any]:
    inputs = prepared.features or input_features(  # prepare_input computed them off the loop
        text=prepared.text, description=product.description, image=prepared.image
    )
    features = with_answer(
        inputs, prdtypecode=response.prdtypecode, probability=response.probability
    )
    return {
        "request_id": rid,
        "username": username,
        "created_at": datetime.now(UTC),
        "model_name": response.model_name,
        "model_version": response.model_version,
        "designation": product.designation,
        "description": product.description,
        "productid": productid,
        "imageid": imageid,
        "image_sha256": prepared.image_sha256,
        "image_bytes": prepared.image_bytes,
        "prdtypecode": response.prdtypecode,
        "probability": response.probability,
        "top_k": [c.model_dump() for c in response.top_k],
        "latency_ms": response.latency_ms,
        **feature_columns(features),  # what the monitor compares with the bundle's reference
    }


def build_router(limiter: Limiter, settings: ServeSettings) -> APIRouter:
    router = APIRouter(tags=["predict"])

    @router.post(
        "/predict",
        response_model=PredictionResponse,
        summary="Predict the product type code of one product",
        description=(
            "Multipart form: `designation` (required), `description`, `image` (JPEG, PNG, "
            "WebP, GIF or BMP, recognised from its bytes), `productid`, `imageid`. Without an "
            "image the model answers from the text alone (it was trained with missing images). "
            "Needs the `predict` scope. Rate limit per user: "
            f"{settings.predict_rate_limit}. Example:\n\n"
            "```\ncurl -H \"Authorization: Bearer $TOKEN\" -F designation='Piscine tubulaire' "
            "-F description='Piscine hors sol 3 m' -F image=@piscine.jpg "
            "http://127.0.0.1:8000/predict\n```"
        ),
        responses={
            401: {"model": ErrorResponse, "description": "Missing, invalid or expired token"},
            403: {"model": ErrorResponse, "description": "Token lacks the predict scope"},
            413: {"model": ErrorResponse, "description": "Image or text over a size limit"},
            415: {"model": ErrorResponse, "description": "Not an image of an accepted format"},
            422: {"model": ErrorResponse, "description": "Missing/blank designation, bad field"},
            429: {"model": ErrorResponse, "description": "Rate limit reached; see Retry-After"},
            503: {"model": ErrorResponse, "description": "Queue full or no model; Retry-After"},
        },
    )
    @limiter.limit(settings.predict_rate_limit, key_func=user_key)
    async def predict(
        request: Request,
        response: Response,
        user: CurrentUser,
        state: StateDep,
        predictor: PredictorDep,
        designation: Annotated[
            str,
            Form(
                description="Product title (required).",
                examples=["Piscine tubulaire ronde 3,66 x 0,76 m"],
            ),
        ],
        description: Annotated[
            str | None,
            Form(
                description="Product description, may contain HTML (optional).",
                examples=["<p>Piscine hors sol avec pompe de filtration</p>"],
            ),
        ] = None,
        productid: Annotated[int | None, Form(ge=0, le=2**62, examples=[3804725264])] = None,
        imageid: Annotated[int | None, Form(ge=0, le=2**62, examples=[1263597046])] = None,
        image: Annotated[UploadFile | None, File(description="Product photo (optional).")] = None,
    ) -> PredictionResponse:
        started = time.perf_counter()
        product = _check_text(designation, description, state.settings)
        data = await _read_image(image, state.settings)
        limits = state.settings.image_limits
        size = predictor.model.image_size
        if data is None:
            prepared = prepare_input(
                product.designation, product.description, None, image_size=size, limits=limits
            )
        else:
            # A dedicated pool: lighter than the generic thread pool on this hot path. While it
            # decodes, the batcher knows this request is coming and may wait for it.
            with state.runner.coming():
                prepared = await asyncio.get_running_loop().run_in_executor(
                    state.decode_pool,
                    partial(
                        prepare_input,
                        product.designation,
                        product.description,
                        data,
                        image_size=size,
                        limits=limits,
                    ),
                )
        result = await state.runner.submit(prepared)
        best = result.top[0]
        out = PredictionResponse(
            request_id=request_id.get(),
            prdtypecode=best.prdtypecode,
            name_fr=best.name_fr,
            name_en=best.name_en,
            probability=best.probability,
            top_k=[CategoryScore(**vars(c)) for c in result.top],
            model_name=result.model_name,
            model_version=result.model_version,
            used_image=prepared.image is not None,
            latency_ms=round((time.perf_counter() - started) * 1000, 2),
        )
        state.recorder.submit(
            _record(
                state,
                rid=out.request_id,
                username=user.username,
                product=product,
                productid=productid,
                imageid=imageid,
                prepared=prepared,
                response=out,
            )
        )
        if state.image_store is not None and data is not None and prepared.image_sha256:
            state.image_store.submit(data, prepared.image_sha256)  # queued; written off-path
        state.shadow.offer(out, prepared, product, data)  # a queue put; scored after the answer
        return out

    return router
