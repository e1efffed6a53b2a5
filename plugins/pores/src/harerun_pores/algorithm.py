"""Pore detection: small dark blobs on CIELAB L*, pure numpy/OpenCV functions.

A pore is a small dark blob. The blob filter is the difference of Gaussians (DoG), the
standard approximation of the scale-normalised Laplacian of Gaussian for blob detection
(Lindeberg 1998; Lowe 2004): ``response = surround(L*) - centre(L*)`` is high where the
centre is darker than its surround. For a blob of radius r the matching centre sigma is
r / sqrt(2). The surround is a normalised convolution (Knutsson & Westin 1993) restricted to
the skin mask. Peaks are local maxima (grey dilation, as in
``skimage.feature.peak_local_max``); their connected regions must be small and round, which
keeps out hair, wrinkles, acne and dark spots.
"""

from __future__ import annotations

import cv2
import numpy as np

from harerun.imageops import gaussian, mask_window, masked_gaussian_mean, peak_coordinates


def detect_pores(
    lightness: np.ndarray,
    skin_mask: np.ndarray,
    *,
    min_radius_px: float = 0.7,
    max_radius_px: float = 2.5,
    min_contrast: float = 2.0,
    min_separation_px: int = 2,
    max_elongation: float = 2.5,
    report_mask: np.ndarray | None = None,
) -> np.ndarray:
    """Find pores as small dark blobs.

    Parameters
    ----------
    lightness : (H, W) float32 L* (0-100).
    skin_mask : (H, W) uint8, > 0 on skin.
    min_radius_px, max_radius_px : accepted pore radius range; the DoG centre sigma is
        ``mean radius / sqrt(2)`` (at least 0.6 px) and the surround 4x that (at least 3 px).
    min_contrast : minimum darkness ΔL* (surround minus centre) at the peak.
    min_separation_px : radius of the local-maximum window.
    max_elongation : largest bounding-box elongation of a pore's region.
    report_mask : (H, W) uint8; when given, only pores centred on it (> 0) are returned (e.g.
        the skin inside the face zones), and the filters run only around it, while the local
        surround still uses the whole skin mask.

    Returns
    -------
    (N, 4) float64 array ``[x, y, r, contrast_delta_l]`` in ROI pixels, darkest first.
    """
    sigma_c = max(0.6, 0.5 * (min_radius_px + max_radius_px) / np.sqrt(2))
    sigma_s = max(3.0, 4 * sigma_c)
    reach = int(np.ceil(2 * max_radius_px)) + 1
    # Filter only the box around the reported area plus the filters' reach (corners on the
    # half-resolution grid): the same values there as on the whole ROI, a fraction of the work.
    margin = 2 * (int(np.ceil(2.5 * sigma_s / 2)) + 2) + max(reach, int(min_separation_px))
    rows, cols = mask_window(skin_mask if report_mask is None else report_mask, margin, align=8)
    skin_mask = skin_mask[rows, cols]
    weight = (skin_mask > 0).astype(np.float32)
    # One copy of the strided L* view (of the window only), not one per filter.
    lightness = np.ascontiguousarray(lightness[rows, cols], np.float32)
    response = masked_gaussian_mean(lightness, weight, sigma_s, downscale=2) - gaussian(lightness, sigma_c)
    size = 2 * int(min_separation_px) + 1
    inner = cv2.erode(skin_mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))) > 0
    peak = response >= cv2.dilate(response, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    peak &= inner & (response >= min_contrast)
    ys, xs = peak_coordinates(peak)
    if report_mask is not None:
        on = report_mask[rows, cols][ys, xs] > 0
        ys, xs = ys[on], xs[on]
    if len(xs) == 0:
        return np.zeros((0, 4))
    radius, elongation = half_max_shape(response, xs, ys, reach=reach)
    # A pore is small and round; bigger or elongated blobs are acne, spots, hair or wrinkles.
    keep = (elongation <= max_elongation) & (radius <= 1.25 * max_radius_px)
    radius = np.clip(radius, min_radius_px, max_radius_px)
    out = np.column_stack([xs + cols.start, ys + rows.start, radius, response[ys, xs]])[keep]
    return out[np.argsort(-out[:, 3], kind="stable")].astype(np.float64)


def half_max_shape(
    response: np.ndarray, xs: np.ndarray, ys: np.ndarray, *, reach: int
) -> tuple[np.ndarray, np.ndarray]:
    """Size and elongation of each peak's blob, from the pixels at or above half its height.

    Looks only at a ``(2 * reach + 1)`` square around each peak (vectorised over peaks).
    The radius is that of a disk with the half-maximum area (a blob filling the window
    reports about ``reach``); the elongation is ``sqrt(l1 / l2)`` of the eigenvalues of the
    half-maximum pixels' second moments (1 for a disk).
    """
    h, w = response.shape
    off = np.arange(-reach, reach + 1)
    flat = np.clip(ys[:, None] + off, 0, h - 1)[:, :, None] * w + np.clip(xs[:, None] + off, 0, w - 1)[:, None, :]
    patches = np.take(response, flat)  # flat indices: faster than response[iy, ix]
    inside = (patches >= 0.5 * response[ys, xs][:, None, None]).reshape(len(xs), -1).astype(np.float32)
    # The moment sums in one matrix product (integer sums, exact in float32).
    dy, dx = (g.ravel().astype(np.float32) for g in np.meshgrid(off, off, indexing="ij"))
    moments = np.column_stack([np.ones_like(dx), dx, dy, dx * dx, dy * dy, dx * dy])
    # cv2.gemm, not numpy @: OpenBLAS would spread this small product over threads and wait.
    sums = cv2.gemm(inside, moments, 1.0, None, 0.0).astype(np.float64)
    area = sums[:, 0]
    mx = sums[:, 1] / area
    my = sums[:, 2] / area
    cxx = sums[:, 3] / area - mx * mx + 1 / 12  # + pixel's own extent
    cyy = sums[:, 4] / area - my * my + 1 / 12
    cxy = sums[:, 5] / area - mx * my
    root = np.sqrt(((cxx - cyy) / 2) ** 2 + cxy**2)
    l1, l2 = (cxx + cyy) / 2 + root, np.maximum((cxx + cyy) / 2 - root, 1e-6)
    return np.sqrt(area / np.pi), np.sqrt(l1 / l2)


def mean_radius(pores: np.ndarray, selected: np.ndarray | None = None) -> float:
    """Mean radius of :func:`detect_pores`' rows (those a bool ``selected`` picks), 0 without any."""
    r = pores[:, 2] if selected is None else pores[selected, 2]
    return float(r.mean()) if len(r) else 0.0


def pore_score(density_per_cm2: float, *, density_at_half: float) -> float:
    """0-100 score from the pore density: ``100 * (1 - 2 ** (-density / density_at_half))``.

    Saturating, so it stays monotone without a hard ceiling; ``density_at_half`` scores 50.
    """
    return float(100.0 * (1.0 - 2.0 ** (-max(density_per_cm2, 0.0) / density_at_half)))
