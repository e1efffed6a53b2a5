"""What the routes share: the engine, the worker pool, metrics, and the start-up state.

Built once per app in its lifespan (:func:`Service.start`): pipelines are loaded and
every pipeline is run once on a sample photo so models are in memory before the
first request.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from harerun.api.errors import ServiceUnavailable
from harerun.api.metrics import DetectorTimer, Metrics
from harerun.api.settings import Settings
from harerun.api.workers import WorkerPool
from harerun.engine import Engine
from harerun.errors import HareRunError, UnknownPipeline
from harerun.experiments import photo_key, subject_hash
from harerun.face.backends import YUNET_MODEL_SPEC
from harerun.host import did_you_mean
from harerun.modelstore import ModelStore, ModelUnavailable, local_only_in_this_thread
from harerun.pipeline import Pipeline

log = logging.getLogger("harerun.api")

#: Plugin name of the detector timer on the engine's host.
DETECTOR_TIMER = "harerun-api-metrics"
#: Face backends whose model comes from the model store, and the spec they use.
BACKEND_MODELS = {"auto": YUNET_MODEL_SPEC, "yunet": YUNET_MODEL_SPEC}
#: A job for :meth:`Service.run`: ``job(service, *args)``, a module-level function so that it
#: pickles for analysis processes (:func:`analyze_job`, :func:`detect_job`).
Job = Callable[..., Any]


def sample_photo() -> np.ndarray:
    """scikit-image's bundled astronaut photo (public domain), BGR: a real face for warm-up."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])


def required_models(pipe: Pipeline) -> list[str]:
    """The models a pipeline needs: :func:`pipeline_models`, less YuNet for the ``auto`` backend
    when MediaPipe's face models are installed (``auto`` then only falls back to YuNet)."""
    from harerun.face import mediapipe

    optional = {BACKEND_MODELS["auto"]} if pipe.spec.face.backend == "auto" and mediapipe.available() else set()
    return [m for m in pipeline_models(pipe) if m not in optional]


def pipeline_models(pipe: Pipeline) -> list[str]:
    """Model specs a pipeline uses: its face backend's and any detector's ``model`` param."""
    specs = []
    if pipe.spec.face.mode != "skip" and pipe.spec.face.backend in BACKEND_MODELS:
        specs.append(BACKEND_MODELS[pipe.spec.face.backend])
    for step in pipe.steps:
        model = getattr(getattr(step.detector, "params", None), "model", None)
        if isinstance(model, str) and model:
            specs.append(model)
    return specs


@dataclass
class Service:
    settings: Settings
    engine: Engine
    pool: WorkerPool
    metrics: Metrics
    pipelines: dict[str, Pipeline] = field(default_factory=dict)
    pipeline_errors: dict[str, str] = field(default_factory=dict)
    warm_up_ms: dict[str, float] = field(default_factory=dict)
    ready: bool = False
    not_ready_reason: str = "starting up"
    #: Models the loaded pipelines need that are not on this machine: spec -> why.
    missing_models: dict[str, str] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def create(cls, settings: Settings, metrics: Metrics | None = None) -> Service:
        if settings.opencv_threads:
            # Photos are analysed in parallel already: OpenCV's pool on top only oversubscribes the cores.
            cv2.setNumThreads(settings.opencv_threads)
        engine = Engine(
            pipelines_dir=settings.pipelines_dir,
            experiments_file=settings.experiments_file,
            max_bytes=settings.max_upload_bytes,
            max_pixels=settings.max_pixels,
        )
        metrics = metrics or Metrics()
        engine.host.add_observer(DetectorTimer(metrics.record_detector), DETECTOR_TIMER)
        pool = WorkerPool(
            settings.analysis_threads,
            settings.queue_size,
            processes=settings.analysis_processes,
            initializer=_init_analysis_process,
            initargs=(settings,),
            thread_initializer=local_only_in_this_thread,
            retry_after_s=settings.retry_after_s,
            on_change=metrics.in_flight.set,
        )
        return cls(settings=settings, engine=engine, pool=pool, metrics=metrics)

    async def run(self, job: Job, *args: Any) -> Any:
        """Run ``job(service, *args)`` (:func:`analyze_job`, :func:`detect_job`) on the pool: on a
        thread of this process with this service, or in an analysis process with that process's
        service, whose detector timings are recorded here."""
        if not self.pool.processes:
            return await self.pool.run(job, self, *args)
        out, observed = await self.pool.run(_process_job, job, *args)
        for name, ms in observed:
            self.metrics.record_detector(name, ms)
        return out

    # -- start-up ------------------------------------------------------------------

    def start(self) -> None:
        """Load every pipeline, check the default, warm up. Raises if the default cannot be used."""
        for name in self.engine.pipeline_names():
            try:
                self.pipelines[name] = self.engine.pipeline(name)
            except Exception as exc:  # one bad file (or plugin) must not stop the others from loading
                known = isinstance(exc, HareRunError)
                message = exc.message if known else f"{name}.yaml: {type(exc).__name__}: {str(exc)[:500]}"
                self.pipeline_errors[name] = message
                log.error("pipeline %s cannot be used: %s", name, message, exc_info=not known)
        experiments = self.engine.experiments.experiments  # raises on a broken experiments file
        for exp_name, exp in experiments.items():
            for v in exp.variants:
                if v.pipeline not in self.pipelines:
                    self.pipeline_errors[f"{exp_name}:{v.name}"] = (
                        f"experiment {exp_name} variant {v.name} uses pipeline '{v.pipeline}', which is not loaded"
                    )
        default = self.settings.default_pipeline
        self.resolve(default)  # raises UnknownPipeline with the choices
        if default in self.pipeline_errors:
            raise HareRunError(f"the default pipeline '{default}' cannot be used: {self.pipeline_errors[default]}")
        if self.settings.warm_up:
            self.warm_up()
        self.pool.start()  # analysis processes load and warm up before /ready says yes
        if self.pipeline_errors:
            self.not_ready_reason = "some pipelines cannot be used: " + "; ".join(
                f"{k}: {v.splitlines()[0]}" for k, v in self.pipeline_errors.items()
            )
        self.ready = True

    def warm_up(self) -> None:
        photo = sample_photo()
        for name in self.pipelines:
            t0 = time.perf_counter()
            try:
                self.engine.run(photo, pipeline=name)
            except HareRunError as exc:  # a strict quality gate may refuse the sample; models are loaded anyway
                log.info("warm-up of %s: %s", name, exc.message)
            self.warm_up_ms[name] = round((time.perf_counter() - t0) * 1000.0, 1)

    # -- models ----------------------------------------------------------------------

    def store(self) -> ModelStore:
        """The model store as configured by the settings (falling back to the environment)."""
        s = self.settings
        base = ModelStore.from_env()
        if all(v is None for v in (s.model_dir, s.cache_dir, s.s3_bucket, s.s3_endpoint_url)):
            return base
        return ModelStore(
            s.model_dir or base.model_dir,
            s.cache_dir or base.cache_dir,
            s3_bucket=s.s3_bucket or base.s3_bucket,
            s3_prefix=s.s3_prefix,
            s3_endpoint_url=s.s3_endpoint_url or base.s3_endpoint_url,
            # then where the environment's store looks (the project's own models stay usable)
            fallback_dirs=[d for d in (base.model_dir, *base.fallback_dirs) if d is not None],
        )

    def check_models(self, *, fetch: bool = False) -> dict[str, str]:
        """Which models the loaded pipelines need are not on this machine (``fetch``: try to
        download them first); kept in :attr:`missing_models`, which ``/ready`` reports."""
        specs = sorted({m for pipe in self.pipelines.values() for m in required_models(pipe)})
        store, missing = self.store(), {}
        for row in store.status(specs, remote=False):
            if not row["available"] and fetch:
                try:
                    store.fetch(f"{row['name']}@{row['version']}" if row["version"] else row["name"])
                    continue
                except ModelUnavailable as exc:
                    row["reason"] = exc.reason
            if not row["available"]:
                missing[f"{row['name']}@{row['version']}" if row["version"] else row["name"]] = row["reason"]
        self.missing_models = missing
        return missing

    def watch_models(self, every_s: float = 30.0) -> None:
        """While models are missing, try to fetch them every ``every_s`` seconds on a thread of its
        own (never on a request's path); analysis threads and processes then find them in the cache."""

        def loop() -> None:
            while self.missing_models and not self._stop.wait(every_s):
                before = set(self.missing_models)
                try:
                    now = self.check_models(fetch=True)
                except Exception:  # a watcher must not die of one bad look-up
                    log.exception("checking models failed")
                    continue
                if set(now) != before:
                    log.info("models missing now: %s", ", ".join(now) or "none")

        if self.missing_models:
            threading.Thread(target=loop, name="harerun-model-watch", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self.pool.shutdown()

    # -- requests --------------------------------------------------------------------

    def experiment_names(self) -> list[str]:
        return list(self.engine.experiments.experiments)

    def resolve(self, name: str | None) -> str:
        """A pipeline or experiment name a client may use; never a file path."""
        name = name or self.settings.default_pipeline
        if name in self.pipelines or name in self.engine.experiments.experiments:
            return name
        if name in self.pipeline_errors:
            raise UnknownPipeline(
                f"pipeline '{name}' is configured but cannot be used: {self.pipeline_errors[name].splitlines()[0]}"
            )
        choices = [*self.pipelines, *self.experiment_names()]
        raise UnknownPipeline(
            f"pipeline '{name[:128]}' not found{did_you_mean(name, choices)} "
            f"(available: {', '.join(choices) or 'none'}; GET /api/pipelines lists them)"
        )

    def check_ready(self) -> None:
        if not self.ready:
            raise ServiceUnavailable(
                f"not ready: {self.not_ready_reason}", code="NOT_READY", retry_after_s=self.settings.retry_after_s
            )


# -- jobs: run on a pool thread or in an analysis process (Service.run) ---------------------------


def analyze_job(
    service: Service, data: bytes, pipeline: str, subject_id: str | None, include_overlay: bool | None
) -> dict[str, Any]:
    """The analysis JSON, plus the overlay when asked, the subject id's hash and how an A/B
    experiment assigned the variant (a request without a subject id: by the photo's hash)."""
    from harerun.overlay import draw_overlay, encode_png

    engine = service.engine
    experiment = pipeline in engine.experiments.experiments
    key = subject_id if subject_id or not experiment else photo_key(data)
    run = engine.run(data, pipeline=pipeline, subject_id=key)
    payload = run.result.model_dump(mode="json")
    payload["subject_hash"] = subject_hash(subject_id, service.settings.subject_hash_secret) if subject_id else None
    payload["assigned_by"] = None if not experiment else ("subject_id" if subject_id else "photo")
    want = include_overlay
    if want is None:
        want = engine.pipeline(run.result.pipeline).spec.output.overlay
    if want:
        image = draw_overlay(run)
        h, w = image.shape[:2]
        scale = service.settings.overlay_max_side / max(h, w)
        if scale < 1.0:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        payload["overlay_png"] = base64.b64encode(encode_png(image)).decode("ascii")
    return payload


def detect_job(service: Service, data: bytes, pipeline: str) -> dict[str, Any]:
    """The faces, the largest face's quality report and the photo size."""
    from harerun.engine import photo_scale
    from harerun.face.stage import face_summary, run_face_stage

    t0 = time.perf_counter()
    engine = service.engine
    pipe, _ = engine.choose(pipeline, None)
    bgr, info = engine.decode(data)
    stage = run_face_stage(
        bgr,
        face_cfg=pipe.spec.face,
        quality_cfg=pipe.spec.quality,
        host=engine.host,
        scale=photo_scale(bgr, info),
    )
    faces = [face_summary(f) for f in stage.faces]
    timings = {k: round(float(v), 2) for k, v in stage.timings_ms.items()}
    timings["total"] = round((time.perf_counter() - t0) * 1000.0, 2)
    return {
        "face_detected": stage.face is not None,
        "face": None if stage.face is None else stage.face.model_dump(mode="json"),
        "faces": faces,
        "quality": stage.quality.model_dump(mode="json"),
        "image": info.model_dump(mode="json"),
        "pipeline": pipe.name,
        "timings_ms": timings,
    }


# -- analysis processes (HARERUN_ANALYSIS_PROCESSES > 0) ----------------------------------

_process_service: Service | None = None


#: Detector runs of the current job in an analysis process, handed back with its result.
_detector_runs: list[tuple[str, float | None]] = []


def _init_analysis_process(settings: Settings) -> None:
    """Runs once in each analysis process: its own engine, pipelines loaded and warmed up."""
    global _process_service
    local = settings.model_copy(update={"analysis_processes": 0, "analysis_threads": 1})
    service = Service.create(local)
    # Detector runs go back to the server's metrics, not to this process's.
    service.engine.host.remove_observer(DETECTOR_TIMER)
    service.engine.host.add_observer(DetectorTimer(lambda name, ms: _detector_runs.append((name, ms))), DETECTOR_TIMER)
    service.start()
    local_only_in_this_thread()  # jobs run on this thread: models come from start-up, never from S3 mid-photo
    _process_service = service


def _process_job(job: Job, *args: Any) -> tuple[Any, list[tuple[str, float | None]]]:
    _detector_runs.clear()
    out = job(_process_service, *args)
    return out, list(_detector_runs)
