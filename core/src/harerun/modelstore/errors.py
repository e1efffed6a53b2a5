"""The two ways a model look-up fails: :class:`ModelUnavailable` (not found, not downloadable,
not verified; ``reason`` lists every place tried) and :class:`InvalidModelSpec`."""

from __future__ import annotations

from harerun.errors import HareRunError


class ModelUnavailable(HareRunError):
    """A model cannot be found, downloaded or verified. ``reason`` says why and what to do."""

    code = "MODEL_UNAVAILABLE"
    http_status = 503
    exit_code = 4

    def __init__(self, reason: str, *, name: str | None = None, version: str | None = None, code: str | None = None):
        label = f"{name}@{version}" if name and version else (name or "model")
        super().__init__(
            f"model {label} is unavailable: {reason}", code=code, details={"name": name, "version": version}
        )
        self.reason = reason
        self.name = name
        self.version = version


class InvalidModelSpec(ModelUnavailable):
    """A model spec that is not ``name`` or ``name@version``."""

    code = "INVALID_MODEL_SPEC"
    http_status = 400
    exit_code = 2
