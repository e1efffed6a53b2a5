"""Erythema (redness) measurement on RGB skin images.

The erythema index (EI) follows Dawson et al. (1980), "A theoretical and
empirical study of light absorption by human skin", who define it from the
log reflectances of a green (haemoglobin-absorbed) and a red band:
``EI = 100 * (log10(1/G) - log10(1/R)) = 100 * (log10 R - log10 G)``.
Here R and G are the camera's red and green channels linearised with the sRGB
transfer curve (IEC 61966-2-1), the usual RGB approximation of the
reflectance-meter bands (e.g. Yamamoto et al. 2008, Skin Res. Technol. 14:26).
"""

from __future__ import annotations

import cv2
import numpy as np


def _srgb_to_linear(v: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 inverse companding of sRGB values in [0, 1]."""
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


#: log10 of linearised sRGB for every 8-bit code (floored at 1e-4 so black stays finite).
_LOG10_LINEAR = np.log10(np.maximum(_srgb_to_linear(np.arange(256) / 255.0), 1e-4)).astype(np.float32)


def erythema_index(image: np.ndarray, *, smooth: int = 3) -> np.ndarray:
    """Per-pixel erythema index ``100 * (log10 R_lin - log10 G_lin)``.

    Parameters
    ----------
    image : (H, W, 3) uint8 BGR image.
    smooth : box-filter size applied to the EI map to damp JPEG and sensor
        noise (1 = none).

    Returns
    -------
    (H, W) float32 EI map. Neutral grey gives 0; typical light skin 15-30.
    """
    ei = 100.0 * (_LOG10_LINEAR[image[..., 2]] - _LOG10_LINEAR[image[..., 1]])
    if smooth > 1:
        ei = cv2.blur(ei, (smooth, smooth))
    return ei


def redness_baseline(ei: np.ndarray, mask: np.ndarray, *, percentile: float = 25.0) -> float:
    """The face's own "normal skin" EI: a low percentile of EI inside ``mask``.

    A low percentile rather than the median keeps the reference on unaffected
    skin even when much of the face is inflamed.
    """
    values = ei[mask > 0]
    if values.size == 0:
        return 0.0
    return float(np.percentile(values, percentile))


def red_area_mask(ei: np.ndarray, mask: np.ndarray, *, baseline: float, delta: float) -> np.ndarray:
    """uint8 mask (255) of pixels inside ``mask`` whose EI exceeds ``baseline + delta``."""
    red = (ei >= baseline + delta) & (mask > 0)
    return red.astype(np.uint8) * 255


def excess_erythema(ei: np.ndarray, mask: np.ndarray, *, baseline: float, margin: float) -> float:
    """Mean of ``max(EI - baseline - margin, 0)`` over ``mask``: area x intensity of redness, in EI units."""
    m = mask > 0
    if not m.any():
        return 0.0
    return float(np.maximum(ei[m] - baseline - margin, 0.0).mean())


def red_blobs(red: np.ndarray, *, min_area: int = 6, max_count: int = 100) -> np.ndarray:
    """Circles ``[x, y, r]`` around the largest connected red regions (largest first)."""
    n, _, stats, centroids = cv2.connectedComponentsWithStats(red, connectivity=8)
    if n <= 1:
        return np.zeros((0, 3))
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(areas >= min_area)
    keep = keep[np.argsort(-areas[keep])][:max_count]
    r = np.sqrt(areas[keep] / np.pi)
    return np.column_stack([centroids[1:][keep], r])
