"""The face context detectors see: aligned ROI, zones, skin mask (and pose, framing).

With a fitted Face Mesh the zones are polygons of mesh points (:mod:`harerun.face.geometry`)
mapped into the ROI, each with its visibility; without one they come from the eye-based
template (:mod:`harerun.face.zones`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from harerun.detector import ZONE_NAMES, FaceContext
from harerun.face import Face, geometry
from harerun.face.config import FaceConfig
from harerun.face.roi import (
    MEAN_EYE_DISTANCE_MM,
    alignment_matrix,
    apply_affine,
    estimated_eyes,
    extract_roi,
    invert_affine,
    px_per_mm_from_eyes,
    roi_landmarks,
)
from harerun.face.skin import skin_mask
from harerun.face.zones import MOUTH_B, FaceFrame, face_zones, features_mask


def _mouth(lm: dict[str, tuple[float, float]]) -> tuple[float, float] | None:
    if "mouth_left" in lm and "mouth_right" in lm:
        (ax, ay), (bx, by) = lm["mouth_left"], lm["mouth_right"]
        return ((ax + bx) / 2.0, (ay + by) / 2.0)
    return None


@dataclass
class ZoneLayout:
    """Where the zones and the non-skin features lie on the ROI, and what the face shows."""

    zones: dict[str, np.ndarray]
    exclude: np.ndarray | None
    fold_zones: dict[str, np.ndarray] = field(default_factory=dict)
    hidden: tuple[str, ...] = ()
    pose: dict[str, float] | None = None
    framing: str | None = None
    px_per_mm: float | None = None
    face_mask: np.ndarray | None = None
    face_inside: float = 1.0


def _fill(size: int, polygons, valid: np.ndarray | None = None) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [np.round(p).astype(np.int32) for p in polygons], 255)
    if valid is not None:
        cv2.bitwise_and(mask, valid, dst=mask)
    return mask


#: The face area (``FaceContext.face_mask``) is the mesh's face outline scaled by this about its
#: centre: the outline stops at the upper forehead and runs in front of the ears and along the
#: jaw's edge, while acne is graded up to the hairline, on the temples, jaw and upper neck (a
#: quarter of the val split's annotated lesions lay outside it). The skin mask keeps hair and
#: background out; eyes, brows, lips and nostrils stay left out. Chosen on train
#: (``python bench/validity.py --split train --limit 200 --area-scale S``): lesion recall 0.368 ->
#: 0.407 / 0.431 / 0.432 at S = 1.1 / 1.3 / 1.45 with the same precision (0.53).
FACE_AREA_SCALE = 1.3


def mesh_layout(face: Face, image_to_roi: np.ndarray, photo_shape, size: int, valid: np.ndarray) -> ZoneLayout:
    """Zones, features, visibility, pose and framing from the face's fitted mesh."""
    h, w = photo_shape[:2]
    pts = face.mesh.points
    roi_pts = face.mesh.affine(image_to_roi).points
    visible = geometry.zone_visibility(pts, w, h)
    polys = geometry.zone_polygons(roi_pts)
    zones = {n: _fill(size, [polys[n]], valid) for n in ZONE_NAMES if visible[n]}
    folds = {n: _fill(size, [polys[n]], valid) for n in geometry.FOLD_ZONES if visible[n]}
    exclude = _fill(size, [p for rings in geometry.feature_polygons(roi_pts).values() for p in rings])
    head = geometry.pose(pts)
    oval = roi_pts[list(geometry.FACE_OVAL), :2]
    centre = oval.mean(axis=0)
    outline = _fill(size, [centre + (oval - centre) * FACE_AREA_SCALE], valid)
    cv2.bitwise_and(outline, cv2.bitwise_not(exclude), dst=outline)
    return ZoneLayout(
        zones=zones,
        exclude=exclude,
        fold_zones=folds,
        hidden=tuple(n for n, v in visible.items() if not v),
        pose=head,
        framing=geometry.framing(pts, w, h, head["yaw"]),
        face_mask=outline,
        face_inside=geometry.inside_share(pts, w, h),
        px_per_mm=_eye_scale(roi_landmarks(face, image_to_roi), float(np.tan(np.radians(min(abs(head["yaw"]), 60.0))))),
    )


def profile_layout(face: Face, image_to_roi: np.ndarray, size: int, valid: np.ndarray) -> ZoneLayout:
    """Near-side zones of a profile from the detector's keypoints (no mesh fits a profile)."""
    pose, polygons, visible = face.profile
    zones, folds = {}, {}
    for name, poly in polygons.items():
        mask = _fill(size, [apply_affine(image_to_roi, poly)], valid)
        (zones if name in ZONE_NAMES else folds)[name] = mask
    lm = roi_landmarks(face, image_to_roi)
    eye = np.add(lm["left_eye"], lm["right_eye"]) / 2.0
    exclude = np.zeros((size, size), np.uint8)
    d = 0.1 * size
    for k in ("left_eye", "right_eye", "mouth"):  # the eye and lips, as small discs
        if k in lm:
            cv2.circle(exclude, (int(round(lm[k][0])), int(round(lm[k][1]))), int(round(d)), 255, -1)
    return ZoneLayout(
        zones=zones,
        exclude=exclude,
        fold_zones=folds,
        hidden=tuple(n for n, v in visible.items() if not v),
        pose=pose,
        framing="profile",
        # the eye-to-mouth distance, MOUTH_B eye distances on an average adult face
        px_per_mm=float(np.hypot(*np.subtract(lm["mouth"], eye))) / (MOUTH_B * MEAN_EYE_DISTANCE_MM),
    )


def template_layout(face: Face, image_to_roi: np.ndarray, size: int, valid: np.ndarray, features: bool) -> ZoneLayout:
    """Zones and features from the eye-based template (no mesh: MediaPipe's weights absent,
    or the ``skip`` mode's canonical face)."""
    lm = roi_landmarks(face, image_to_roi)
    eyes = estimated_eyes(face, image_to_roi)
    mouth = _mouth(lm)
    zones = face_zones(
        size, left_eye=eyes["left_eye"], right_eye=eyes["right_eye"], mouth=mouth, nose=lm.get("nose"), valid=valid
    )
    frame = FaceFrame(eyes["left_eye"], eyes["right_eye"], mouth=mouth, nose=lm.get("nose"))
    exclude = None
    if features:  # (one array: every fresh full-size buffer costs its page faults)
        exclude = features_mask(
            size, left_eye=eyes["left_eye"], right_eye=eyes["right_eye"], mouth=mouth, nose=lm.get("nose")
        )
    return ZoneLayout(zones=zones, exclude=exclude, px_per_mm=_eye_scale(lm, abs(frame.yaw)))


def _eye_scale(lm: dict[str, tuple[float, float]], yaw_tan: float) -> float | None:
    if "left_eye" in lm and "right_eye" in lm:
        return px_per_mm_from_eyes(lm["left_eye"], lm["right_eye"], yaw=yaw_tan)
    return None


def build_context(
    image_bgr: np.ndarray, face: Face, *, face_cfg: FaceConfig, level_eyes: bool = True, features: bool = True
):
    """Aligned ROI, zones and skin mask for ``face``.

    Returns ``(ctx, valid, timings_ms)`` where ``valid`` masks the ROI pixels that come
    from the photo.
    """
    t0 = time.perf_counter()
    size = face_cfg.roi_size
    m = alignment_matrix(face, padding=face_cfg.padding, roi_size=size, level_eyes=level_eyes)
    roi, valid = extract_roi(image_bgr, m, size)
    lm = roi_landmarks(face, m)
    t1 = time.perf_counter()
    if face.mesh is not None:
        layout = mesh_layout(face, m, image_bgr.shape, size, valid)
    elif face.profile is not None:
        layout = profile_layout(face, m, size, valid)
    else:
        layout = template_layout(face, m, size, valid, features)
    zones = layout.zones
    t2 = time.perf_counter()
    reference = None
    if features:
        known = [zones[n] for n in ("left_cheek", "right_cheek", "nose") if n in zones]
        if known:
            reference = known[0].copy()
            for z in known[1:]:
                cv2.bitwise_or(reference, z, dst=reference)
    centre = lm.get("nose", (size / 2.0, size / 2.0)) if features else None
    skin = skin_mask(roi, reference=reference, exclude=layout.exclude if features else None, valid=valid, centre=centre)
    hidden = layout.hidden
    if (face.mesh is not None or face.profile is not None) and "forehead" in zones:
        whole = zones["forehead"]
        zones["forehead"] = geometry.hairline_cut(whole, skin)
        if cv2.countNonZero(zones["forehead"]) < geometry.MIN_FOREHEAD_LEFT * max(cv2.countNonZero(whole), 1):
            del zones["forehead"]  # hair, a hat or a fringe cover it
            hidden = (*hidden, "forehead")
    t3 = time.perf_counter()
    ctx = FaceContext(
        image=roi,
        skin_mask=skin,
        zones=zones,
        roi_to_image=invert_affine(m),
        face_box=[int(round(v)) for v in face.box],
        landmarks=lm,
        px_per_mm=layout.px_per_mm,
        pose=layout.pose,
        framing=layout.framing,
        fold_zones=layout.fold_zones,
        hidden_zones=hidden,
        face_mask=layout.face_mask,
        face_inside=layout.face_inside,
    )
    timings = {"roi": (t1 - t0) * 1e3, "zones": (t2 - t1) * 1e3, "skin_mask": (t3 - t2) * 1e3}
    return ctx, valid, timings
