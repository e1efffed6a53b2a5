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

Turned heads (3/4 views). The face is not flat: relative to the plane of the eyes the
midline stands forward and the sides fall back, roughly ``z(a) = -0.6 (a^2 - 0.25)``
eye distances, plus the nose (tip ``0.5 d`` in front of the eyes) and the mouth and chin
(``0.2 d`` more on the midline). Under a yaw ``t``
(tangent of the angle) a point projects to ``a + z * t``, and the nose tip's
sideways offset from the eye midpoint measures it: ``t = nose_a / 0.5`` (clipped to
+-1, i.e. 45 degrees). So on a turned face the near cheek widens, the far cheek narrows
and the nose zone leans towards the nose tip. Frontal faces (``t = 0``) are unchanged.

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


#: How far the nose tip stands in front of the eyes, in eye distances.
NOSE_DEPTH = 0.5


def _depth(ab: np.ndarray) -> np.ndarray:
    """Depth (towards the camera, in eye distances) of face-frame points relative to the eyes."""
    a, b = ab[:, 0], ab[:, 1]
    z = -0.6 * (a**2 - 0.25)
    nose = (NOSE_DEPTH - 0.15) * np.clip(1.0 - np.abs(a) / 0.3, 0.0, 1.0) * np.clip(b / 0.8, 0.0, 1.0) * (b < 1.0)
    mouth_chin = 0.2 * np.clip(1.0 - np.abs(a) / 0.6, 0.0, 1.0) * (b >= 1.0)
    return z + nose + mouth_chin


def _edge_points(polygon, steps: int = 6) -> np.ndarray:
    """A polygon's vertices with ``steps - 1`` points between each and the next (face frame)."""
    pts = np.asarray(polygon, np.float64)
    nxt = np.roll(pts, -1, axis=0)
    t = np.arange(steps)[None, :, None] / steps
    return (pts[:, None, :] * (1 - t) + nxt[:, None, :] * t).reshape(-1, 2)


#: Every zone's edge points (ZONE_NAMES order) and their depths, worked out once: a face's
#: zones are then one frame mapping (the same numbers point by point) and seven fills.
_ZONE_POINTS = np.concatenate([_edge_points(ZONE_POLYGONS[name]) for name in ZONE_NAMES])
_ZONE_DEPTH = _depth(_ZONE_POINTS)
_ZONE_SPLITS = np.cumsum([len(_edge_points(ZONE_POLYGONS[name])) for name in ZONE_NAMES])[:-1]


class FaceFrame:
    """The eye-based face frame: maps ``(a, b)`` in eye distances to ROI pixels."""

    def __init__(
        self,
        left_eye,
        right_eye,
        *,
        mouth: tuple[float, float] | None = None,
        nose: tuple[float, float] | None = None,
    ) -> None:
        le, re = np.asarray(left_eye, np.float64), np.asarray(right_eye, np.float64)
        self.d = float(np.linalg.norm(re - le)) or 1.0
        self.m = (le + re) / 2.0
        self.u = (re - le) / self.d
        self.v = np.array([-self.u[1], self.u[0]])  # u rotated +90 deg: down the face in image coords
        self.b_scale = 1.0
        if mouth is not None:
            mouth_b = self.frame_coords(mouth)[1]
            if 0.7 < mouth_b < 1.8:  # ignore implausible landmarks (profile views, bad fits)
                self.b_scale = mouth_b / MOUTH_B
        self.yaw = 0.0
        if nose is not None:
            self.yaw = float(np.clip(self.frame_coords(nose)[0] / NOSE_DEPTH, -1.0, 1.0))

    def frame_coords(self, point) -> tuple[float, float]:
        """(a, b) of an ROI pixel, before any yaw or length correction."""
        p = np.asarray(point, np.float64) - self.m
        return float(p @ self.u) / self.d, float(p @ self.v) / self.d

    def to_roi(self, ab, *, depth: np.ndarray | None = None) -> np.ndarray:
        """ROI pixels of face-frame points (``depth``: their :func:`_depth`, when known already)."""
        ab = np.asarray(ab, np.float64).reshape(-1, 2)
        a = ab[:, 0] + (_depth(ab) if depth is None else depth) * self.yaw
        b = np.where(ab[:, 1] > 0, ab[:, 1] * self.b_scale, ab[:, 1])
        return self.m + self.d * (a[:, None] * self.u + b[:, None] * self.v)

    def polygon_mask(self, size: int, polygon, *, steps: int = 6) -> np.ndarray:
        """Fill ``polygon`` (face-frame vertices); edges are split so the yaw bends them."""
        mask = np.zeros((size, size), np.uint8)
        cv2.fillPoly(mask, [np.round(self.to_roi(_edge_points(polygon, steps))).astype(np.int32)], 255)
        return mask

    def ellipse(self, mask: np.ndarray, centre_ab, half_axes_ab, *, centre_px=None) -> None:
        """Draw a filled ellipse (axes along u, v, in eye distances) into ``mask``,
        at ``centre_ab`` or directly at the ROI pixel ``centre_px``."""
        c = self.to_roi([centre_ab])[0] if centre_px is None else np.asarray(centre_px, np.float64)
        axes = (
            max(1, int(round(half_axes_ab[0] * self.d))),
            max(1, int(round(half_axes_ab[1] * self.d * self.b_scale))),
        )
        angle = float(np.degrees(np.arctan2(self.u[1], self.u[0])))
        cv2.ellipse(mask, (int(round(c[0])), int(round(c[1]))), axes, angle, 0, 360, 255, -1)


def face_zones(
    size: int,
    *,
    left_eye,
    right_eye,
    mouth: tuple[float, float] | None = None,
    nose: tuple[float, float] | None = None,
    valid: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Zone masks (uint8, 255 inside) on a ``size`` square ROI.

    Parameters
    ----------
    size : ROI side in pixels.
    left_eye, right_eye : eye centres in ROI pixels (image-left eye first).
    mouth : mouth centre in ROI pixels, when known (adapts the lower zones to the face length).
    nose : nose tip in ROI pixels, when known (adapts the zones to a turned head).
    valid : optional mask of ROI pixels that come from the photo; zones are clipped to it.
    """
    frame = FaceFrame(left_eye, right_eye, mouth=mouth, nose=nose)
    corners = np.round(frame.to_roi(_ZONE_POINTS, depth=_ZONE_DEPTH)).astype(np.int32)
    zones = {}
    for name, poly in zip(ZONE_NAMES, np.split(corners, _ZONE_SPLITS), strict=True):
        mask = np.zeros((size, size), np.uint8)
        cv2.fillPoly(mask, [poly], 255)
        if valid is not None:
            # Clipped in place, only on the polygon's box (the fill does not leave it): no fresh
            # full-size buffer, and the untouched zero pages stay unwritten.
            x, y, w, h = cv2.boundingRect(poly)
            box = mask[max(y, 0) : max(y + h, 0), max(x, 0) : max(x + w, 0)]
            if box.size:
                cv2.bitwise_and(box, valid[max(y, 0) : max(y + h, 0), max(x, 0) : max(x + w, 0)], dst=box)
        zones[name] = mask
    return zones


FEATURES = ("eyes", "brows", "lips", "nostrils")


def feature_masks(
    size: int,
    *,
    left_eye,
    right_eye,
    mouth: tuple[float, float] | None = None,
    nose: tuple[float, float] | None = None,
) -> dict[str, np.ndarray]:
    """Masks of the non-skin facial features: ``eyes``, ``brows``, ``lips``, ``nostrils``.

    The lips and nostrils sit at the measured mouth and nose when known.
    """
    out = {k: np.zeros((size, size), np.uint8) for k in FEATURES}
    _draw_features(out, FaceFrame(left_eye, right_eye, mouth=mouth, nose=nose), mouth=mouth, nose=nose)
    return out


def features_mask(
    size: int,
    *,
    left_eye,
    right_eye,
    mouth: tuple[float, float] | None = None,
    nose: tuple[float, float] | None = None,
) -> np.ndarray:
    """All of :func:`feature_masks` in one mask (drawn into one array: the same pixels as
    OR-ing the four, without four full-size buffers)."""
    mask = np.zeros((size, size), np.uint8)
    frame = FaceFrame(left_eye, right_eye, mouth=mouth, nose=nose)
    _draw_features(dict.fromkeys(FEATURES, mask), frame, mouth=mouth, nose=nose)
    return mask


def _draw_features(out: dict[str, np.ndarray], frame: FaceFrame, *, mouth, nose) -> None:
    for a in (-0.5, 0.5):
        frame.ellipse(out["eyes"], (a, 0.0), (0.30, 0.17))
        frame.ellipse(out["brows"], (a * 1.05, -0.36), (0.34, 0.12))
    frame.ellipse(out["lips"], (0.0, MOUTH_B), (0.50, 0.22), centre_px=mouth)
    if nose is not None:
        below = np.asarray(nose, np.float64) + 0.08 * frame.d * frame.b_scale * frame.v
        frame.ellipse(out["nostrils"], (0.0, 0.88), (0.24, 0.09), centre_px=below)
    else:
        frame.ellipse(out["nostrils"], (0.0, 0.88), (0.24, 0.09))
