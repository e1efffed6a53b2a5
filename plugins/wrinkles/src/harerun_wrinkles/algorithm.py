"""Wrinkle lines: Hessian valley filter, orientation priors, line length.

Wrinkles are thin dark valleys. Their strength is measured with the
eigenvalues of the scale-normalised Hessian (Lindeberg 1998, "Edge and ridge
detection with automatic scale selection", IJCV 30:117), as in the line
filters of Sato et al. 1998 (Med. Image Anal. 2:143) and Frangi et al. 1998
(MICCAI, LNCS 1496:130): across a dark line the second derivative is large
and positive (``l1``), along it near zero (``l2``), so

    strength = sigma^2 * max(l1 - |l2|, 0)

is high on lines and ~0 on flat skin and on round pits (pores), where
``l1 ~ l2``. Derivatives come from ``cv2.GaussianBlur`` + ``cv2.Sobel`` at a
few scales on a half-resolution image (an OpenCV replacement for
``skimage.filters.sato``, ~20x faster on a 512 px ROI). The line direction is
the eigenvector of ``l2``; a zone's orientation prior down-weights lines that
run the wrong way (Gaussian in the angle difference).

The score does not come from thresholded, connected line pieces (a 1 px gap
splits a 37 px line into two short ones and a re-encode takes most of its
weight away): the orientation-weighted strength, capped at twice the threshold,
is averaged along a ``min_length`` px segment in the region's prior direction
(:func:`line_evidence`), and each pixel counts by that average's rise from the
threshold to twice it (0 to 1). A pixel counts fully only when a line of full
strength runs ``min_length`` px through it; a gap or a short blob lowers the
average a little, it does not cut a line in two. The line evidence is an area
(px²), pooled over the regions' skin and divided by at least ``min_area``.

For the reported lines (count, length, markers), the length of a connected line
region is the long side of the rectangle with the region's contour area ``A``
and half-perimeter ``s`` (``L = (s + sqrt(s^2 - 4A)) / 2``), which holds for
straight and curved thin bands.
"""

from __future__ import annotations

from functools import partial

import cv2
import numpy as np

from harerun.imageops import mask_window, union
from harerun.results import severity_for


def valley_filter(gray: np.ndarray, *, sigmas=(1.0, 2.0)) -> tuple[np.ndarray, np.ndarray]:
    """Multi-scale dark-line strength and line direction.

    Parameters
    ----------
    gray : (H, W) uint8 or float image.
    sigmas : Gaussian scales in pixels of ``gray``.

    Returns
    -------
    strength : (H, W) float32, grey levels (scale-normalised), max over scales.
    angle : (H, W) float32 line direction in degrees in [0, 180), measured in
        image axes (x right, y down): 0 = horizontal, 90 = vertical, 45 = from
        top-left to bottom-right (see :func:`line_angle`).
    """
    g = gray.astype(np.float32)
    best = None
    for s in sigmas:
        b = cv2.GaussianBlur(g, (0, 0), s)
        dxx = cv2.Sobel(b, cv2.CV_32F, 2, 0, ksize=3)
        dyy = cv2.Sobel(b, cv2.CV_32F, 0, 2, ksize=3)
        dxy = cv2.Sobel(b, cv2.CV_32F, 1, 1, ksize=3)
        diff = cv2.subtract(dxx, dyy)
        root = cv2.magnitude(0.5 * diff, dxy)  # sqrt(((dxx - dyy) / 2)^2 + dxy^2)
        trace = cv2.add(dxx, dyy)
        # with l1,2 = tr/2 +- root:  l1 - |l2| = 2*root if l2 >= 0 else tr, i.e. min(2*root, tr)
        # ksize-3 Sobel second derivatives are 4x the true ones; /4 keeps strength in grey levels
        r = cv2.max(cv2.min(2.0 * root, trace), 0.0) * (0.25 * s * s)
        if best is None:
            best, bdiff, bdxy = r, diff, dxy
        else:
            better = r > best
            np.copyto(best, r, where=better)
            np.copyto(bdiff, diff, where=better)
            np.copyto(bdxy, dxy, where=better)
    # the normal (l1 eigenvector) is at 0.5*atan2(2 dxy, dxx - dyy) from x; the line is 90 deg off
    angle = cv2.phase(bdiff, 2.0 * bdxy, angleInDegrees=True)  # [0, 360): the normal, twice
    angle *= 0.5
    angle += 90.0
    # back to [0, 180): x - 180 is exact for x in [180, 360), so any subtraction gives the same bits;
    # OpenCV's masked one is ~10x faster than numpy's boolean indexing here
    cv2.subtract(angle, 180.0, dst=angle, mask=cv2.compare(angle, 180.0, cv2.CMP_GE))
    return best, angle


def line_angle(p0, p1) -> float:
    """Direction in degrees [0, 180) of the segment p0 -> p1, in the convention of :func:`valley_filter`."""
    return float(np.degrees(np.arctan2(p1[1] - p0[1], p1[0] - p0[0])) % 180.0)


def orientation_weight(angle: np.ndarray, prior_deg: float, tolerance_deg: float) -> np.ndarray:
    """``exp(-d^2 / (2 tol^2))`` with ``d`` the axial angle difference (mod 180) to the prior."""
    if angle.dtype != np.float32:
        d = np.abs(np.mod(angle - prior_deg + 90.0, 180.0) - 90.0)
        return np.exp(-0.5 * (d / tolerance_deg) ** 2).astype(np.float32)
    # float32 (valley_filter's angle): in place on one buffer, the same operations in the same order
    d = angle - prior_deg
    d += 90.0
    np.mod(d, 180.0, out=d)
    d -= 90.0
    np.abs(d, out=d)
    d /= tolerance_deg
    np.square(d, out=d)
    d *= -0.5
    return np.exp(d, out=d)


def line_segments(
    binary: np.ndarray, *, min_length: float = 0.0, strength: np.ndarray | None = None
) -> list[tuple[float, float, float, float]]:
    """Connected line regions of a uint8 mask as ``(cx, cy, length, mean strength)``, at least
    ``min_length`` px long (mean of ``strength`` over the region; 0 without it)."""
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    out = []
    # L <= half the perimeter, and an 8-connected contour has at least perimeter / sqrt(2)
    # points, so anything with fewer than ~1.4 * (min_length - 1) points is too short: skip
    # the arithmetic for the many tiny fragments
    min_points = int(1.4 * (min_length - 1.0))
    for c in contours:
        if len(c) < min_points:
            continue
        area = cv2.contourArea(c)
        s = 0.5 * cv2.arcLength(c, True)
        length = 0.5 * (s + np.sqrt(max(s * s - 4.0 * area, 0.0))) + 1.0  # +1: contours run through pixel centres
        if length < min_length:
            continue
        m = c.reshape(-1, 2).astype(np.float64)
        cx, cy = m.mean(axis=0)
        out.append((float(cx), float(cy), float(length), _mean_inside(c, binary, strength)))
    return out


def _mean_inside(contour: np.ndarray, binary: np.ndarray, values: np.ndarray | None) -> float:
    """Mean of ``values`` over the pixels of ``binary`` inside ``contour`` (0 without values)."""
    if values is None:
        return 0.0
    x, y, w, h = cv2.boundingRect(contour)
    inside = np.zeros((h, w), np.uint8)
    cv2.drawContours(inside, [contour], -1, 1, -1, offset=(-x, -y))
    inside &= binary[y : y + h, x : x + w] > 0
    return float(values[y : y + h, x : x + w][inside > 0].mean()) if inside.any() else 0.0


def line_weight(length: float, strength: float, *, min_length: float, threshold: float) -> float:
    """How much of a line counts, in px: its length beyond ``min_length``, times its mean
    strength's rise from ``threshold`` to ``2 * threshold`` (0 to 1).

    Both ramps make the score continuous: a line just crossing the length cut-off or the
    strength threshold under a re-encode or a small rotation adds little, not all of its length.
    """
    rise = min(1.0, max(0.0, strength / threshold - 1.0))
    return max(0.0, length - min_length) * rise


def line_kernel(length: float, angle_deg: float) -> np.ndarray:
    """Normalised (sum 1) anti-aliased segment ``length`` px long at ``angle_deg``
    (:func:`valley_filter`'s convention), centred in an odd square kernel."""
    n = int(np.ceil(length)) | 1
    kernel = np.zeros((n, n), np.float32)
    c = n // 2
    dx, dy = 0.5 * (length - 1.0) * np.cos(np.radians(angle_deg)), 0.5 * (length - 1.0) * np.sin(np.radians(angle_deg))
    ends = [(int(round((c + sx * dx) * 16)), int(round((c + sx * dy) * 16))) for sx in (-1, 1)]  # 1/16 px: shift 4
    cv2.line(kernel, ends[0], ends[1], 1.0, 1, cv2.LINE_AA, shift=4)
    return kernel / kernel.sum()


def line_evidence(weighted: np.ndarray, prior_deg: float, *, length: float, threshold: float) -> np.ndarray:
    """How much each pixel is on a line at least ``length`` px long: the orientation-weighted
    strength capped at ``2 * threshold``, averaged along a ``length`` px segment in the prior
    direction, then its rise from ``threshold`` to ``2 * threshold`` (0 to 1). (H, W) float32.

    Smooth in everything a benign change moves: a line's strength or length near a cut-off, a gap
    in it, its angle (the average falls slowly as a line turns off the segment).
    """
    capped = np.minimum(weighted, 2.0 * threshold)
    mean = cv2.filter2D(capped, -1, line_kernel(length, prior_deg), borderType=cv2.BORDER_CONSTANT)
    mean *= 1.0 / threshold
    mean -= 1.0
    return np.clip(mean, 0.0, 1.0, out=mean)


def without_hair(gray: np.ndarray, skin: np.ndarray, *, dark_margin: float) -> np.ndarray:
    """``skin`` (uint8, on ``gray``'s grid) minus hair, brows and lashes: pixels ``dark_margin``
    grey levels darker than the skin's median, grown by a pixel. Returns a new mask."""
    hist = cv2.calcHist([gray], [0], skin, [256], [0, 256]).ravel()
    if hist.sum() == 0:
        return skin.copy()
    median = float(np.searchsorted(np.cumsum(hist), 0.5 * hist.sum()))
    _, dark = cv2.threshold(gray, median - dark_margin, 255, cv2.THRESH_BINARY_INV)
    return cv2.bitwise_and(skin, cv2.bitwise_not(cv2.dilate(dark, np.ones((3, 3), np.uint8))))


def without_eyes(skin: np.ndarray, eyes, *, fraction: float, shrink: int = 1) -> np.ndarray:
    """``skin`` with a disc of ``fraction`` x the eye distance blanked around each of the two
    ``eyes`` ((x, y) ROI px; the mask is on a grid ``shrink`` times coarser), in place. With fewer
    than two eyes or ``fraction`` 0 it is left as it is."""
    if len(eyes) == 2 and fraction > 0:
        (ax, ay), (bx, by) = eyes
        radius = int(round(fraction * float(np.hypot(bx - ax, by - ay)) / shrink))
        for x, y in eyes:
            centre = (int(round((x + 0.5) / shrink - 0.5)), int(round((y + 0.5) / shrink - 0.5)))
            cv2.circle(skin, centre, radius, 0, -1)
    return skin


def region_lines(
    gray: np.ndarray, skin: np.ndarray, regions, *, sigmas=(1.0, 2.0), threshold: float = 1.0, min_length: float = 15.0
) -> tuple[dict[str, tuple[int, float, list[tuple[float, float, float, float]]]], np.ndarray]:
    """Line evidence and dark lines in each region's skin that run along the region's prior.

    Parameters
    ----------
    gray : (H, W) uint8 grey image.
    skin : (H, W) uint8, > 0 where lines may lie (:func:`without_hair`, :func:`without_eyes`).
    regions : objects with ``name``, ``mask`` ((H, W) uint8), ``prior_deg`` and ``tolerance_deg``
        (``harerun_wrinkles.regions.WrinkleRegion``).
    sigmas : :func:`valley_filter` scales, px.
    threshold : orientation-weighted valley strength (grey levels) from which a pixel is on a line.
    min_length : shortest line, px: the segment :func:`line_evidence` averages along, and the
        shortest line reported.

    Returns
    -------
    found : region name -> (skin pixels, line evidence px² (:func:`line_evidence` summed over the
        skin), lines ``(cx, cy, length, weight)``), for the regions with skin, in ``regions``
        order; ``weight`` is :func:`line_weight` (px), > 0 for the lines that are reported.
    heat : (H, W) uint8 evidence: :func:`line_evidence`, 255 for 1.
    """
    span = union([reg.mask for reg in regions], gray.shape)
    if not cv2.countNonZero(span):
        return {}, np.zeros(gray.shape, np.uint8)
    # filter only the box around all regions + the kernels' reach: about half the ROI
    rows, cols = mask_window(span, int(np.ceil(3 * max(sigmas))) + 2)
    strength, angle = valley_filter(gray[rows, cols], sigmas=sigmas)
    evidence = np.zeros_like(strength)
    found = {}
    skin = skin[rows, cols]
    weigh = partial(line_weight, min_length=min_length, threshold=threshold)
    for reg in regions:
        rm = cv2.min(reg.mask[rows, cols], skin)  # non-zero where both are
        area = cv2.countNonZero(rm)
        if area == 0:
            continue
        x, y, bw, bh = cv2.boundingRect(rm)
        crop = (slice(y, y + bh), slice(x, x + bw))
        outside = rm[crop] == 0
        w = strength[crop] * orientation_weight(angle[crop], reg.prior_deg, reg.tolerance_deg)
        w[outside] = 0
        # w is 0 outside the crop's skin, so the zero border of the averaging is exact
        ev = line_evidence(w, reg.prior_deg, length=min_length, threshold=threshold)
        ev[outside] = 0
        np.maximum(evidence[crop], ev, out=evidence[crop])
        lines = line_segments((w >= threshold).astype(np.uint8), min_length=min_length, strength=w)
        ox, oy = x + cols.start, y + rows.start
        found[reg.name] = (area, float(ev.sum()), [(cx + ox, cy + oy, ln, weigh(ln, st)) for cx, cy, ln, st in lines])
    heat = np.zeros(gray.shape, np.uint8)
    heat[rows, cols] = np.clip(evidence * 255.0, 0, 255)
    return found, heat


def wrinkle_score(density: float, *, density_at_half: float) -> float:
    """0-100 from a line-evidence density: ``100 * (1 - 2 ** (-density / density_at_half))``
    (saturating: monotone, no ceiling to pile up on; ``density_at_half`` scores 50)."""
    return float(100.0 * (1.0 - 2.0 ** (-max(density, 0.0) / density_at_half)))


def evidence_density(evidence_px: float, area_px: float, *, min_area: float) -> float:
    """Line evidence per 1000 px² of skin, over at least ``min_area`` px²: a sliver of skin with
    one line in it scores by the line's share of ``min_area``, not of the sliver."""
    return 1000.0 * evidence_px / max(area_px, min_area, 1.0)


def line_scores(
    found: dict[str, tuple[int, float, list[tuple[float, float, float, float]]]],
    *,
    shrink: int = 1,
    px_per_mm: float | None = None,
    density_at_half: float,
    min_area: float = 0.0,
) -> tuple[float, dict[str, float], dict[str, object]]:
    """Score, region scores and measurements from :func:`region_lines`' ``found`` (on a grid
    ``shrink`` times coarser than the ROI; ``min_area`` in ROI px²).

    The density is the line evidence (px²) per 1000 px² of skin (:func:`evidence_density`); a
    region scores its own density, the face the density pooled over all its regions (total
    evidence over total area, so a small region with one line moves the face score by its share
    of the area, not by half the scale). Counts and lengths are of the reported lines (at least
    ``min_length`` long, mean strength above the threshold); lengths in mm too with ``px_per_mm``.
    """
    zones: dict[str, float] = {}
    measurements: dict[str, object] = {}
    total_len, total_evidence, total_area, total_count = 0.0, 0.0, 0.0, 0
    scale = float(shrink)
    score = partial(wrinkle_score, density_at_half=density_at_half)
    density = partial(evidence_density, min_area=min_area)
    for name, (area, evidence, lines) in found.items():
        counted = [ln for _, _, ln, wt in lines if wt > 0]
        area_px = float(area) * scale * scale
        length_px = sum(counted) * scale
        evidence_px = evidence * scale * scale
        zones[name] = score(density(evidence_px, area_px))
        measurements[f"{name}_count"] = len(counted)
        measurements[f"{name}_length_px"] = length_px
        measurements[f"{name}_density_permille"] = density(evidence_px, area_px)
        if px_per_mm:
            measurements[f"{name}_length_mm"] = length_px / px_per_mm
        measurements[f"{name}_severity"] = severity_for(zones[name])
        total_len += length_px
        total_evidence += evidence_px
        total_area += area_px
        total_count += len(counted)
    measurements["line_count"] = total_count
    measurements["total_length_px"] = total_len
    measurements["skin_area_px"] = total_area
    measurements["density_permille"] = density(total_evidence, total_area)
    if px_per_mm:
        measurements["total_length_mm"] = total_len / px_per_mm
    return score(measurements["density_permille"]), zones, measurements


def line_circles(found: dict[str, tuple[int, float, list[tuple[float, float, float, float]]]]) -> np.ndarray:
    """The reported lines (weight > 0) of :func:`region_lines` as (N, 3) circles
    ``[cx, cy, length / 2]``, longest first."""
    lines = [line[:3] for _, _, region in found.values() for line in region if line[3] > 0]
    circles = np.array(lines).reshape(-1, 3) * (1.0, 1.0, 0.5)
    return circles[np.argsort(-circles[:, 2], kind="stable")]
