"""The engine: decode -> face + quality -> ROI/zones -> detectors in pipeline order -> result."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import harerun
from harerun.detector import FaceContext
from harerun.errors import HareRunError, NoUsableFace, UnknownPipeline
from harerun.experiments import ExperimentsFile, load_experiments, photo_key
from harerun.face.stage import FaceStage, run_face_stage
from harerun.host import PluginHost
from harerun.imageio import MAX_BYTES, MAX_PIXELS, WORK_SIDE, load_image
from harerun.pipeline import Pipeline, available_pipelines, default_pipelines_dir, load_pipeline_file, pipeline_path
from harerun.results import AnalysisResult, DetectorResult, ImageInfo


@dataclass
class Run:
    """One analysis with what an overlay needs besides the JSON result.

    ``image`` is the photo as decoded (long side at most the engine's ``work_side``); the
    result's coordinates are in the photo's own pixels (its size is ``result.image``)."""

    result: AnalysisResult
    image: np.ndarray
    ctx: FaceContext | None
    stage: FaceStage


def photo_scale(image: np.ndarray, info: ImageInfo) -> float:
    """Photo pixels per pixel of ``image``, the photo as decoded (1.0 unless it was reduced)."""
    return max(info.width, info.height) / max(image.shape[:2])


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000.0, 2)


class Engine:
    """Holds the plugin host and loaded pipelines; safe to share between threads."""

    def __init__(
        self,
        *,
        host: PluginHost | None = None,
        pipelines_dir: str | Path | None = None,
        experiments_file: str | Path | None = None,
        max_bytes: int = MAX_BYTES,
        max_pixels: int = MAX_PIXELS,
        work_side: int | None = WORK_SIDE,
    ) -> None:
        self.host = host or PluginHost()
        self.pipelines_dir = Path(pipelines_dir) if pipelines_dir else default_pipelines_dir()
        self.experiments_path = Path(experiments_file) if experiments_file else self.pipelines_dir / "experiments.yaml"
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.work_side = work_side
        self._pipelines: dict[str, Pipeline] = {}
        self._experiments: ExperimentsFile | None = None
        self._lock = threading.Lock()

    # -- pipelines and experiments ---------------------------------------------------

    def pipeline(self, name: str) -> Pipeline:
        """A pipeline by name (from the pipelines directory) or by file path, loaded once."""
        with self._lock:
            if name not in self._pipelines:
                self._pipelines[name] = load_pipeline_file(pipeline_path(name, self.pipelines_dir), self.host)
            return self._pipelines[name]

    @property
    def experiments(self) -> ExperimentsFile:
        with self._lock:
            if self._experiments is None:
                self._experiments = load_experiments(self.experiments_path)
            return self._experiments

    def pipeline_names(self) -> list[str]:
        return available_pipelines(self.pipelines_dir)

    def choose(self, name: str, subject_id: str | None) -> tuple[Pipeline, str | None]:
        """Resolve ``name`` (a pipeline or an experiment) to a pipeline and variant name.

        An experiment assigns a sticky variant by ``subject_id``; without one the first variant
        (the control) is used (:meth:`run` passes the photo's hash instead, see there).
        """
        experiment = self.experiments.experiments.get(name)
        if experiment is None:
            return self.pipeline(name), None
        variant = experiment.assign(name, subject_id) if subject_id else experiment.variants[0]
        return self.pipeline(variant.pipeline), f"{name}:{variant.name}"

    def check_pipeline_name(self, name: str) -> None:
        if name not in self.experiments.experiments:
            self.pipeline(name)  # raises UnknownPipeline

    # -- analysis -------------------------------------------------------------------

    def decode(self, image: Any) -> tuple[np.ndarray, ImageInfo]:
        """The photo as BGR, its long side at most ``work_side``, and the photo's own size; the
        face stage takes their :func:`photo_scale` to report coordinates in photo pixels."""
        return load_image(image, max_bytes=self.max_bytes, max_pixels=self.max_pixels, max_side=self.work_side)

    def face_stage(self, bgr: np.ndarray, pipe: Pipeline, *, scale: float = 1.0) -> FaceStage:
        """The face stage of ``pipe`` on a decoded photo, exactly as :meth:`run` runs it (training
        frames its photos with this, so a model sees what it will be served); ``scale``: photo
        pixels per pixel of ``bgr`` (:func:`photo_scale`)."""
        return run_face_stage(
            bgr,
            face_cfg=pipe.spec.face,
            quality_cfg=pipe.spec.quality,
            host=self.host,
            dense_landmarks=pipe.spec.output.dense_landmarks,
            scale=scale,
        )

    def run(self, image: Any, *, pipeline: str = "default", subject_id: str | None = None) -> Run:
        """Analyse one photo. Raises ImageError, PipelineError or NoUsableFace.

        For an A/B experiment without a ``subject_id`` the photo's SHA-256 is the assignment key
        (:func:`harerun.experiments.photo_key`, as the HTTP API does), so photos spread over the
        variants by their weights instead of all running the control.
        """
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        if subject_id is None and pipeline in self.experiments.experiments:
            subject_id = _photo_subject(image, max_bytes=self.max_bytes)
        pipe, variant = self.choose(pipeline, subject_id)
        bgr, info = self.decode(image)
        timings["decode"] = _ms(t0)

        stage = self.face_stage(bgr, pipe, scale=photo_scale(bgr, info))
        timings.update(stage.timings_ms)
        if stage.ctx is None or stage.face is None:
            raise NoUsableFace(
                "no face found in the photo; use a well-lit frontal photo where the face fills at least a fifth "
                "of the frame, or a pipeline with `face: {mode: skip}` for pre-cropped skin photos",
                code="NO_FACE",
                issues=stage.quality.issues or ["NO_FACE"],
            )
        if not stage.quality.passed and pipe.spec.quality.reject:
            raise NoUsableFace(
                f"the photo failed the quality gate ({', '.join(stage.quality.issues)}); retake it "
                f"or use a pipeline with `quality: {{reject: false}}`",
                code="QUALITY_REJECTED",
                issues=stage.quality.issues,
            )

        results: dict[str, DetectorResult] = {}
        for step in pipe.steps:
            if not step.enabled:
                results[step.id] = DetectorResult(status="skipped", message="disabled in the pipeline")
                continue
            results[step.id], timings[f"detector.{step.id}"] = self._run_step(step.id, step.detector, stage.ctx)
        if not pipe.spec.output.evidence:
            for r in results.values():
                r.evidence.markers = []
        timings["total"] = _ms(t0)

        result = AnalysisResult(
            pipeline=pipe.name,
            variant=variant,
            image=info,
            face=stage.face,
            quality=stage.quality,
            results=results,
            timings_ms=timings,
            versions={"engine": harerun.__version__, **{s.plugin: s.detector.version for s in pipe.steps}},
        )
        self.host.after_pipeline_run(pipeline=pipe.name, result=result)
        return Run(result=result, image=bgr, ctx=stage.ctx, stage=stage)

    def _run_step(self, step_id: str, detector: Any, ctx: FaceContext) -> tuple[DetectorResult, float]:
        self.host.before_detector_run(step_id, detector, ctx)
        t0 = time.perf_counter()
        try:
            result = detector.analyze(ctx)
            if not isinstance(result, DetectorResult):
                raise TypeError(f"analyze() returned {type(result).__name__}, expected DetectorResult")
        except Exception as exc:
            elapsed = _ms(t0)
            self.host.on_detector_error(step_id, detector, exc)
            status = "unavailable" if getattr(exc, "code", None) == "MODEL_UNAVAILABLE" else "error"
            return DetectorResult(status=status, message=f"{type(exc).__name__}: {exc}"), elapsed
        elapsed = _ms(t0)
        self.host.after_detector_run(step_id, detector, result, elapsed)
        return result, elapsed


_default_engine: Engine | None = None
_default_lock = threading.Lock()


def default_engine() -> Engine:
    global _default_engine
    with _default_lock:
        if _default_engine is None:
            _default_engine = Engine()
        return _default_engine


def analyze(image: Any, *, pipeline: str = "default", subject_id: str | None = None) -> AnalysisResult:
    """Analyse a photo (path, bytes or BGR array) with the default engine."""
    return default_engine().run(image, pipeline=pipeline, subject_id=subject_id).result


__all__ = ["Engine", "Run", "analyze", "default_engine", "HareRunError", "UnknownPipeline"]


def _photo_subject(image: Any, *, max_bytes: int) -> str | None:
    """The A/B key of a photo given without a subject id: its SHA-256 (of the file's bytes, the
    encoded bytes or the array's), or None when it cannot be read here (decoding says why)."""
    if isinstance(image, bytes | bytearray):
        return photo_key(bytes(image))
    if isinstance(image, np.ndarray):
        return photo_key(np.ascontiguousarray(image).tobytes())
    if isinstance(image, str | Path):
        try:
            path = Path(image)
            if path.is_file() and path.stat().st_size <= max_bytes:
                return photo_key(path.read_bytes())
        except OSError:
            return None
    return None
