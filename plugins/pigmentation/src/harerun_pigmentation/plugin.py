"""The ``pigmentation`` detector: ITA° and band per zone, melanin index, evenness.

The score is *unevenness* (0 = even tone): the spread of ITA° across zones plus
blotchiness (local L* variation) inside them. Skin colour itself is reported,
never scored.
"""

from __future__ import annotations

from functools import partial

import cv2
import numpy as np
from pydantic import Field

from harerun import hookimpl
from harerun.detector import NO_ZONE_SKIN, Detector, DetectorParams, FaceContext
from harerun.results import DetectorResult, Evidence
from harerun_pigmentation import algorithm


class PigmentationParams(DetectorParams):
    ita_spread_full_deg: float = Field(
        45.0,
        ge=0.5,
        le=90.0,
        description="spread of ITA° over the zones' skin (10th-90th percentile range / 2.563, i.e. in standard "
        "deviations) that maxes the across-zone term",
    )
    ita_deviation_full_deg: float = Field(
        30.0,
        ge=0.5,
        le=90.0,
        description="a zone's ITA° distance from the zones' median that maxes its across-zone term",
    )
    mottle_floor_l: float = Field(
        1.0, ge=0.0, le=20.0, description="mean local L* variation treated as even skin (noise, fine texture)"
    )
    mottle_full_l: float = Field(
        6.0, ge=0.1, le=50.0, description="mean local L* variation above the floor that maxes the blotchiness term"
    )
    across_weight: float = Field(
        0.5, ge=0.0, le=1.0, description="weight of the across-zone ITA° term; blotchiness gets the rest"
    )
    mottle_sigma_px: float = Field(
        16.0, ge=4.0, le=64.0, description="size (ROI px) of the low-pass that blotches are measured against"
    )
    feature_edge_l: float = Field(
        10.0,
        ge=1.0,
        le=100.0,
        description="local L* variation beyond which a cell is a sharp feature (brow, lash, nostril rim, the "
        "face's silhouette) rather than skin tone: left out of the ITA° statistics, capped here in blotchiness",
    )


_SCALE = 4  # colour statistics, mottling and the evidence map use a 1/4 grid


class PigmentationDetector(Detector, name="pigmentation", version="0.1.0", params=PigmentationParams):
    """ITA° (Chardon et al. 1991) per zone, melanin index (Dawson et al. 1980) and tone evenness."""

    def analyze(self, ctx: FaceContext) -> DetectorResult:
        p: PigmentationParams = self.params
        if not cv2.countNonZero(ctx.zone_skin):
            return DetectorResult(status="skipped", message=NO_ZONE_SKIN)
        # The zones' skin plus the mottling low-pass's reach (OpenCV's default kernel, 4 sigma each
        # side), area-averaged on a 1/4 grid (medians cost ~1/16): the whole ROI's values there.
        reach = int(round(8 * p.mottle_sigma_px / _SCALE + 1)) // 2 + 3
        win = ctx.zone_skin_window(_SCALE * reach, step=_SCALE, align=8)
        red, skin = win.shrink(ctx.image[..., 2]), win.shrink(ctx.skin_mask)
        maps = algorithm.tone_maps(win.shrink(ctx.lab), red, skin, sigma=p.mottle_sigma_px / _SCALE)
        cells = algorithm.tone_cells(win.shrink(ctx.zone_skin), skin)
        zone_cells = {z: algorithm.tone_cells(win.shrink(m), skin) for z, m in ctx.zone_skin_masks.items()}
        zone_cells = {z: c for z, c in zone_cells.items() if c.any()}
        face = algorithm.tone(maps, cells, edge=p.feature_edge_l)
        tones = {zname: algorithm.tone(maps, c, edge=p.feature_edge_l) for zname, c in zone_cells.items()}
        measurements = {k: v for k, v in face.items() if k != "mottle_l"}  # the face's mottle_l comes last
        for zname, t in tones.items():
            measurements |= {f"{zname}_{k}": v for k, v in t.items()}
        uneven = partial(algorithm.unevenness, floor=p.mottle_floor_l, full=p.mottle_full_l, weight=p.across_weight)
        offsets = algorithm.ita_offsets({zname: t["ita_deg"] for zname, t in tones.items()})
        zones = {z: uneven(offsets[z] / p.ita_deviation_full_deg, t["mottle_l"]) for z, t in tones.items()}
        ita_sd = algorithm.ita_spread(maps, cells, edge=p.feature_edge_l)
        l_sd = float(np.std([t["l_star"] for t in tones.values()])) if tones else 0.0
        measurements |= {"ita_spread_deg": ita_sd, "l_star_spread": l_sd, "mottle_l": face["mottle_l"]}
        measurements["zone_count"] = len(tones)
        heat = algorithm.ita_deviation_map(maps, face["ita_deg"], full=p.ita_deviation_full_deg)
        return DetectorResult(
            score=uneven(ita_sd / p.ita_spread_full_deg, face["mottle_l"]),
            zones=zones,
            measurements=measurements,
            evidence=Evidence(mask=win.paste(heat, ctx.zone_skin.shape, mask=ctx.zone_skin)),
        )


@hookimpl
def register_detectors(register):
    register(PigmentationDetector)
