"""The ``dark_spots`` detector: patches clearly darker (ΔL*) than the skin around them."""

from __future__ import annotations

from functools import partial

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from harerun import hookimpl
from harerun.detector import Detector, DetectorParams, FaceContext, max_magnification_param
from harerun.results import DetectorResult, Evidence
from harerun_dark_spots import algorithm


class DarkSpotsParams(DetectorParams):
    max_magnification: float = max_magnification_param(
        4.0,
        "the score of a smaller face no longer follows the full-size photo's (`python bench/repeatability.py "
        "--shrink`, train close-ups shrunk: median |change| / ICC 4.7 / 0.90 up to x4, 5.7 / 0.88 up to x5"
        "; trusted while <= 5 / >= 0.9)",
    )
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


class DarkSpotsMeasurements(BaseModel):
    """What ``dark_spots`` reports in ``measurements`` (published in the API's OpenAPI document)."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(ge=0, description="dark spots reaching onto the zones' skin")
    area_pct: float = Field(ge=0, description="their area on the zones' skin, % of it")
    mean_contrast_delta_l: float = Field(ge=0, description="area-weighted mean darkness ΔL* (0 without spots)")
    weighted_area_pct_excess_delta_l: float = Field(
        ge=0,
        description="contrast-weighted area: % of skin × ΔL* beyond half of min_delta_l, per pixel (the score's input)",
    )
    zone_count: dict[str, int] = Field(description="zone -> spots centred in it")
    zone_area_pct: dict[str, float] = Field(description="zone -> % of its skin the spots cover")


class DarkSpotsDetector(
    Detector, name="dark_spots", version="0.1.0", params=DarkSpotsParams, measurements=DarkSpotsMeasurements
):
    """Dark spot count, area % and mean ΔL* contrast (local-background threshold, size/shape filter)."""

    def analyze(self, ctx: FaceContext) -> DetectorResult:
        p: DarkSpotsParams = self.params
        if small := ctx.too_small_for("measuring dark spots", max_magnification=p.max_magnification):
            return small
        ppm = ctx.px_per_mm or p.fallback_px_per_mm
        spots, mask, pixels = algorithm.detect_dark_spots(
            ctx.lab[..., 0],
            ctx.skin_mask,
            background_sigma_px=p.background_sigma_mm * ppm,
            min_delta_l=p.min_delta_l,
            min_area_px=max(6.0, np.pi * (p.min_diameter_mm * ppm / 2) ** 2),
            max_area_px=np.pi * (p.max_diameter_mm * ppm / 2) ** 2,
            max_elongation=p.max_elongation,
            min_fill=p.min_fill,
            edge_band_px=p.edge_band_mm * ppm,
            report_mask=ctx.zone_skin,
        )
        skin_px = max(cv2.countNonZero(ctx.zone_skin), 1)
        weighted_pct = algorithm.darkness_pct(pixels, ctx.zone_skin, skin_px)
        score = partial(algorithm.dark_spot_score, at_half=p.weighted_area_at_half)
        zones, zone_count, zone_area = {}, {}, {}
        for zone, centred in ctx.zone_members(spots).items():  # the spots centred in each zone with skin
            zone_skin, zone_px = ctx.zone_skin_masks[zone], ctx.zone_skin_px[zone]
            zone_count[zone] = int(centred.sum())
            zone_area[zone] = round(algorithm.covered_pct(pixels, zone_skin, zone_px), 3)
            zones[zone] = score(algorithm.darkness_pct(pixels, zone_skin, zone_px))
        return DetectorResult(
            score=score(weighted_pct),
            zones=zones,
            measurements={
                "count": len(spots),
                "area_pct": round(algorithm.covered_pct(pixels, ctx.zone_skin, skin_px), 3),
                "mean_contrast_delta_l": round(algorithm.mean_contrast(spots), 2),
                "weighted_area_pct_excess_delta_l": round(weighted_pct, 3),
                "zone_count": zone_count,
                "zone_area_pct": zone_area,
            },
            evidence=Evidence(markers=ctx.to_image_markers(spots[:, :3]) if len(spots) else [], mask=mask),
        )


@hookimpl
def register_detectors(register) -> None:
    register(DarkSpotsDetector)
