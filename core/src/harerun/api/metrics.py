"""Prometheus metrics: requests by route and status, detector latency, A/B assignments.

Each app has its own registry (several apps in one test process never collide).
With ``PROMETHEUS_MULTIPROC_DIR`` set (``harerun serve --workers N``), ``/metrics``
adds up every worker process's values.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

from harerun import hookimpl

#: HTTP methods counted by name; any other method (``M0000001X``, ...) is labelled ``other``,
#: so made-up methods cannot add series without bound.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0)
SCORE_BUCKETS = (10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0)
DETECTOR_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "harerun_http_requests_total",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "harerun_http_request_duration_seconds",
            "HTTP request latency",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.detector_latency = Histogram(
            "harerun_detector_duration_seconds",
            "time one detector took on one photo",
            ["detector"],
            buckets=DETECTOR_BUCKETS,
            registry=r,
        )
        self.detector_errors = Counter(
            "harerun_detector_errors_total", "detector runs that raised", ["detector"], registry=r
        )
        self.variants = Counter(
            "harerun_ab_assignments_total", "analyses per A/B experiment variant", ["experiment", "variant"], registry=r
        )
        self.photo_assigned = Counter(
            "harerun_ab_photo_assignments_total",
            "requests to an A/B experiment without a subject id (their variant chosen by the photo's SHA-256)",
            ["experiment"],
            registry=r,
        )
        self.variant_scores = Histogram(
            "harerun_ab_score",
            "detector scores (0-100) per A/B experiment variant",
            ["experiment", "variant", "detector"],
            buckets=SCORE_BUCKETS,
            registry=r,
        )
        self.analyses = Counter(
            "harerun_analyses_total", "analyses by pipeline and outcome code", ["pipeline", "outcome"], registry=r
        )
        self.rejected = Counter(
            "harerun_rejected_total", "requests refused for load (OVERLOADED, TIMEOUT)", ["reason"], registry=r
        )
        self.in_flight = Gauge(
            "harerun_analyses_in_flight", "photos being analysed or queued", registry=r, multiprocess_mode="livesum"
        )

    def render(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)
            return generate_latest(merged)
        return generate_latest(self.registry)

    def record_detector(self, name: str, elapsed_ms: float | None) -> None:
        """One detector run: its latency, or an error when ``elapsed_ms`` is None."""
        if elapsed_ms is None:
            self.detector_errors.labels(name).inc()
        else:
            self.detector_latency.labels(name).observe(elapsed_ms / 1000.0)

    def record_variant(self, payload: dict[str, Any]) -> None:
        """An analysis of an A/B experiment: its variant, how it was assigned and each detector's
        score. Every label comes from the configuration (experiment, variant, pipeline step ids)."""
        variant = payload.get("variant")
        if not variant or ":" not in variant:
            return
        experiment, name = variant.split(":", 1)
        self.variants.labels(experiment, name).inc()
        if payload.get("assigned_by") == "photo":
            self.photo_assigned.labels(experiment).inc()
        for step, result in (payload.get("results") or {}).items():
            if result.get("score") is not None:
                self.variant_scores.labels(experiment, name, step).observe(result["score"])


class DetectorTimer:
    """A pluggy plugin on the engine's host: each detector run goes to ``record(name, ms)``
    (``ms`` None when the detector raised), e.g. :meth:`Metrics.record_detector`."""

    def __init__(self, record: Callable[[str, float | None], None]) -> None:
        self.record = record

    @hookimpl
    def after_detector_run(self, detector_id: str, detector: Any, elapsed_ms: float) -> None:
        self.record(getattr(detector, "name", None) or detector_id, float(elapsed_ms))

    @hookimpl
    def on_detector_error(self, detector_id: str, detector: Any) -> None:
        self.record(getattr(detector, "name", None) or detector_id, None)


class MetricsMiddleware:
    """Pure ASGI middleware: counts and times every HTTP request by its route template.

    Every label comes from a closed set: the route's template (``/api/pipelines/{name}``),
    ``static`` or ``unmatched`` for the path, :data:`METHODS` or ``other`` for the method, and
    the status code."""

    def __init__(self, app: Any, metrics: Metrics, paths: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.metrics = metrics
        self.paths = paths  # route paths, for requests refused before routing

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = [500]

        async def send_status(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            path = getattr(scope.get("route"), "path", None) or self._label(scope.get("path", ""))
            method = scope.get("method", "GET")
            labels = (path, method if method in METHODS else "other", str(status[0]))
            elapsed = time.perf_counter() - t0
            self.metrics.requests.labels(*labels).inc()
            self.metrics.latency.labels(*labels).observe(elapsed)

    def _label(self, path: str) -> str:
        if path in self.paths:
            return path
        return "static" if path.startswith("/static/") else "unmatched"
