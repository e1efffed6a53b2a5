"""Typed, JSON-safe result models.

The same models are the CLI's ``--json`` output and the HTTP API's response
models, so nothing here may hold a numpy scalar or array once serialised:
validators turn numpy numbers into plain floats and ints.
"""

from __future__ import annotations

from math import isfinite
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator
from typing_extensions import TypeAliasType

# The closed sets of values a result holds, each said once here. Named aliases: the JSON Schema
# (and so the API's OpenAPI document) shows each as a component of its own, e.g. ``Severity``.
Status = TypeAliasType(
    "DetectorStatus",
    Annotated[
        Literal["ok", "error", "skipped", "unavailable"],
        Field(
            description="ok: measured; error: the detector raised; skipped: nothing to measure or disabled; "
            "unavailable: a model or library it needs is missing"
        ),
    ],
)
Severity = TypeAliasType(
    "Severity",
    Annotated[
        Literal["none", "mild", "moderate", "severe"],
        Field(description="score < 10 none, < 35 mild, < 65 moderate, else severe"),
    ],
)
#: Quality reason codes (``QualityReport.issues``), as :mod:`harerun.face.quality` checks them.
QUALITY_ISSUES = (
    "NO_FACE",
    "FACE_UNCERTAIN",
    "MULTIPLE_FACES",
    "FACE_TOO_SMALL",
    "TOO_DARK",
    "TOO_BRIGHT",
    "BLURRY",
    "TILTED",
    "OVEREXPOSED",
    "LOW_CONTRAST",
)
QualityIssue = TypeAliasType(
    "QualityIssue",
    Annotated[Literal[QUALITY_ISSUES], Field(description="a reason the photo is a poor basis for skin analysis")],  # type: ignore[valid-type]
)
#: ``FaceInfo.warnings``: what the face stage had to work around.
FACE_WARNINGS = (
    "MULTIPLE_FACES",  # more than one face: the largest is analysed
    "FACE_BACKEND_FALLBACK",  # the pipeline's face backend has no model here: haar was used
)
FaceWarning = TypeAliasType(
    "FaceWarning",
    Annotated[
        Literal[FACE_WARNINGS],  # type: ignore[valid-type]
        Field(
            description="MULTIPLE_FACES: the largest face is analysed; FACE_BACKEND_FALLBACK: the pipeline's "
            "face backend has no model on the server, haar was used"
        ),
    ],
)
Framing = TypeAliasType(
    "Framing",
    Annotated[
        Literal["frontal", "three_quarter", "profile", "close_up"],
        Field(description="close_up: the face is cut by the frame; else by the yaw"),
    ],
)
#: A face backend's registered name (``harerun plugins list``), ``auto`` in a pipeline, ``skip`` when the
#: pipeline has ``face: {mode: skip}``. Backends are plugins, so the set is the plugin host's registry;
#: the API's OpenAPI document lists the names registered on the server.
FaceBackend = TypeAliasType("FaceBackend", Annotated[str, Field(description="face backend name")])
Point = Annotated[list[float], Field(min_length=2, max_length=2, description="[x, y] in original-photo pixels")]
Box = Annotated[list[int], Field(min_length=4, max_length=4, description="[x, y, w, h] in original-photo pixels")]
Marker = Annotated[list[float], Field(min_length=3, max_length=3, description="a circle [x, y, r] in photo pixels")]

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

    markers: list[Marker] = Field(default_factory=list)
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
    polygon: list[Point] = Field(description="[[x, y], ...] in original-photo pixels (empty: not known)")
    visible: bool = Field(description="false: the zone faces away or lies outside the photo; detectors skip it")


class FaceInfo(BaseModel):
    box: Box
    confidence: float
    landmarks: dict[str, Point] = Field(
        default_factory=dict,
        description="left_eye, right_eye (centres), nose (tip), mouth_left, mouth_right, chin -> [x, y] "
        "in original pixels; left = image left",
    )
    backend_used: FaceBackend
    count: int = Field(1, description="faces found in the photo; the largest is analysed")
    warnings: list[FaceWarning] = Field(default_factory=list)
    pose: Pose | None = Field(None, description="head pose from the Face Mesh (None without one)")
    framing: Framing | None = Field(
        None, description="close_up: the face is cut by the frame; else by the yaw (None without a mesh)"
    )
    zones: dict[str, ZoneInfo] = Field(default_factory=dict, description="zone -> polygon and visibility")
    landmark_confidence: float | None = Field(None, description="the Face Mesh's face-presence probability")
    dense_landmarks: list[Annotated[list[float], Field(min_length=3, max_length=3)]] | None = Field(
        None, description="the 468 Face Mesh points [x, y, z] in original pixels (pipeline output.dense_landmarks)"
    )


class QualityReport(BaseModel):
    score: float = Field(ge=0, le=100)
    metrics: dict[str, Any] = Field(default_factory=dict)
    issues: list[QualityIssue] = Field(default_factory=list, description="reason codes")
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
