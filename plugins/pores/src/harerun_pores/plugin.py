"""The ``pores`` detector: visible pores as small dark dots on L* (graded darkness; DoG blobs as markers)."""

from __future__ import annotations

from functools import partial

import cv2
import numpy as np
from pydantic import Field, field_validator

from harerun import hookimpl
from harerun.detector import ZONE_NAMES, Detector, DetectorParams, FaceContext, max_magnification_param
from harerun.results import DetectorResult, Evidence
from harerun_pores import algorithm


class PoresParams(DetectorParams):
    max_magnification: float = max_magnification_param(
        1.25,
        "the score of a smaller face no longer follows the full-size photo's (`python bench/repeatability.py "
        "--shrink`, train close-ups shrunk: median |change| / ICC 4.6 / 0.96 up to x1.25, 5.6 / 0.92 up to x1.5"
        "; trusted while <= 5 / >= 0.9)",
    )
    min_radius_mm: float = Field(0.1, ge=0.02, le=2.0, description="smallest pore radius, mm (at least 0.7 px is used)")
    max_radius_mm: float = Field(
        0.75, ge=0.1, le=3.0, description="largest pore radius, mm; r/√2 is also the scale of the scored dot darkness"
    )
    min_contrast: float = Field(2.0, ge=0.2, le=30.0, description="minimum darkness ΔL* of a pore against its surround")
    max_elongation: float = Field(2.5, ge=1.0, le=10.0, description="largest bounding-box elongation of a pore")
    fallback_px_per_mm: float = Field(
        2.5,
        ge=0.5,
        le=50.0,
        description="pixel scale to assume when the eyes were not found (2.5 ≈ a face in a 512-px ROI)",
    )
    noise_floor: float = Field(0.3, ge=0.0, le=10.0, description="dot strength (ΔL*) that counts as no pore")
    hair_contrast: float = Field(
        12.0, ge=2.0, le=100.0, description="darkness ΔL* below the surrounding skin from which a pixel is hair"
    )
    darkness_at_half: float = Field(
        2.9, gt=0.0, le=1000.0, description="pore darkness (ΔL*·mm² per cm²) in the score zones that scores 50"
    )
    score_zones: list[str] = Field(
        # A plain default (pydantic copies it per instance), so `harerun plugins list` can show it.
        ["nose", "left_cheek", "right_cheek", "forehead"],
        description="zones whose pore darkness makes the score",
    )

    @field_validator("score_zones")
    @classmethod
    def _known_zones(cls, v: list[str]) -> list[str]:
        unknown = [z for z in v if z not in ZONE_NAMES]
        if unknown or not v:
            raise ValueError(f"score_zones must be a non-empty list of {', '.join(ZONE_NAMES)} (got {v})")
        return v


class PoresDetector(Detector, name="pores", version="0.1.0", params=PoresParams):
    """Pore darkness, count, density and size per zone (dark dots on L*, scale from the eye distance)."""

    def analyze(self, ctx: FaceContext) -> DetectorResult:
        p: PoresParams = self.params
        if small := ctx.too_small_for("measuring pores", max_magnification=p.max_magnification):
            return small
        px_per_mm = ctx.px_per_mm or p.fallback_px_per_mm
        pores = self._find(ctx, px_per_mm)
        # The score: graded darkness of dots, not the count (no cliff at a cut; see algorithm).
        darkness = partial(
            algorithm.pore_darkness,
            ctx.lab[..., 0],
            ctx.skin_mask,
            sigma_px=max(1.0, p.max_radius_mm * px_per_mm / np.sqrt(2)),  # the largest pore's LoG scale
            noise_floor=p.noise_floor,
            hair_contrast=p.hair_contrast,
            report_mask=ctx.zone_skin,
        )
        known = ctx.px_per_mm is not None
        unit, per_unit = ("density_per_cm2", (10.0 * px_per_mm) ** 2) if known else ("density_per_10kpx", 1e4)
        per_zone = zone_figures(ctx, pores, darkness(ctx.zone_skin_masks), per_unit=per_unit)
        scored = [per_zone[z] for z in per_zone if z in p.score_zones]
        if scored:
            dark_sum, dark_px = sum(z["dark_sum"] for z in scored), sum(z["dark_px"] for z in scored)
            area_px, score_n = sum(z["skin_px"] for z in scored), sum(z["count"] for z in scored)
        if not scored or area_px == 0:  # no zone layout: score the whole skin
            dark_sum, dark_px = darkness({"skin": ctx.zone_skin})["skin"]
            area_px, score_n = cv2.countNonZero(ctx.zone_skin), len(pores)
        score_dark = 100.0 * dark_sum / dark_px if dark_px else 0.0
        score = partial(algorithm.pore_score, darkness_at_half=p.darkness_at_half)
        mean_r = algorithm.mean_radius(pores)
        return DetectorResult(
            score=score(score_dark),
            zones={z: score(f["darkness"]) for z, f in per_zone.items()},
            measurements={
                "count": len(pores),
                unit: round(score_n / area_px * per_unit, 3) if area_px else 0.0,
                "darkness_mm2_per_cm2": round(score_dark, 3),
                "mean_radius_mm" if known else "mean_radius_px": round(mean_r / px_per_mm if known else mean_r, 3),
                "mean_contrast_delta_l": round(float(pores[:, 3].mean()), 2) if len(pores) else 0.0,
                "zone_count": {z: f["count"] for z, f in per_zone.items()},
                f"zone_{unit}": {z: f["density"] for z, f in per_zone.items()},
                "zone_darkness_mm2_per_cm2": {z: round(f["darkness"], 3) for z, f in per_zone.items()},
                "zone_mean_radius_px": {z: f["radius"] for z, f in per_zone.items()},
            },
            evidence=Evidence(markers=ctx.to_image_markers(pores[:, :3]) if len(pores) else []),
        )

    def _find(self, ctx: FaceContext, px_per_mm: float) -> np.ndarray:
        """The pores on the zones' skin (rows from :func:`algorithm.detect_pores`)."""
        p: PoresParams = self.params
        min_r = max(0.7, p.min_radius_mm * px_per_mm)
        return algorithm.detect_pores(
            ctx.lab[..., 0],
            ctx.skin_mask,
            min_radius_px=min_r,
            max_radius_px=max(min_r + 0.5, p.max_radius_mm * px_per_mm),
            min_contrast=p.min_contrast,
            max_elongation=p.max_elongation,
            report_mask=ctx.zone_skin,
        )


def zone_figures(ctx: FaceContext, pores: np.ndarray, sums: dict, *, per_unit: float) -> dict[str, dict]:
    """Per zone with skin: the pores centred in it (count, density per unit area, mean radius),
    its skin area, and its dot darkness (``sums``: :func:`algorithm.pore_darkness` per zone)."""
    out = {}
    for zone, centred in ctx.zone_members(pores).items():
        n, skin_px = int(centred.sum()), ctx.zone_skin_px[zone]
        dark_sum, dark_px = sums[zone]
        out[zone] = {
            "count": n,
            "density": round(n / skin_px * per_unit, 3),
            "radius": round(algorithm.mean_radius(pores, centred), 2),
            "skin_px": skin_px,
            "dark_sum": dark_sum,
            "dark_px": dark_px,
            "darkness": 100.0 * dark_sum / dark_px if dark_px else 0.0,
        }
    return out


@hookimpl
def register_detectors(register) -> None:
    register(PoresDetector)
