"""The ``wrinkles`` detector: oriented dark lines per wrinkle type, their length, density and severity."""

from __future__ import annotations

from pydantic import Field

from harerun import hookimpl
from harerun.detector import Detector, DetectorParams, FaceContext, max_magnification_param
from harerun.results import DetectorResult, Evidence
from harerun_wrinkles import algorithm
from harerun_wrinkles.regions import wrinkle_regions

NO_REGION_SKIN = "no skin pixels in any wrinkle region"


class WrinklesParams(DetectorParams):
    max_magnification: float = max_magnification_param(
        6.0,
        "the score of a smaller face no longer follows the full-size photo's (`python bench/repeatability.py "
        "--shrink`, train close-ups shrunk: median |change| / ICC 2.1 / 0.92 up to x6, 2.5 / just under 0.90 up to x8"
        "; trusted while <= 5 / >= 0.9)",
    )
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
    density_at_half: float = Field(
        33.0, gt=0.0, le=1000.0, description="line evidence (px²) per 1000 px² of skin that scores 50"
    )
    min_area_px: float = Field(
        5000.0,
        ge=0.0,
        le=100000.0,
        description="the density is taken over at least this much skin (ROI px²), so a sliver cannot max the score",
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


class WrinklesDetector(Detector, name="wrinkles", version="0.1.0", params=WrinklesParams):
    """Hessian valley lines (Sato/Frangi-style, OpenCV) with per-type orientation priors."""

    def analyze(self, ctx: FaceContext) -> DetectorResult:
        p: WrinklesParams = self.params
        if small := ctx.too_small_for("measuring wrinkles", max_magnification=p.max_magnification):
            return small
        k = p.downscale
        roi = ctx.grid(k)  # the line filter runs on the ROI area-averaged k x k
        gray = roi.shrink(ctx.gray)
        eyes = [ctx.landmarks[n] for n in ("left_eye", "right_eye") if n in ctx.landmarks]
        skin = algorithm.without_hair(gray, roi.sample(ctx.skin_mask), dark_margin=p.dark_margin)
        skin = algorithm.without_eyes(skin, eyes, fraction=p.eye_exclusion, shrink=k)
        regions = wrinkle_regions(
            ctx.gray.shape[0],
            ctx.landmarks,
            {**ctx.zones, **ctx.fold_zones},
            hidden=ctx.hidden_zones,
            tolerance_deg=p.tolerance_deg,
            crows_feet_tolerance_deg=p.crows_feet_tolerance_deg,
            shrink=k,
        )
        sigmas = (p.sigma_fine_px, p.sigma_coarse_px)
        found, heat = algorithm.region_lines(
            gray, skin, regions, sigmas=sigmas, threshold=p.strength_threshold, min_length=p.min_length_px / k
        )
        if not found:
            return DetectorResult(status="skipped", message=NO_REGION_SKIN)
        score, zones, measurements = algorithm.line_scores(
            found, shrink=k, px_per_mm=ctx.px_per_mm, density_at_half=p.density_at_half, min_area=p.min_area_px
        )
        markers = roi.to_roi(algorithm.line_circles(found)[: p.max_markers])
        return DetectorResult(
            score=score,
            zones=zones,
            measurements=measurements,
            evidence=Evidence(markers=ctx.to_image_markers(markers), mask=roi.paste(heat, ctx.gray.shape)),
        )


@hookimpl
def register_detectors(register):
    register(WrinklesDetector)
