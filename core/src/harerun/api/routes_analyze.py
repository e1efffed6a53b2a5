"""POST /api/v6/skin/analyze-hare-run: the full analysis of one photo."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse

from harerun.api.auth import CallerDep, redact_results
from harerun.api.deps import ServiceDep, handle_photo
from harerun.api.errors import IMAGE_ERRORS, BadRequest
from harerun.api.schemas import AnalyzeResponse
from harerun.api.service import Service, analyze_job
from harerun.api.upload import (
    MAX_NAME,
    MAX_SUBJECT,
    AnalyzeRequest,
    AnalyzeUpload,
    ImageRequest,
    request_body_openapi,
)

router = APIRouter(tags=["analysis"])


@router.post(
    "/api/v6/skin/analyze-hare-run",
    operation_id="analyzeSkin",
    response_model=AnalyzeResponse,
    responses=IMAGE_ERRORS,
    summary="Analyse a face photo with a pipeline",
    openapi_extra=request_body_openapi(AnalyzeRequest, AnalyzeUpload),
)
async def analyze(
    request: Request,
    service: ServiceDep,
    who: CallerDep,
    pipeline: Annotated[
        str | None, Query(max_length=MAX_NAME, description="pipeline or experiment (default: the server's)")
    ] = None,
    subject_id: Annotated[
        str | None, Query(max_length=MAX_SUBJECT, description="sticky key for A/B experiments")
    ] = None,
    include_overlay: Annotated[
        bool | None, Query(description="also return the overlay as base64 PNG (`overlay_png`)")
    ] = None,
    x_subject_id: Annotated[
        str | None, Header(max_length=MAX_SUBJECT, description="sticky A/B key (if no subject_id)")
    ] = None,
) -> JSONResponse:
    """The same JSON as `harerun analyze --json`: face, quality, each detector's score, severity, zones,
    measurements and evidence markers, timings and versions. `pipeline` and `variant` name what was used
    (an A/B experiment gives the same `subject_id` the same variant every time; a request without
    one is assigned by the photo's SHA-256, so the same photo gets the same variant, and
    `assigned_by` says which). The subject id is never echoed, only `subject_hash`.

    Send the photo as a multipart `image` file, as JSON `{"image": "<base64 or data URL>"}`, or as an
    image/* body. Fields in the body win over query parameters; `subject_id` falls back to the
    `X-Subject-Id` header.
    """

    async def job(svc: Service, req: ImageRequest, name: str) -> dict:
        subject = req.subject_id or subject_id or x_subject_id
        overlay = req.include_overlay if req.include_overlay is not None else include_overlay
        if subject is not None and len(subject) > MAX_SUBJECT:
            raise BadRequest(f"`subject_id` is longer than {MAX_SUBJECT} characters")
        return await svc.run(analyze_job, req.data, name, subject, overlay)

    payload = await handle_photo(request, service, job, pipeline=pipeline)
    if not who.operator:
        redact_results(payload)
    service.metrics.record_variant(payload)
    headers = {"X-Harerun-Pipeline": payload["pipeline"]}
    if payload.get("variant"):
        headers["X-Harerun-Variant"] = payload["variant"]
    return JSONResponse(payload, headers=headers)
