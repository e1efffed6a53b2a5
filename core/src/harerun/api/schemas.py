"""Response models of the HTTP API (request bodies are in :mod:`harerun.api.upload`).

The analysis itself is :class:`harerun.results.AnalysisResult`, the same model
``harerun analyze --json`` prints.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field
from typing_extensions import TypeAliasType

from harerun.experiments import AssignedBy
from harerun.modelstore.local import Source
from harerun.results import AnalysisResult, Box, FaceBackend, FaceInfo, ImageInfo, Point, QualityReport

ModelSource = TypeAliasType("ModelSource", Annotated[Source, Field(description="where the model file was found")])
VariantAssignment = TypeAliasType(
    "VariantAssignment",
    Annotated[
        AssignedBy,
        Field(description="subject_id: by the subject id sent; photo: no subject id, by the photo's SHA-256"),
    ],
)


class AnalyzeResponse(AnalysisResult):
    """The analysis (same JSON as ``harerun analyze --json``), plus the overlay when asked."""

    overlay_png: str | None = Field(
        None, description="base64 PNG of the photo with findings drawn on it; only with include_overlay=true"
    )
    subject_hash: str | None = Field(
        None,
        description="HMAC-SHA256 (hex) of the subject id sent, never the id itself; null without one",
        min_length=64,
        max_length=64,
    )
    assigned_by: VariantAssignment | None = Field(
        None, description="how the A/B experiment chose `variant`; null when the pipeline is no experiment"
    )

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "pipeline": "default",
                    "variant": "skin-ab:A",
                    "image": {"width": 512, "height": 512, "format": "JPEG"},
                    "face": {
                        "box": [166, 52, 156, 156],
                        "confidence": 0.93,
                        "landmarks": {"left_eye": [211.0, 112.0]},
                        "backend_used": "yunet",
                        "count": 1,
                        "warnings": [],
                    },
                    "quality": {"score": 88.0, "metrics": {"brightness": 0.51}, "issues": [], "passed": True},
                    "results": {
                        "redness": {
                            "status": "ok",
                            "score": 21.4,
                            "severity": "mild",
                            "zones": {"forehead": 12.0, "left_cheek": 30.5},
                            "measurements": {"red_area_pct": 8.1},
                            "evidence": {"markers": []},
                            "message": None,
                        }
                    },
                    "timings_ms": {"decode": 4.1, "total": 61.0},
                    "versions": {"engine": "0.1.0", "redness": "0.1.0"},
                    "subject_hash": "5f0c3b5e1a1f4c2b9d7a6e8f0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c",
                    "assigned_by": "subject_id",
                }
            ]
        }
    }


class DetectedFace(BaseModel):
    box: Box
    confidence: float
    landmarks: dict[str, Point] = Field(default_factory=dict)


class FaceDetectResponse(BaseModel):
    """v4 face detection: the largest face with its quality report, and every face found."""

    face_detected: bool
    face: FaceInfo | None = Field(description="the largest face (the one an analysis would use)")
    faces: list[DetectedFace] = Field(description="every face found, largest first")
    quality: QualityReport = Field(description="quality score and reason codes for the largest face")
    image: ImageInfo
    pipeline: str = Field(description="pipeline whose face and quality settings were used")
    timings_ms: dict[str, float]

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "face_detected": True,
                    "face": {
                        "box": [166, 52, 156, 156],
                        "confidence": 0.93,
                        "landmarks": {},
                        "backend_used": "haar",
                        "count": 1,
                        "warnings": [],
                    },
                    "faces": [{"box": [166, 52, 156, 156], "confidence": 0.93, "landmarks": {}}],
                    "quality": {"score": 88.0, "metrics": {}, "issues": [], "passed": True},
                    "image": {"width": 512, "height": 512, "format": "JPEG"},
                    "pipeline": "default",
                    "timings_ms": {"face_detect": 20.0, "total": 31.0},
                }
            ]
        }
    }


class ModelStatus(BaseModel):
    name: str
    version: str | None
    available: bool
    source: ModelSource | None = Field(description="local, cache or s3 (None when unavailable)")
    sha256: str | None
    size_bytes: int | None
    load_ms: float | None = Field(description="time to load it into memory in this process, once loaded")
    reason: str | None = Field(description="why it is unavailable, and what to do")
    used_by: list[str] = Field(description="pipelines that use it")


class ModelStatusResponse(BaseModel):
    models: list[ModelStatus]


class DetectorInfo(BaseModel):
    id: str
    plugin: str
    version: str
    package: str | None
    enabled: bool
    params: dict[str, Any]
    params_schema: str | None = Field(
        None, description="the OpenAPI component (#/components/schemas/NAME) that types `params`"
    )
    measurements_schema: str | None = Field(
        None,
        description="the OpenAPI component that types this step's `measurements` in an analysis, when its "
        "plugin declares one",
    )


class PipelineInfo(BaseModel):
    name: str
    description: str
    face_backend: FaceBackend
    quality_reject: bool
    detectors: list[DetectorInfo]
    models: list[str]


class VariantInfo(BaseModel):
    name: str
    pipeline: str
    weight: float


class ExperimentInfo(BaseModel):
    name: str
    description: str
    variants: list[VariantInfo]


class PipelinesResponse(BaseModel):
    default: str
    pipelines: list[PipelineInfo]
    experiments: list[ExperimentInfo]
    unavailable: dict[str, str] = Field(default_factory=dict, description="configured pipelines that failed to load")


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str


class Readiness(BaseModel):
    ready: bool
    pipelines: list[str]
    experiments: list[str]
    warm_up_ms: dict[str, float]
    in_flight: int
    capacity: int
    problems: dict[str, str] = Field(default_factory=dict)
