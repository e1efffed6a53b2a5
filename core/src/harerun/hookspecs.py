"""Every hook a Hare Run plugin may implement.

Hooks are called with keyword arguments; an implementation may accept fewer
arguments than the spec names, so hooks can grow new arguments later.

Two hooks *register* components (the main computation); the lifecycle hooks
are for cross-cutting work only (timing, metrics, logging) and must not change
results.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

PROJECT_NAME = "harerun"
#: Entry-point group that third-party packages use to announce plugins.
ENTRY_POINT_GROUP = "harerun"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_detectors(register: Callable[[type], None]) -> None:
    """Hand the engine this plugin's skin-feature detector classes.

    Called once at start-up. Call ``register(DetectorClass)`` for each class;
    the class needs ``name``, ``version``, ``Params`` and ``analyze(ctx)``
    (see :mod:`harerun.detector`). A name registered twice stops start-up.
    """


@hookspec
def register_face_detectors(register: Callable[[type], None]) -> None:
    """Hand the engine this plugin's face-detection backends.

    Called once at start-up. Call ``register(BackendClass)``; the class needs
    ``name`` and ``detect(image_bgr) -> list[Face]`` (see :mod:`harerun.face`).
    """


@hookspec
def before_detector_run(detector_id: str, detector: Any, ctx: Any) -> None:
    """Called just before the detector step ``detector_id`` runs on ``ctx``."""


@hookspec
def after_detector_run(detector_id: str, detector: Any, result: Any, elapsed_ms: float) -> None:
    """Called after the step ``detector_id`` returned ``result`` in ``elapsed_ms``."""


@hookspec
def on_detector_error(detector_id: str, detector: Any, error: BaseException) -> None:
    """Called when the step ``detector_id`` raised ``error`` (the pipeline goes on)."""


@hookspec
def after_pipeline_run(pipeline: str, result: Any) -> None:
    """Called once per photo with the finished ``AnalysisResult``."""
