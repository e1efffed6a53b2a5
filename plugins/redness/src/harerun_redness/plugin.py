"""The ``redness`` detector: erythema index and red-area percentage per zone."""

from __future__ import annotations

import cv2
import numpy as np
from pydantic import Field

from harerun import hookimpl
from harerun.detector import Detector, DetectorParams, FaceContext
from harerun.imageops import mask_window
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


def _subsample(mask: np.ndarray, k: int, size: tuple[int, int]) -> np.ndarray:
    """Every k-th pixel of a mask (the one nearest each k x k block's centre), cropped to ``size`` (w, h)."""
    return np.ascontiguousarray(mask[k // 2 :: k, k // 2 :: k][: size[1], : size[0]])


class RednessDetector(Detector):
    """Redness from the erythema index (Dawson et al. 1980) relative to the face's own baseline."""

    name = "redness"
    version = "0.1.0"
    Params = RednessParams

    def analyze(self, ctx: FaceContext) -> DetectorResult:
        p: RednessParams = self.params
        region = ctx.zone_skin  # skin inside any face zone (cached, shared with other detectors)
        if not cv2.countNonZero(region):
            return DetectorResult(status="skipped", message="no skin pixels inside the face zones")
        k = p.downscale
        full_region = region
        # Everything is measured on the zones' skin: work on its bounding box (+ the box filter's
        # reach, corners on the k-grid), which gives the same values there as the whole ROI.
        rows, cols = mask_window(region, k * (p.smooth_px // k + 2), align=8)
        image, skin, region = ctx.image[rows, cols], ctx.skin_mask[rows, cols], region[rows, cols]
        zone_masks = {zname: zmask[rows, cols] for zname, zmask in ctx.zones.items()}
        if k > 1:  # area-averaged copy: a k x k mean smooths like the box filter and costs 1/k^2 after it
            size = (image.shape[1] // k, image.shape[0] // k)
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            skin = _subsample(skin, k, size)
            region = _subsample(region, k, size)
        ei = algorithm.erythema_index(image, smooth=max(1, p.smooth_px // k))
        base = algorithm.redness_baseline(ei, region, percentile=p.baseline_percentile)
        red = algorithm.red_area_mask(ei, region, baseline=base, delta=p.red_delta_ei)

        excess = algorithm.excess_map(ei, baseline=base, margin=p.margin_ei)

        def stats(mask: np.ndarray) -> tuple[float, float, float, float]:
            """(score, mean excess, mean EI, red-area %) inside ``mask``, on its bounding box only."""
            x, y, w, h = cv2.boundingRect(mask)
            box = (slice(y, y + h), slice(x, x + w))
            m = mask[box]
            n = cv2.countNonZero(m)
            ex = algorithm.masked_mean(excess[box], m)
            pct = 100.0 * cv2.countNonZero(cv2.bitwise_and(red[box], m)) / n
            return 100.0 * min(1.0, ex / p.full_scale_ei), ex, algorithm.masked_mean(ei[box], m), pct

        score, overall_excess, ei_mean, red_pct = stats(region)
        measurements: dict[str, object] = {
            "ei_mean": ei_mean,
            "ei_baseline": base,
            "excess_ei": overall_excess,
            "red_area_pct": red_pct,
        }
        zones: dict[str, float] = {}
        for zname, zmask in zone_masks.items():
            zm = cv2.bitwise_and(_subsample(zmask, k, region.shape[::-1]) if k > 1 else zmask, skin)
            if not cv2.countNonZero(zm):
                continue
            zones[zname], zex, zei, zpct = stats(zm)
            measurements[f"{zname}_ei_mean"] = zei
            measurements[f"{zname}_excess_ei"] = zex
            measurements[f"{zname}_red_area_pct"] = zpct

        blobs = algorithm.red_blobs(red, min_area=-(-p.min_blob_area_px // (k * k)), step=1)  # ceil
        blobs = blobs * np.array([k, k, k]) + np.array([(k - 1) / 2 + cols.start, (k - 1) / 2 + rows.start, 0.0])
        measurements["red_region_count"] = len(blobs)
        box_heat = cv2.convertScaleAbs(cv2.max(cv2.subtract(ei, base), 0.0), alpha=255.0 / (2.0 * p.red_delta_ei))
        if k > 1:
            box_size = (cols.stop - cols.start, rows.stop - rows.start)
            box_heat = cv2.resize(box_heat, box_size, interpolation=cv2.INTER_LINEAR)
        heat = np.zeros_like(full_region)
        heat[rows, cols] = cv2.bitwise_and(box_heat, full_region[rows, cols])
        return DetectorResult(
            score=score,
            zones=zones,
            measurements=measurements,
            evidence=Evidence(markers=ctx.to_image_markers(blobs[: p.max_markers]), mask=heat),
        )


@hookimpl
def register_detectors(register):
    register(RednessDetector)
