"""The ``pigmentation`` detector: ITA° and band per zone, melanin index, evenness.

The score is *unevenness* (0 = even tone): the spread of ITA° across zones plus
blotchiness (local L* variation) inside them. Skin colour itself is reported,
never scored.
"""

from __future__ import annotations

import cv2
import numpy as np
from pydantic import Field

from harerun import hookimpl
from harerun.detector import Detector, DetectorParams, FaceContext
from harerun.imageops import mask_window, median
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


_SCALE = 4  # colour statistics, mottling and the evidence map use a 1/4 grid


class PigmentationDetector(Detector):
    """ITA° (Chardon et al. 1991) per zone, melanin index (Dawson et al. 1980) and tone evenness."""

    name = "pigmentation"
    version = "0.1.0"
    Params = PigmentationParams

    def analyze(self, ctx: FaceContext) -> DetectorResult:
        p: PigmentationParams = self.params
        region = ctx.zone_skin  # skin inside any face zone (cached, shared with other detectors)
        if not cv2.countNonZero(region):
            return DetectorResult(status="skipped", message="no skin pixels inside the face zones")
        # Everything is measured on the zones' skin: work on its bounding box plus the mottling
        # low-pass's reach (OpenCV's default kernel, 4 sigma each side), corners on the grid, so
        # the values there are those of the whole ROI.
        reach = int(round(8 * p.mottle_sigma_px / _SCALE + 1)) // 2 + 3
        rows, cols = mask_window(region, _SCALE * reach, align=8)
        full_region, region = region, region[rows, cols]
        # colour statistics on a 1/4 grid: area-averaged LAB, so medians cost ~1/16
        size = region.shape
        small_size = (max(1, size[1] // _SCALE), max(1, size[0] // _SCALE))
        lab = cv2.resize(ctx.lab[rows, cols], small_size, interpolation=cv2.INTER_AREA)
        l_star, b_star = lab[..., 0], lab[..., 2]
        red = cv2.extractChannel(ctx.image[rows, cols], 2)
        mi = algorithm.melanin_index_red(cv2.resize(red, small_size, interpolation=cv2.INTER_AREA))
        skin_grid = cv2.resize(ctx.skin_mask[rows, cols], small_size, interpolation=cv2.INTER_AREA)
        mottle = algorithm.mottling(l_star, mask=skin_grid, sigma=p.mottle_sigma_px / _SCALE)

        def small(mask: np.ndarray) -> np.ndarray:
            o = _SCALE // 2
            return mask[o::_SCALE, o::_SCALE][: small_size[1], : small_size[0]] > 0

        m = small(region)
        if not m.any():
            m = cv2.resize(region, small_size, interpolation=cv2.INTER_AREA) > 0
        face_l, face_b = median(l_star[m]), median(b_star[m])
        face_ita = float(algorithm.ita_degrees(face_l, face_b))
        measurements: dict[str, object] = {
            "l_star": face_l,
            "b_star": face_b,
            "ita_deg": face_ita,
            "ita_band": algorithm.ita_band(face_ita),
            "melanin_index": float(mi[m].mean()),
        }
        skin_small = small(ctx.skin_mask[rows, cols])
        zone_ita: dict[str, float] = {}
        zone_l: dict[str, float] = {}
        zone_mottle: dict[str, float] = {}
        for zname, zmask in ctx.zones.items():
            zm = small(zmask[rows, cols]) & skin_small
            if not zm.any():
                continue
            zl, zb = median(l_star[zm]), median(b_star[zm])
            zone_l[zname] = zl
            zone_ita[zname] = float(algorithm.ita_degrees(zl, zb))
            zone_mottle[zname] = float(mottle[zm].mean())
            measurements[f"{zname}_l_star"] = zl
            measurements[f"{zname}_b_star"] = zb
            measurements[f"{zname}_ita_deg"] = zone_ita[zname]
            measurements[f"{zname}_ita_band"] = algorithm.ita_band(zone_ita[zname])
            measurements[f"{zname}_melanin_index"] = float(mi[zm].mean())
            measurements[f"{zname}_mottle_l"] = zone_mottle[zname]

        itas = np.array(list(zone_ita.values())) if zone_ita else np.array([face_ita])
        # Spread of skin tone over all the zones' skin, pooled (the 10th-90th percentile range in
        # standard-deviation units): unlike the spread of a few zone medians it does not jump when
        # a zone turns out of view or back (repeatability under mirror and small turns).
        cell_ita = algorithm.ita_degrees(l_star[m], b_star[m])
        lo, hi = np.percentile(cell_ita, (10, 90)) if cell_ita.size else (face_ita, face_ita)
        ita_sd = float(hi - lo) / 2.563
        l_sd = float(np.std(list(zone_l.values()))) if zone_l else 0.0
        mottle_mean = float(mottle[m].mean())
        ref_ita = float(np.median(itas))

        def combined(across: float, mottle_value: float) -> float:
            blotch = min(1.0, max(0.0, mottle_value - p.mottle_floor_l) / p.mottle_full_l)
            return 100.0 * (p.across_weight * min(1.0, across) + (1.0 - p.across_weight) * blotch)

        zones = {
            z: combined(abs(ita - ref_ita) / p.ita_deviation_full_deg, zone_mottle[z]) for z, ita in zone_ita.items()
        }
        score = combined(ita_sd / p.ita_spread_full_deg, mottle_mean)
        measurements.update(
            {"ita_spread_deg": ita_sd, "l_star_spread": l_sd, "mottle_l": mottle_mean, "zone_count": len(zone_ita)}
        )

        # evidence: how far each spot's ITA° is from the face's, on the coarse grid
        dev = np.abs(algorithm.ita_degrees(l_star, b_star) - face_ita) * (255.0 / p.ita_deviation_full_deg)
        box_heat = cv2.resize(np.clip(dev, 0, 255).astype(np.uint8), size[::-1], interpolation=cv2.INTER_LINEAR)
        heat = np.zeros_like(full_region)
        heat[rows, cols] = cv2.bitwise_and(box_heat, region)
        return DetectorResult(score=score, zones=zones, measurements=measurements, evidence=Evidence(mask=heat))


@hookimpl
def register_detectors(register):
    register(PigmentationDetector)
