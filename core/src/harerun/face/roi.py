"""The aligned face ROI: rotate so the eyes are level, crop with a margin, resize.

Every function returns or takes the 2x3 affine ``image_to_roi`` (and its inverse
``roi_to_image``) so any ROI coordinate maps back to the original photo.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from harerun.face import Face

#: Adult mean inter-pupillary distance (mm), for the pixel-scale estimate.
MEAN_EYE_DISTANCE_MM = 63.0

#: Where the eyes sit in a face box when no detector gave them, as fractions of (w, h).
#: Matches both OpenCV's frontal cascades and YuNet boxes to within a few percent.
DEFAULT_EYES = {"left_eye": (0.31, 0.40), "right_eye": (0.69, 0.40)}

#: A fitted mesh frames the face as a box of this many times the points' RMS distance from
#: their centroid (the median ratio of BlazeFace's box side to it on the shared photos).
MESH_BOX_PER_RMS = 3.33


def face_frame(face: Face) -> tuple[float, float, float]:
    """``(cx, cy, side)`` of the square the ROI is framed on, in photo pixels.

    With a fitted mesh: its centroid and :data:`MESH_BOX_PER_RMS` times its RMS radius, which
    turn, mirror and rescale with the face (the detector's box moves by 2-5 % of its side when
    the photo is mirrored, the mesh's frame by 0.3-1 %). Otherwise the detector's box."""
    if face.mesh is not None:
        p = np.asarray(face.mesh.points, np.float64)[:, :2]
        c = p.mean(axis=0)
        rms = math.sqrt(((p - c) ** 2).sum(axis=1).mean())
        return float(c[0]), float(c[1]), MESH_BOX_PER_RMS * rms
    x, y, w, h = face.box
    return x + w / 2.0, y + h / 2.0, float(max(w, h))


def roll_angle_deg(left_eye, right_eye) -> float:
    """Angle of the eye line from horizontal, degrees; positive when the image-right eye is lower."""
    return math.degrees(math.atan2(right_eye[1] - left_eye[1], right_eye[0] - left_eye[0]))


def face_roll_deg(face: Face) -> float | None:
    """Head roll: a profile's from its keypoints, else from the eye line when both eyes are
    known, else the angle of the rotated copy the face was found on (None when none is known)."""
    if face.profile is not None:
        return face.profile[0]["roll"]
    if "left_eye" in face.landmarks and "right_eye" in face.landmarks:
        return roll_angle_deg(face.landmarks["left_eye"], face.landmarks["right_eye"])
    return face.angle if face.angle else None


def alignment_matrix(
    face: Face, *, padding: float, roi_size: int, level_eyes: bool = True, angle: float | None = None
) -> np.ndarray:
    """2x3 affine mapping original-photo pixels to the aligned square ROI.

    The frame's centre (:func:`face_frame`) goes to the ROI centre, its side plus ``padding``
    on each side (as a fraction of the side) fills the ROI, and when both eyes are known the
    image is rotated about the box centre so the eye line is horizontal (or, without eyes,
    by ``face.angle``). An explicit ``angle`` (degrees, counter-clockwise) overrides that.
    """
    cx, cy, side = face_frame(face)
    side *= 1.0 + 2.0 * padding
    if angle is None:
        angle = face_roll_deg(face) if level_eyes else 0.0
        angle = 0.0 if angle is None else angle
    m = cv2.getRotationMatrix2D((cx, cy), angle, roi_size / side)
    m[0, 2] += roi_size / 2.0 - cx
    m[1, 2] += roi_size / 2.0 - cy
    return m


def invert_affine(m: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(np.asarray(m, np.float64))


def apply_affine(m: np.ndarray, points) -> np.ndarray:
    """Map (N, 2) points through a 2x3 affine."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    return pts @ np.asarray(m)[:, :2].T + np.asarray(m)[:, 2]


def extract_roi(image_bgr: np.ndarray, image_to_roi: np.ndarray, roi_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Warp the photo into the ROI; also return the mask (255) of ROI pixels that come from the photo."""
    roi = cv2.warpAffine(
        image_bgr,
        image_to_roi,
        (roi_size, roi_size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    h, w = image_bgr.shape[:2]
    corners = apply_affine(image_to_roi, [(0, 0), (w - 1, 0), (w - 1, h - 1), (0, h - 1)])
    valid = np.zeros((roi_size, roi_size), np.uint8)
    cv2.fillConvexPoly(valid, np.round(corners).astype(np.int32), 255)
    return roi, valid


def roi_landmarks(face: Face, image_to_roi: np.ndarray) -> dict[str, tuple[float, float]]:
    """The face's landmarks in ROI pixels."""
    out = {}
    for k, p in face.landmarks.items():
        q = apply_affine(image_to_roi, [p])[0]
        out[k] = (float(q[0]), float(q[1]))
    return out


def estimated_eyes(face: Face, image_to_roi: np.ndarray) -> dict[str, tuple[float, float]]:
    """Eye positions in ROI pixels: the detector's when known, else the box-based default."""
    x, y, w, h = face.box
    out = {}
    for k, (fx, fy) in DEFAULT_EYES.items():
        p = face.landmarks.get(k, (x + fx * w, y + fy * h))
        q = apply_affine(image_to_roi, [p])[0]
        out[k] = (float(q[0]), float(q[1]))
    return out


def px_per_mm_from_eyes(left_eye, right_eye, *, yaw: float = 0.0) -> float:
    """Pixel scale from the eye distance, assuming the adult mean of 63 mm.

    ``yaw`` is the tangent of the head's turn (see :mod:`harerun.face.zones`): a turned
    head shows the eye distance shortened by cos(yaw), which is undone here.
    """
    return float(math.dist(left_eye, right_eye) * math.sqrt(1.0 + yaw * yaw) / MEAN_EYE_DISTANCE_MM)
