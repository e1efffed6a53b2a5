"""Models a plugin has loaded into memory: load once per process, remember failures for a
while, and record how long loading took (``ModelStore.status`` shows it as ``load_ms``)."""

from __future__ import annotations

import threading
import time
from typing import Any

from harerun.modelstore.errors import ModelUnavailable
from harerun.modelstore.local import ResolvedModel

_LOAD_TIMES: dict[tuple[str, str], float] = {}


def record_load(model: ResolvedModel, load_ms: float) -> None:
    """Remember how long loading ``model`` into memory took (shown by :meth:`ModelStore.status`)."""
    model.load_ms = round(float(load_ms), 2)
    _LOAD_TIMES[(model.name, model.version)] = model.load_ms


def recorded_load_ms(name: str, version: str | None) -> float | None:
    """The load time recorded for ``name@version`` in this process, if it was loaded."""
    return _LOAD_TIMES.get((name, version))


def timed_load(model: ResolvedModel, loader) -> Any:
    """Call ``loader(model.path)``, record its duration on ``model`` and for ``status``."""
    t0 = time.perf_counter()
    obj = loader(model.path)
    record_load(model, (time.perf_counter() - t0) * 1000.0)
    return obj


class LoadedModels:
    """Models a plugin has loaded, once per process and key; a failed load is remembered for
    ``retry_after_s`` (a dead S3 endpoint or a missing file must not cost every photo a retry).

    ``get(key, load)`` returns the model for ``key``, calling ``load()`` under a lock the first
    time; a :class:`ModelUnavailable` it raises is raised again for the same key until the time
    is up. ``clear()`` forgets both (tests, or after fixing the configuration).
    """

    def __init__(self, retry_after_s: float = 30.0) -> None:
        self.retry_after_s = retry_after_s
        self._models: dict[Any, Any] = {}
        self._failures: dict[Any, tuple[float, ModelUnavailable]] = {}
        self._lock = threading.Lock()

    def get(self, key, load):
        model = self._models.get(key)
        if model is not None:
            return model
        with self._lock:
            model = self._models.get(key)
            if model is not None:
                return model
            failed = self._failures.get(key)
            if failed is not None and time.monotonic() - failed[0] < self.retry_after_s:
                raise failed[1]
            try:
                model = load()
            except ModelUnavailable as exc:
                self._failures[key] = (time.monotonic(), exc)
                raise
            self._failures.pop(key, None)
            self._models[key] = model
            return model

    def clear(self) -> None:
        with self._lock:
            self._models.clear()
            self._failures.clear()
