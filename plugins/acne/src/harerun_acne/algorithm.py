"""Acne lesion detection on a face ROI: pure numpy/OpenCV functions.

The detector looks for small blobs that are redder (CIELAB a*) and usually a little darker
(L*) than the skin around them. The blob filter is a centre-surround difference of Gaussians
(DoG, Marr & Hildreth 1980; Lowe 2004), the standard approximation of the scale-normalised
Laplacian of Gaussian used for blob detection (Lindeberg 1998). The surround is a
*normalised convolution* (Knutsson & Westin 1993) restricted to the skin mask, so hair, the
black letterbox bars or the background never leak into the local skin estimate.

Candidates are the local maxima of the response (grey dilation, as in
``skimage.feature.peak_local_max`` but with OpenCV). Each is described by colour, contrast,
size and shape features (:data:`FEATURES`) and kept when a logistic-regression candidate
filter, fit on the ACNE04 train split only (``bench/acne.py --fit``), gives it a high enough
probability of being an annotated lesion.

Severity follows the lesion-count bands of Hayashi et al. (J Dermatol 2008;35:255-260), the
criterion ACNE04 (Wu et al., ICCV 2019) uses: per half face 0-5 lesions = grade 0 (mild),
6-20 = 1 (moderate), 21-50 = 2 (severe), > 50 = 3 (very severe).
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import cv2
import numpy as np

from harerun.imageops import gaussian, mask_window, median, peak_coordinates

#: Upper lesion counts (per half face) of Hayashi grades 0, 1 and 2; above the last is grade 3.
HAYASHI_BANDS = (5, 20, 50)

# Count per half face -> 0-100 score. The knots put each Hayashi grade into the matching
# severity band of harerun.results (none < 10 <= mild < 35 <= moderate < 65 <= severe).
_SCORE_COUNTS = (0.0, 5.5, 20.5, 50.5, 120.0)
_SCORE_VALUES = (0.0, 10.0, 35.0, 65.0, 100.0)


def skin_mask_ycrcb(
    image: np.ndarray,
    *,
    cr_range: tuple[int, int] = (133, 173),
    cb_range: tuple[int, int] = (77, 127),
    min_luma: int = 40,
    open_px: int = 5,
) -> np.ndarray:
    """Skin mask from a fixed YCrCb box (Chai & Ngan, IEEE TCSVT 1999).

    A fallback for photos used directly as the ROI (benchmarks, tests), where the engine's
    skin mask is not available. Dark pixels (letterbox bars, hair) are excluded by
    ``min_luma``; a morphological opening then closing removes specks and fills lesions.

    Parameters
    ----------
    image : (H, W, 3) uint8 BGR image.
    cr_range, cb_range : inclusive Cr and Cb bounds of skin.
    min_luma : minimum Y (0-255).
    open_px : structuring-element size of the opening/closing, in pixels.

    Returns
    -------
    (H, W) uint8 mask, 255 on skin.
    """
    ycrcb = cv2.cvtColor(image, cv2.COLOR_BGR2YCrCb)
    lo = np.array([min_luma, cr_range[0], cb_range[0]], np.uint8)
    hi = np.array([255, cr_range[1], cb_range[1]], np.uint8)
    mask = cv2.inRange(ycrcb, lo, hi)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (open_px, open_px))
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, k)
    return cv2.morphologyEx(mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9)))


#: Features of a lesion candidate, in the order the candidate filter expects them.
FEATURES = (
    "response",  # centre-surround contrast of a* - w L* at the peak
    "delta_l",  # ΔL* centre - surround
    "delta_a",  # Δa*
    "delta_b",  # Δb*
    "response_coarse",  # the response with a 2x wider centre (bigger lesions)
    "response_fine",  # the response with a 0.7 px centre (sharp spots)
    "surround_l",  # surround L* minus the face's median L*
    "surround_a",  # surround a* minus the face's median a* (high on lips, flushed areas)
    "surround_b",  # surround b* minus the face's median b*
    "texture_a",  # standard deviation of a* in the surround
    "texture_l",  # standard deviation of L* in the surround
    "border_px",  # distance to the edge of the skin mask, capped at 30 px
    "log_area_px",  # log(1 + area at or above half the peak's response)
    "elongation",  # sqrt of the eigenvalue ratio of that area's second moments (1 = disk)
    "neighbours",  # other peaks within the same window (clusters, textured skin)
    "response_z",  # response / its standard deviation over the skin
    "delta_a_z",  # Δa* / its standard deviation over this photo's candidates
    "delta_l_z",  # ΔL* / its standard deviation over this photo's candidates
    "log_rank",  # log(1 + rank of the peak's response in the photo)
    "edge_l",  # gradient magnitude of the surround L* (hairline, nasal fold, jaw, lip border)
    "edge_a",  # gradient magnitude of the surround a*
    "hue_shift_deg",  # hue angle atan2(b*, a*) of the centre minus that of the surround
    "delta_chroma",  # chroma sqrt(a*² + b*²) of the centre minus that of the surround
    "response_local_z",  # response / (texture_a + 0.3): contrast against the local skin texture
    "delta_a_near",  # a* of the centre minus a near ring (Gaussian 2x the centre sigma)
    "delta_l_near",  # L* of the centre minus the same near ring
)


def lesion_candidates(
    lab: np.ndarray,
    skin_mask: np.ndarray,
    *,
    center_sigma_px: float = 1.2,
    surround_sigma_px: float = 5.0,
    lightness_weight: float = 0.3,
    min_response: float = 2.0,
    min_separation_px: int = 3,
    border_px: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """Red/dark blob candidates and their features.

    The blob response is the difference of Gaussians of ``a* - lightness_weight * L*``:
    a centre Gaussian (``center_sigma_px``) minus a skin-only surround (normalised
    convolution, ``surround_sigma_px``). Candidates are its local maxima above
    ``min_response`` at least ``min_separation_px`` apart, inside the skin mask eroded by
    ``border_px``. The surround statistics are computed on a half-resolution copy, so the
    whole function costs a few milliseconds on a 512 px ROI.

    Parameters
    ----------
    lab : (H, W, 3) float32 CIELAB of the ROI (L* 0-100).
    skin_mask : (H, W) uint8, > 0 on skin.
    center_sigma_px, surround_sigma_px : DoG sigmas in pixels.
    lightness_weight : weight of darkness (-L*) next to redness (a*).
    min_response : minimum peak response (a* units).
    min_separation_px : radius of the local-maximum window.
    border_px : skin-mask erosion before peaks are accepted.

    Returns
    -------
    xy : (N, 2) float64 peak positions ``[x, y]`` in ROI pixels.
    features : (N, len(FEATURES)) float64, columns as in :data:`FEATURES`.
    """
    # Filter only the skin's bounding box plus the filters' reach: nothing outside it is used,
    # and the corners stay on the 8 px grid of the half-resolution maps and of the 1-in-8
    # median sample, so every value is the same as on the whole ROI.
    reach = int(np.ceil(3 * center_sigma_px)) + 1  # of the half-maximum window around a peak
    margin = 2 * int(np.ceil(2.5 * surround_sigma_px / 2)) + 2 * reach + int(min_separation_px) + 4
    rows, cols = mask_window(skin_mask, margin, align=8)
    full_lab = lab
    lab, skin_mask = lab[rows, cols], skin_mask[rows, cols]
    h, w = skin_mask.shape
    skin = skin_mask > 0
    # The work is ordered so that few full-size maps are alive at once: a peak footprint of a
    # few MB stays within what the allocator keeps between calls, instead of fresh pages (page
    # faults) on every call.

    # Surround statistics at half resolution (normalised convolution over the skin): the
    # surround is wide and smooth, so nothing is lost, and it is 4x cheaper. Single-channel
    # blurs: the same values as multi-channel ones, without the merge/split copies.
    half = (w // 2, h // 2)
    small_w = cv2.resize(skin.astype(np.float32), half, interpolation=cv2.INTER_AREA)
    small_L, small_a, small_b = small_planes = half_size_planes(lab)
    sig_small = surround_sigma_px / 2
    den = np.maximum(gaussian(small_w, sig_small), 1e-3)
    sur_sig = gaussian((small_a - lightness_weight * small_L) * small_w, sig_small) / den

    signal = cv2.transform(lab, np.array([[-lightness_weight, 1.0, 0.0]], np.float32))  # a* - w L*
    response = gaussian(signal, center_sigma_px)
    scratch = cv2.resize(sur_sig, (w, h), interpolation=cv2.INTER_LINEAR)
    cv2.subtract(response, scratch, dst=response)
    inner = skin_mask
    if border_px > 0:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * border_px + 1, 2 * border_px + 1))
        inner = cv2.erode(skin_mask, k)
    size = 2 * int(min_separation_px) + 1
    # Square window: separable, so about twice as fast as a disk.
    # response >= local max and >= min_response  <=>  response >= max(local max, min_response)
    # (the scalar rounds to float32 as in a numpy comparison); the peak image is uint8, > 0 on
    # peaks: OpenCV compare/and, no bool temporaries.
    level = cv2.dilate(response, np.ones((size, size), np.uint8), dst=scratch)
    cv2.max(level, float(np.float32(min_response)), dst=level)
    peak = cv2.compare(response, level, cv2.CMP_GE)
    del scratch, level
    cv2.bitwise_and(peak, inner, dst=peak)
    ys, xs = peak_coordinates(peak)
    n_feat = len(FEATURES)
    if len(xs) == 0:
        return np.zeros((0, 2)), np.zeros((0, n_feat))

    sy, sx = np.minimum(ys // 2, half[1] - 1), np.minimum(xs // 2, half[0] - 1)
    s_sig = sur_sig[sy, sx]
    resp = response[ys, xs]
    resp_fine = gaussian_at(signal, xs, ys, 0.7) - s_sig
    del signal
    # Per-photo contrast scale, so that the filter sees contrast relative to this photo.
    spread = float(response[::2, ::2][skin[::2, ::2]].std()) + 1e-3
    area, elongation, neighbours = half_max_shape(response, peak, xs, ys, reach=reach)
    del response, peak

    # The rest of the surround: L* and a* as maps (their edges are needed), b* and the
    # second moments only at the candidates (the same quotients as whole maps).
    sur_l, sur_a = (gaussian(c * small_w, sig_small) / den for c in (small_L, small_a))
    at_den = den[sy, sx]
    s_l, s_a = sur_l[sy, sx], sur_a[sy, sx]
    s_b, s_l2, s_a2 = (
        gaussian(c, sig_small)[sy, sx] / at_den
        for c in (small_b * small_w, small_L * small_L * small_w, small_a * small_a * small_w)
    )
    del small_w, small_L, small_a, small_b, den
    # On the whole ROI (no copy of the crop); the same values, the patches never reach its edge.
    center = gaussian_at(full_lab, xs + cols.start, ys + rows.start, center_sigma_px)
    d_l, d_a, d_b = center[:, 0] - s_l, center[:, 1] - s_a, center[:, 2] - s_b
    # Wider (2x sigma) centre values are read off the half-resolution maps: 4x fewer pixels.
    near = gaussian_at(small_planes, sx, sy, center_sigma_px)
    resp_coarse = near[:, 1] - lightness_weight * near[:, 0] - s_sig
    # Edges of the smooth surround, on the half-resolution maps (per ROI pixel).
    edge_l, edge_a = (
        0.5
        * cv2.magnitude(cv2.Sobel(c, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(c, cv2.CV_32F, 0, 1, ksize=3))[sy, sx]
        / 8
        for c in (sur_l, sur_a)
    )
    del sur_l, sur_a
    hue_shift = np.degrees(np.arctan2(center[:, 2], center[:, 1]) - np.arctan2(s_b, s_a))
    hue_shift = (hue_shift + 180.0) % 360.0 - 180.0
    delta_chroma = np.hypot(center[:, 1], center[:, 2]) - np.hypot(s_a, s_b)

    small_mask = cv2.resize(skin_mask, half, interpolation=cv2.INTER_NEAREST)
    sub = small_mask[::4, ::4] > 0  # a 64x64 sample is plenty for a face median
    med_l, med_a, med_b = (median(c[::4, ::4][sub]) if sub.any() else 0.0 for c in small_planes)
    del small_planes
    a_spread = float(np.std(d_a)) + 1e-3
    l_spread = float(np.std(d_l)) + 1e-3

    # A mask with no background pixel has "infinite" distances: cap before scaling.
    border = 2.0 * np.minimum(cv2.distanceTransform(small_mask, cv2.DIST_L2, 3)[sy, sx], 15.0)
    rank = np.empty(len(resp))
    rank[np.argsort(-resp, kind="stable")] = np.arange(len(resp))

    features = np.column_stack(
        [
            resp,
            d_l,
            d_a,
            d_b,
            resp_coarse,
            resp_fine,
            s_l - med_l,
            s_a - med_a,
            s_b - med_b,
            np.sqrt(np.maximum(s_a2 - s_a * s_a, 0.0)),
            np.sqrt(np.maximum(s_l2 - s_l * s_l, 0.0)),
            np.minimum(border, 30.0),
            np.log1p(area),
            elongation,
            neighbours,
            resp / spread,
            d_a / a_spread,
            d_l / l_spread,
            np.log1p(rank),
            edge_l,
            edge_a,
            hue_shift,
            delta_chroma,
            resp / (np.sqrt(np.maximum(s_a2 - s_a * s_a, 0.0)) + 0.3),
            center[:, 1] - near[:, 1],
            center[:, 0] - near[:, 0],
        ]
    ).astype(np.float64)
    return np.column_stack([xs + cols.start, ys + rows.start]).astype(np.float64), features


def half_max_shape(
    response: np.ndarray, peaks: np.ndarray, xs: np.ndarray, ys: np.ndarray, *, reach: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Area and elongation of each peak's blob, and the other peaks near it.

    Looks only at the ``(2 * reach + 1)`` square around each peak (vectorised over peaks,
    much cheaper than labelling the whole image). The blob is the set of window pixels at or
    above half the peak's response; its elongation is ``sqrt(l1 / l2)`` of the eigenvalues
    of their second moments (1 for a disk, large for a line).

    ``peaks`` is the peak image (bool, or uint8 > 0 on peaks).

    Returns
    -------
    area : (N,) half-maximum area in pixels.
    elongation : (N,) >= 1.
    neighbours : (N,) number of other peaks in the window.
    """
    flat = _patch_index(response.shape, xs, ys, reach)
    inside = (np.take(response, flat) >= 0.5 * response[ys, xs][:, None, None]).reshape(len(xs), -1).astype(np.float32)
    # The moment sums in one matrix product (integer sums, exact in float32).
    # cv2.gemm, not numpy @: OpenBLAS would spread this small product over threads and wait.
    sums = cv2.gemm(inside, _moment_matrix(reach), 1.0, None, 0.0)
    area = sums[:, 0].astype(np.float64)
    mx = sums[:, 1] / area
    my = sums[:, 2] / area
    cxx = sums[:, 3] / area - mx * mx + 1 / 12  # + the pixel's own extent
    cyy = sums[:, 4] / area - my * my + 1 / 12
    cxy = sums[:, 5] / area - mx * my
    root = np.sqrt(((cxx - cyy) / 2) ** 2 + cxy**2)
    l1, l2 = (cxx + cyy) / 2 + root, np.maximum((cxx + cyy) / 2 - root, 1e-6)
    # Count, not sum: ``peaks`` may be a bool image or any uint8 mask (> 0 on peaks).
    neighbours = np.count_nonzero(np.take(peaks, flat), axis=(1, 2)) - 1.0
    return area, np.sqrt(l1 / l2), neighbours


def gaussian_at(image, xs: np.ndarray, ys: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-weighted mean of ``image`` around each point (x, y), edges replicated.

    The same as sampling ``gaussian(image, sigma)`` at the points, but it
    only touches the few hundred patches needed instead of the whole image.
    ``image`` is (H, W) or (H, W, C), or a sequence of C (H, W) planes (the same
    values as their (H, W, C) stack).
    """
    r, k2 = _gaussian_kernel(sigma)
    if isinstance(image, np.ndarray):
        h, w = image.shape[:2]
        # Flat indices and np.take: about 3x faster than image[iy, ix] on a 3-channel image.
        flat = _patch_index((h, w), xs, ys, r)
        patches = np.take(image.reshape(h * w, -1), flat, axis=0)
        if image.ndim == 2:
            patches = patches[..., 0]
    else:
        flat = _patch_index(image[0].shape, xs, ys, r)
        patches = np.stack([np.take(c, flat) for c in image], axis=-1)  # (N, k, k, C), as above
    return np.tensordot(patches, k2, axes=([1, 2], [0, 1]))


def half_size_planes(image: np.ndarray) -> list[np.ndarray]:
    """The channels of ``cv2.resize(image, (W // 2, H // 2), interpolation=cv2.INTER_AREA)``.

    For a 3-channel float32 image, OpenCV's 2x area reduction is a scalar loop computing
    ``(0 + ((p00 + p01) + p10) + p11) * 0.25`` per channel. The same sums here run as three
    contiguous row additions over the interleaved rows (``p01`` is the value 3 floats to the
    right of ``p00``; the other half of the results is not used) and one channel split: about
    twice as fast, and the same bits (tested against ``cv2.resize``). Other sizes, layouts and
    types go through OpenCV.
    """
    h, w = image.shape[:2]
    if (
        image.dtype != np.float32
        or image.ndim != 3
        or image.shape[2] != 3
        or h % 2
        or w % 2
        or image.strides[1:] != (12, 4)
    ):
        return list(cv2.split(cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA)))
    h2, w2 = h // 2, w // 2
    even, odd = image[0::2].reshape(h2, 3 * w), image[1::2].reshape(h2, 3 * w)
    sums = np.empty((h2, 3 * w), np.float32)
    q = sums[:, :-3]
    cv2.add(even[:, :-3], even[:, 3:], dst=q)
    cv2.add(q, odd[:, :-3], dst=q)
    cv2.add(q, odd[:, 3:], dst=q)
    planes = [np.empty((h2, w2), np.float32) for _ in range(3)]
    cv2.mixChannels([sums.reshape(h2, w2, 6)], planes, [0, 0, 1, 1, 2, 2])
    for c in planes:
        c += np.float32(0.0)  # OpenCV's 0 + sum: -0.0 becomes +0.0
        c *= np.float32(0.25)
    return planes


@lru_cache(maxsize=16)
def _gaussian_kernel(sigma: float) -> tuple[int, np.ndarray]:
    """Radius and normalised 2-D kernel of :func:`gaussian_at` (read-only, cached per sigma)."""
    r = max(1, int(np.ceil(2.5 * sigma)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k2 = np.outer(k, k)
    k2 /= k2.sum()
    k2.flags.writeable = False
    return r, k2


def _patch_index(shape: tuple[int, int], xs: np.ndarray, ys: np.ndarray, r: int) -> np.ndarray:
    """(N, 2r+1, 2r+1) flat indices of the squares around the points, edges replicated."""
    h, w = shape[:2]
    off = np.arange(-r, r + 1)
    # np.minimum/np.maximum: the same integers as np.clip, without its Python-level overhead.
    iy = np.minimum(np.maximum(ys[:, None] + off, 0), h - 1)
    ix = np.minimum(np.maximum(xs[:, None] + off, 0), w - 1)
    return iy[:, :, None] * w + ix[:, None, :]


@lru_cache(maxsize=8)
def _moment_matrix(reach: int) -> np.ndarray:
    """Columns 1, dx, dy, dx², dy², dx·dy over the (2 reach + 1)² window, float32 (read-only)."""
    off = np.arange(-reach, reach + 1).astype(np.float32)
    dy, dx = (g.ravel() for g in np.meshgrid(off, off, indexing="ij"))
    moments = np.column_stack([np.ones_like(dx), dx, dy, dx * dx, dy * dy, dx * dy])
    moments.flags.writeable = False
    return moments


def quadratic_design(features: np.ndarray) -> np.ndarray:
    """The features followed by all their pairwise products (i <= j)."""
    n = features.shape[1]
    i, j = np.triu_indices(n)
    return np.column_stack([features, features[:, i] * features[:, j]])


@lru_cache(maxsize=1)
def load_lesion_filter() -> dict:
    """The candidate filter: a logistic regression on :func:`quadratic_design` features.

    Fit by ``bench/acne.py --fit`` on the ``train`` split of the ACNE04 development set
    only (candidates matched to an annotated lesion are positives).
    """
    model = json.loads(resources.files(__package__).joinpath("lesion_filter.json").read_text())
    if tuple(model["features"]) != FEATURES:
        raise RuntimeError("lesion_filter.json does not match FEATURES; refit it with bench/acne.py --fit")
    model = dict(model)
    for key in ("clip_low", "clip_high", "mean", "scale", "weights"):
        model[key] = np.asarray(model[key], dtype=np.float64)
    # Built once here rather than on every call (the same arrays, read-only).
    form = _quadratic_form(model, len(FEATURES))
    for a in form[:2]:
        a.flags.writeable = False
    model["_quadratic_form"] = form
    return model


def lesion_probability(features: np.ndarray, model: dict | None = None) -> np.ndarray:
    """Probability that each candidate is an annotated acne lesion."""
    model = load_lesion_filter() if model is None else model
    if len(features) == 0:
        return np.zeros(0)
    # Clip to the range seen in training: a quadratic model must not extrapolate (very clean
    # synthetic skin gives z-scores far beyond anything in real photos).
    clipped = np.clip(features, model["clip_low"], model["clip_high"])
    # The logistic model on standardised quadratic_design() columns, rewritten as a quadratic
    # form f·(Q f + b) + c of the clipped features: the same logit (to ~1e-15) without
    # building the N x 377 design matrix, 5-10x faster with a few hundred candidates.
    quad, lin, const = model.get("_quadratic_form") or _quadratic_form(model, features.shape[1])
    logit = ((clipped @ quad + lin) * clipped).sum(axis=1) + const
    return 1.0 / (1.0 + np.exp(-logit))


def _quadratic_form(model: dict, n: int) -> tuple[np.ndarray, np.ndarray, float]:
    """``Q``, ``b`` and ``c`` of the logit ``f·(Q f + b) + c`` of :func:`lesion_probability`."""
    w = model["weights"] / model["scale"]
    quad = np.zeros((n, n))
    quad[np.triu_indices(n)] = w[n:]
    return quad, w[:n], model["bias"] - float(model["mean"] @ w)


def detect_lesions(
    lab: np.ndarray,
    skin_mask: np.ndarray,
    *,
    min_probability: float = 0.18,
    max_radius_px: float = 10.0,
    model: dict | None = None,
    **candidate_options,
) -> np.ndarray:
    """Acne lesions: candidates from :func:`lesion_candidates` kept by the candidate filter.

    Parameters
    ----------
    lab : (H, W, 3) float32 CIELAB of the ROI (L* 0-100).
    skin_mask : (H, W) uint8, > 0 on skin.
    min_probability : keep candidates whose filter probability is at least this.
    max_radius_px : radius cap of a reported lesion.
    model : a candidate filter (default: the packaged one, see :func:`load_lesion_filter`).
    **candidate_options : keyword options of :func:`lesion_candidates`.

    Returns
    -------
    (N, 6) float64 array ``[x, y, r, delta_a, delta_l, probability]`` in ROI pixels,
    most probable first. ``r`` is the radius of a disk with the lesion region's area.
    """
    xy, features = lesion_candidates(lab, skin_mask, **candidate_options)
    prob = lesion_probability(features, model)
    keep = prob >= min_probability
    area = np.expm1(features[keep, FEATURES.index("log_area_px")])
    radius = np.clip(np.sqrt(area / np.pi), 1.0, max_radius_px)
    out = np.column_stack(
        [
            xy[keep],
            radius,
            features[keep, FEATURES.index("delta_a")],
            features[keep, FEATURES.index("delta_l")],
            prob[keep],
        ]
    ).reshape(-1, 6)
    return out[np.argsort(-out[:, 5], kind="stable")]


def hayashi_grade(count_per_half_face: float) -> int:
    """Hayashi / ACNE04 grade 0-3 from the lesion count on one half face."""
    return int(np.searchsorted(HAYASHI_BANDS, count_per_half_face, side="left"))


def acne_score(count_per_half_face: float) -> float:
    """0-100 score from the lesion count per half face (piecewise linear, Hayashi bands)."""
    return float(np.interp(count_per_half_face, _SCORE_COUNTS, _SCORE_VALUES))
