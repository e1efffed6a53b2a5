"""The pipeline's ``face`` and ``quality`` blocks."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class FaceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["detect", "skip"] = Field(
        "detect", description="'skip' treats the whole photo as the skin region (pre-cropped skin photos)"
    )
    backend: str = Field(
        "auto", description="face backend: 'auto' (yunet if its model is available, else haar), 'haar', 'yunet'"
    )
    min_face_px: int = Field(48, ge=8, le=4096, description="smallest face side to accept, in original pixels")
    padding: float = Field(
        0.25, ge=0.0, le=1.0, description="margin added around the face box for the ROI, as a fraction of the box size"
    )
    roi_size: int = Field(512, ge=128, le=1024, description="side of the square aligned ROI in pixels")
    close_up_retry: bool = Field(
        True, description="when no face is found, retry on copies padded with a neutral border (close-up selfies)"
    )
    rotation_retry: bool = Field(
        True, description="when still no face is found, retry on copies rotated by +-25 degrees (tilted heads)"
    )
    check_eye_line: bool = Field(
        True, description="re-measure the eye line with the eye cascade (landmark regressors under-report head tilt)"
    )
    detect_max_side: int = Field(
        640, ge=128, le=4096, description="detection runs on a copy whose long side is at most this many pixels"
    )
    coarse_side: int = Field(
        320,
        ge=0,
        le=4096,
        description="look first on a copy with this long side (0: off); a face of 40 px or more there is kept, "
        "else the search runs at detect_max_side",
    )
    backend_params: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="per-backend options, e.g. {haar: {min_neighbors: 5}}; checked against each backend's Params",
    )


class QualityConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reject: bool = Field(False, description="true: a failed quality gate rejects the photo; false: it only warns")
    min_brightness: float = Field(25.0, ge=0, le=100, description="TOO_DARK below this mean L* of the face")
    max_brightness: float = Field(85.0, ge=0, le=100, description="TOO_BRIGHT above this mean L* of the face")
    min_contrast: float = Field(6.0, ge=0, le=100, description="LOW_CONTRAST below this std of L* in the face")
    min_sharpness: float = Field(20.0, ge=0, description="BLURRY below this face-size-normalised variance of Laplacian")
    max_clipped_pct: float = Field(
        5.0, ge=0, le=100, description="OVEREXPOSED above this % of face pixels clipped at 255"
    )
    max_roll_deg: float = Field(20.0, ge=0, le=90, description="TILTED above this roll angle from the eye line")
    min_face_fraction: float = Field(0.02, ge=0, le=1, description="FACE_TOO_SMALL below this face area / image area")
