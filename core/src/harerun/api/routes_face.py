"""POST /api/v4/face/detect: where the face is and whether the photo is good enough (v4 frontends)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from harerun.api.deps import ServiceDep, handle_photo
from harerun.api.errors import IMAGE_ERRORS
from harerun.api.schemas import FaceDetectResponse
from harerun.api.service import Service, detect_job
from harerun.api.upload import MAX_NAME, DetectRequest, DetectUpload, ImageRequest, request_body_openapi

router = APIRouter(tags=["face"])


@router.post(
    "/api/v4/face/detect",
    operation_id="detectFace",
    response_model=FaceDetectResponse,
    responses=IMAGE_ERRORS,
    summary="Find the face and check photo quality",
    openapi_extra=request_body_openapi(DetectRequest, DetectUpload),
)
async def detect(
    request: Request,
    service: ServiceDep,
    pipeline: Annotated[
        str | None, Query(max_length=MAX_NAME, description="whose face and quality settings to use")
    ] = None,
) -> JSONResponse:
    """Face box `[x, y, w, h]`, landmarks, confidence, the quality score with reason codes, and the
    photo size. A photo without a face is a valid answer here: `face_detected` is false and the
    quality issues say `NO_FACE`. The photo is sent as for the analysis endpoint."""

    async def job(svc: Service, req: ImageRequest, name: str) -> dict:
        return await svc.run(detect_job, req.data, name)

    return JSONResponse(await handle_photo(request, service, job, pipeline=pipeline, json_model=DetectRequest))
