"""The ``wrinkles`` detector: oriented dark lines per wrinkle type, their length, density and severity."""

from __future__ import annotations

import cv2
import numpy as np
from pydantic import Field

from harerun import hookimpl
from harerun.detector import Detector, DetectorParams, FaceContext
from harerun.results import DetectorResult, Evidence, severity_for
from harerun_wrinkles import algorithm
from harerun_wrinkles.regions import wrinkle_regions

NO_REGION_SKIN = "no skin pixels in any wrinkle region"


class WrinklesParams(DetectorParams):
    downscale: int = Field(2, ge=1, le=4, description="the line filter runs on the ROI shrunk by this factor")
    sigma_fine_px: float = Field(1.0, ge=0.5, le=4.0, description="finer Hessian scale, px of the shrunk ROI")
    sigma_coarse_px: float = Field(2.0, ge=0.5, le=8.0, description="coarser Hessian scale, px of the shrunk ROI")
    strength_threshold: float = Field(
        1.0,
        ge=0.05,
        le=50.0,
        description="orientation-weighted valley strength (grey levels) from which a pixel is a line",
    )
    tolerance_deg: float = Field(20.0, ge=5.0, le=90.0, description="angle tolerance (SD) around a region's line prior")
    crows_feet_tolerance_deg: float = Field(35.0, ge=5.0, le=90.0, description="angle tolerance for crow's feet")
    min_length_px: float = Field(30.0, ge=2.0, le=300.0, description="shortest line kept, in ROI px")
    density_full: float = Field(
        40.0, gt=0.0, le=500.0, description="line length (px) per 1000 px² of region that scores 100"
    )
    dark_margin: float = Field(
        50.0,
        ge=5.0,
        le=255.0,
        description="pixels this many grey levels darker than the median skin are hair, brows or lashes, not wrinkles",
    )
    eye_exclusion: float = Field(
        0.2, ge=0.0, le=0.5, description="radius around each eye landmark left out, as a fraction of the eye distance"
    )
    max_markers: int = Field(200, ge=0, le=2000, description="most line markers reported")


class WrinklesDetector(Detector):
    """Hessian valley lines (Sato/Frangi-style, OpenCV) with per-type orientation priors."""

    name = "wrinkles"
    version = "0.1.0"
    Params = WrinklesParams

    def analyze(self, ctx: FaceContext) -> DetectorResult:
        p: WrinklesParams = self.params
        size = ctx.gray.shape[0]
        k = p.downscale
        small_shape = (ctx.gray.shape[1] // k, ctx.gray.shape[0] // k)
        g = ctx.gray if k == 1 else cv2.resize(ctx.gray, small_shape, interpolation=cv2.INTER_AREA)
        skin = self._usable_skin(ctx, g, k)
        regions = wrinkle_regions(
            size,
            ctx.landmarks,
            {**ctx.zones, **ctx.fold_zones},
            hidden=ctx.hidden_zones,
            tolerance_deg=p.tolerance_deg,
            crows_feet_tolerance_deg=p.crows_feet_tolerance_deg,
            shrink=k,
        )
        # filter only the box around all regions (+ the kernels' reach): about half the ROI;
        # the maps below are all on that box, offset (x0, y0) from the shrunk ROI
        union = np.zeros_like(g)
        for reg in regions:
            cv2.bitwise_or(union, reg.mask, dst=union)
        if not cv2.countNonZero(union):
            return DetectorResult(status="skipped", message=NO_REGION_SKIN)
        bx, by, bw, bh = cv2.boundingRect(union)
        pad = int(np.ceil(3 * max(p.sigma_fine_px, p.sigma_coarse_px))) + 2
        x0, y0 = max(0, bx - pad), max(0, by - pad)
        x1, y1 = min(g.shape[1], bx + bw + pad), min(g.shape[0], by + bh + pad)
        strength, angle = algorithm.valley_filter(g[y0:y1, x0:x1], sigmas=(p.sigma_fine_px, p.sigma_coarse_px))
        box = (slice(y0, y1), slice(x0, x1))
        skin_box = skin[box]
        scale = float(k)
        per_mm = ctx.px_per_mm
        weighted = np.zeros_like(strength)
        zones: dict[str, float] = {}
        measurements: dict[str, object] = {}
        markers: list[tuple[float, float, float]] = []
        total_len = 0.0
        total_count = 0
        for reg in regions:
            # every region lies inside the box; min of two masks: non-zero where both are
            rm = cv2.min(reg.mask[box], skin_box)
            area_px = float(cv2.countNonZero(rm)) * scale * scale
            if area_px == 0:
                continue
            x, y, bw, bh = cv2.boundingRect(rm)
            crop = (slice(y, y + bh), slice(x, x + bw))
            w = strength[crop] * algorithm.orientation_weight(angle[crop], reg.prior_deg, reg.tolerance_deg)
            w[rm[crop] == 0] = 0
            np.maximum(weighted[crop], w, out=weighted[crop])
            lines = algorithm.line_segments(
                (w >= p.strength_threshold).astype(np.uint8), min_length=p.min_length_px / scale
            )
            lines = [(cx + (x + x0), cy + (y + y0), ln) for cx, cy, ln in lines]
            length_px = sum(ln for _, _, ln in lines) * scale
            density = 1000.0 * length_px / area_px
            score = 100.0 * min(1.0, density / p.density_full)
            zones[reg.name] = score
            measurements[f"{reg.name}_count"] = len(lines)
            measurements[f"{reg.name}_length_px"] = length_px
            measurements[f"{reg.name}_density_px_per_kpx2"] = density
            if per_mm:
                measurements[f"{reg.name}_length_mm"] = length_px / per_mm
                measurements[f"{reg.name}_density_mm_per_cm2"] = (length_px / per_mm) / (area_px / per_mm**2 / 100.0)
            measurements[f"{reg.name}_severity"] = severity_for(score)
            total_len += length_px
            total_count += len(lines)
            markers.extend(
                ((cx + 0.5) * scale - 0.5, (cy + 0.5) * scale - 0.5, 0.5 * ln * scale) for cx, cy, ln in lines
            )

        if not zones:
            return DetectorResult(status="skipped", message=NO_REGION_SKIN)
        type_scores = np.array(list(zones.values()))
        score = 0.5 * type_scores.max() + 0.5 * type_scores.mean()
        measurements["line_count"] = total_count
        measurements["total_length_px"] = total_len
        if per_mm:
            measurements["total_length_mm"] = total_len / per_mm
        markers.sort(key=lambda m: -m[2])
        heat = np.zeros(g.shape, np.uint8)
        heat[box] = np.clip(weighted * (255.0 / (2.0 * p.strength_threshold)), 0, 255)
        if k != 1:
            heat = cv2.resize(heat, ctx.gray.shape[::-1], interpolation=cv2.INTER_LINEAR)
        return DetectorResult(
            score=score,
            zones=zones,
            measurements=measurements,
            evidence=Evidence(
                markers=ctx.to_image_markers(np.array(markers[: p.max_markers]).reshape(-1, 3)), mask=heat
            ),
        )

    def _usable_skin(self, ctx: FaceContext, g: np.ndarray, k: int) -> np.ndarray:
        """Skin on the shrunk grid minus very dark hair/brow/lash pixels and the eyes themselves."""
        p: WrinklesParams = self.params
        skin = np.ascontiguousarray(ctx.skin_mask[k // 2 :: k, k // 2 :: k][: g.shape[0], : g.shape[1]])
        hist = cv2.calcHist([g], [0], skin, [256], [0, 256]).ravel()
        if hist.sum() > 0:
            median = float(np.searchsorted(np.cumsum(hist), 0.5 * hist.sum()))
            _, dark = cv2.threshold(g, median - p.dark_margin, 255, cv2.THRESH_BINARY_INV)
            skin = cv2.bitwise_and(skin, cv2.bitwise_not(cv2.dilate(dark, np.ones((3, 3), np.uint8))))
        eyes = [ctx.landmarks[n] for n in ("left_eye", "right_eye") if n in ctx.landmarks]
        if len(eyes) == 2 and p.eye_exclusion > 0:
            radius = p.eye_exclusion * float(np.hypot(eyes[1][0] - eyes[0][0], eyes[1][1] - eyes[0][1])) / k
            for x, y in eyes:
                cv2.circle(
                    skin, (int(round((x + 0.5) / k - 0.5)), int(round((y + 0.5) / k - 0.5))), int(round(radius)), 0, -1
                )
        return skin


@hookimpl
def register_detectors(register):
    register(WrinklesDetector)
