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
from dataclasses import dataclass
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
    ``border_px``. The steps, each a function below:

    1. :func:`analysis_window`: the skin's bounding box plus the filters' reach; the rest
       runs on that box.
    2. :func:`skin_surround`: the skin around every pixel, at half resolution.
    3. :func:`find_blobs`: the blob response (:func:`redness_signal`, :func:`blob_response`),
       its local maxima (:func:`local_peaks`) and their size and shape (:func:`half_max_shape`).
    4. :func:`candidate_features`: the :data:`FEATURES` of each candidate.

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
    rows, cols = analysis_window(
        skin_mask,
        center_sigma_px=center_sigma_px,
        surround_sigma_px=surround_sigma_px,
        min_separation_px=min_separation_px,
    )
    box_lab, box_skin = lab[rows, cols], skin_mask[rows, cols]
    surround = skin_surround(box_lab, box_skin, sigma_px=surround_sigma_px)
    lightness, a, _ = surround.planes
    surround_signal = surround.mean(a - lightness_weight * lightness)  # the DoG's negative term
    blobs = find_blobs(
        box_lab,
        box_skin,
        surround_signal,
        center_sigma_px=center_sigma_px,
        lightness_weight=lightness_weight,
        min_response=min_response,
        min_separation_px=min_separation_px,
        border_px=border_px,
    )
    if blobs is None:
        return np.zeros((0, 2)), np.zeros((0, len(FEATURES)))
    features = candidate_features(
        lab,
        blobs,
        surround,
        surround_signal,
        offset=(cols.start, rows.start),
        center_sigma_px=center_sigma_px,
        lightness_weight=lightness_weight,
    )
    return np.column_stack([blobs.xs + cols.start, blobs.ys + rows.start]).astype(np.float64), features


def analysis_window(
    skin_mask: np.ndarray, *, center_sigma_px: float, surround_sigma_px: float, min_separation_px: int
) -> tuple[slice, slice]:
    """Rows and columns of the skin's bounding box grown by the reach of every filter.

    The margin covers the half-resolution surround's kernel, the blob window and the centre
    Gaussian (twice :func:`blob_window_radius`), the local-maximum window and 4 px of slack,
    so every value inside the box is the same as on the whole ROI. The corners stay on an 8 px
    grid: the grid of the half-resolution copy and of the face-median sample (every 4th of its
    pixels) does not move.
    """
    margin = (
        2 * int(np.ceil(2.5 * surround_sigma_px / 2))
        + 2 * blob_window_radius(center_sigma_px)
        + int(min_separation_px)
        + 4
    )
    return mask_window(skin_mask, margin, align=8)


def blob_window_radius(center_sigma_px: float) -> int:
    """Half-width of the square around a peak in which its blob's area and shape are measured."""
    return int(np.ceil(3 * center_sigma_px)) + 1


@dataclass(frozen=True, eq=False)
class SkinSurround:
    """The skin around each pixel, on a half-resolution copy of the ROI (one cell per 2 x 2 block).

    :meth:`mean` is a normalised convolution (Knutsson & Westin 1993): a Gaussian mean in which
    each cell counts with its skin fraction, so hair, the letterbox bars and the background never
    leak into the local skin estimate. The surround is wide and smooth: half resolution loses
    nothing and costs a quarter.
    """

    lab: np.ndarray  #: (h, w, 3) float32 L*, a*, b*, each the mean of a 2 x 2 block
    planes: tuple[np.ndarray, np.ndarray, np.ndarray]  #: the L*, a*, b* planes of ``lab``
    mask: np.ndarray  #: (h, w) uint8 skin mask, one pixel of each block
    weight: np.ndarray  #: (h, w) float32 skin fraction of each block
    weight_sum: np.ndarray  #: Gaussian of ``weight``, at least 1e-3
    sigma: float  #: Gaussian sigma in half-resolution cells

    def mean(self, plane: np.ndarray) -> np.ndarray:
        """Skin-weighted Gaussian mean of a half-resolution plane, as a map."""
        return gaussian(plane * self.weight, self.sigma) / self.weight_sum

    def mean_at(self, plane: np.ndarray, sx: np.ndarray, sy: np.ndarray) -> np.ndarray:
        """:meth:`mean` read at the cells ``(sx, sy)`` (the same values, one map fewer)."""
        return gaussian(plane * self.weight, self.sigma)[sy, sx] / self.weight_sum[sy, sx]

    def cells(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The cells ``(sx, sy)`` holding full-resolution pixels (an odd last row or column joins the one before)."""
        h, w = self.weight.shape
        return np.minimum(xs // 2, w - 1), np.minimum(ys // 2, h - 1)


def skin_surround(lab: np.ndarray, skin_mask: np.ndarray, *, sigma_px: float) -> SkinSurround:
    """The :class:`SkinSurround` of a ROI for a surround sigma of ``sigma_px`` ROI pixels."""
    h, w = skin_mask.shape
    half = (w // 2, h // 2)
    half_lab = half_resolution(lab)
    weight = cv2.resize((skin_mask > 0).astype(np.float32), half, interpolation=cv2.INTER_AREA)
    sigma = sigma_px / 2
    return SkinSurround(
        lab=half_lab,
        planes=tuple(cv2.split(half_lab)),
        mask=cv2.resize(skin_mask, half, interpolation=cv2.INTER_NEAREST),
        weight=weight,
        weight_sum=np.maximum(gaussian(weight, sigma), 1e-3),
        sigma=sigma,
    )


def half_resolution(image: np.ndarray) -> np.ndarray:
    """The means of the 2 x 2 blocks of a CIELAB image: ``cv2.resize`` to ``(W // 2, H // 2)``, INTER_AREA.

    For even sizes a linear resize to exactly half size averages the same blocks, about twice as
    fast on three float channels (INTER_AREA runs a scalar loop there). On OpenCV's CIELAB of
    8-bit colours (L* on a 25/4096 grid, a* and b* on 1/64) the four-pixel sums are exact, so
    both give the same bits (on other values they may differ in the last bit).
    """
    h, w = image.shape[:2]
    interpolation = cv2.INTER_LINEAR if h % 2 == 0 and w % 2 == 0 else cv2.INTER_AREA
    return cv2.resize(image, (w // 2, h // 2), interpolation=interpolation)


@dataclass(frozen=True, eq=False)
class Blobs:
    """Local maxima of the blob response, and what the full-resolution maps say about each."""

    xs: np.ndarray  #: (N,) columns in the analysis window
    ys: np.ndarray  #: (N,) rows
    response: np.ndarray  #: (N,) float32 blob response at the peak
    fine_centre: np.ndarray  #: (N,) Gaussian mean of the signal with a 0.7 px sigma (sharp spots)
    area: np.ndarray  #: (N,) pixels at or above half the peak's response (:func:`half_max_shape`)
    elongation: np.ndarray  #: (N,) >= 1, 1 for a disk
    neighbours: np.ndarray  #: (N,) other peaks within the blob window
    response_spread: float  #: standard deviation of the response over the skin (+ 1e-3)


def find_blobs(
    lab: np.ndarray,
    skin_mask: np.ndarray,
    surround_signal: np.ndarray,
    *,
    center_sigma_px: float,
    lightness_weight: float,
    min_response: float,
    min_separation_px: int,
    border_px: int,
) -> Blobs | None:
    """The candidates of :func:`lesion_candidates` and their full-resolution measurements.

    The full-resolution maps (signal, response, peaks) live only in here: what the later steps
    need is read off at the peaks. None when there is no peak.
    """
    signal = redness_signal(lab, lightness_weight)
    response = blob_response(signal, surround_signal, center_sigma_px)
    peaks = local_peaks(
        response, skin_mask, min_response=min_response, min_separation_px=min_separation_px, border_px=border_px
    )
    ys, xs = peak_coordinates(peaks)
    if len(xs) == 0:
        return None
    area, elongation, neighbours = half_max_shape(response, peaks, xs, ys, reach=blob_window_radius(center_sigma_px))
    # Every second pixel is plenty for a photo-wide spread.
    spread = float(response[::2, ::2][skin_mask[::2, ::2] > 0].std()) + 1e-3
    return Blobs(
        xs=xs,
        ys=ys,
        response=response[ys, xs],
        fine_centre=gaussian_at(signal, xs, ys, 0.7),
        area=area,
        elongation=elongation,
        neighbours=neighbours,
        response_spread=spread,
    )


def redness_signal(lab: np.ndarray, lightness_weight: float) -> np.ndarray:
    """``a* - lightness_weight * L*`` of each pixel (redness plus a little darkness), float32."""
    return cv2.transform(lab, np.array([[-lightness_weight, 1.0, 0.0]], np.float32))


def blob_response(signal: np.ndarray, surround_signal: np.ndarray, center_sigma_px: float) -> np.ndarray:
    """The difference of Gaussians: ``signal``'s Gaussian mean with ``center_sigma_px`` minus its
    skin surround (``surround_signal``, half resolution, scaled up linearly)."""
    h, w = signal.shape
    response = gaussian(signal, center_sigma_px)
    response -= cv2.resize(surround_signal, (w, h), interpolation=cv2.INTER_LINEAR)
    return response


def local_peaks(
    response: np.ndarray, skin_mask: np.ndarray, *, min_response: float, min_separation_px: int, border_px: int
) -> np.ndarray:
    """uint8 image, > 0 where ``response`` is the maximum of the square ``2 min_separation_px + 1``
    around it (ties included), at least ``min_response``, and inside ``skin_mask`` eroded by
    ``border_px``. A square window, not a disk: separable, about twice as fast."""
    size = 2 * int(min_separation_px) + 1
    level = cv2.dilate(response, np.ones((size, size), np.uint8))
    # max(local maximum, min_response) in one comparison; the bound rounded to float32, as
    # numpy would compare it with the float32 response.
    cv2.max(level, float(np.float32(min_response)), dst=level)
    inner = skin_mask
    if border_px > 0:
        inner = cv2.erode(skin_mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * border_px + 1,) * 2))
    peaks = cv2.compare(response, level, cv2.CMP_GE)
    return cv2.bitwise_and(peaks, inner, dst=peaks)


def candidate_features(
    lab: np.ndarray,
    blobs: Blobs,
    surround: SkinSurround,
    surround_signal: np.ndarray,
    *,
    offset: tuple[int, int],
    center_sigma_px: float,
    lightness_weight: float,
) -> np.ndarray:
    """The :data:`FEATURES` of each blob: (N, len(FEATURES)) float64.

    ``lab`` is the whole ROI and ``offset`` the ``(x, y)`` of the analysis window in it; the
    other maps cover the window. Contrasts are the candidate's colour (its centre Gaussian)
    minus that of the skin around it (:class:`SkinSurround`); photo-relative features divide
    by their spread over this photo.
    """
    sx, sy = surround.cells(blobs.xs, blobs.ys)
    lightness, a, b = surround.planes
    # The skin around each candidate: L* and a* as maps (their gradients are features too),
    # b* and the second moments only at the candidates.
    around_l_map, around_a_map = surround.mean(lightness), surround.mean(a)
    around_l, around_a = around_l_map[sy, sx], around_a_map[sy, sx]
    around_b = surround.mean_at(b, sx, sy)
    around_signal = surround_signal[sy, sx]
    texture_l = _spread(surround.mean_at(lightness * lightness, sx, sy), around_l)
    texture_a = _spread(surround.mean_at(a * a, sx, sy), around_a)
    # The candidate: its centre Gaussian, read on the whole ROI (gaussian_at would copy the window
    # view; its patches never reach the window's edge, so the values are the same), and the same
    # Gaussian on the half-resolution copy, i.e. twice as wide.
    centre = gaussian_at(lab, blobs.xs + offset[0], blobs.ys + offset[1], center_sigma_px)
    near = gaussian_at(surround.lab, sx, sy, center_sigma_px)
    delta_l, delta_a, delta_b = centre[:, 0] - around_l, centre[:, 1] - around_a, centre[:, 2] - around_b
    hue_shift = np.degrees(np.arctan2(centre[:, 2], centre[:, 1]) - np.arctan2(around_b, around_a))
    face_l, face_a, face_b = face_median_colour(surround)
    columns = {
        "response": blobs.response,
        "delta_l": delta_l,
        "delta_a": delta_a,
        "delta_b": delta_b,
        "response_coarse": near[:, 1] - lightness_weight * near[:, 0] - around_signal,
        "response_fine": blobs.fine_centre - around_signal,
        "surround_l": around_l - face_l,
        "surround_a": around_a - face_a,
        "surround_b": around_b - face_b,
        "texture_a": texture_a,
        "texture_l": texture_l,
        "border_px": distance_to_mask_edge(surround.mask, sx, sy),
        "log_area_px": np.log1p(blobs.area),
        "elongation": blobs.elongation,
        "neighbours": blobs.neighbours,
        "response_z": blobs.response / blobs.response_spread,
        "delta_a_z": delta_a / (float(np.std(delta_a)) + 1e-3),
        "delta_l_z": delta_l / (float(np.std(delta_l)) + 1e-3),
        "log_rank": np.log1p(_descending_rank(blobs.response)),
        "edge_l": gradient_at(around_l_map, sx, sy),
        "edge_a": gradient_at(around_a_map, sx, sy),
        "hue_shift_deg": (hue_shift + 180.0) % 360.0 - 180.0,
        "delta_chroma": np.hypot(centre[:, 1], centre[:, 2]) - np.hypot(around_a, around_b),
        "response_local_z": blobs.response / (texture_a + 0.3),
        "delta_a_near": centre[:, 1] - near[:, 1],
        "delta_l_near": centre[:, 0] - near[:, 0],
    }
    return np.column_stack([columns[name] for name in FEATURES]).astype(np.float64)


def face_median_colour(surround: SkinSurround) -> tuple[float, float, float]:
    """Median L*, a*, b* of the skin (0 without skin), from every 4th cell of the half-resolution
    copy: a 64 x 64 sample is plenty for a face median."""
    sample = surround.mask[::4, ::4] > 0
    if not sample.any():
        return 0.0, 0.0, 0.0
    lightness, a, b = (median(plane[::4, ::4][sample]) for plane in surround.planes)
    return lightness, a, b


def distance_to_mask_edge(mask: np.ndarray, sx: np.ndarray, sy: np.ndarray) -> np.ndarray:
    """Distance from the cells ``(sx, sy)`` of a half-resolution mask to its nearest non-skin
    pixel, in ROI pixels, capped at 30 (before scaling: a mask without a background pixel
    gives "infinite" distances)."""
    return 2.0 * np.minimum(cv2.distanceTransform(mask, cv2.DIST_L2, 3)[sy, sx], 15.0)


def gradient_at(plane: np.ndarray, sx: np.ndarray, sy: np.ndarray) -> np.ndarray:
    """Gradient magnitude of a half-resolution map at the cells ``(sx, sy)``, per ROI pixel
    (a 3 x 3 Sobel is 8 times the derivative per cell, a cell is 2 ROI pixels)."""
    gx, gy = cv2.Sobel(plane, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(plane, cv2.CV_32F, 0, 1, ksize=3)
    return cv2.magnitude(gx, gy)[sy, sx] / 16


def _spread(mean_of_squares: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Standard deviation from the first two moments (0 where rounding makes the variance < 0)."""
    return np.sqrt(np.maximum(mean_of_squares - mean * mean, 0.0))


def _descending_rank(values: np.ndarray) -> np.ndarray:
    """0 for the largest value, 1 for the next and so on (ties in order)."""
    rank = np.empty(len(values))
    rank[np.argsort(-values, kind="stable")] = np.arange(len(values))
    return rank


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


def gaussian_at(image: np.ndarray, xs: np.ndarray, ys: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-weighted mean of ``image`` around each point (x, y), edges replicated.

    The same as sampling ``gaussian(image, sigma)`` at the points, but it only touches the
    few hundred patches needed instead of the whole image. ``image`` is (H, W) or (H, W, C)
    and contiguous; the result is (N,) or (N, C) float64.
    """
    r, k2 = _gaussian_kernel(sigma)
    h, w = image.shape[:2]
    # Flat indices and np.take: about 3x faster than image[iy, ix] on a 3-channel image.
    patches = np.take(image.reshape(h * w, -1), _patch_index((h, w), xs, ys, r), axis=0)
    if image.ndim == 2:
        patches = patches[..., 0]
    return np.tensordot(patches, k2, axes=([1, 2], [0, 1]))


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
