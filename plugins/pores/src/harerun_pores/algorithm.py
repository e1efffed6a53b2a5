"""Pore detection: small dark blobs on CIELAB L*, pure numpy/OpenCV functions.

A pore is a small dark blob. The blob filter is the difference of Gaussians (DoG), the
standard approximation of the scale-normalised Laplacian of Gaussian for blob detection
(Lindeberg 1998; Lowe 2004): ``response = surround(L*) - centre(L*)`` is high where the
centre is darker than its surround. For a blob of radius r the matching centre sigma is
r / sqrt(2). The surround is a normalised convolution (Knutsson & Westin 1993) restricted to
the skin mask. Peaks are local maxima (grey dilation, as in
``skimage.feature.peak_local_max``); their connected regions must be small and round, which
keeps out hair, wrinkles, acne and dark spots.

The score does not count those peaks: a count of hard detections at a contrast and size cut
jumps when resampling, JPEG or exposure move blobs across the cut (pores are 1-2 px on the
face ROI). It sums a graded map instead (:func:`pore_darkness`): the scale-normalised
smallest Hessian eigenvalue of L* (Lindeberg 1998), positive only in dark dots, above a
small noise floor, over the skin without hair.
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


def pore_darkness(
    lightness: np.ndarray,
    skin_mask: np.ndarray,
    masks: dict[str, np.ndarray],
    *,
    sigma_px: float,
    noise_floor: float = 0.3,
    hair_contrast: float = 12.0,
    report_mask: np.ndarray | None = None,
) -> dict[str, tuple[float, int]]:
    """Graded darkness of pore-sized dark dots, summed over each of ``masks``.

    1. **Dot strength**: ``sigma² · λ_min`` of the Hessian of L* smoothed at ``sigma_px`` (the
       scale-normalised smallest curvature, Lindeberg 1998), in ΔL*. It is positive only where
       L* dips in every direction, a dark dot; about 0 along a line or an edge (wrinkle, hair,
       the rim of a big spot). A dot of depth c and width ``sigma_px`` gives about c / 4.
    2. **Visible part**: ``max(strength - noise_floor, 0)``, a soft knee, not a cut: a dot that
       gets a little weaker under resampling adds a little less, it does not vanish.
    3. **Hair**: pixels more than ``hair_contrast`` ΔL* darker than their surround (the Gaussian
       mean of L*, σ = 4 ``sigma_px``, on a 4x coarser grid), grown by 1.5 ``sigma_px``, are
       not measured: eyebrows, the hairline and stubble are strong dark dots, not pores.

    Parameters
    ----------
    lightness : (H, W) float32 L* (0-100).
    skin_mask : (H, W) uint8, > 0 on skin (only skin is measured).
    masks : name -> (H, W) uint8 mask (> 0 inside), e.g. each zone's skin.
    sigma_px : smoothing scale of the dots.
    noise_floor : dot strength (ΔL*) that counts as nothing.
    hair_contrast : ΔL* below the surround from which a pixel is hair.
    report_mask : (H, W) uint8 holding every mask; the filters run only in the box around it
        (plus their reach), with the same values there as on the whole image.

    Returns
    -------
    name -> ``(sum, n)``: the darkness summed over the mask's measured pixels (skin, not hair)
    and their number. ``100 * sum / n`` is the visible pores' darkness-weighted area, ΔL*·mm²
    per cm² of skin, whatever the pixel size (it is a mean over the area).
    """
    sigma_s = 4 * sigma_px
    margin = 4 * (int(np.ceil(2.5 * sigma_s / 4)) + 2) + int(np.ceil(2.5 * sigma_px)) + 4
    rows, cols = mask_window(skin_mask if report_mask is None else report_mask, margin, align=8)
    skin = skin_mask[rows, cols]
    light = np.ascontiguousarray(lightness[rows, cols], np.float32)
    # 1. Dot strength: the Hessian's smaller eigenvalue, times sigma². The second derivatives
    #    of the Gaussian-smoothed L* are one separable filter each: the Gaussian convolved with
    #    the 3x3 Sobel taps / 4 (central differences).
    g = cv2.getGaussianKernel(2 * int(np.ceil(2.5 * sigma_px)) + 1, sigma_px, cv2.CV_32F).ravel()
    second, first, smooth = (np.convolve(g, taps) for taps in ([1, -2, 1], [-0.5, 0, 0.5], [0.25, 0.5, 0.25]))
    s2 = float(sigma_px) ** 2
    lxx = cv2.sepFilter2D(light, cv2.CV_32F, second * s2, smooth)
    lyy = cv2.sepFilter2D(light, cv2.CV_32F, smooth, second * s2)
    lxy = cv2.sepFilter2D(light, cv2.CV_32F, first * s2, first)
    # 2. Visible part above the noise floor: (lxx + lyy) / 2 - |((lxx - lyy) / 2, lxy)| - noise_floor, at least 0.
    half_gap = cv2.magnitude(cv2.addWeighted(lxx, 0.5, lyy, -0.5, 0.0), lxy, magnitude=lxy)
    visible = cv2.addWeighted(lxx, 0.5, lyy, 0.5, -float(noise_floor), dst=lxx)
    visible = cv2.max(cv2.subtract(visible, half_gap, dst=visible), 0.0, dst=visible)
    # 3. Hair: much darker than the skin around it, and the pixels next to it.
    h, w = light.shape
    small = cv2.resize(light, (w // 4, h // 4), interpolation=cv2.INTER_AREA)  # a smooth mean needs no detail
    surround = cv2.resize(gaussian(small, sigma_s / 4), (w, h), interpolation=cv2.INTER_LINEAR)
    hair = cv2.compare(cv2.subtract(surround, light), float(hair_contrast), cv2.CMP_GT)
    reach = max(1, round(1.5 * sigma_px))
    hair = cv2.dilate(hair, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1)))
    measured = cv2.bitwise_and(skin, cv2.bitwise_not(hair, dst=hair), dst=hair)
    out, inside = {}, np.empty_like(measured)
    for name, mask in masks.items():
        cv2.bitwise_and(measured, mask[rows, cols], dst=inside)
        x, y, bw, bh = cv2.boundingRect(inside)  # a masked mean reads its whole image: only the zone's box
        box = slice(y, y + bh), slice(x, x + bw)
        n = cv2.countNonZero(inside[box])
        out[name] = (float(cv2.mean(visible[box], mask=inside[box])[0]) * n if n else 0.0, n)
    return out


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


def pore_score(darkness_per_cm2: float, *, darkness_at_half: float) -> float:
    """0-100 score from the pores' darkness per cm²: ``100 * (1 - 2 ** (-darkness / darkness_at_half))``.

    Saturating, so it stays monotone without a hard ceiling; ``darkness_at_half`` scores 50.
    """
    return float(100.0 * (1.0 - 2.0 ** (-max(darkness_per_cm2, 0.0) / darkness_at_half)))
