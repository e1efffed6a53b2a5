"""Typed, JSON-safe result models.

The same models are the CLI's ``--json`` output and the HTTP API's response
models, so nothing here may hold a numpy scalar or array once serialised:
validators turn numpy numbers into plain floats and ints.
"""

from __future__ import annotations

from math import isfinite
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

Status = Literal["ok", "error", "skipped", "unavailable"]
Severity = Literal["none", "mild", "moderate", "severe"]

# Score bands for ``severity``: a score below the first bound is "none", etc.
SEVERITY_BANDS: tuple[tuple[float, Severity], ...] = (
    (10.0, "none"),
    (35.0, "mild"),
    (65.0, "moderate"),
)


def severity_for(score: float) -> Severity:
    """Map a 0-100 score (0 = clear skin) to its severity band."""
    for upper, band in SEVERITY_BANDS:
        if score < upper:
            return band
    return "severe"


def to_native(value: Any) -> Any:
    """Recursively convert numpy values to JSON-native Python values (NaN and infinities to None)."""
    # Plain Python scalars first: they are nearly all of what detectors report, and each
    # isinstance() test below costs about as much as the rest of the work.
    t = type(value)
    if t is float:
        return value if isfinite(value) else None
    if t is int or t is str or t is bool or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): to_native(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_native(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_native(value.tolist())
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (np.floating, float)):
        f = float(value)
        return f if isfinite(f) else None
    return value


def _score_0_100(v: Any) -> float:
    """``v`` as a float clipped to [0, 100] and rounded to 2 decimals (NaN stays NaN).

    ``min``/``max`` on a Python float: the same value as ``np.clip`` (also for -0.0 and NaN)
    without its dispatch on a scalar.
    """
    return round(min(max(float(v), 0.0), 100.0), 2)


class Evidence(BaseModel):
    """What a detector found, for overlays.

    ``markers`` are circles ``[x, y, r]`` in original-photo pixels. ``mask`` is
    an optional uint8 map on the aligned ROI (0 = nothing, 255 = strongest); it
    is drawn on overlays and never serialised.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    markers: list[list[float]] = Field(default_factory=list)
    mask: Any = Field(default=None, exclude=True, repr=False)

    @field_validator("markers", mode="before")
    @classmethod
    def _markers_native(cls, v: Any) -> Any:
        # Fast path for the usual (N, 3) numeric markers (thousands of pores): one numpy
        # rounding instead of a Python round() per number. Idempotent on the output of
        # FaceContext.to_image_markers, which already rounds with numpy.
        try:
            arr = np.asarray(v, dtype=np.float64)
        except (TypeError, ValueError):
            arr = None
        if arr is not None and arr.ndim == 2 and np.isfinite(arr).all():
            return arr.round(1).tolist()
        return [[round(float(c), 1) for c in m] for m in to_native(v)]


class DetectorResult(BaseModel):
    """One detector's answer for one photo."""

    status: Status = "ok"
    score: float | None = Field(default=None, ge=0, le=100, description="0 = clear skin, 100 = worst")
    severity: Severity | None = None
    zones: dict[str, float] = Field(default_factory=dict, description="per-zone score 0-100")
    measurements: dict[str, Any] = Field(default_factory=dict, description="raw values, units in the names")
    evidence: Evidence = Field(default_factory=Evidence)
    message: str | None = None

    @field_validator("score", mode="before")
    @classmethod
    def _score_native(cls, v: Any) -> Any:
        return None if v is None else _score_0_100(v)

    @field_validator("zones", mode="before")
    @classmethod
    def _zones_native(cls, v: Any) -> Any:
        return {str(k): _score_0_100(s) for k, s in dict(v).items()}

    @field_validator("measurements", mode="before")
    @classmethod
    def _measurements_native(cls, v: Any) -> Any:
        return to_native(dict(v))

    def model_post_init(self, __context: Any) -> None:
        if self.status == "ok" and self.score is not None and self.severity is None:
            self.severity = severity_for(self.score)


class Pose(BaseModel):
    yaw: float = Field(description="degrees; > 0 when the nose points to the image right")
    pitch: float = Field(description="degrees; > 0 when the chin is up")
    roll: float = Field(description="degrees; > 0 when the image-right eye is lower")


class ZoneInfo(BaseModel):
    polygon: list[list[float]] = Field(description="[[x, y], ...] in original-photo pixels (empty: not known)")
    visible: bool = Field(description="false: the zone faces away or lies outside the photo; detectors skip it")


class FaceInfo(BaseModel):
    box: list[int] = Field(description="[x, y, w, h] in original-photo pixels")
    confidence: float
    landmarks: dict[str, list[float]] = Field(
        default_factory=dict,
        description="left_eye, right_eye (centres), nose (tip), mouth_left, mouth_right, chin -> [x, y] "
        "in original pixels; left = image left",
    )
    backend_used: str
    count: int = Field(1, description="faces found in the photo; the largest is analysed")
    warnings: list[str] = Field(default_factory=list)
    pose: Pose | None = Field(None, description="head pose from the Face Mesh (None without one)")
    framing: Literal["frontal", "three_quarter", "profile", "close_up"] | None = Field(
        None, description="close_up: the face is cut by the frame; else by the yaw (None without a mesh)"
    )
    zones: dict[str, ZoneInfo] = Field(default_factory=dict, description="zone -> polygon and visibility")
    landmark_confidence: float | None = Field(None, description="the Face Mesh's face-presence probability")
    dense_landmarks: list[list[float]] | None = Field(
        None, description="the 468 Face Mesh points [x, y, z] in original pixels (pipeline output.dense_landmarks)"
    )


class QualityReport(BaseModel):
    score: float = Field(ge=0, le=100)
    metrics: dict[str, Any] = Field(default_factory=dict)
    issues: list[str] = Field(default_factory=list, description="reason codes")
    passed: bool = True

    @field_validator("metrics", mode="before")
    @classmethod
    def _metrics_native(cls, v: Any) -> Any:
        return to_native(dict(v))


class ImageInfo(BaseModel):
    width: int
    height: int
    format: str | None = None


class AnalysisResult(BaseModel):
    """The whole answer for one photo: what ``harerun analyze --json`` prints."""

    pipeline: str
    variant: str | None = None
    image: ImageInfo
    face: FaceInfo | None
    quality: QualityReport
    results: dict[str, DetectorResult]
    timings_ms: dict[str, float]
    versions: dict[str, str]
