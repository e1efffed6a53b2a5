"""Skin roughness from Local Binary Patterns and local variance.

Local Binary Patterns (Ojala, Pietikäinen & Mäenpää 2002, "Multiresolution
gray-scale and rotation invariant texture classification with local binary
patterns", IEEE TPAMI 24(7):971) with the rotation-invariant *uniform* mapping
``riu2`` (P = 8: labels 0..8 for uniform patterns, 9 for the rest). Two
departures, both for noisy photos of mostly smooth skin:

* a neighbour sets its bit only when it is at least ``threshold`` grey levels
  brighter than the centre (the thresholded LBP of Heikkilä & Pietikäinen
  2006, IEEE TPAMI 28(4):657), so camera noise on flat skin stays at label 0
  ("flat") instead of producing random codes;
* the 8 neighbours sit on the square of radius R (no interpolation), which
  keeps the operator to 8 vectorised OpenCV comparisons.

The complementary contrast measure is the local variance of the high-passed
grey image, Ojala's VAR operator in spirit.
"""

from __future__ import annotations

import cv2
import numpy as np

from harerun.imageops import mask_window

#: (dy, dx) unit offsets of the 8 neighbours, counter-clockwise from the right.
_OFFSETS = ((0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1))


def _riu2_lut() -> np.ndarray:
    lut = np.empty(256, np.uint8)
    for code in range(256):
        bits = [(code >> i) & 1 for i in range(8)]
        transitions = sum(bits[i] != bits[(i + 1) % 8] for i in range(8))
        lut[code] = sum(bits) if transitions <= 2 else 9
    return lut


#: 8-bit LBP code -> riu2 label (0..8 uniform with that many set bits, 9 non-uniform).
RIU2_LUT = _riu2_lut()
N_LABELS = 10


def lbp_riu2(gray: np.ndarray, *, radius: int = 2, threshold: int = 3) -> np.ndarray:
    """Thresholded rotation-invariant uniform LBP labels (0..9) of a uint8 image.

    Parameters
    ----------
    gray : (H, W) uint8.
    radius : neighbour distance in pixels (square neighbourhood).
    threshold : grey levels a neighbour must exceed the centre by to set its bit.

    Returns
    -------
    (H, W) uint8 labels: 0 = no brighter neighbour (flat or local maximum),
    8 = all neighbours brighter (a dark pit), 1..7 edges and corners, 9 noise-like.
    """
    gray = np.ascontiguousarray(gray, dtype=np.uint8)
    h, w = gray.shape
    r = int(radius)
    padded = cv2.copyMakeBorder(gray, r, r, r, r, cv2.BORDER_REPLICATE)
    centre = cv2.add(gray, int(threshold))  # saturating: a white centre never sets bits
    code = np.zeros((h, w), np.uint8)
    for bit, (dy, dx) in enumerate(_OFFSETS):
        nb = padded[r + dy * r : r + dy * r + h, r + dx * r : r + dx * r + w]
        ge = cv2.compare(nb, centre, cv2.CMP_GE)  # 255 / 0
        code = cv2.bitwise_or(code, cv2.bitwise_and(ge, 1 << bit))
    return cv2.LUT(code, RIU2_LUT)


def lbp_histogram(labels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Normalised histogram (10 bins) of riu2 labels inside ``mask``."""
    hist = cv2.calcHist([labels], [0], mask, [N_LABELS], [0, N_LABELS]).ravel()
    total = hist.sum()
    return hist / total if total > 0 else hist


def highpass(gray: np.ndarray, *, size: int = 15) -> np.ndarray:
    """``gray`` minus its ``size`` x ``size`` box mean (int16): removes shading, keeps pores and bumps."""
    return gray.astype(np.int16) - cv2.blur(gray, (size, size)).astype(np.int16)


def local_contrast(hp: np.ndarray, mask: np.ndarray) -> float:
    """Standard deviation of the high-passed grey values inside ``mask`` (grey levels)."""
    if not cv2.countNonZero(mask):
        return 0.0
    _, sd = cv2.meanStdDev(hp, mask=mask)
    return float(sd[0, 0])


def roughness_maps(gray: np.ndarray, *, radius: int = 2, threshold: int = 5, smooth: int = 3, hp_size: int = 15):
    """LBP labels and high-pass map of a grey ROI, after a ``smooth`` box pre-filter.

    Returns
    -------
    labels : (H, W) uint8 riu2 labels from :func:`lbp_riu2`.
    hp : (H, W) int16 high-passed grey image from :func:`highpass`.
    """
    g = cv2.blur(gray, (smooth, smooth)) if smooth > 1 else gray
    return lbp_riu2(g, radius=radius, threshold=threshold), highpass(g, size=hp_size)


def roughness(labels: np.ndarray, hp: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, float]:
    """:func:`lbp_histogram` and :func:`local_contrast` inside a non-empty uint8 ``mask`` (maps
    from :func:`roughness_maps`, all on one grid), read on the mask's bounding box only."""
    box = mask_window(mask, 0)
    m = mask[box]  # OpenCV reads the row-strided views as they are
    return lbp_histogram(labels[box], m), local_contrast(hp[box], m)


def roughness_score(
    hist: np.ndarray, contrast: float, *, structure_full: float, floor: float, full: float, weight: float
) -> float:
    """0-100 score: ``weight`` x the structured (non-flat LBP) fraction as a share of
    ``structure_full`` + the rest x the local contrast above ``floor`` as a share of ``full``
    (both capped at 1)."""
    lbp_term = min(1.0, (1.0 - hist[0]) / structure_full)
    contrast_term = min(1.0, max(0.0, contrast - floor) / full)
    return 100.0 * (weight * lbp_term + (1.0 - weight) * contrast_term)


def roughness_heat(hp: np.ndarray, labels: np.ndarray, *, full: float) -> np.ndarray:
    """uint8 evidence map: |high-pass| (255 at ``full`` grey levels) on structured pixels (LBP label > 0), else 0."""
    scaled = cv2.convertScaleAbs(hp, alpha=255.0 / full)
    return cv2.bitwise_and(scaled, scaled, mask=labels)
