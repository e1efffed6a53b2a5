"""The ``redness`` detector: erythema index and red-area percentage per zone."""

from __future__ import annotations

import cv2
import numpy as np
from pydantic import Field

from harerun import hookimpl
from harerun.detector import NO_ZONE_SKIN, Detector, DetectorParams, FaceContext
from harerun.results import DetectorResult, Evidence
from harerun_redness import algorithm


class RednessParams(DetectorParams):
    baseline_percentile: float = Field(
        25.0, ge=1.0, le=60.0, description="percentile of the face's EI taken as its normal-skin baseline"
    )
    red_delta_ei: float = Field(
        10.0, ge=1.0, le=50.0, description="EI units above the baseline from which a pixel counts as red"
    )
    margin_ei: float = Field(
        4.0, ge=0.0, le=30.0, description="EI units above the baseline ignored when integrating excess redness"
    )
    full_scale_ei: float = Field(
        12.0, ge=1.0, le=100.0, description="mean excess EI (area x intensity) that scores 100"
    )
    smooth_px: int = Field(3, ge=1, le=15, description="box-filter size applied to the EI map (ROI px)")
    downscale: int = Field(
        2, ge=1, le=4, description="EI is computed on the ROI area-averaged by this factor (2: 2x2 blocks)"
    )
    min_blob_area_px: int = Field(6, ge=1, le=10000, description="smallest red region reported as a marker")
    max_markers: int = Field(50, ge=0, le=1000, description="most red regions reported as markers (largest first)")


class RednessDetector(Detector, name="redness", version="0.1.0", params=RednessParams):
    """Redness from the erythema index (Dawson et al. 1980) relative to the face's own baseline."""

    def analyze(self, ctx: FaceContext) -> DetectorResult:
        p: RednessParams = self.params
        if not cv2.countNonZero(ctx.zone_skin):
            return DetectorResult(status="skipped", message=NO_ZONE_SKIN)
        k = p.downscale
        # EI on the zones' skin + the box filter's reach, area-averaged k x k (a mean that smooths
        # like the box filter and costs 1/k^2 after it), corners on the k-grid: the whole ROI's values
        win = ctx.zone_skin_window(k * (p.smooth_px // k + 2), step=k, align=8)
        ei = algorithm.erythema_index(win.shrink(ctx.image), smooth=max(1, p.smooth_px // k))
        region = win.sample(ctx.zone_skin)
        if not cv2.countNonZero(region):  # skin too thin for any grid point: every cell it touches
            region = np.where(win.shrink(ctx.zone_skin) > 0, np.uint8(255), np.uint8(0))
        base = algorithm.redness_baseline(ei, region, percentile=p.baseline_percentile)
        red = algorithm.red_area_mask(ei, region, baseline=base, delta=p.red_delta_ei)
        excess = algorithm.excess_map(ei, baseline=base, margin=p.margin_ei)
        ex, ei_mean, pct = algorithm.region_stats(ei, excess, red, region)
        measurements = {"ei_mean": ei_mean, "ei_baseline": base, "excess_ei": ex, "red_area_pct": pct}
        zones: dict[str, float] = {}
        for zname, zmask in ctx.zone_skin_on(win).items():
            zex, zei, zpct = algorithm.region_stats(ei, excess, red, zmask)
            zones[zname] = algorithm.redness_score(zex, full_scale=p.full_scale_ei)
            measurements |= {f"{zname}_ei_mean": zei, f"{zname}_excess_ei": zex, f"{zname}_red_area_pct": zpct}
        blobs = win.to_roi(algorithm.red_blobs(red, min_area=-(-p.min_blob_area_px // (k * k)), step=1))  # ceil
        measurements["red_region_count"] = len(blobs)
        heat = algorithm.redness_heat(ei, baseline=base, delta=p.red_delta_ei)
        return DetectorResult(
            score=algorithm.redness_score(ex, full_scale=p.full_scale_ei),
            zones=zones,
            measurements=measurements,
            evidence=Evidence(
                markers=ctx.to_image_markers(blobs[: p.max_markers]),
                mask=win.paste(heat, ctx.zone_skin.shape, mask=ctx.zone_skin),
            ),
        )


@hookimpl
def register_detectors(register):
    register(RednessDetector)
