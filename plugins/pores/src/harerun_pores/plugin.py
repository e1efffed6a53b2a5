"""The ``pores`` detector: visible pores as small dark DoG blobs on L*."""

from __future__ import annotations

from functools import partial

import cv2
from pydantic import Field, field_validator

from harerun import hookimpl
from harerun.detector import ZONE_NAMES, Detector, DetectorParams, FaceContext
from harerun.results import DetectorResult, Evidence
from harerun_pores import algorithm


class PoresParams(DetectorParams):
    min_radius_mm: float = Field(0.1, ge=0.02, le=2.0, description="smallest pore radius, mm (at least 0.7 px is used)")
    max_radius_mm: float = Field(0.75, ge=0.1, le=3.0, description="largest pore radius, mm")
    min_contrast: float = Field(2.0, ge=0.2, le=30.0, description="minimum darkness ΔL* of a pore against its surround")
    max_elongation: float = Field(2.5, ge=1.0, le=10.0, description="largest bounding-box elongation of a pore")
    fallback_px_per_mm: float = Field(
        2.5,
        ge=0.5,
        le=50.0,
        description="pixel scale to assume when the eyes were not found (2.5 ≈ a face in a 512-px ROI)",
    )
    density_at_half: float = Field(
        1.5, gt=0.0, le=1000.0, description="pores per cm² in the score zones that score 50 (see README: calibration)"
    )
    score_zones: list[str] = Field(
        # A plain default (pydantic copies it per instance), so `harerun plugins list` can show it.
        ["nose", "left_cheek", "right_cheek", "forehead"],
        description="zones whose pore density makes the score",
    )

    @field_validator("score_zones")
    @classmethod
    def _known_zones(cls, v: list[str]) -> list[str]:
        unknown = [z for z in v if z not in ZONE_NAMES]
        if unknown or not v:
            raise ValueError(f"score_zones must be a non-empty list of {', '.join(ZONE_NAMES)} (got {v})")
        return v


class PoresDetector(Detector, name="pores", version="0.1.0", params=PoresParams):
    """Pore count, density and size per zone (DoG dark blobs on L*, scale from the eye distance)."""

    def analyze(self, ctx: FaceContext) -> DetectorResult:
        p: PoresParams = self.params
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
        cm2_per_px = 1.0 / (10.0 * px_per_mm) ** 2
        known = ctx.px_per_mm is not None
        unit, per_unit = ("density_per_cm2", 1.0 / cm2_per_px) if known else ("density_per_10kpx", 1e4)
        score = partial(algorithm.pore_score, density_at_half=p.density_at_half)
        zones, zone_count, zone_density, zone_radius = {}, {}, {}, {}
        for zone, centred in ctx.zone_members(pores).items():  # the pores centred in each zone with skin
            n, zone_px = int(centred.sum()), ctx.zone_skin_px[zone]
            zone_count[zone], zone_density[zone] = n, round(n / zone_px * per_unit, 3)
            zone_radius[zone] = round(algorithm.mean_radius(pores, centred), 2)
            zones[zone] = score(n / (zone_px * cm2_per_px))
        scored = [z for z in zone_count if z in p.score_zones]
        score_px, score_n = sum(ctx.zone_skin_px[z] for z in scored), sum(zone_count[z] for z in scored)
        if score_px == 0:  # no zone layout: score the whole skin
            score_px, score_n = cv2.countNonZero(ctx.zone_skin), len(pores)
        mean_r = algorithm.mean_radius(pores)
        return DetectorResult(
            score=score(score_n / (score_px * cm2_per_px) if score_px else 0.0),
            zones=zones,
            measurements={
                "count": len(pores),
                unit: round(score_n / score_px * per_unit, 3) if score_px else 0.0,
                "mean_radius_mm" if known else "mean_radius_px": round(mean_r / px_per_mm if known else mean_r, 3),
                "mean_contrast_delta_l": round(float(pores[:, 3].mean()), 2) if len(pores) else 0.0,
                "zone_count": zone_count,
                f"zone_{unit}": zone_density,
                "zone_mean_radius_px": zone_radius,
            },
            evidence=Evidence(markers=ctx.to_image_markers(pores[:, :3]) if len(pores) else []),
        )


@hookimpl
def register_detectors(register) -> None:
    register(PoresDetector)
