"""The ``texture`` detector: roughness from thresholded uniform LBP and local variance."""

from __future__ import annotations

import cv2
import numpy as np
from pydantic import Field

from harerun import hookimpl
from harerun.detector import Detector, DetectorParams, FaceContext
from harerun.imageops import mask_window
from harerun.results import DetectorResult, Evidence
from harerun_texture import algorithm


class TextureParams(DetectorParams):
    lbp_radius_px: int = Field(2, ge=1, le=4, description="LBP neighbour distance (square, 8 neighbours)")
    lbp_threshold: int = Field(
        5, ge=1, le=40, description="grey levels a neighbour must exceed the centre by to count (noise floor)"
    )
    smooth_px: int = Field(3, ge=1, le=9, description="box pre-filter size that damps sensor and JPEG noise")
    highpass_px: int = Field(
        15, ge=5, le=63, description="box size of the local mean removed before measuring contrast"
    )
    structure_full: float = Field(
        1.0, gt=0.0, le=1.0, description="fraction of structured (non-flat LBP) pixels that scores 100 on the LBP term"
    )
    contrast_floor: float = Field(1.0, ge=0.0, le=20.0, description="local grey-level SD treated as smooth skin")
    contrast_full: float = Field(
        16.0, gt=0.0, le=100.0, description="local grey-level SD above the floor that scores 100 on the contrast term"
    )
    lbp_weight: float = Field(
        0.5, ge=0.0, le=1.0, description="weight of the LBP term (the contrast term gets the rest)"
    )


class TextureDetector(Detector):
    """Roughness: thresholded uniform LBP (Ojala et al. 2002) structure fraction + local contrast."""

    name = "texture"
    version = "0.1.0"
    Params = TextureParams

    def analyze(self, ctx: FaceContext) -> DetectorResult:
        p: TextureParams = self.params
        region = ctx.zone_skin  # skin inside any face zone (cached, shared with other detectors)
        if not cv2.countNonZero(region):
            return DetectorResult(status="skipped", message="no skin pixels inside the face zones")
        # The maps only around the measured skin (+ the filters' reach): the same values there.
        margin = p.smooth_px // 2 + max(p.lbp_radius_px, p.highpass_px // 2) + 2
        rows, cols = mask_window(region, margin)
        labels, hp = algorithm.roughness_maps(
            ctx.gray[rows, cols],
            radius=p.lbp_radius_px,
            threshold=p.lbp_threshold,
            smooth=p.smooth_px,
            hp_size=p.highpass_px,
        )

        def measure(mask: np.ndarray) -> tuple[float, np.ndarray, float]:
            x, y, w, h = cv2.boundingRect(mask)
            box = (slice(y, y + h), slice(x, x + w))
            at = (slice(y - rows.start, y - rows.start + h), slice(x - cols.start, x - cols.start + w))
            hist = algorithm.lbp_histogram(labels[at], mask[box])  # OpenCV reads the row-strided views as is
            contrast = algorithm.local_contrast(hp[at], mask[box])
            lbp_term = min(1.0, (1.0 - hist[0]) / p.structure_full)
            contrast_term = min(1.0, max(0.0, contrast - p.contrast_floor) / p.contrast_full)
            score = 100.0 * (p.lbp_weight * lbp_term + (1.0 - p.lbp_weight) * contrast_term)
            return score, hist, contrast

        score, hist, contrast = measure(region)
        measurements: dict[str, object] = {
            "structured_fraction": float(1.0 - hist[0]),
            "nonuniform_fraction": float(hist[9]),
            "local_contrast_gray_sd": contrast,
            "lbp_riu2_hist": [float(v) for v in hist],
        }
        zones: dict[str, float] = {}
        for zname, zm in ctx.zone_skin_masks.items():  # zone AND skin, cached on the context
            if not cv2.countNonZero(zm):
                continue
            zones[zname], zhist, zcontrast = measure(zm)
            measurements[f"{zname}_structured_fraction"] = float(1.0 - zhist[0])
            measurements[f"{zname}_local_contrast_gray_sd"] = zcontrast

        rough = np.zeros_like(region)
        scaled = cv2.convertScaleAbs(hp, alpha=255.0 / (p.contrast_floor + p.contrast_full))
        shown = cv2.min(region[rows, cols], labels)  # > 0 on structured (LBP label > 0) measured skin
        rough[rows, cols] = cv2.bitwise_and(scaled, scaled, mask=shown)
        return DetectorResult(score=score, zones=zones, measurements=measurements, evidence=Evidence(mask=rough))


@hookimpl
def register_detectors(register):
    register(TextureDetector)
