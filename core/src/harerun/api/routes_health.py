"""GET /health (liveness), GET /ready (pipelines loaded, models warm), GET /metrics (Prometheus)."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

import harerun
from harerun.api.auth import metrics_access
from harerun.api.errors import COMMON_ERRORS, KEYED_ERRORS, error_response
from harerun.api.schemas import Health, Readiness
from harerun.api.service import Service

router = APIRouter(tags=["operations"])


@router.get(
    "/health",
    operation_id="getHealth",
    response_model=Health,
    responses=COMMON_ERRORS,
    summary="Liveness: the process answers",
)
async def health() -> Health:
    return Health(version=harerun.__version__)


@router.get(
    "/ready",
    operation_id="getReadiness",
    response_model=Readiness,
    summary="Readiness: pipelines loaded and models warmed",
    responses={**COMMON_ERRORS, 503: {**COMMON_ERRORS[503], "description": "still starting, or models missing"}},
)
async def ready(request: Request) -> JSONResponse:
    service: Service | None = getattr(request.app.state, "service", None)
    if service is None or not service.ready:
        reason = service.not_ready_reason if service else "starting up"
        return error_response(503, "NOT_READY", f"not ready: {reason}", headers={"Retry-After": "1"})
    if service.missing_models:
        reason = "models missing (fetched again every 30 s): " + ", ".join(service.missing_models)
        return error_response(503, "NOT_READY", f"not ready: {reason}", headers={"Retry-After": "30"})
    body = Readiness(
        ready=True,
        pipelines=list(service.pipelines),
        experiments=service.experiment_names(),
        warm_up_ms=service.warm_up_ms,
        in_flight=service.pool.in_flight,
        capacity=service.pool.capacity,
        problems=service.pipeline_errors,
    )
    return JSONResponse(body.model_dump(mode="json"))


@router.get(
    "/metrics",
    operation_id="getMetrics",
    dependencies=[Depends(metrics_access)],
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        **KEYED_ERRORS,
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": f"Prometheus text format ({CONTENT_TYPE_LATEST})",
        },
    },
)
async def metrics(request: Request) -> Response:
    # Rendering (and, with several server processes, reading their files) runs off the event loop.
    body = await anyio.to_thread.run_sync(request.app.state.metrics.render)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
