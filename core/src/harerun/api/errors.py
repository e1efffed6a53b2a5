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

from harerun.errors import ERROR_CODES, ErrorCode, HareRunError
from harerun.results import QualityIssue

log = logging.getLogger("harerun.api")


class FieldError(BaseModel):
    loc: str = Field(description="where: `body.image`, `query.pipeline`, `header.x-subject-id`, ...")
    message: str = Field(description="what is wrong with it")


class BadRequest(HareRunError):
    """The request is malformed: missing image, bad base64, bad field (``details``: one
    :class:`FieldError` per bad field, when the problem is a field's)."""

    code = "BAD_REQUEST"
    http_status = 400

    def __init__(self, message: str, *, details: list[FieldError] | None = None) -> None:
        super().__init__(message)
        self.field_errors = details or []


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
    code: ErrorCode
    message: str = Field(description="what went wrong and what to do about it")
    issues: list[QualityIssue] | None = Field(None, description="quality reason codes (NO_FACE and QUALITY_REJECTED)")
    details: list[FieldError] | None = Field(None, description="one entry per bad field of a malformed request")


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
    """``{"error": {"code", "message", ...}}``; a code outside :data:`ERROR_CODES` (a plugin's own)
    is answered as the generic code of its status class, named in the message, so every answer
    parses into the published ``ErrorResponse``."""
    if code not in ERROR_CODES:
        log.warning("error code %r is not in harerun.errors.ERROR_CODES; answered as a generic code", code)
        message = f"{code}: {message}"
        code = "INTERNAL_ERROR" if status >= 500 else "BAD_REQUEST"
    err: dict[str, Any] = {"code": code, "message": message}
    err.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse({"error": err}, status_code=status, headers=headers)


def field_errors(errors: Any, prefix: tuple[str, ...] = ()) -> list[FieldError]:
    """pydantic's ``errors()`` as :class:`FieldError` items (``loc`` joined with dots)."""
    return [
        FieldError(loc=".".join(str(p) for p in (*prefix, *e.get("loc", ()))) or "body", message=str(e.get("msg", "")))
        for e in errors
    ]


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
    details = [d.model_dump() for d in getattr(exc, "field_errors", ())]
    return error_response(
        status, exc.code, exc.message, headers=headers, issues=issues or None, details=details or None
    )


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    details = field_errors(exc.errors())
    summary = "; ".join(f"{d.loc}: {d.message}" for d in details[:5]) or "invalid request"
    return error_response(
        400, "BAD_REQUEST", f"malformed request: {summary}", details=[d.model_dump() for d in details]
    )


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    # Routing raises only 404 and 405; anything else is answered with its status class's code.
    if exc.status_code == 404:
        code, message = "NOT_FOUND", f"no such endpoint: {request.method} {request.url.path}; see /docs for the API"
    elif exc.status_code == 405:
        code = "METHOD_NOT_ALLOWED"
        message = f"{request.method} is not allowed on {request.url.path}; see /docs for the API"
    else:
        code, message = ("INTERNAL_ERROR" if exc.status_code >= 500 else "BAD_REQUEST"), str(exc.detail)
    return error_response(exc.status_code, code, message, headers=getattr(exc, "headers", None))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(500, "INTERNAL_ERROR", f"unexpected {type(exc).__name__}; this is a bug, please report it")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HareRunError, _hare_run_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)


def _error(description: str, *, retry_after: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"model": ErrorResponse, "description": description}
    if retry_after:
        out["headers"] = {
            "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}
        }
    return out


#: ``responses=`` of every operation: any error is an ``ErrorResponse`` (``default``).
COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    404: _error("no such endpoint (NOT_FOUND), or unknown pipeline (UNKNOWN_PIPELINE)"),
    405: _error("the path exists but not for this method (METHOD_NOT_ALLOWED)"),
    503: _error("overloaded, timed out or not ready (OVERLOADED, TIMEOUT, NOT_READY, WORKER_LOST)", retry_after=True),
    "default": _error("any other error: `code` says which (ErrorCode)"),
}
#: ... of the routes that take an API key when the server has keys.
KEYED_ERRORS: dict[int | str, dict[str, Any]] = {
    **COMMON_ERRORS,
    401: _error("no API key, or an unknown one (UNAUTHORIZED)"),
    403: _error("this key may not use the endpoint (FORBIDDEN)"),
    429: _error("this key is over its rate (RATE_LIMITED)", retry_after=True),
}
#: ... of the routes that take a photo.
IMAGE_ERRORS: dict[int | str, dict[str, Any]] = {
    **KEYED_ERRORS,
    400: _error("malformed request: no image, bad base64, a bad field (BAD_REQUEST, with `details`)"),
    413: _error("photo over the byte or pixel limit (IMAGE_TOO_LARGE)"),
    415: _error("not a supported photo format (UNSUPPORTED_FORMAT) or body type (UNSUPPORTED_MEDIA_TYPE)"),
    422: _error(
        "unreadable photo (UNREADABLE_IMAGE), no usable face (NO_FACE) or failed quality gate "
        "(QUALITY_REJECTED), with `issues`"
    ),
}
