"""Zone masks on the aligned ROI, placed from the eyes (and the mouth when known).

Geometry. Let ``d`` be the distance between the eye centres, ``m`` their midpoint,
``u`` the unit vector from the image-left eye to the image-right eye and ``v`` the
unit vector perpendicular to it pointing down the face. A point ``(a, b)`` of the
face frame is the ROI pixel ``m + a*d*u + b*d*v``; the eyes are at ``(-0.5, 0)`` and
``(0.5, 0)``. Average adult frontal proportions (eye distance ~63 mm, eye line to
mouth ~1.17 d, to chin ~1.9 d) place the zones:

================  ==============================================================
zone              polygon in the face frame (a, b)
================  ==============================================================
forehead          a in [-0.75, 0.75], b in [-1.25, -0.62]  (above the brows)
under_eye_left    a in [-0.80, -0.25], b in [0.22, 0.50]  (image-left eye)
under_eye_right   mirror of under_eye_left
nose              trapezoid (-0.14, 0.05) (0.14, 0.05) (0.30, 0.85) (-0.30, 0.85)
left_cheek        (-0.95, 0.60) (-0.36, 0.60) (-0.36, 0.95) (-0.55, 1.20) (-0.90, 1.20)
right_cheek       mirror of left_cheek
chin              a in [-0.40, 0.40], b in [1.50, 1.85]
================  ==============================================================

When the mouth corners are known every ``b > 0`` is scaled by ``mouth_b / 1.17`` so
the lower zones follow the real face length. ``left``/``right`` are image sides
(``left_cheek`` has the smaller x), matching the landmark names.

The same frame places the features the skin mask removes (:func:`feature_masks`):
eyes (ellipses 0.30 d x 0.17 d half-axes), brows (0.34 d x 0.12 d, centred 0.36 d above
each eye), lips (around the mouth) and nostrils (just below the nose tip).
"""

from __future__ import annotations

import cv2
import numpy as np

from harerun.detector import ZONE_NAMES

MOUTH_B = 1.17

_LEFT_CHEEK = [(-0.95, 0.60), (-0.36, 0.60), (-0.36, 0.95), (-0.55, 1.20), (-0.90, 1.20)]
_UNDER_EYE_LEFT = [(-0.80, 0.22), (-0.25, 0.22), (-0.25, 0.50), (-0.80, 0.50)]

ZONE_POLYGONS: dict[str, list[tuple[float, float]]] = {
    "forehead": [(-0.75, -1.25), (0.75, -1.25), (0.75, -0.62), (-0.75, -0.62)],
    "left_cheek": _LEFT_CHEEK,
    "right_cheek": [(-a, b) for a, b in _LEFT_CHEEK],
    "nose": [(-0.14, 0.05), (0.14, 0.05), (0.30, 0.85), (-0.30, 0.85)],
    "chin": [(-0.40, 1.50), (0.40, 1.50), (0.40, 1.85), (-0.40, 1.85)],
    "under_eye_left": _UNDER_EYE_LEFT,
    "under_eye_right": [(-a, b) for a, b in _UNDER_EYE_LEFT],
}
assert set(ZONE_POLYGONS) == set(ZONE_NAMES)


class FaceFrame:
    """The eye-based face frame: maps ``(a, b)`` in eye distances to ROI pixels."""

    def __init__(self, left_eye, right_eye, *, mouth: tuple[float, float] | None = None) -> None:
        le, re = np.asarray(left_eye, np.float64), np.asarray(right_eye, np.float64)
        self.d = float(np.linalg.norm(re - le)) or 1.0
        self.m = (le + re) / 2.0
        self.u = (re - le) / self.d
        self.v = np.array([-self.u[1], self.u[0]])  # u rotated +90 deg: down the face in image coords
        self.b_scale = 1.0
        if mouth is not None:
            mouth_b = float(np.dot(np.asarray(mouth, np.float64) - self.m, self.v)) / self.d
            if 0.7 < mouth_b < 1.8:  # ignore implausible landmarks (profile views, bad fits)
                self.b_scale = mouth_b / MOUTH_B

    def to_roi(self, ab) -> np.ndarray:
        ab = np.asarray(ab, np.float64).reshape(-1, 2)
        b = np.where(ab[:, 1] > 0, ab[:, 1] * self.b_scale, ab[:, 1])
        return self.m + self.d * (ab[:, :1] * self.u + b[:, None] * self.v)

    def polygon_mask(self, size: int, polygon) -> np.ndarray:
        mask = np.zeros((size, size), np.uint8)
        cv2.fillPoly(mask, [np.round(self.to_roi(polygon)).astype(np.int32)], 255)
        return mask

    def ellipse(self, mask: np.ndarray, centre_ab, half_axes_ab) -> None:
        """Draw a filled ellipse (axes along u, v, in eye distances) into ``mask``."""
        c = self.to_roi([centre_ab])[0]
        axes = (max(1, int(round(half_axes_ab[0] * self.d))), max(1, int(round(half_axes_ab[1] * self.d * self.b_scale))))
        angle = float(np.degrees(np.arctan2(self.u[1], self.u[0])))
        cv2.ellipse(mask, (int(round(c[0])), int(round(c[1]))), axes, angle, 0, 360, 255, -1)


def face_zones(
    size: int,
    *,
    left_eye,
    right_eye,
    mouth: tuple[float, float] | None = None,
    valid: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Zone masks (uint8, 255 inside) on a ``size`` square ROI.

    Parameters
    ----------
    size : ROI side in pixels.
    left_eye, right_eye : eye centres in ROI pixels (image-left eye first).
    mouth : mouth centre in ROI pixels, when known (adapts the lower zones).
    valid : optional mask of ROI pixels that come from the photo; zones are clipped to it.
    """
    frame = FaceFrame(left_eye, right_eye, mouth=mouth)
    zones = {name: frame.polygon_mask(size, ZONE_POLYGONS[name]) for name in ZONE_NAMES}
    if valid is not None:
        zones = {k: cv2.bitwise_and(z, valid) for k, z in zones.items()}
    return zones


def feature_masks(
    size: int,
    *,
    left_eye,
    right_eye,
    mouth: tuple[float, float] | None = None,
    nose: tuple[float, float] | None = None,
) -> dict[str, np.ndarray]:
    """Masks of the non-skin facial features: ``eyes``, ``brows``, ``lips``, ``nostrils``."""
    frame = FaceFrame(left_eye, right_eye, mouth=mouth)
    out = {k: np.zeros((size, size), np.uint8) for k in ("eyes", "brows", "lips", "nostrils")}
    for a in (-0.5, 0.5):
        frame.ellipse(out["eyes"], (a, 0.0), (0.30, 0.17))
        frame.ellipse(out["brows"], (a * 1.05, -0.36), (0.34, 0.12))
    frame.ellipse(out["lips"], (0.0, MOUTH_B), (0.50, 0.22))
    nose_b = 0.80
    if nose is not None:
        nb = float(np.dot(np.asarray(nose, np.float64) - frame.m, frame.v)) / frame.d / frame.b_scale
        if 0.4 < nb < 1.1:
            nose_b = nb
    frame.ellipse(out["nostrils"], (0.0, nose_b + 0.08), (0.24, 0.09))
    return out
