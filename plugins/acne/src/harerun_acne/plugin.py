"""The ``acne`` detector: inflammatory and non-inflammatory lesion candidates, Hayashi grade."""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
from pydantic import Field, field_validator

from harerun import hookimpl
from harerun.detector import Detector, DetectorParams, FaceContext, max_magnification_param
from harerun.modelstore import ModelUnavailable, parse_spec
from harerun.results import DetectorResult, Evidence
from harerun_acne import algorithm, lesion_net

#: Pixel-valued params are given for this ROI size and scaled to the actual ROI.
REFERENCE_ROI_PX = 512


class AcneParams(DetectorParams):
    max_magnification: float = max_magnification_param(
        3.5,
        "lesions 1-3 mm across "
        "fade out of smaller faces (val recall 0.40 at x0.9, 0.32 at x2.1, 0.25 at x2.7, 0.16 at x3.8)",
    )
    method: Literal["net", "dog"] = Field(
        "net",
        description="'net': the learned lesion network (model store, TFLite); 'dog': difference-of-Gaussians "
        "candidates kept by the logistic candidate filter. 'net' falls back to 'dog' when its model is unavailable",
    )
    model: str = Field(
        "acne-lesions@1", description="lesion network for method 'net', as name@version in the model store"
    )
    net_threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="heatmap peak a lesion needs with method 'net'; default: the model's own threshold "
        "(F1-optimal on held-out train photos, in its manifest entry)",
    )
    center_sigma_px: float = Field(1.2, ge=0.5, le=6.0, description="DoG centre sigma, px on a 512-px ROI")
    surround_sigma_px: float = Field(5.0, ge=1.5, le=30.0, description="DoG surround sigma, px on a 512-px ROI")
    lightness_weight: float = Field(
        0.3, ge=0.0, le=3.0, description="weight of darkness (-L*) next to redness (a*) in the blob response"
    )
    min_response: float = Field(2.0, ge=0.1, le=30.0, description="minimum blob response of a candidate (a* units)")
    min_separation_px: int = Field(
        3, ge=1, le=20, description="minimum distance between two lesions, px on a 512-px ROI"
    )
    min_probability: float = Field(
        0.18, ge=0.0, le=1.0, description="candidate-filter probability a candidate needs to count as a lesion"
    )
    max_radius_px: float = Field(
        10.0, ge=1.0, le=60.0, description="largest reported lesion radius, px on a 512-px ROI"
    )
    inflamed_delta_a: float = Field(
        3.0, ge=0.0, le=40.0, description="redness contrast Δa* at or above which a lesion counts as inflamed"
    )
    restrict_to_zones: bool = Field(
        True,
        description="report only lesions on the visible face (skin inside the mesh's face outline; the face "
        "zones when there is no mesh); false counts every lesion on the skin mask (neck, background)",
    )
    half_faces_in_roi: float | None = Field(
        None,
        ge=1.0,
        le=2.0,
        description="how many half faces the ROI shows (2 = frontal face, 1 = profile); the Hayashi "
        "grade uses count / half_faces_in_roi. Default: from the head pose (1 + cos yaw; 2 without a mesh)",
    )

    @field_validator("model")
    @classmethod
    def _model_spec(cls, v: str) -> str:
        try:
            parse_spec(v)
        except ModelUnavailable as exc:
            raise ValueError(exc.reason) from None
        return v


class AcneDetector(Detector, name="acne", version="0.1.0", params=AcneParams):
    """Acne lesions from the learned lesion network (:mod:`harerun_acne.lesion_net`), or DoG blobs
    of a* redness and L* darkness kept by a trained candidate filter (:mod:`harerun_acne.algorithm`).

    Grade and score follow the Hayashi lesion-count bands (see :mod:`harerun_acne.algorithm`).
    """

    def analyze(self, ctx: FaceContext) -> DetectorResult:
        p: AcneParams = self.params
        if small := ctx.too_small_for("counting acne lesions", max_magnification=p.max_magnification):
            return small
        size = ctx.image.shape[0]
        s = size / REFERENCE_ROI_PX
        method, note = p.method, None
        if method == "net":
            try:
                model = lesion_net.load_lesion_model(p.model)
            except ModelUnavailable as exc:
                method, note = "dog", f"lesion network {p.model} unavailable, used the DoG detector: {exc.reason}"
        if method == "net":
            threshold = p.net_threshold if p.net_threshold is not None else model.threshold
            lesions = lesion_net.detect_lesions_net(
                ctx.image,
                ctx.lab,
                model,
                threshold=lesion_net.DEFAULT_THRESHOLD if threshold is None else threshold,
                max_radius_px=p.max_radius_px * s,
            )
        else:
            lesions = self._dog_lesions(ctx, s)
        result = self._summarise(ctx, lesions)
        result.measurements["method"] = method
        if note:
            result.measurements["method_note"] = note
        return result

    def _dog_lesions(self, ctx: FaceContext, s: float) -> np.ndarray:
        p: AcneParams = self.params
        return algorithm.detect_lesions(
            ctx.lab,
            ctx.skin_mask,
            center_sigma_px=p.center_sigma_px * s,
            surround_sigma_px=p.surround_sigma_px * s,
            lightness_weight=p.lightness_weight,
            min_response=p.min_response,
            min_separation_px=max(1, round(p.min_separation_px * s)),
            min_probability=p.min_probability,
            max_radius_px=p.max_radius_px * s,
        )

    def _summarise(self, ctx: FaceContext, lesions: np.ndarray) -> DetectorResult:
        """Count the lesion rows on the visible face: score, grade, zones, markers."""
        p: AcneParams = self.params
        area = ctx.face_skin if p.restrict_to_zones else ctx.skin_mask
        lesions = lesions[area[lesions[:, 1].astype(int), lesions[:, 0].astype(int)] > 0]
        count = len(lesions)
        half_faces = p.half_faces_in_roi if p.half_faces_in_roi is not None else ctx.half_faces
        per_half = count / half_faces
        inflamed = int(np.count_nonzero(lesions[:, 3] >= p.inflamed_delta_a)) if count else 0
        skin_px = cv2.countNonZero(area)
        xs = lesions[:, 0].astype(int)
        ys = lesions[:, 1].astype(int)

        zone_scores: dict[str, float] = {}
        zone_counts: dict[str, int] = {}
        zone_density: dict[str, float] = {}
        density_unit, px_per_unit = _density_unit(ctx.px_per_mm)
        for zone, zmask in ctx.zones.items():
            zone_px = cv2.countNonZero(ctx.zone_skin_masks[zone])
            if zone_px == 0:
                continue
            n = int(np.count_nonzero(zmask[ys, xs] > 0)) if count else 0
            zone_counts[zone] = n
            zone_density[zone] = round(n / zone_px * px_per_unit, 3)
            # The zone's density extrapolated to one half face, then scored like the face.
            half_face_px = skin_px / half_faces
            zone_scores[zone] = algorithm.acne_score(n / zone_px * half_face_px)

        markers = ctx.to_image_markers(lesions[:, :3]) if count else []
        return DetectorResult(
            score=algorithm.acne_score(per_half),
            zones=zone_scores,
            measurements={
                "count": count,
                "count_inflamed": inflamed,
                "count_noninflamed": count - inflamed,
                "count_per_half_face": round(per_half, 1),
                "grade": algorithm.hayashi_grade(per_half),
                "mean_delta_a": round(float(lesions[:, 3].mean()), 2) if count else 0.0,
                "mean_radius_px": round(float(lesions[:, 2].mean()), 2) if count else 0.0,
                "zone_count": zone_counts,
                f"zone_{density_unit}": zone_density,
            },
            evidence=Evidence(markers=markers),
        )


def _density_unit(px_per_mm: float | None) -> tuple[str, float]:
    """Name and multiplier for a per-pixel density: per cm² when the scale is known."""
    if px_per_mm:
        return "density_per_cm2", (10.0 * px_per_mm) ** 2
    return "density_per_10kpx", 1e4


@hookimpl
def register_detectors(register) -> None:
    register(AcneDetector)


@hookimpl
def register_commands(register) -> None:
    from harerun_acne import commands

    register(
        "train acne-lesions",
        commands.run,
        add_arguments=commands.add_arguments,
        help=commands.HELP,
        description=commands.DESCRIPTION,
    )
