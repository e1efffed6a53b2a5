"""The OpenAPI document: FastAPI's, plus what it cannot infer from the routes.

- the request bodies (:data:`harerun.api.upload.BODY_MODELS`), which the routes read by hand;
- each detector's ``Params`` and, when it declares one, ``Measurements`` model (see
  :class:`harerun.detector.Detector`), as ``<Name>Params`` and ``<Name>Measurements``
  (``GET /api/pipelines`` names them for each step);
- the ``FaceBackend`` enum: the face backends registered on the server's plugin host (backends
  are plugins), plus ``auto`` (pipelines) and ``skip`` (``face: {mode: skip}``).

The other enums (``ErrorCode``, ``QualityIssue``, ``Severity``, ...) come with the models that
use them, from the one place in the code that defines each.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from harerun.api.upload import BODY_MODELS
from harerun.host import PluginHost

REF = "#/components/schemas/{model}"


def model_component(detector: Any, model: str) -> str | None:
    """The component name of a detector's ``Params`` or ``Measurements`` model, e.g.
    ``DarkSpotsMeasurements`` (None when it has none)."""
    if getattr(detector, model, None) is None:
        return None
    return "".join(part.capitalize() for part in str(detector.name).split("_")) + model


def _add(schemas: dict[str, Any], name: str, model: Any) -> None:
    schema = model.model_json_schema(ref_template=REF)
    for sub, sub_schema in schema.pop("$defs", {}).items():
        schemas.setdefault(sub, sub_schema)
    schemas[name] = schema


def build_openapi(app: FastAPI, host: PluginHost) -> dict[str, Any]:
    spec = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
        servers=app.servers,
    )
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for model in BODY_MODELS:
        _add(schemas, model.model_config["title"], model)
    for name, reg in sorted(host.detectors.items()):
        for model, field in (("Params", "params"), ("Measurements", "measurements")):
            component = model_component(reg.cls, model)
            if component is not None:
                _add(schemas, component, getattr(reg.cls, model))
                schemas[component].setdefault("description", f"`{field}` of the `{name}` detector")
    backends = schemas.get("FaceBackend")
    if backends is not None:
        backends["enum"] = sorted({*host.face_backends, "auto", "skip"})
        backends["description"] = (
            "a face backend registered on this server (`auto`: the pipeline lets the server choose; "
            "`skip`: the pipeline has `face: {mode: skip}`)"
        )
    return spec


def install_openapi(app: FastAPI) -> None:
    """``app.openapi()`` builds :func:`build_openapi` once, with the running service's plugin host
    (or, before start-up, a host of its own)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            service = getattr(app.state, "service", None)
            host = service.engine.host if service is not None else PluginHost()
            app.openapi_schema = build_openapi(app, host)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


#: What /docs and /redoc may load: only the server's own files (inline scripts and styles are how
#: Swagger UI and ReDoc start and draw). Without it ReDoc fetches its footer logo from a CDN.
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'"
)


class DocsPolicyMiddleware:
    """Pure ASGI middleware: a Content-Security-Policy on the API docs pages, so a browser reading
    them asks nothing of any other host."""

    def __init__(self, app: Any, paths: tuple[str, ...] = ("/docs", "/redoc")) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") not in self.paths:
            await self.app(scope, receive, send)
            return

        async def with_policy(message: dict) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"content-security-policy", DOCS_POLICY.encode())]
            await send(message)

        await self.app(scope, receive, with_policy)
