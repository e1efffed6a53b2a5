"""Every failure is JSON ``{"error": {"code": ..., "message": ...}}`` with the right status.

Engine errors (:class:`harerun.errors.HareRunError`) carry their own code and status;
the API adds the few it needs here. FastAPI's own validation, 404 and 405 answers
are reshaped to the same form, and anything unexpected is a JSON 500 (a bug, logged).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from harerun.errors import HareRunError

log = logging.getLogger("harerun.api")


class BadRequest(HareRunError):
    """The request is malformed: missing image, bad base64, bad field."""

    code = "BAD_REQUEST"
    http_status = 400


class BodyTooLarge(HareRunError):
    code = "IMAGE_TOO_LARGE"
    http_status = 413


class UnsupportedMediaType(HareRunError):
    code = "UNSUPPORTED_MEDIA_TYPE"
    http_status = 415


class ServiceUnavailable(HareRunError):
    """503: ``OVERLOADED`` (every analysis worker and queue slot busy), ``TIMEOUT``, ``NOT_READY`` or
    ``WORKER_LOST`` (the analysis process holding the photo died)."""

    code = "OVERLOADED"
    http_status = 503

    def __init__(self, message: str, *, code: str = "OVERLOADED", retry_after_s: int = 1) -> None:
        super().__init__(message, code=code)
        self.retry_after_s = retry_after_s


class ErrorDetail(BaseModel):
    code: str = Field(description="reason code, e.g. UNREADABLE_IMAGE, NO_FACE, IMAGE_TOO_LARGE, OVERLOADED")
    message: str = Field(description="what went wrong and what to do about it")
    issues: list[str] | None = Field(None, description="quality reason codes (NO_FACE, TOO_DARK, BLURRY, ...)")
    details: list[dict[str, Any]] | None = Field(None, description="field errors of a malformed request")


class ErrorResponse(BaseModel):
    error: ErrorDetail

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "error": {
                        "code": "NO_FACE",
                        "message": "no face found in the photo; use a well-lit frontal photo",
                        "issues": ["NO_FACE"],
                    }
                }
            ]
        }
    }


def error_response(
    status: int, code: str, message: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    err: dict[str, Any] = {"code": code, "message": message}
    err.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse({"error": err}, status_code=status, headers=headers)


_STATUS_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    408: "REQUEST_TIMEOUT",
    413: "IMAGE_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "UNPROCESSABLE",
    429: "TOO_MANY_REQUESTS",
    503: "SERVICE_UNAVAILABLE",
}


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for e in exc.errors():
        loc = ".".join(str(p) for p in e.get("loc", ()))
        out.append({"loc": loc, "message": str(e.get("msg", ""))})
    return out


async def _hare_run_error(request: Request, exc: HareRunError) -> JSONResponse:
    status = int(getattr(exc, "http_status", 500) or 500)
    headers = None
    if getattr(exc, "retry_after_s", None) is not None:  # 503s, 429 RATE_LIMITED
        headers = {"Retry-After": str(exc.retry_after_s)}
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    if status >= 500:  # load shedding (503) is expected under load: not a warning each time
        level = logging.INFO if status == 503 else logging.WARNING
        log.log(level, "%s %s -> %s %s: %s", request.method, request.url.path, status, exc.code, exc.message)
    issues = getattr(exc, "issues", None)
    return error_response(status, exc.code, exc.message, headers=headers, issues=issues or None)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    details = _field_errors(exc)
    summary = "; ".join(f"{d['loc']}: {d['message']}" for d in details[:5]) or "invalid request"
    return error_response(400, "BAD_REQUEST", f"malformed request: {summary}", details=details)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = _STATUS_CODES.get(exc.status_code, f"HTTP_{exc.status_code}")
    if exc.status_code == 404:
        message = f"no such endpoint: {request.method} {request.url.path}; see /docs for the API"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}; see /docs for the API"
    else:
        message = str(exc.detail)
    return error_response(exc.status_code, code, message, headers=getattr(exc, "headers", None))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(500, "INTERNAL_ERROR", f"unexpected {type(exc).__name__}; this is a bug, please report it")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HareRunError, _hare_run_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)


#: ``responses=`` for routes that take a photo.
IMAGE_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "malformed request (no image, bad base64, bad field)"},
    404: {"model": ErrorResponse, "description": "unknown pipeline (UNKNOWN_PIPELINE)"},
    413: {"model": ErrorResponse, "description": "photo over the byte or pixel limit (IMAGE_TOO_LARGE)"},
    415: {"model": ErrorResponse, "description": "not a supported photo format or body type"},
    422: {"model": ErrorResponse, "description": "unreadable photo, no usable face or failed quality gate"},
    503: {"model": ErrorResponse, "description": "overloaded, timed out or not ready; see Retry-After"},
}
