"""Typed errors. Each carries a reason code, a message that says what to do,
the HTTP status the API answers with and the CLI exit code.

:data:`ERROR_CODES` is every reason code an error may carry (CLI ``--json``, batch records and
HTTP answers), with what it means; the API's OpenAPI document publishes it as the
``ErrorCode`` enum.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field
from typing_extensions import TypeAliasType

#: code -> (HTTP status the API answers with, what it means).
ERROR_CODES: dict[str, tuple[int, str]] = {
    "BAD_REQUEST": (400, "malformed request: no image, bad base64, a bad field (see `details`)"),
    "INVALID_CONFIG": (400, "a configuration file or setting is invalid"),
    "INVALID_PIPELINE": (400, "a pipeline file is invalid"),
    "INVALID_MODEL_SPEC": (400, "a model spec that is not NAME or NAME@VERSION"),
    "UNAUTHORIZED": (401, "no API key, or an unknown one"),
    "FORBIDDEN": (403, "this API key may not use this endpoint"),
    "NOT_FOUND": (404, "no such endpoint"),
    "UNKNOWN_PIPELINE": (404, "no such pipeline or experiment (GET /api/pipelines lists them)"),
    "METHOD_NOT_ALLOWED": (405, "the endpoint exists but not for this HTTP method"),
    "IMAGE_TOO_LARGE": (413, "the photo is over the byte or pixel limit"),
    "UNSUPPORTED_MEDIA_TYPE": (415, "the request's Content-Type is not multipart, JSON or image/*"),
    "UNSUPPORTED_FORMAT": (415, "the photo is not JPEG, PNG, WebP, BMP or TIFF"),
    "UNREADABLE_IMAGE": (422, "the photo is empty, cut short or corrupt"),
    "NO_FACE": (422, "no usable face in the photo (see `issues`)"),
    "QUALITY_REJECTED": (422, "the pipeline's quality gate refused the photo (see `issues`)"),
    "RATE_LIMITED": (429, "this API key is over its rate; retry after Retry-After seconds"),
    "INTERNAL_ERROR": (500, "a bug: please report it"),
    "HARERUN_ERROR": (500, "an error without a more specific code"),
    "PLUGIN_ERROR": (500, "a plugin failed to load or registered something invalid"),
    "OVERLOADED": (503, "every analysis slot is busy; retry after Retry-After seconds"),
    "TIMEOUT": (503, "the request took longer than the server's limit; retry, or send a smaller photo"),
    "NOT_READY": (503, "the server is starting, or models are missing; retry after Retry-After seconds"),
    "WORKER_LOST": (503, "the analysis process holding the photo stopped; retry"),
    "MODEL_MISSING": (503, "a face backend's model file is not installed"),
    "MODEL_UNAVAILABLE": (503, "a model cannot be found, downloaded or verified"),
    "MODEL_CHECKSUM_MISMATCH": (503, "a downloaded model does not match its checksum"),
    "INVALID_MODEL_FILE": (503, "a model path is not a file"),
    "NO_PHOTOS": (400, "harerun batch: no photo matched the inputs"),
    "WORKER_CRASHED": (500, "harerun batch: the process analysing the photo died"),
    "RAY_FAILED": (500, "harerun batch --ray: the Ray run failed"),
    "BAD_RESULTS": (400, "harerun report: the results are missing, unreadable or hold no record"),
    "MISSING_EXTRA": (500, "an optional dependency (pip extra) this command needs is not installed"),
}
ErrorCode = TypeAliasType(
    "ErrorCode",
    Annotated[
        Literal[tuple(ERROR_CODES)],  # type: ignore[valid-type]
        Field(description="reason code:\n" + "\n".join(f"- `{c}` ({s}): {m}" for c, (s, m) in ERROR_CODES.items())),
    ],
)


class HareRunError(Exception):
    code = "HARERUN_ERROR"
    http_status = 500
    exit_code = 1

    def __init__(self, message: str, *, code: str | None = None, details: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details or {}

    def __reduce__(self):
        # Pickle the whole state (code, details, issues, ...), not only the message: errors
        # raised in an analysis process must reach the server unchanged.
        return (_restore_error, (type(self), self.args, self.__dict__))


def _restore_error(cls: type, args: tuple, state: dict) -> HareRunError:
    err = cls.__new__(cls)
    Exception.__init__(err, *args)
    err.__dict__.update(state)
    return err


class PluginError(HareRunError):
    """A plugin failed to load, registered something invalid, or is missing."""

    code = "PLUGIN_ERROR"


class ConfigError(HareRunError):
    """A configuration (pipeline, experiments, model manifest, server settings) is missing or
    invalid. ``problems`` lists every problem found (see :mod:`harerun.problems`)."""

    code = "INVALID_CONFIG"
    http_status = 400
    exit_code = 2

    def __init__(self, message: str, *, problems: list[str] | None = None, code: str | None = None) -> None:
        self.problems = problems or [message]
        full = message if not problems else message + "\n" + "\n".join(f"  {p}" for p in problems)
        super().__init__(full, code=code)


class PipelineError(ConfigError):
    """A pipeline (or experiments) file is missing or invalid."""

    code = "INVALID_PIPELINE"


class UnknownPipeline(PipelineError):
    code = "UNKNOWN_PIPELINE"
    http_status = 404


class ImageError(HareRunError):
    """The photo cannot be used: ``code`` is UNREADABLE_IMAGE, IMAGE_TOO_LARGE, UNSUPPORTED_FORMAT, EMPTY_IMAGE."""

    code = "UNREADABLE_IMAGE"
    exit_code = 2

    @property
    def http_status(self) -> int:  # type: ignore[override]
        return {"IMAGE_TOO_LARGE": 413, "UNSUPPORTED_FORMAT": 415}.get(self.code, 422)


class NoUsableFace(HareRunError):
    """No face was found, or the quality gate rejected the photo; ``issues`` holds the reason codes."""

    code = "NO_FACE"
    http_status = 422
    exit_code = 3

    def __init__(self, message: str, *, code: str = "NO_FACE", issues: list[str] | None = None, result=None) -> None:
        super().__init__(message, code=code)
        self.issues = issues or [code]
        self.result = result
