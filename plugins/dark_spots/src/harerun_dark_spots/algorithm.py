"""Dark spot detection (lentigines, post-inflammatory marks, moles): pure numpy/OpenCV.

A dark spot is a compact patch whose lightness L* (CIELAB) lies clearly below that of the
skin around it. The local skin lightness is a skin-only Gaussian mean (normalised
convolution, Knutsson & Westin 1993) several millimetres wide, computed at quarter
resolution; it follows the face's shading, which a single face-wide median L* cannot. The
local contrast ``ΔL* = L*(smoothed 1 px) - background`` is thresholded (hysteresis: seeds at
``min_delta_l``, regions grown to half of it, as in Canny 1986 and
``skimage.filters.apply_hysteresis_threshold``), and the connected regions are kept when
their area and shape (elongation, fill) fit a spot rather than hair, brows or wrinkles.

The score's input is measured per pixel: each kept spot pixel weighs by its darkness beyond
half of ``min_delta_l`` and counts where it lies, so a spot straddling a zone's edge (which
moves with the face's alignment under a small rotation, resize or mirror) enters with the part
of it on the zone's skin, not whole or not at all by where its centre falls.
"""

from __future__ import annotations

import cv2
import numpy as np

from harerun.imageops import gaussian, mask_window, masked_gaussian_mean


def detect_dark_spots(
    lightness: np.ndarray,
    skin_mask: np.ndarray,
    *,
    background_sigma_px: float = 16.0,
    min_delta_l: float = 5.0,
    min_area_px: float = 8.0,
    max_area_px: float = 2000.0,
    max_elongation: float = 3.0,
    min_fill: float = 0.35,
    edge_band_px: float = 8.0,
    report_mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Find dark spots.

    Parameters
    ----------
    lightness : (H, W) float32 L* (0-100).
    skin_mask : (H, W) uint8, > 0 on skin.
    background_sigma_px : Gaussian sigma of the local skin lightness.
    min_delta_l : a spot's darkest part must be at least this much darker (ΔL*) than the
        local skin; the spot extends to where it is half that.
    min_area_px, max_area_px : accepted spot area.
    max_elongation : largest bounding-box elongation (rejects hair, brows, wrinkles).
    min_fill : smallest region area / bounding-box area (rejects diagonal lines, rings).
    edge_band_px : regions reaching within this distance of the skin-mask edge are dropped.
    report_mask : (H, W) uint8; when given, only spots with at least one pixel on it (> 0)
        are reported (e.g. the skin inside the face zones), while the local reference still
        uses the whole skin mask.

    Returns
    -------
    spots : (N, 5) float64 ``[x, y, r, area_px, contrast_delta_l]`` in ROI pixels, ``r`` the
        radius of a disk of the same area and ``contrast_delta_l`` the mean darkness
        (positive, L* units) over the spot; largest contrast x area first.
    mask : (H, W) uint8 map of the kept spots (255 inside).
    pixels : (M, 3) float64 ``[x, y, excess_delta_l]``, one row per pixel of the kept spots
        (ROI pixels): its darkness beyond half of ``min_delta_l`` (>= 0), the input of
        :func:`darkness_pct` and :func:`covered_pct`.
    """
    # Filter only the skin's bounding box plus the background filter's reach (corners on the
    # quarter-resolution grid): every spot lies on the skin, and the values there are the
    # same as on the whole ROI.
    full_shape = skin_mask.shape
    margin = 4 * (int(np.ceil(2.5 * background_sigma_px / 4)) + 2)
    rows, cols = mask_window(skin_mask, margin, align=8)
    skin_mask = skin_mask[rows, cols]
    if report_mask is not None:
        report_mask = report_mask[rows, cols]
    # One copy of the strided L* view (of the window only), not one per filter.
    lightness = np.ascontiguousarray(lightness[rows, cols], np.float32)
    background = masked_gaussian_mean(lightness, (skin_mask > 0).astype(np.float32), background_sigma_px, downscale=4)
    # Everything else only on the skin's bounding box + the 1 px smoothing's reach: outside it
    # there is no skin, so no spot, and the erosion below still sees non-skin around the skin.
    # Corners on the 8 px grid, like the window's: OpenCV's filters compute the last columns of a
    # row not a multiple of 8 wide in another code path (last bits differ), and the labelling
    # scans the same 2x2 blocks in the same order (same labels).
    rows_in, cols_in = mask_window(skin_mask, 3, align=8)
    skin_mask, background = skin_mask[rows_in, cols_in], background[rows_in, cols_in]
    if report_mask is not None:
        report_mask = report_mask[rows_in, cols_in]
    origin = (cols.start, rows.start)  # of the window, for the centroids (see below)
    rows = slice(rows.start + rows_in.start, rows.start + rows_in.stop)
    cols = slice(cols.start + cols_in.start, cols.start + cols_in.stop)
    delta = gaussian(lightness[rows_in, cols_in], 1.0) - background
    weak = ((delta <= -0.5 * min_delta_l) & (skin_mask > 0)).astype(np.uint8)
    # Grana's block-based labelling (BBDT): the same labels and stats as the default
    # algorithm, about twice as fast single-threaded.
    n, labels, stats, centroids = cv2.connectedComponentsWithStatsWithAlgorithm(weak, 8, cv2.CV_32S, cv2.CCL_GRANA)
    if n <= 1:
        return np.zeros((0, 5)), np.zeros(full_shape, np.uint8), np.zeros((0, 3))
    # Regions reaching into a band along the skin-mask edge are dropped: there the local
    # reference mixes in shading, hair and the jaw or nose shadow, not a spot.
    band_px = max(1, int(round(edge_band_px)))
    # A square window: separable, several times faster than a disk of this size.
    inner = cv2.erode(skin_mask, np.ones((2 * band_px + 1, 2 * band_px + 1), np.uint8))
    in_region = weak > 0
    at_border = np.bincount(labels[in_region & (inner == 0)], minlength=n) > 0
    region_labels = labels[in_region]
    region_delta = delta[in_region]
    total = np.bincount(region_labels, weights=-region_delta, minlength=n)
    # Hysteresis: a region counts only if it holds a seed pixel at least min_delta_l darker.
    seeded = np.bincount(region_labels[region_delta <= -min_delta_l], minlength=n) > 0
    area = stats[:, cv2.CC_STAT_AREA].astype(np.float64)
    bw = stats[:, cv2.CC_STAT_WIDTH].astype(np.float64)
    bh = stats[:, cv2.CC_STAT_HEIGHT].astype(np.float64)
    elongation = np.maximum(bw, bh) / np.maximum(np.minimum(bw, bh), 1.0)
    fill = area / np.maximum(bw * bh, 1.0)
    keep = seeded & ~at_border & (area >= min_area_px) & (area <= max_area_px)
    keep &= (elongation <= max_elongation) & (fill >= min_fill)
    keep[0] = False  # background label
    if report_mask is not None:  # touching the reported skin, not centred on it: no cliff at its edge
        keep &= np.bincount(labels[in_region & (report_mask > 0)], minlength=n) > 0
    ids = np.nonzero(keep)[0]
    contrast = total[ids] / area[ids]
    # The labelling's centroids are (exact integer coordinate sum) / area; redo that division in
    # the window's coordinates, as on the whole window, so the centres keep the same bits.
    n_ids = area[ids, None]
    sums = np.rint(centroids[ids] * n_ids) + n_ids * (cols_in.start, rows_in.start)
    centre = sums / n_ids + origin
    spots = np.column_stack([centre, np.sqrt(area[ids] / np.pi), area[ids], contrast])
    spots = spots[np.argsort(-spots[:, 3] * spots[:, 4], kind="stable")]
    full_mask = np.zeros(full_shape, np.uint8)
    mask = full_mask[rows, cols]
    pixels = []
    for i in ids:  # only the kept spots' boxes, instead of a gather over the whole label image
        x, y, bw_i, bh_i = stats[i, :4]
        inside = labels[y : y + bh_i, x : x + bw_i] == i
        mask[y : y + bh_i, x : x + bw_i][inside] = 255
        ys, xs = np.nonzero(inside)
        excess = -delta[y : y + bh_i, x : x + bw_i][inside] - 0.5 * min_delta_l
        pixels.append(np.column_stack([xs + x + cols.start, ys + y + rows.start, np.maximum(excess, 0.0)]))
    pixels = np.concatenate(pixels) if pixels else np.zeros((0, 3))
    return spots.astype(np.float64), full_mask, pixels.astype(np.float64)


def darkness_pct(pixels: np.ndarray, region: np.ndarray, region_px: int) -> float:
    """Contrast-weighted spot area on a region (% · ΔL*): the sum of the spot pixels' darkness
    beyond half of ``min_delta_l`` (:func:`detect_dark_spots`' ``pixels``) over the region's
    pixels (uint8 mask ``region``, ``region_px`` of them), x 100.

    Each pixel counts where it lies, and with its own darkness: a spot's faint rim (which JPEG
    or a resize tips either way) enters near 0, and a spot half on the region half of it.
    """
    on_region = region[pixels[:, 1].astype(int), pixels[:, 0].astype(int)] > 0
    return 100.0 * float(pixels[on_region, 2].sum()) / max(region_px, 1)


def mean_contrast(spots: np.ndarray) -> float:
    """Area-weighted mean ΔL* of :func:`detect_dark_spots`' rows (0 without spots)."""
    area = spots[:, 3]
    return float((area * spots[:, 4]).sum() / area.sum()) if len(spots) else 0.0


def covered_pct(pixels: np.ndarray, region: np.ndarray, region_px: int) -> float:
    """% of a region's ``region_px`` pixels (uint8 mask ``region``) that the spot pixels
    (:func:`detect_dark_spots`' ``pixels``) cover."""
    on_region = region[pixels[:, 1].astype(int), pixels[:, 0].astype(int)] > 0
    return 100.0 * int(on_region.sum()) / max(region_px, 1)


def dark_spot_score(weighted_area_pct: float, *, at_half: float) -> float:
    """0-100 score from the contrast-weighted spot area :func:`darkness_pct` (% · ΔL*).

    ``100 * (1 - 2 ** (-x / at_half))``: monotone in both more area and darker spots.
    """
    return float(100.0 * (1.0 - 2.0 ** (-max(weighted_area_pct, 0.0) / at_half)))
