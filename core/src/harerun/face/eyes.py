"""The eye cascade on face crops: the eye line of faces that have no fitted mesh.

Without the Face Mesh (its weights are not installed) the eyes come from the backend:
Haar's eye cascade inside the upright box, or YuNet's regressor, which pulls the eyes of
a tilted head towards level. These two checks then measure the eye line again on crops
of the face. With a mesh neither is needed: its own eye corners give the roll.
"""

from __future__ import annotations

import cv2
import numpy as np

from harerun.face import Face
from harerun.face.backends import EYE_CASCADE_LOCK, find_eyes, shared_eye_cascade
from harerun.face.roi import alignment_matrix, apply_affine, invert_affine, roll_angle_deg


def both_eyes(face: Face) -> bool:
    return "left_eye" in face.landmarks and "right_eye" in face.landmarks


#: Side of the upright face crop the eye line is re-measured on (eyes ~30 px: the eye
#: cascade's 20 px window fits; 160 px finds the same eyes at 1.6x the time).
EYE_LINE_CROP = 128
#: Rolls (degrees) the eye search tries on a face whose upright box showed fewer than two
#: eyes (the eye cascade itself tolerates about +-15 degrees, so these cover 10-40).
EYE_SEARCH_ROLLS = (25.0, -25.0)


def _eyes_on_crop(image_bgr: np.ndarray, m: np.ndarray, size: int) -> dict[str, tuple[float, float]]:
    """The eye cascade on the ``size`` square crop that the affine ``m`` cuts out of the photo
    (eye centres in crop pixels)."""
    crop = cv2.warpAffine(image_bgr, m, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
    gray = cv2.equalizeHist(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop)
    with EYE_CASCADE_LOCK:
        return find_eyes(gray, (0, 0, size, size), shared_eye_cascade(), width=size)


def find_tilted_eyes(image_bgr: np.ndarray, face: Face) -> Face:
    """Look for both eyes of a face found with fewer than two, on crops of its box turned
    by :data:`EYE_SEARCH_ROLLS`.

    The frontal cascade still finds many heads rolled by 20-35 degrees, but the eye
    cascade inside the upright box then misses one eye or both, which would leave the
    roll unknown (no ``TILTED``, an unaligned ROI). A pair is accepted when the two eyes
    lie 0.25-0.65 of the box apart and within 15 degrees of level on the turned crop; of
    two, the more level wins. The eyes map back to the photo exactly.
    """
    size = EYE_LINE_CROP
    best: tuple[float, dict[str, tuple[float, float]]] | None = None
    for angle in EYE_SEARCH_ROLLS:
        m = alignment_matrix(face, padding=0.0, roi_size=size, angle=angle)
        eyes = _eyes_on_crop(image_bgr, m, size)
        if len(eyes) != 2:
            continue
        (lx, ly), (rx, ry) = eyes["left_eye"], eyes["right_eye"]
        residual = abs(roll_angle_deg((lx, ly), (rx, ry)))
        if not 0.25 * size <= rx - lx <= 0.65 * size or residual > 15.0:
            continue
        if best is None or residual < best[0]:
            back = invert_affine(m)
            best = (residual, {k: tuple(float(v) for v in apply_affine(back, [p])[0]) for k, p in eyes.items()})
    if best is None:
        return face
    return Face(face.box, face.score, {**face.landmarks, **best[1]}, face.backend, face.angle)


def check_eye_line(image_bgr: np.ndarray, face: Face, *, min_correction_deg: float = 8.0) -> Face:
    """Re-measure the eye line with the eye cascade on an upright crop of the face.

    Landmark regressors such as YuNet pull the eyes of a tilted head towards an upright
    template (a 25 degree roll comes out as about 1 degree), which would hide ``TILTED`` and
    misalign the ROI. When the cascade finds both eyes, each near the regressor's eye,
    and their line differs from the regressor's by more than ``min_correction_deg``,
    the cascade's eyes replace the regressor's.
    """
    lm = face.landmarks
    if not both_eyes(face):
        return face
    size = EYE_LINE_CROP
    m = alignment_matrix(face, padding=0.0, roi_size=size)
    eyes = _eyes_on_crop(image_bgr, m, size)
    if len(eyes) != 2:
        return face
    (lx, ly), (rx, ry) = apply_affine(m, [lm["left_eye"], lm["right_eye"]])
    d = float(np.hypot(rx - lx, ry - ly))
    (flx, fly), (frx, fry) = eyes["left_eye"], eyes["right_eye"]
    if abs(flx - lx) > 0.35 * d or abs(frx - rx) > 0.35 * d or not 0.5 * d < frx - flx < 1.6 * d:
        return face
    residual = roll_angle_deg((flx, fly), (frx, fry))
    if abs(residual) < min_correction_deg:
        return face
    back = invert_affine(m)
    new = dict(lm)
    for k, p in eyes.items():
        new[k] = tuple(float(v) for v in apply_affine(back, [p])[0])
    return Face(face.box, face.score, new, face.backend, face.angle)
