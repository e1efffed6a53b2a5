"""The FastAPI application: ``create_app(settings)``.

Routers, one module per resource: ``routes_analyze`` (v6 analysis), ``routes_face`` (v4 face
detection), ``routes_models`` (v5 model status), ``routes_pipelines``, ``routes_health``
(health, readiness, metrics) and ``routes_page`` (the page at ``/``). The engine is built and
warmed in the lifespan, not at import time.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

import harerun
from harerun.api import routes_analyze, routes_face, routes_health, routes_models, routes_page, routes_pipelines
from harerun.api.errors import install_error_handlers
from harerun.api.limits import RequestLimitMiddleware
from harerun.api.metrics import Metrics, MetricsMiddleware
from harerun.api.routes_page import STATIC_DIR
from harerun.api.service import Service
from harerun.api.settings import Settings

log = logging.getLogger("harerun.api")

ROUTERS = (routes_analyze, routes_face, routes_models, routes_pipelines, routes_health, routes_page)

DESCRIPTION = """\
Self-hosted facial skin analysis. Send a face photo (multipart `image` file, JSON with a base64
`image`, or an image/* body) to **POST /api/v6/skin/analyze-hare-run** for every detector's score,
severity and zones; **POST /api/v4/face/detect** only finds the face and checks photo quality.

Every error is `{"error": {"code": "...", "message": "..."}}`: 400 malformed request, 413 too large,
415 unsupported format, 422 unreadable photo / no usable face / failed quality gate (with `issues`),
404 unknown pipeline, 503 overloaded, timed out or not ready (with `Retry-After`).
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = await anyio.to_thread.run_sync(Service.create, settings, metrics)
        await anyio.to_thread.run_sync(service.start)
        app.state.service = service
        log.info("ready: pipelines %s, warm-up %s ms", list(service.pipelines), service.warm_up_ms)
        try:
            yield
        finally:
            service.pool.shutdown()
            app.state.service = None

    app = FastAPI(
        title="Hare Run",
        version=harerun.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.service = None
    install_error_handlers(app)
    for module in ROUTERS:
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "X-Subject-Id"],
            expose_headers=["X-Harerun-Pipeline", "X-Harerun-Variant", "Retry-After"],
        )
    app.add_middleware(
        RequestLimitMiddleware,
        max_requests=settings.max_requests,
        retry_after_s=settings.retry_after_s,
        metrics=metrics,
    )
    paths = frozenset(r.path for m in ROUTERS for r in m.router.routes)
    app.add_middleware(MetricsMiddleware, metrics=metrics, paths=paths)
    return app
