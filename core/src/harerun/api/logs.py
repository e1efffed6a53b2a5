"""The server's logs: one access line per request, plain text for a terminal or JSON lines.

``HARERUN_LOG_FORMAT=json`` makes every line (uvicorn's own too, under ``harerun serve``) one
JSON object: ``ts``, ``level``, ``logger``, ``message``, ``request_id`` when a request is being
answered, and the access line's fields (below). The default ``text`` is uvicorn's
``INFO:     ...`` with the fields as ``key=value``.

The access line (logger ``harerun.access``) has the request id, method, route *template*
(``/api/pipelines/{name}``, never the raw path or query string, which may hold a subject id),
status, error ``code``, ``pipeline`` and ``variant``, ``duration_ms`` and the engine's
per-stage ``stages_ms`` (face detection, landmarks, each detector). It never has image bytes,
file names or subject ids. Answers under 500 are logged at INFO (one line, no traceback: a
flood of bad requests is as many lines as a flood of good ones), 5xx at WARNING.

A client's ``X-Request-Id`` is kept when it is 1-128 characters of ``A-Z a-z 0-9 . _ : -``,
otherwise one is made up; either way it is sent back in the ``X-Request-Id`` header.
"""

from __future__ import annotations

import contextvars
import copy
import json
import logging
import re
import sys
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Literal

from uvicorn.logging import DefaultFormatter

LogFormat = Literal["text", "json"]

access_log = logging.getLogger("harerun.access")

HEADER = b"x-request-id"
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
#: The request being answered, for every line logged while it is (errors, warnings, access).
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("harerun_request_id", default=None)
#: Error bodies are small JSON; a larger one is not parsed for its code.
MAX_ERROR_BODY = 64 * 1024
#: Where the engine's per-stage timings sit in an analysis or face-detection answer. It is the
#: last key the client can influence nothing after (versions, the overlay), so its last
#: occurrence is the top-level one.
TIMINGS_KEY = b'"timings_ms":'


class JsonFormatter(logging.Formatter):
    """One JSON object per line; a record's ``fields`` (``extra={"fields": {...}}``) are merged in."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = request_id.get()
        if rid is not None:
            out["request_id"] = rid
        out.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(DefaultFormatter):
    """uvicorn's ``INFO:     message`` (coloured on a terminal), then ``key=value`` for the short
    fields of the record and its request id."""

    SHORT = ("code", "pipeline", "variant")

    def __init__(self, fmt: str = "%(levelprefix)s %(message)s", **kwargs: Any) -> None:
        super().__init__(fmt, **kwargs)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        fields = getattr(record, "fields", None) or {}
        extra = [f"{k}={fields[k]}" for k in self.SHORT if fields.get(k) is not None]
        rid = request_id.get()
        if rid is not None:
            extra.append(f"id={rid}")
        return " ".join([line, *extra])


def formatter(fmt: LogFormat) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else TextFormatter()


def log_config(level: str, fmt: LogFormat = "text") -> dict:
    """The ``logging.dictConfig`` for ``harerun serve``: uvicorn's, with Hare Run's loggers on the
    same handler and every line in ``fmt``. uvicorn's own access log stays off: it prints query
    strings (subject ids); ``harerun.access`` is the access log."""
    from uvicorn.config import LOGGING_CONFIG

    cfg = copy.deepcopy(LOGGING_CONFIG)
    cfg["formatters"]["default"] = {"()": f"{__name__}.{type(formatter(fmt)).__name__}"}
    cfg["loggers"]["harerun"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return cfg


def configure_logging(fmt: LogFormat = "text", *, stream: Any = None, level: int = logging.INFO) -> None:
    """Give the ``harerun`` loggers a handler when nothing did (the app run by another ASGI server,
    or in a test: ``stream`` then receives the lines). ``harerun serve`` configures them itself
    (:func:`log_config`), and so may a host application: then this does nothing."""
    logger = logging.getLogger("harerun")
    if logger.handlers and stream is None:
        return
    for h in list(logger.handlers):
        if getattr(h, "harerun_handler", False):
            logger.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(fmt))
    handler.harerun_handler = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)


def _route(scope: dict, paths: frozenset[str]) -> str:
    route = getattr(scope.get("route"), "path", None)
    if route:
        return route
    path = scope.get("path", "")
    if path in paths:  # refused before routing (503 OVERLOADED)
        return path
    return "static" if path.startswith("/static/") else "unmatched"


def _error_code(body: bytes) -> str | None:
    try:
        err = json.loads(body).get("error")
        return str(err["code"])[:64] if isinstance(err, dict) and "code" in err else None
    except (ValueError, AttributeError):
        return None


def _stages(body: bytes) -> dict[str, float] | None:
    at = body.rfind(TIMINGS_KEY)
    if at < 0:
        return None
    try:
        timings, _ = json.JSONDecoder().raw_decode(body.decode("utf-8", "replace"), at + len(TIMINGS_KEY))
    except ValueError:
        return None
    if not isinstance(timings, dict):
        return None
    return {str(k)[:64]: round(float(v), 1) for k, v in timings.items() if isinstance(v, int | float)}


class AccessLogMiddleware:
    """Pure ASGI middleware, outermost: gives each request its id (in the context of everything
    logged while it is answered, and in the answer's ``X-Request-Id``) and logs its access line."""

    def __init__(self, app: Any, paths: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.paths = paths  # route paths, for requests refused before routing

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        given = dict(scope.get("headers") or ()).get(HEADER, b"").decode("latin-1")
        rid = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        token = request_id.set(rid)
        seen: dict[str, Any] = {"status": 500, "json": False, "headers": {}}
        chunks: list[bytes] = []

        async def send_logged(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != HEADER]
                message = {**message, "headers": [*headers, (HEADER, rid.encode())]}
                seen["status"] = int(message["status"])
                seen["headers"] = {k.lower(): v for k, v in headers}
                seen["json"] = seen["headers"].get(b"content-type", b"").startswith(b"application/json")
            elif message["type"] == "http.response.body" and seen["json"]:
                chunks.append(message.get("body", b""))
            await send(message)

        code: str | None = None
        try:
            await self.app(scope, receive, send_logged)
        except Exception:
            code = "INTERNAL_ERROR"
            raise
        finally:
            try:
                self._log(scope, seen, b"".join(chunks), code, t0)
            finally:
                request_id.reset(token)

    def _log(self, scope: dict, seen: dict, body: bytes, code: str | None, t0: float) -> None:
        status = seen["status"]
        headers = seen["headers"]
        if status >= 400 and code is None and len(body) <= MAX_ERROR_BODY:
            code = _error_code(body)
        fields: dict[str, Any] = {
            "method": str(scope.get("method", "GET"))[:16],
            "route": _route(scope, self.paths),
            "status": status,
            "duration_ms": round((time.perf_counter() - t0) * 1000.0, 1),
            "code": code,
        }
        for key, header in (("pipeline", b"x-harerun-pipeline"), ("variant", b"x-harerun-variant")):
            if header in headers:
                fields[key] = headers[header].decode("latin-1")[:128]
        if status < 400 and body:
            stages = _stages(body)
            if stages:
                fields["stages_ms"] = stages
        fields = {k: v for k, v in fields.items() if v is not None}
        access_log.log(
            logging.INFO if status < 500 else logging.WARNING,
            "%s %s %s %.1f ms",
            fields["method"],
            fields["route"],
            status,
            fields["duration_ms"],
            extra={"fields": fields},
        )
