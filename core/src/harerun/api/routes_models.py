"""GET /api/v5/skin/model-status: every model the configured pipelines use."""

from __future__ import annotations

import anyio
from fastapi import APIRouter

from harerun.api.auth import CallerDep, redact
from harerun.api.deps import ServiceDep
from harerun.api.errors import KEYED_ERRORS
from harerun.api.schemas import ModelStatusResponse
from harerun.api.service import pipeline_models

router = APIRouter(tags=["models"])


@router.get(
    "/api/v5/skin/model-status",
    operation_id="getModelStatus",
    response_model=ModelStatusResponse,
    responses=KEYED_ERRORS,
    summary="Models and their availability",
)
async def model_status(service: ServiceDep, who: CallerDep) -> ModelStatusResponse:
    """Availability, version, source (local / cache / s3), SHA-256, size and load time of each model
    the configured pipelines use. Nothing is downloaded; a model only in S3 is checked with a HEAD request."""
    used_by: dict[str, list[str]] = {}
    for name, pipe in service.pipelines.items():
        for spec in pipeline_models(pipe):
            used_by.setdefault(spec, []).append(name)
    store = service.store()
    rows = await anyio.to_thread.run_sync(store.status, list(used_by))
    models = []
    for spec, row in zip(used_by, rows, strict=True):
        if not who.operator:  # server paths, the cache, the bucket and endpoint: operators only
            row["reason"] = redact(row["reason"])
        models.append({**row, "used_by": used_by[spec]})
    return ModelStatusResponse.model_validate({"models": models})
