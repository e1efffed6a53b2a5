"""Typed errors. Each carries a reason code, a message that says what to do,
the HTTP status the API answers with and the CLI exit code."""

from __future__ import annotations


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
