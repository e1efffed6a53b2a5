"""Dependencies shared by the routes, and the one path every photo request takes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import anyio
from fastapi import Depends, Request

from harerun.api.errors import ServiceUnavailable
from harerun.api.service import Service
from harerun.api.upload import AnalyzeRequest, DetectRequest, ImageRequest, read_image_request
from harerun.errors import HareRunError


def get_service(request: Request) -> Service:
    service = getattr(request.app.state, "service", None)
    if service is None:
        raise ServiceUnavailable("not ready: the server is starting", code="NOT_READY")
    return service


ServiceDep = Annotated[Service, Depends(get_service)]


async def handle_photo(
    request: Request,
    service: Service,
    job: Callable[[Service, ImageRequest, str], Awaitable[Any]],
    *,
    pipeline: str | None,
    json_model: type[DetectRequest] = AnalyzeRequest,
) -> Any:
    """Read the photo, pick the pipeline, and run ``job`` within the request timeout.

    Refuses early (503) when not ready or when every thread and queue slot is taken,
    before reading the body.
    """
    settings = service.settings
    metrics = service.metrics
    try:
        with anyio.fail_after(settings.request_timeout_s):
            service.check_ready()
            if not service.pool.has_room():
                raise service.pool.overloaded()
            req = await read_image_request(
                request,
                max_upload_bytes=settings.max_upload_bytes,
                max_body_bytes=settings.max_body_bytes,
                json_model=json_model,
            )
            name = service.resolve(req.pipeline or pipeline)
            try:
                out = await job(service, req, name)
            except HareRunError as exc:
                metrics.analyses.labels(name, exc.code).inc()
                raise
            metrics.analyses.labels(name, "OK").inc()
            return out
    except TimeoutError:
        metrics.rejected.labels("TIMEOUT").inc()
        raise ServiceUnavailable(
            f"the request took longer than {settings.request_timeout_s:g} s; retry, or send a smaller photo",
            code="TIMEOUT",
            retry_after_s=settings.retry_after_s,
        ) from None
    except ServiceUnavailable as exc:
        metrics.rejected.labels(exc.code).inc()
        raise
