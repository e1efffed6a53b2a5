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
        min_r = max(0.7, p.min_radius_mm * px_per_mm)
        pores = algorithm.detect_pores(
            ctx.lab[..., 0],
            ctx.skin_mask,
            min_radius_px=min_r,
            max_radius_px=max(min_r + 0.5, p.max_radius_mm * px_per_mm),
            min_contrast=p.min_contrast,
            max_elongation=p.max_elongation,
            report_mask=ctx.zone_skin,
        )
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
        zone_sums = darkness(ctx.zone_skin_masks)
        cm2_per_px = 1.0 / (10.0 * px_per_mm) ** 2
        known = ctx.px_per_mm is not None
        unit, per_unit = ("density_per_cm2", 1.0 / cm2_per_px) if known else ("density_per_10kpx", 1e4)
        score = partial(algorithm.pore_score, darkness_at_half=p.darkness_at_half)
        zones, zone_count, zone_density, zone_radius, zone_dark = {}, {}, {}, {}, {}
        dark_sum = dark_px = area_px = score_n = 0  # over the score zones
        for zone, centred in ctx.zone_members(pores).items():  # the pores centred in each zone with skin
            n, zone_px = int(centred.sum()), ctx.zone_skin_px[zone]
            zone_count[zone], zone_density[zone] = n, round(n / zone_px * per_unit, 3)
            zone_radius[zone] = round(algorithm.mean_radius(pores, centred), 2)
            total, px = zone_sums[zone]
            zone_dark[zone] = 100.0 * total / px if px else 0.0
            zones[zone] = score(zone_dark[zone])
            if zone in p.score_zones:
                dark_sum, dark_px, area_px, score_n = dark_sum + total, dark_px + px, area_px + zone_px, score_n + n
        if area_px == 0:  # no zone layout: score the whole skin
            dark_sum, dark_px = darkness({"skin": ctx.zone_skin})["skin"]
            area_px, score_n = cv2.countNonZero(ctx.zone_skin), len(pores)
        score_dark = 100.0 * dark_sum / dark_px if dark_px else 0.0
        mean_r = algorithm.mean_radius(pores)
        return DetectorResult(
            score=score(score_dark),
            zones=zones,
            measurements={
                "count": len(pores),
                unit: round(score_n / area_px * per_unit, 3) if area_px else 0.0,
                "darkness_mm2_per_cm2": round(score_dark, 3),
                "mean_radius_mm" if known else "mean_radius_px": round(mean_r / px_per_mm if known else mean_r, 3),
                "mean_contrast_delta_l": round(float(pores[:, 3].mean()), 2) if len(pores) else 0.0,
                "zone_count": zone_count,
                f"zone_{unit}": zone_density,
                "zone_darkness_mm2_per_cm2": {z: round(v, 3) for z, v in zone_dark.items()},
                "zone_mean_radius_px": zone_radius,
            },
            evidence=Evidence(markers=ctx.to_image_markers(pores[:, :3]) if len(pores) else []),
        )


@hookimpl
def register_detectors(register) -> None:
    register(PoresDetector)
