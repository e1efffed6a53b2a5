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
from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

import harerun
from harerun.api import routes_analyze, routes_face, routes_health, routes_models, routes_page, routes_pipelines
from harerun.api.auth import KeyRing, caller, parse_keys
from harerun.api.errors import install_error_handlers
from harerun.api.limits import RequestLimitMiddleware
from harerun.api.logs import AccessLogMiddleware, configure_logging
from harerun.api.metrics import Metrics, MetricsMiddleware
from harerun.api.openapi import DocsPolicyMiddleware, install_openapi
from harerun.api.routes_page import STATIC_DIR
from harerun.api.service import Service
from harerun.api.settings import Settings, load_settings

log = logging.getLogger("harerun.api")

ROUTERS = (routes_analyze, routes_face, routes_models, routes_pipelines, routes_health, routes_page)
#: Routers that need an API key when HARERUN_API_KEYS is set (health, readiness and the page stay open).
KEYED = (routes_analyze, routes_face, routes_models, routes_pipelines)

DESCRIPTION = """\
Self-hosted facial skin analysis. Send a face photo (multipart `image` file, JSON with a base64
`image`, or an image/* body) to **POST /api/v6/skin/analyze-hare-run** for every detector's score,
severity and zones; **POST /api/v4/face/detect** only finds the face and checks photo quality.

Every error is an `ErrorResponse`, `{"error": {"code": "...", "message": "..."}}` with `code` from the
`ErrorCode` enum: 400 malformed request (`details`: one `{loc, message}` per bad field), 413 too large,
415 unsupported format, 422 unreadable photo / no usable face / failed quality gate (with `issues`),
401 no or unknown API key, 403 key not allowed here, 404 unknown pipeline or endpoint, 405 wrong method,
429 over the key's rate, 503 overloaded, timed out or not ready (429 and 503 with `Retry-After`).

A/B experiments: the same `subject_id` always gets the same variant; a request without one is assigned
by the SHA-256 of its photo. The analysis echoes `subject_hash` (HMAC-SHA256), never the id itself.

API keys are optional: when the server has `HARERUN_API_KEYS`, send `Authorization: Bearer KEY` or
`X-API-Key: KEY`. `/health`, `/ready` and this page stay open.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    configure_logging(settings.log_format)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = await anyio.to_thread.run_sync(Service.create, settings, metrics)
        await anyio.to_thread.run_sync(service.start)
        missing = await anyio.to_thread.run_sync(lambda: service.check_models(fetch=True))
        for spec, why in missing.items():
            log.error("model %s is missing (GET /ready says not ready until it is fetched): %s", spec, why)
        service.watch_models()
        app.state.service = service
        log.info("ready: pipelines %s, warm-up %s ms", list(service.pipelines), service.warm_up_ms)
        try:
            yield
        finally:
            service.stop()
            app.state.service = None

    # /docs and /redoc load Swagger UI and ReDoc from the fastapi-offline package, not a CDN.
    app = FastAPIOffline(
        title="Hare Run",
        version=harerun.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        favicon_url="/static-offline-docs/favicon.png",
        swagger_ui_parameters={"validatorUrl": None},  # else Swagger UI sends the spec's URL to its validator
    )
    install_openapi(app)
    app.add_middleware(DocsPolicyMiddleware)
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.service = None
    app.state.keys = KeyRing(parse_keys(settings.api_keys), settings.rate_limit_per_minute)
    install_error_handlers(app)
    for module in ROUTERS:
        app.include_router(module.router, dependencies=[Depends(caller)] if module in KEYED else [])
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "X-Subject-Id", "Authorization", "X-API-Key", "X-Request-Id"],
            expose_headers=["X-Harerun-Pipeline", "X-Harerun-Variant", "Retry-After", "X-Request-Id"],
        )
    app.add_middleware(
        RequestLimitMiddleware,
        max_requests=settings.max_requests,
        retry_after_s=settings.retry_after_s,
        metrics=metrics,
    )
    docs = (app.openapi_url, "/docs", "/redoc")
    paths = frozenset([*(r.path for m in ROUTERS for r in m.router.routes), *docs])
    app.add_middleware(MetricsMiddleware, metrics=metrics, paths=paths)
    app.add_middleware(AccessLogMiddleware, paths=paths)  # outermost: the request id covers everything
    return app
