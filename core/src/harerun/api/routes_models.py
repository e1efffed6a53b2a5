"""GET /api/v5/skin/model-status: every model the configured pipelines use."""

from __future__ import annotations

import anyio
from fastapi import APIRouter

from harerun.api.deps import ServiceDep
from harerun.api.schemas import ModelStatusResponse
from harerun.api.service import Service, pipeline_models
from harerun.modelstore import ModelStore

router = APIRouter(tags=["models"])


def model_store(service: Service) -> ModelStore:
    s = service.settings
    if any(v is not None for v in (s.model_dir, s.cache_dir, s.s3_bucket, s.s3_endpoint_url)):
        base = ModelStore.from_env()
        return ModelStore(
            s.model_dir or base.model_dir,
            s.cache_dir or base.cache_dir,
            s3_bucket=s.s3_bucket or base.s3_bucket,
            s3_prefix=s.s3_prefix,
            s3_endpoint_url=s.s3_endpoint_url or base.s3_endpoint_url,
        )
    return ModelStore.from_env()


@router.get("/api/v5/skin/model-status", response_model=ModelStatusResponse, summary="Models and their availability")
async def model_status(service: ServiceDep) -> ModelStatusResponse:
    """Availability, version, source (local / cache / s3), SHA-256, size and load time of each model
    the configured pipelines use. Nothing is downloaded; a model only in S3 is checked with a HEAD request."""
    used_by: dict[str, list[str]] = {}
    for name, pipe in service.pipelines.items():
        for spec in pipeline_models(pipe):
            used_by.setdefault(spec, []).append(name)
    store = model_store(service)
    rows = await anyio.to_thread.run_sync(store.status, list(used_by))
    models = []
    for spec, row in zip(used_by, rows, strict=True):
        models.append({**row, "used_by": used_by[spec]})
    return ModelStatusResponse.model_validate({"models": models})
