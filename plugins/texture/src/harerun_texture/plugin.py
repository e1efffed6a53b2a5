"""The ``texture`` detector: roughness from thresholded uniform LBP and local variance."""

from __future__ import annotations

from functools import partial

import cv2
from pydantic import Field

from harerun import hookimpl
from harerun.detector import NO_ZONE_SKIN, Detector, DetectorParams, FaceContext, max_magnification_param
from harerun.results import DetectorResult, Evidence
from harerun_texture import algorithm


class TextureParams(DetectorParams):
    max_magnification: float = max_magnification_param(
        3.0,
        "the score of a smaller face no longer follows the full-size photo's (`python bench/repeatability.py "
        "--shrink`, train close-ups shrunk: median |change| / ICC 4.8 / 0.92 up to x3, 5.1 / 0.90 up to x3.5"
        "; trusted while <= 5 / >= 0.9)",
    )
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


class TextureDetector(Detector, name="texture", version="0.1.0", params=TextureParams):
    """Roughness: thresholded uniform LBP (Ojala et al. 2002) structure fraction + local contrast."""

    def analyze(self, ctx: FaceContext) -> DetectorResult:
        p: TextureParams = self.params
        if small := ctx.too_small_for("measuring skin texture", max_magnification=p.max_magnification):
            return small
        if not cv2.countNonZero(ctx.zone_skin):
            return DetectorResult(status="skipped", message=NO_ZONE_SKIN)
        # the maps only around the zones' skin (+ the filters' reach): the same values there
        win = ctx.zone_skin_window(p.smooth_px // 2 + max(p.lbp_radius_px, p.highpass_px // 2) + 2)
        labels, hp = algorithm.roughness_maps(
            win.shrink(ctx.gray),
            radius=p.lbp_radius_px,
            threshold=p.lbp_threshold,
            smooth=p.smooth_px,
            hp_size=p.highpass_px,
        )
        rough = partial(
            algorithm.roughness_score,
            structure_full=p.structure_full,
            floor=p.contrast_floor,
            full=p.contrast_full,
            weight=p.lbp_weight,
        )
        hist, contrast = algorithm.roughness(labels, hp, win.sample(ctx.zone_skin))
        measurements: dict[str, object] = {
            "structured_fraction": float(1.0 - hist[0]),
            "nonuniform_fraction": float(hist[9]),
            "local_contrast_gray_sd": contrast,
            "lbp_riu2_hist": [float(v) for v in hist],
        }
        zones: dict[str, float] = {}
        for zname, zmask in ctx.zone_skin_on(win).items():
            zhist, zcontrast = algorithm.roughness(labels, hp, zmask)
            zones[zname] = rough(zhist, zcontrast)
            measurements[f"{zname}_structured_fraction"] = float(1.0 - zhist[0])
            measurements[f"{zname}_local_contrast_gray_sd"] = zcontrast
        heat = algorithm.roughness_heat(hp, labels, full=p.contrast_floor + p.contrast_full)
        return DetectorResult(
            score=rough(hist, contrast),
            zones=zones,
            measurements=measurements,
            evidence=Evidence(mask=win.paste(heat, ctx.zone_skin.shape, mask=ctx.zone_skin)),
        )


@hookimpl
def register_detectors(register):
    register(TextureDetector)
