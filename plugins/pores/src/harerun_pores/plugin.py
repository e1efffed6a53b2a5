"""The ``pores`` detector: visible pores as small dark DoG blobs on L*."""

from __future__ import annotations

import cv2
import numpy as np
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


class PoresDetector(Detector):
    """Pore count, density and size per zone (DoG dark blobs on L*, scale from the eye distance)."""

    name = "pores"
    version = "0.1.0"
    Params = PoresParams

    def analyze(self, ctx: FaceContext) -> DetectorResult:
        p: PoresParams = self.params
        px_per_mm = ctx.px_per_mm or p.fallback_px_per_mm
        min_r = max(0.7, p.min_radius_mm * px_per_mm)
        max_r = max(min_r + 0.5, p.max_radius_mm * px_per_mm)
        pores = algorithm.detect_pores(
            ctx.lab[..., 0],
            ctx.skin_mask,
            min_radius_px=min_r,
            max_radius_px=max_r,
            min_contrast=p.min_contrast,
            max_elongation=p.max_elongation,
            report_mask=ctx.zone_skin,
        )
        area = ctx.zone_skin
        xs, ys = pores[:, 0].astype(int), pores[:, 1].astype(int)
        cm2_per_px = 1.0 / (10.0 * px_per_mm) ** 2
        known = ctx.px_per_mm is not None
        unit = "density_per_cm2" if known else "density_per_10kpx"
        per_unit = (1.0 / cm2_per_px) if known else 1e4

        zones, zone_count, zone_density, zone_radius = {}, {}, {}, {}
        score_px = score_n = 0
        for zone, zmask in ctx.zones.items():
            zone_px = cv2.countNonZero(ctx.zone_skin_masks[zone])
            if zone_px == 0:
                continue
            inside = zmask[ys, xs] > 0 if len(pores) else np.zeros(0, bool)
            n = int(inside.sum())
            zone_count[zone] = n
            zone_density[zone] = round(n / zone_px * per_unit, 3)
            zone_radius[zone] = round(float(pores[inside, 2].mean()), 2) if n else 0.0
            zones[zone] = algorithm.pore_score(n / (zone_px * cm2_per_px), density_at_half=p.density_at_half)
            if zone in p.score_zones:
                score_px += zone_px
                score_n += n
        if score_px == 0:  # no zone layout: score the whole skin
            score_px, score_n = cv2.countNonZero(area), len(pores)
        density_cm2 = score_n / (score_px * cm2_per_px) if score_px else 0.0
        radius_key = "mean_radius_mm" if known else "mean_radius_px"
        mean_r = float(pores[:, 2].mean()) if len(pores) else 0.0
        return DetectorResult(
            score=algorithm.pore_score(density_cm2, density_at_half=p.density_at_half),
            zones=zones,
            measurements={
                "count": len(pores),
                unit: round(score_n / score_px * per_unit, 3) if score_px else 0.0,
                radius_key: round(mean_r / px_per_mm if known else mean_r, 3),
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
