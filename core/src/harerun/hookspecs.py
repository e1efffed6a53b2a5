"""Every hook a Hare Run plugin may implement.

Hooks are called with keyword arguments; an implementation may accept fewer
arguments than the spec names, so hooks can grow new arguments later.

Three hooks *register* components (the main computation, and the plugin's own
commands); the lifecycle hooks are for cross-cutting work only (timing, metrics,
logging) and must not change results.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import pluggy

if TYPE_CHECKING:
    from harerun.detector import Detector, FaceContext
    from harerun.results import AnalysisResult, DetectorResult

PROJECT_NAME = "harerun"
#: Entry-point group that third-party packages use to announce plugins.
ENTRY_POINT_GROUP = "harerun"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class RegisterCommand(Protocol):
    """The ``register`` callback that :func:`register_commands` receives."""

    def __call__(
        self,
        name: str,
        run: Callable[[argparse.Namespace], int],
        *,
        add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
        help: str | None = None,
        description: str | None = None,
    ) -> None: ...


# -- registration -----------------------------------------------------------------


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

    Called once at start-up. Call ``register(BackendClass)`` for each class; the
    class needs (see :mod:`harerun.face.backends` for the built-in ones):

    * ``name``: a non-empty string, what pipelines write as ``face.backend``;
    * ``version``: a string;
    * ``Params``: a pydantic model; the pipeline's ``face.backend_params.<name>`` are
      validated against it (subclass :class:`harerun.detector.DetectorParams` so that
      unknown keys are refused);
    * ``__init__(params)``: takes a ``Params`` instance; raises
      :class:`harerun.face.ModelMissing` when its model is not installed (the face
      stage then falls back to ``haar`` and says so in the result's warnings);
    * ``detect(image_bgr) -> list[Face]``: the faces (:class:`harerun.face.Face`) in
      the pixels of the BGR uint8 image it was given. Scaling, retries and picking
      the face to analyse are the face stage's job.

    One instance per backend and params is cached and shared by all threads: guard
    state that is not thread-safe with a lock. A name registered twice stops start-up.
    """


@hookspec
def register_commands(register: RegisterCommand) -> None:
    """Add this plugin's commands to the ``harerun`` command line.

    Called when the command line is built. For each command call::

        register(name, run, add_arguments=..., help=..., description=...)

    ``name`` is one word for a top-level command (``harerun NAME``) or ``"train NAME"``
    for a command under the shared ``train`` group (``harerun train acne-grade``).
    ``add_arguments(parser)`` adds the command's options to its
    :class:`argparse.ArgumentParser`; ``run(args)`` runs it with the parsed
    :class:`argparse.Namespace` and returns the exit code (0 ok, 2 bad input).
    ``help`` is the line in ``--help`` listings, ``description`` the text atop the
    command's own ``--help``.

    Every ``harerun`` invocation builds the command line, so import heavy libraries
    inside ``run``, not when registering. A name that the core or another plugin
    already uses stops the command line with a message naming both.
    """


# -- lifecycle: cross-cutting work only ---------------------------------------------


@hookspec
def before_detector_run(detector_id: str, detector: Detector, ctx: FaceContext) -> None:
    """Called just before the pipeline step ``detector_id`` runs ``detector`` on the face ``ctx``."""


@hookspec
def after_detector_run(detector_id: str, detector: Detector, result: DetectorResult, elapsed_ms: float) -> None:
    """Called after the step ``detector_id`` returned ``result`` in ``elapsed_ms`` milliseconds."""


@hookspec
def on_detector_error(detector_id: str, detector: Detector, error: BaseException) -> None:
    """Called when the step ``detector_id`` raised ``error`` (its result is ``status: "error"``
    or ``"unavailable"``; the pipeline goes on)."""


@hookspec
def after_pipeline_run(pipeline: str, result: AnalysisResult) -> None:
    """Called once per photo with the pipeline's name and the finished result."""
