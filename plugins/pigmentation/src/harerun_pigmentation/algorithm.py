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

from typing import NamedTuple

import cv2
import numpy as np

from harerun.imageops import median

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


class ToneMaps(NamedTuple):
    """Per-pixel maps on one grid: CIELAB L* and b*, melanin index and :func:`mottling`."""

    l_star: np.ndarray
    b_star: np.ndarray
    melanin: np.ndarray
    mottle: np.ndarray


def tone_maps(lab: np.ndarray, red: np.ndarray, skin: np.ndarray, *, sigma: float) -> ToneMaps:
    """:class:`ToneMaps` of a float32 CIELAB image, its uint8 red channel and a skin weight
    (uint8, 255 = skin; fractions for partly covered cells), ``sigma`` the mottling low-pass."""
    l_star = lab[..., 0]
    return ToneMaps(l_star, lab[..., 2], melanin_index_red(red), mottling(l_star, mask=skin, sigma=sigma))


def tone_cells(zone: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """Grid cells that measure a region's skin, from the area-averaged masks of the region's
    skin ``zone`` and of all skin ``skin`` (uint8, 255 = wholly inside): bool (H, W).

    A cell counts when at least half of it lies in the region (an area share, so a mirrored
    photo picks the mirrored cells, unlike one sample pixel a cell) and all of it is skin (a
    cell across the skin's edge averages in brow, hair or background colour). Without any
    such cell, every cell touching the region.
    """
    cells = (zone >= 128) & (skin == 255)
    return cells if cells.any() else zone > 0


def toned(maps: ToneMaps, mask: np.ndarray, *, edge: float) -> np.ndarray:
    """The cells of a bool ``mask`` whose colour is skin tone: those within ``edge`` L* of their
    skin's local mean. Farther off is a sharp feature the skin mask let through (brow, lash,
    nostril rim, the face's silhouette), which would set an ITA° percentile on its own. All of
    ``mask`` when none is within."""
    kept = mask & (maps.mottle <= edge)
    return kept if kept.any() else mask


def tone(maps: ToneMaps, mask: np.ndarray, *, edge: float) -> dict[str, object]:
    """Skin tone inside a non-empty bool ``mask``: median L* and b* of its :func:`toned` cells,
    their ITA° and band, mean melanin index and :func:`blotchiness_l`."""
    toned_mask = toned(maps, mask, edge=edge)
    l_med, b_med = median(maps.l_star[toned_mask]), median(maps.b_star[toned_mask])
    ita = float(ita_degrees(l_med, b_med))
    return {
        "l_star": l_med,
        "b_star": b_med,
        "ita_deg": ita,
        "ita_band": ita_band(ita),
        "melanin_index": float(maps.melanin[mask].mean()),
        "mottle_l": blotchiness_l(maps, mask, edge=edge),
    }


def blotchiness_l(maps: ToneMaps, mask: np.ndarray, *, edge: float) -> float:
    """Mean mottling over a bool ``mask``, each cell counted up to ``edge`` L*: a dark spot
    counts fully up to there, a brow or the silhouette no more than a strong spot."""
    return float(np.minimum(maps.mottle[mask], edge).mean())


def ita_spread(maps: ToneMaps, mask: np.ndarray, *, edge: float) -> float:
    """Spread of ITA° over the :func:`toned` cells of a bool ``mask``, pooled: the 10th-90th
    percentile range in standard-deviation units (/ 2.563). Unlike the spread of a few zone
    medians it does not jump when a zone turns out of view or back."""
    toned_mask = toned(maps, mask, edge=edge)
    ita = ita_degrees(maps.l_star[toned_mask], maps.b_star[toned_mask])
    if not ita.size:
        return 0.0
    lo, hi = np.percentile(ita, (10, 90))
    return float(hi - lo) / 2.563


def ita_offsets(itas: dict[str, float]) -> dict[str, float]:
    """Each zone's ITA° distance from the median of the zones'."""
    ref = float(np.median(np.array(list(itas.values())))) if itas else 0.0
    return {name: abs(ita - ref) for name, ita in itas.items()}


def unevenness(across: float, mottle: float, *, floor: float, full: float, weight: float) -> float:
    """0-100 score: ``weight`` x the across-zone term ``across`` (an ITA° difference as a share of
    its full scale, capped at 1) + the rest x blotchiness (mean mottling above ``floor``, as a share
    of ``full``, capped)."""
    blotch = min(1.0, max(0.0, mottle - floor) / full)
    return 100.0 * (weight * min(1.0, across) + (1.0 - weight) * blotch)


def ita_deviation_map(maps: ToneMaps, ita: float, *, full: float) -> np.ndarray:
    """uint8 evidence map: how far each pixel's ITA° is from ``ita``, 255 at ``full`` degrees and beyond."""
    dev = np.abs(ita_degrees(maps.l_star, maps.b_star) - ita) * (255.0 / full)
    return np.clip(dev, 0, 255).astype(np.uint8)
