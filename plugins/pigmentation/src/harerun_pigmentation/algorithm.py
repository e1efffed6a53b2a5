"""Skin colour type and pigment evenness from CIELAB.

Individual Typology Angle (Chardon, Cretois & Hourseau 1991, Int. J. Cosmet.
Sci. 13:191; bands from Del Bino & Bernerd 2013, Br. J. Dermatol. 169 S3:33)::

    ITA° = arctan((L* - 50) / b*) * 180 / pi

computed here as ``atan2(L* - 50, b*)``: identical for b* > 0 (every real skin
colour), finite at b* = 0 (±90°) and, for the non-skin case b* < 0, outside
±90° instead of wrapping to a misleading sign.

Melanin index after Dawson et al. (1980): ``MI = 100 * log10(1 / R)`` with R the
red reflectance, approximated by the linearised sRGB red channel.
"""

from __future__ import annotations

import cv2
import numpy as np

#: (lower bound in degrees, band name), checked from the top; Del Bino & Bernerd 2013.
ITA_BANDS: tuple[tuple[float, str], ...] = (
    (55.0, "very_light"),
    (41.0, "light"),
    (28.0, "intermediate"),
    (10.0, "tan"),
    (-30.0, "brown"),
)


def ita_degrees(l_star, b_star):
    """Individual Typology Angle in degrees, ``atan2(L* - 50, b*)`` (scalar or array)."""
    return np.degrees(np.arctan2(np.asarray(l_star, np.float64) - 50.0, np.asarray(b_star, np.float64)))


def ita_band(ita: float) -> str:
    """Skin-colour category of an ITA° value: very_light > 55 >= light > 41 >= ... > -30 >= dark."""
    for lower, name in ITA_BANDS:
        if ita > lower:
            return name
    return "dark"


def _srgb_to_linear(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


#: 100 * log10(1 / R_lin) for every 8-bit red code (R floored at 1e-4).
_MELANIN_LUT = (-100.0 * np.log10(np.maximum(_srgb_to_linear(np.arange(256) / 255.0), 1e-4))).astype(np.float32)


def melanin_index(image: np.ndarray) -> np.ndarray:
    """Per-pixel melanin index ``100 * log10(1 / R_lin)`` of a BGR uint8 image (higher = darker)."""
    return _MELANIN_LUT[image[..., 2]]


def melanin_index_red(red: np.ndarray) -> np.ndarray:
    """:func:`melanin_index` from the red channel alone ((H, W) uint8)."""
    return cv2.LUT(red, _MELANIN_LUT)


def mottling(
    l_star: np.ndarray, *, mask: np.ndarray | None = None, scale: int = 1, sigma: float = 4.0, pre_sigma: float = 0.5
) -> np.ndarray:
    """Local lightness variation: |L* - its low-pass|, on a ``1/scale`` grid.

    Blotches between ~``2*pre_sigma*scale`` and ~``2*sigma*scale`` pixels across
    (at the input resolution) stand out; the broad shading of the face does not.
    With ``mask`` the low-pass is a normalised convolution over the masked
    pixels only, so hair or background next to the skin does not leak in.

    Returns
    -------
    (H/scale, W/scale) float32 map of absolute L* deviations.
    """
    h, w = l_star.shape
    size = (max(1, w // scale), max(1, h // scale))
    small = l_star if scale == 1 else cv2.resize(l_star, size, interpolation=cv2.INTER_AREA)
    if pre_sigma > 0:
        small = cv2.GaussianBlur(small, (0, 0), pre_sigma)
    if mask is None:
        return np.abs(small - cv2.GaussianBlur(small, (0, 0), sigma))
    m = (mask if scale == 1 else cv2.resize(mask, size, interpolation=cv2.INTER_AREA)).astype(np.float32) / 255.0
    num = cv2.GaussianBlur(small * m, (0, 0), sigma)
    den = cv2.GaussianBlur(m, (0, 0), sigma)
    return np.abs(small - num / np.maximum(den, 1e-3))
