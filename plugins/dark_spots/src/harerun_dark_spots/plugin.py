"""The ``dark_spots`` detector: patches clearly darker (ΔL*) than the skin around them."""

from __future__ import annotations

import cv2
import numpy as np
from pydantic import Field, model_validator

from harerun import hookimpl
from harerun.detector import Detector, DetectorParams, FaceContext
from harerun.results import DetectorResult, Evidence
from harerun_dark_spots import algorithm


class DarkSpotsParams(DetectorParams):
    min_delta_l: float = Field(
        5.0, ge=0.5, le=50.0, description="darkness ΔL* a spot must reach against the local skin"
    )
    min_diameter_mm: float = Field(1.5, ge=0.1, le=20.0, description="smallest spot diameter, mm (at least 6 px area)")
    max_diameter_mm: float = Field(15.0, ge=0.5, le=60.0, description="largest spot diameter, mm")
    background_sigma_mm: float = Field(
        6.0, ge=1.0, le=40.0, description="width (Gaussian sigma) of the local skin reference, mm"
    )
    max_elongation: float = Field(3.0, ge=1.0, le=20.0, description="largest bounding-box elongation of a spot")
    min_fill: float = Field(0.35, ge=0.0, le=1.0, description="smallest area / bounding-box area of a spot")
    edge_band_mm: float = Field(
        3.0,
        ge=0.0,
        le=30.0,
        description="spots reaching this close to the skin-mask edge are ignored (shadows, hair), mm",
    )
    fallback_px_per_mm: float = Field(
        2.5,
        ge=0.5,
        le=50.0,
        description="pixel scale to assume when the eyes were not found (2.5 ≈ a face in a 512-px ROI)",
    )
    weighted_area_at_half: float = Field(
        8.0,
        gt=0.0,
        le=1000.0,
        description="contrast-weighted spot area (% of skin × ΔL* beyond half of min_delta_l) that scores 50",
    )

    @model_validator(mode="after")
    def _diameters_ordered(self):
        if self.max_diameter_mm <= self.min_diameter_mm:
            raise ValueError(
                f"max_diameter_mm ({self.max_diameter_mm}) must be larger than min_diameter_mm ({self.min_diameter_mm})"
            )
        return self


class DarkSpotsDetector(Detector):
    """Dark spot count, area % and mean ΔL* contrast (local-background threshold, size/shape filter)."""

    name = "dark_spots"
    version = "0.1.0"
    Params = DarkSpotsParams

    def analyze(self, ctx: FaceContext) -> DetectorResult:
        p: DarkSpotsParams = self.params
        ppm = ctx.px_per_mm or p.fallback_px_per_mm
        analysed = ctx.zone_skin
        skin_px = cv2.countNonZero(analysed)
        spots, mask = algorithm.detect_dark_spots(
            ctx.lab[..., 0],
            ctx.skin_mask,
            background_sigma_px=p.background_sigma_mm * ppm,
            min_delta_l=p.min_delta_l,
            min_area_px=max(6.0, np.pi * (p.min_diameter_mm * ppm / 2) ** 2),
            max_area_px=np.pi * (p.max_diameter_mm * ppm / 2) ** 2,
            max_elongation=p.max_elongation,
            min_fill=p.min_fill,
            edge_band_px=p.edge_band_mm * ppm,
            report_mask=analysed,
        )
        area = spots[:, 3]
        contrast = spots[:, 4]
        # A spot weighs by its darkness beyond half the threshold: one that only just crosses it
        # (a faint shadow that JPEG or a resize tips either way) enters near 0, not at full weight.
        excess = np.maximum(contrast - 0.5 * p.min_delta_l, 0.0)
        weighted_pct = float((area * excess).sum() / max(skin_px, 1) * 100.0)

        zones, zone_count, zone_area = {}, {}, {}
        xs, ys = spots[:, 0].astype(int), spots[:, 1].astype(int)
        for zone, zmask in ctx.zones.items():
            inside = ctx.zone_skin_masks[zone]
            zone_px = cv2.countNonZero(inside)
            if zone_px == 0:
                continue
            centred = zmask[ys, xs] > 0 if len(spots) else np.zeros(0, bool)
            zone_count[zone] = int(centred.sum())
            zone_area[zone] = round(100.0 * cv2.countNonZero(cv2.bitwise_and(inside, mask)) / zone_px, 3)
            # Zone score: the contrast-weighted area of the spots centred in the zone, over its skin.
            zone_weighted = float((area[centred] * excess[centred]).sum()) / zone_px * 100.0
            zones[zone] = algorithm.dark_spot_score(zone_weighted, at_half=p.weighted_area_at_half)

        return DetectorResult(
            score=algorithm.dark_spot_score(weighted_pct, at_half=p.weighted_area_at_half),
            zones=zones,
            measurements={
                "count": len(spots),
                "area_pct": round(100.0 * float(area.sum()) / max(skin_px, 1), 3),
                "mean_contrast_delta_l": round(float((area * contrast).sum() / area.sum()), 2) if len(spots) else 0.0,
                "weighted_area_pct_excess_delta_l": round(weighted_pct, 3),
                "zone_count": zone_count,
                "zone_area_pct": zone_area,
            },
            evidence=Evidence(markers=ctx.to_image_markers(spots[:, :3]) if len(spots) else [], mask=mask),
        )


@hookimpl
def register_detectors(register) -> None:
    register(DarkSpotsDetector)
