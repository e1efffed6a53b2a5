"""Face geometry from the 468-point Face Mesh: zones, features, pose, framing, plausibility.

Every zone is a polygon of mesh points (MediaPipe's canonical topology), so it follows
the face it was fitted to: a turned head narrows the far cheek, a longer face stretches
the chin, a smile moves the nasolabial folds. The indices were chosen on overlays of
fitted meshes (``python bench/zones.py --sheet``); ``left``/``right`` are image sides,
as everywhere in Hare Run (``left_cheek`` is the subject's right cheek).

================  ==================================================================
zone              where
================  ==================================================================
forehead          above the brows up to the mesh's second row below its top, then cut
                  at the hairline (:func:`hairline_cut`)
glabella          between the inner brow ends, down to the top of the nose bridge
nose              the bridge and dorsum down to the tip
left/right_cheek  below the under-eye band, beside the nose, above the jaw
chin              below the lower lip, inside the jaw line
under_eye_*       the band under the lower eyelid
crows_feet_*      beside the outer eye corner
nasolabial_*      from the nose wing to the mouth corner
================  ==================================================================

Pose comes from the mesh's own 3-D points (``z`` is in the same units as ``x``): the
face's left-right axis from symmetric point pairs, its up-down axis from forehead to
chin. ``yaw`` > 0: the nose points to the image right; ``pitch`` > 0: the chin is up;
``roll`` > 0: the image-right eye is lower (as :func:`harerun.face.roi.roll_angle_deg`).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

_LEFT = {
    "under_eye": (31, 228, 229, 230, 231, 232, 121, 120, 119, 118, 117, 111),
    "cheek": (116, 117, 118, 101, 36, 205, 187, 147, 123),
    "crows_feet": (156, 124, 113, 226, 111, 143, 139),
    "nasolabial": (203, 206, 216, 212, 57, 186, 92, 165),
}
#: MediaPipe's mirror pairs for the points above (image-left point -> image-right point).
_MIRROR = {
    31: 261, 228: 448, 229: 449, 230: 450, 231: 451, 232: 452, 121: 350, 120: 349, 119: 348,
    118: 347, 117: 346, 111: 340, 116: 345, 101: 330, 36: 266, 205: 425, 187: 411, 147: 376,
    123: 352, 156: 383, 124: 353, 113: 342, 226: 446, 143: 372, 139: 368, 203: 423, 206: 426,
    216: 436, 212: 432, 57: 287, 186: 410, 92: 322, 165: 391,
}  # fmt: skip

#: The mesh point each point becomes in a mirror image (the subject's left and right swapped;
#: the 28 midline points map to themselves). Found by matching each point of frontal fits
#: (astronaut, Tom_Cruise_avp_2014_4, bald_guys, 2008_002470, 2008_004176), reflected about
#: the face's midline in its own 3-D frame, to its nearest partner (Hungarian assignment):
#: all five fits gave the same involution, consistent with every pair in ``_MIRROR``.
MESH_MIRROR = (
    0, 1, 2, 248, 4, 5, 6, 249, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19,
    250, 251, 252, 253, 254, 255, 256, 257, 258, 259, 260, 261, 262, 263, 264, 265, 266, 267, 268, 269,
    270, 271, 272, 273, 274, 275, 276, 277, 278, 279, 280, 281, 282, 283, 284, 285, 286, 287, 288, 289,
    290, 291, 292, 293, 294, 295, 296, 297, 298, 299, 300, 301, 302, 303, 304, 305, 306, 307, 308, 309,
    310, 311, 312, 313, 314, 315, 316, 317, 318, 319, 320, 321, 322, 323, 94, 324, 325, 326, 327, 328,
    329, 330, 331, 332, 333, 334, 335, 336, 337, 338, 339, 340, 341, 342, 343, 344, 345, 346, 347, 348,
    349, 350, 351, 352, 353, 354, 355, 356, 357, 358, 359, 360, 361, 362, 363, 364, 365, 366, 367, 368,
    369, 370, 371, 372, 373, 374, 375, 376, 377, 378, 379, 151, 152, 380, 381, 382, 383, 384, 385, 386,
    387, 388, 389, 390, 164, 391, 392, 393, 168, 394, 395, 396, 397, 398, 399, 175, 400, 401, 402, 403,
    404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 418, 195, 419, 197, 420, 199,
    200, 421, 422, 423, 424, 425, 426, 427, 428, 429, 430, 431, 432, 433, 434, 435, 436, 437, 438, 439,
    440, 441, 442, 443, 444, 445, 446, 447, 448, 449, 450, 451, 452, 453, 454, 455, 456, 457, 458, 459,
    460, 461, 462, 463, 464, 465, 466, 467, 3, 7, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29,
    30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49,
    50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69,
    70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 88, 89,
    90, 91, 92, 93, 95, 96, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110,
    111, 112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127, 128, 129, 130,
    131, 132, 133, 134, 135, 136, 137, 138, 139, 140, 141, 142, 143, 144, 145, 146, 147, 148, 149, 150,
    153, 154, 155, 156, 157, 158, 159, 160, 161, 162, 163, 165, 166, 167, 169, 170, 171, 172, 173, 174,
    176, 177, 178, 179, 180, 181, 182, 183, 184, 185, 186, 187, 188, 189, 190, 191, 192, 193, 194, 196,
    198, 201, 202, 203, 204, 205, 206, 207, 208, 209, 210, 211, 212, 213, 214, 215, 216, 217, 218, 219,
    220, 221, 222, 223, 224, 225, 226, 227, 228, 229, 230, 231, 232, 233, 234, 235, 236, 237, 238, 239,
    240, 241, 242, 243, 244, 245, 246, 247,
)  # fmt: skip

ZONE_POINTS: dict[str, tuple[int, ...]] = {
    "forehead": (63, 105, 66, 107, 9, 336, 296, 334, 293, 333, 299, 337, 151, 108, 69, 104, 68),
    "glabella": (55, 107, 9, 336, 285, 417, 168, 193),
    "nose": (168, 122, 196, 3, 51, 45, 44, 1, 274, 275, 281, 248, 419, 351),
    "chin": (18, 83, 201, 208, 171, 175, 396, 428, 421, 313),
}
#: Each zone's kind (the name without its side), for per-kind constants.
ZONE_KIND = {name: name for name in ZONE_POINTS}
for _kind, _pts in _LEFT.items():
    _names = ("left_cheek", "right_cheek") if _kind == "cheek" else (f"{_kind}_left", f"{_kind}_right")
    ZONE_POINTS[_names[0]] = _pts
    ZONE_POINTS[_names[1]] = tuple(_MIRROR[i] for i in _pts)
    ZONE_KIND.update(dict.fromkeys(_names, _kind))

#: The analysis zones every detector sees (``harerun.detector.ZONE_NAMES``) and the fold
#: zones that only the wrinkle detector uses.
FOLD_ZONES = ("glabella", "crows_feet_left", "crows_feet_right", "nasolabial_left", "nasolabial_right")

FEATURE_POINTS: dict[str, tuple[tuple[int, ...], ...]] = {
    "eyes": (
        (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246),
        (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466),
    ),
    "brows": ((70, 63, 105, 66, 107, 55, 65, 52, 53, 46), (300, 293, 334, 296, 336, 285, 295, 282, 283, 276)),
    "lips": ((61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185),),
    "nostrils": ((64, 98, 97, 2, 326, 327, 294, 278, 344, 440, 275, 1, 45, 220, 115, 48),),
}

#: Outline of the face (forehead top, temples, jaw, chin), clockwise from the top.
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
             148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)  # fmt: skip

#: Symmetric pairs (image-left, image-right) that give the face's left-right axis.
_AXIS_PAIRS = ((234, 454), (33, 263), (133, 362), (61, 291), (127, 356), (93, 323), (132, 361))
_TOP, _BOTTOM = (10, 151, 9), (152, 175, 199)
#: The mesh's forehead-to-chin line leans about this much (pitch, degrees) on the faces of
#: the shared dlib examples (median of 68 faces; most look at the camera), so those read ~0.
PITCH_OFFSET_DEG = -5.0

#: How squarely each zone faces the camera on a frontal face (cosine between its normal and
#: the view axis; mean over the astronaut, Tom_Cruise_avp_2014_4 and bald_guys).
FRONTAL_FACING = {
    "forehead": 0.96, "glabella": 0.93, "nose": 0.91, "chin": 0.93, "under_eye": 0.87, "cheek": 0.72,
    "crows_feet": 0.56, "nasolabial": 0.80,
}  # fmt: skip
#: A zone is visible while it faces the camera at least this share of its frontal facing:
#: on a 3/4 view (yaw 35-45 degrees) the far cheek, crow's feet, nasolabial fold and
#: under-eye fall to 0.0-0.55 of it and are drawn beyond the nose outline, on background.
MIN_FACING_SHARE = 0.6
#: ... and when at least this share of it lies inside the photo.
MIN_INSIDE = 0.5

#: Framing bands on |yaw| (degrees).
THREE_QUARTER_FROM, PROFILE_FROM = 20.0, 55.0
#: A face is a close-up when at least this share of its outline lies outside the photo.
CLOSE_UP_OUTSIDE = 0.1


def zone_polygons(points: np.ndarray) -> dict[str, np.ndarray]:
    """Every zone's polygon ``(N, 2)`` from mesh ``points`` (any pixel frame)."""
    return {name: points[list(idx), :2] for name, idx in ZONE_POINTS.items()}


def feature_polygons(points: np.ndarray) -> dict[str, list[np.ndarray]]:
    """Eyes, brows, lips and nostrils as polygons (the skin mask leaves them out)."""
    return {name: [points[list(ring), :2] for ring in rings] for name, rings in FEATURE_POINTS.items()}


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-9)


def pose(points: np.ndarray) -> dict[str, float]:
    """Head pose ``{yaw, pitch, roll}`` in degrees from the mesh's 3-D points."""
    x_axis = _unit(sum(_unit(points[r] - points[le]) for le, r in _AXIS_PAIRS))
    down = points[list(_BOTTOM)].mean(0) - points[list(_TOP)].mean(0)
    y_axis = _unit(down - (down @ x_axis) * x_axis)
    yaw = math.degrees(math.asin(float(np.clip(x_axis[2], -1, 1))))
    pitch = -math.degrees(math.asin(float(np.clip(y_axis[2], -1, 1)))) - PITCH_OFFSET_DEG
    roll = math.degrees(math.atan2(x_axis[1], x_axis[0]))
    return {"yaw": round(yaw, 1), "pitch": round(pitch, 1), "roll": round(roll, 1)}


def outside_share(points: np.ndarray, width: int, height: int) -> float:
    """Share of the face outline's points outside a ``width`` x ``height`` photo."""
    oval = points[list(FACE_OVAL), :2]
    inside = (oval[:, 0] >= 0) & (oval[:, 0] < width) & (oval[:, 1] >= 0) & (oval[:, 1] < height)
    return float(1.0 - inside.mean())


def inside_share(points: np.ndarray, width: int, height: int) -> float:
    """Share of the face's area (its mesh outline, which the mesh completes beyond the frame)
    that lies inside a ``width`` x ``height`` photo."""
    oval = points[list(FACE_OVAL), :2]
    lo = oval.min(0)
    scale = 128.0 / max(float((oval.max(0) - lo).max()), 1.0)  # a small raster is enough
    size = np.ceil((oval.max(0) - lo) * scale).astype(int) + 2
    canvas = np.zeros((size[1], size[0]), np.uint8)
    cv2.fillPoly(canvas, [np.round((oval - lo) * scale).astype(np.int32)], 255)
    ys, xs = np.nonzero(canvas)
    px, py = xs / scale + lo[0], ys / scale + lo[1]
    inside = (px >= 0) & (px < width) & (py >= 0) & (py < height)
    return float(inside.mean()) if inside.size else 0.0


def framing(points: np.ndarray, width: int, height: int, yaw: float) -> str:
    """``close_up`` (the face is cut by the frame), else ``frontal``, ``three_quarter`` or
    ``profile`` by the yaw."""
    if outside_share(points, width, height) >= CLOSE_UP_OUTSIDE:
        return "close_up"
    if abs(yaw) >= PROFILE_FROM:
        return "profile"
    return "three_quarter" if abs(yaw) >= THREE_QUARTER_FROM else "frontal"


def _facing(poly3: np.ndarray) -> float:
    """Cosine between a 3-D polygon's normal (Newell's method) and the view axis; negative
    when it faces away (the polygons are ordered so a visible face shows them one way round)."""
    nxt = np.roll(poly3, -1, axis=0)
    n = np.array(
        [
            np.sum((poly3[:, 1] - nxt[:, 1]) * (poly3[:, 2] + nxt[:, 2])),
            np.sum((poly3[:, 2] - nxt[:, 2]) * (poly3[:, 0] + nxt[:, 0])),
            np.sum((poly3[:, 0] - nxt[:, 0]) * (poly3[:, 1] + nxt[:, 1])),
        ]
    )
    return float(abs(n[2]) / max(np.linalg.norm(n), 1e-9))


def zone_visibility(points: np.ndarray, width: int, height: int) -> dict[str, bool]:
    """Whether each zone faces the camera enough and lies mostly inside the photo."""
    out = {}
    for name, idx in ZONE_POINTS.items():
        poly = points[list(idx)]
        inside = float(np.mean((poly[:, 0] >= 0) & (poly[:, 0] < width) & (poly[:, 1] >= 0) & (poly[:, 1] < height)))
        facing = _facing(poly) >= MIN_FACING_SHARE * FRONTAL_FACING[ZONE_KIND[name]]
        out[name] = bool(facing and inside >= MIN_INSIDE)
    return out


#: Plausibility: the mesh's face-presence score, and the layout a face must have.
MIN_MESH_SCORE = 0.5


def implausible(points: np.ndarray, score: float) -> str | None:
    """Why a fitted mesh is not a plausible face, or None.

    The mesh always returns 468 points; on an ear, hair or a dog they are a face-shaped
    guess. Its own presence score catches most of these; the layout catches the rest: in
    the mesh's 3-D frame (so whatever the pose) the mouth must lie 0.6-1.8 eye distances
    below the eye line."""
    if score < MIN_MESH_SCORE:
        return f"mesh face score {score:.2f} < {MIN_MESH_SCORE}"
    le = points[list(FEATURE_POINTS["eyes"][0])].mean(0)
    re = points[list(FEATURE_POINTS["eyes"][1])].mean(0)
    mouth = (points[61] + points[291]) / 2.0
    d = float(np.linalg.norm(re - le))
    if d < 4.0:
        return "eyes collapse onto each other"
    u = (re - le) / d
    off = mouth - (le + re) / 2.0
    below = float(np.linalg.norm(off - (off @ u) * u)) / d
    if not 0.6 <= below <= 1.8:
        return f"mouth {below:.2f} eye distances below the eyes (a face: 0.6-1.8)"
    return None


#: A forehead with less than this share left below the hairline counts as hidden.
MIN_FOREHEAD_LEFT = 0.2


def hairline_cut(forehead: np.ndarray, skin: np.ndarray, *, min_skin: float = 0.75) -> np.ndarray:
    """The forehead mask cut at the hairline.

    ``forehead`` and ``skin`` are masks on the aligned (eyes-level) ROI, so the hairline
    runs roughly along rows. The forehead keeps the longest run of rows whose 5-row band is
    at least ``min_skin`` skin: the brows (which the skin mask leaves out) end it below, a
    fringe, a hat or the hairline above. Within those rows the largest patch of skin is kept
    (hairlines curve down at the temples), its small holes filled (pores, spots and lesions
    are what detectors look for). No such row: an empty mask (the forehead is hidden)."""
    rows = np.flatnonzero(forehead.any(axis=1))
    out = np.zeros_like(forehead)
    if rows.size == 0:
        return out
    zone_px = np.count_nonzero(forehead, axis=1).astype(np.float64)
    skin_px = np.count_nonzero(cv2.bitwise_and(forehead, skin), axis=1).astype(np.float64)
    k = np.ones(5)
    share = np.convolve(skin_px, k, "same") / np.maximum(np.convolve(zone_px, k, "same"), 1.0)
    good = (share >= min_skin) & (zone_px > 0)
    # The longest run of skin rows: the brows below it and the hair above it break it.
    edges = np.flatnonzero(np.diff(np.concatenate([[0], good.astype(np.int8), [0]])))
    if edges.size == 0:
        return out
    starts, ends = edges[0::2], edges[1::2]
    k = int(np.argmax(ends - starts))
    top, bottom = int(starts[k]), int(ends[k]) - 1
    out[top : bottom + 1] = forehead[top : bottom + 1]
    # Hairlines curve down at the temples: within those rows, keep the skin it touches
    # (worked on the zone's box and a margin for the filters: the rest of the ROI is empty).
    cv2.bitwise_and(out, skin, dst=out)
    x, y, w, h = cv2.boundingRect(out)
    if w == 0:
        return out
    box = (slice(max(y - 8, 0), y + h + 8), slice(max(x - 8, 0), x + w + 8))
    part = cv2.morphologyEx(out[box], cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7)))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(part, connectivity=8)
    out[:] = 0
    if n <= 1:
        return out
    keep = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    part = np.where(labels == keep, np.uint8(255), np.uint8(0))
    # Pores, spots and acne inside are skin to analyse: fill the holes the skin mask left.
    out[box] = cv2.bitwise_and(cv2.morphologyEx(part, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8)), forehead[box])
    return out


# -- profiles -----------------------------------------------------------------------

#: Zones of a profile in the detector's keypoint frame: ``a`` along the line from the eye
#: towards the ear (1 = the ear), ``b`` down from the eye towards the mouth (1 = the mouth).
#: Only the near side and the midline's chin and forehead are drawn; the rest is hidden.
PROFILE_ZONES = {
    "forehead": ((-0.05, -0.75), (0.35, -0.75), (0.35, -0.4), (-0.05, -0.4)),
    "under_eye": ((0.08, 0.15), (0.35, 0.15), (0.35, 0.35), (0.08, 0.35)),
    "cheek": ((0.2, 0.45), (0.65, 0.45), (0.65, 1.0), (0.2, 1.0)),
    "crows_feet": ((0.32, -0.12), (0.5, -0.12), (0.5, 0.12), (0.32, 0.12)),
    "nasolabial": ((0.05, 0.62), (0.18, 0.62), (0.18, 0.95), (0.05, 0.95)),
    "chin": ((0.0, 1.3), (0.3, 1.3), (0.3, 1.6), (0.0, 1.6)),
}


def profile_layout(
    landmarks: dict[str, tuple[float, float]], box, image_bgr: np.ndarray | None = None
) -> tuple[dict, dict, dict] | None:
    """``(pose, polygons, visible)`` of a profile from BlazeFace's keypoints, or None when they
    are no plausible profile.

    The Face Mesh does not fit faces turned further than about 60 degrees (its face score
    drops to ~0), but BlazeFace still finds them with the eye, nose, mouth and ear tragion
    keypoints. They are a profile when the mouth lies below the eye, the nose between the
    two heights and in front of the eye, and an ear well behind it at about eye height; and,
    given the photo, when the cheek is skin and the space in front of the nose is not (an
    ear or a patch of hair seen as a face has skin on every side)."""
    need = ("left_eye", "right_eye", "nose", "mouth", "ear_left", "ear_right")
    if not all(k in landmarks for k in need):
        return None
    p = {k: np.asarray(landmarks[k], np.float64) for k in need}
    eye = (p["left_eye"] + p["right_eye"]) / 2.0
    down = p["mouth"] - eye
    em = float(np.linalg.norm(down))
    if em < 0.15 * max(box[2], box[3]):
        return None
    v = down / em
    ear = max((p["ear_left"], p["ear_right"]), key=lambda t: float(np.linalg.norm(t - p["nose"])))
    h = np.array([-v[1], v[0]])
    if (ear - eye) @ h < 0:
        h = -h
    to_ear = float((ear - eye) @ h)
    nose_b = float((p["nose"] - eye) @ v) / em
    ear_b = float((ear - eye) @ v) / em
    if to_ear < 0.8 * em or not 0.1 <= nose_b <= 0.9 or (p["nose"] - eye) @ h >= 0 or not -0.6 <= ear_b <= 0.9:
        return None
    if image_bgr is not None and not _profile_silhouette(image_bgr, eye, p["nose"], em, h, to_ear, v):
        return None
    yaw = -90.0 if h[0] > 0 else 90.0  # the ear on the image right: the nose points left
    far = "left" if yaw < 0 else "right"
    roll = math.degrees(math.atan2(-v[0], v[1]))
    polygons, visible = {}, {}
    for name in ZONE_POINTS:
        kind, side = ZONE_KIND[name], ("left" if "left" in name else "right" if "right" in name else None)
        if kind in PROFILE_ZONES and side != far:
            ab = np.asarray(PROFILE_ZONES[kind])
            polygons[name] = eye + ab[:, :1] * to_ear * h + ab[:, 1:] * em * v
            visible[name] = True
        else:
            visible[name] = False
    return {"yaw": yaw, "pitch": 0.0, "roll": round(roll, 1)}, polygons, visible


def _skin_share(image_bgr: np.ndarray, polygon: np.ndarray) -> float:
    from harerun.face.skin import classify_skin_pixels

    x, y, w, h = cv2.boundingRect(np.round(polygon).astype(np.int32))
    H, W = image_bgr.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
    if x1 <= x0 or y1 <= y0:
        return 0.0
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(mask, [np.round(polygon - (x0, y0)).astype(np.int32)], 255)
    inside = mask > 0
    if not inside.any():
        return 0.0
    return float(np.mean(classify_skin_pixels(image_bgr[y0:y1, x0:x1])[inside] > 0))


def _profile_silhouette(image_bgr, eye, nose, em, h, to_ear, v) -> bool:
    """A profile's cheek is skin and the space in front of its nose is not."""
    cheek = eye + np.array([(0.2, 0.45), (0.65, 0.45), (0.65, 1.0), (0.2, 1.0)])[:, :1] * to_ear * h
    cheek = cheek + np.array([0.45, 0.45, 1.0, 1.0])[:, None] * em * v
    front = nose - 0.35 * em * h + np.array([(-0.12, -0.12), (0.12, -0.12), (0.12, 0.12), (-0.12, 0.12)]) * em
    return _skin_share(image_bgr, cheek) >= 0.5 and _skin_share(image_bgr, front) < 0.5
