"""The face stage: detect -> quality gate -> aligned ROI -> zones -> skin mask.

``detect_faces`` picks the backend (``auto``: yunet when its model is installed, else
haar; a missing yunet model falls back to haar with a warning), runs it on a copy whose
long side is at most ``face.detect_max_side`` and, when nothing is found, on copies padded
with a neutral grey border (close-ups fill the frame and detectors miss them). Rolled
heads defeat the Haar cascades in two ways: when the largest face comes with fewer than
two eyes, the eye cascade looks again on crops of its box turned by +-25 degrees; when
that fails too, or no face was found at all, the photo is searched again on copies turned
by +-25 degrees. All coordinates come back in original-photo pixels.

``run_face_stage`` then re-measures the eye line of faces whose eyes came from a
landmark regressor (YuNet places the eyes of a tilted head almost level) with the eye
cascade on an upright crop, analyses the largest face and builds the FaceContext.

``run_face_stage`` analyses the largest face and builds the :class:`FaceContext` that
detectors see. Whether a failed quality gate rejects the photo is the engine's call
(``quality.reject``); this stage only reports.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from harerun.detector import FaceContext
from harerun.errors import PipelineError
from harerun.face import Face, ModelMissing
from harerun.face.backends import EYE_CASCADE_LOCK, find_eyes, shared_eye_cascade, yunet_model_path
from harerun.face.config import FaceConfig, QualityConfig
from harerun.face.quality import assess_quality, colour_cast, face_patch, image_metrics, no_face_report
from harerun.face.roi import (
    alignment_matrix,
    apply_affine,
    estimated_eyes,
    extract_roi,
    face_roll_deg,
    invert_affine,
    px_per_mm_from_eyes,
    roi_landmarks,
    roll_angle_deg,
)
from harerun.face.skin import skin_mask
from harerun.face.zones import FaceFrame, face_zones, features_mask
from harerun.results import FaceInfo, QualityReport

#: Border added around the photo for the close-up retries, as fractions of its size.
CLOSE_UP_PADS = (0.3, 0.6)
#: Grey of that border (neutral: no edges, no skin colour).
NEUTRAL_GREY = (127, 127, 127)
#: A face this big (px) on the coarse copy is trusted without a search at full detection size.
COARSE_MIN_FACE_PX = 40
#: Side of the upright face crop the eye line is re-measured on (eyes ~30 px: the eye
#: cascade's 20 px window fits; 160 px finds the same eyes at 1.6x the time).
EYE_LINE_CROP = 128
#: Rotations (degrees) tried when neither the photo nor the padded copies show a face.
ROTATION_RETRIES = (25.0, -25.0)
#: Long side of the face's surroundings searched on turned copies when its eyes stay hidden.
TURNED_SEARCH_SIDE = 240
#: Rolls (degrees) the eye search tries on a face whose upright box showed fewer than two
#: eyes (the eye cascade itself tolerates about +-15 degrees, so these cover 10-40).
EYE_SEARCH_ROLLS = (25.0, -25.0)

_instances: dict[tuple[Any, ...], Any] = {}
_instances_lock = threading.Lock()


@dataclass
class FaceStage:
    """What the face stage found in one photo."""

    faces: list[Face]
    face: FaceInfo | None
    quality: QualityReport
    ctx: FaceContext | None
    timings_ms: dict[str, float] = field(default_factory=dict)


# -- backends -----------------------------------------------------------------------


def backend_instance(cls: type, params: dict[str, Any] | None = None) -> Any:
    """A cached instance of backend ``cls`` with ``params`` (creating cascades/nets is slow).

    Raises :class:`harerun.face.ModelMissing` when the backend's model is not installed, and
    :class:`harerun.errors.PipelineError` when ``params`` do not fit the backend's ``Params``.
    """
    params = params or {}
    key = (cls, repr(sorted(params.items())), str(yunet_model_path()) if cls.name == "yunet" else "")
    with _instances_lock:
        inst = _instances.get(key)
        if inst is None:
            try:
                p = cls.Params(**params)
            except Exception as exc:  # pydantic ValidationError: say where to fix it
                raise PipelineError(f"face.backend_params.{cls.name}: {exc}") from exc
            inst = cls(p)
            _instances[key] = inst
        return inst


def resolve_backend(face_cfg: FaceConfig, host) -> tuple[Any, str, list[str]]:
    """(backend instance, backend name used, warnings) for ``face_cfg.backend``."""
    name = face_cfg.backend
    warnings: list[str] = []
    if name == "auto":
        name = "yunet" if "yunet" in host.face_backends and yunet_model_path() is not None else "haar"
    reg = host.face_backend(name)
    try:
        return backend_instance(reg.cls, face_cfg.backend_params.get(name)), name, warnings
    except ModelMissing as exc:
        if name == "haar":
            raise
        warnings.append(f"{name} model not found; fell back to haar ({exc.message})")
        reg = host.face_backend("haar")
        return backend_instance(reg.cls, face_cfg.backend_params.get("haar")), "haar", warnings


def shrink(image: np.ndarray, scale: float) -> np.ndarray:
    """``image`` resized by ``scale`` <= 1 with area averaging, like ``cv2.resize(...,
    INTER_AREA)`` (within 1 grey level) but faster: exact halvings first (a linear resize
    to half size averages 2 x 2 blocks), then one area resize for the rest."""
    if scale >= 1.0:
        return image
    h, w = image.shape[:2]
    tw, th = max(1, round(w * scale)), max(1, round(h * scale))
    while image.shape[1] >= 2 * tw and image.shape[0] >= 2 * th:
        image = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_LINEAR)
    if image.shape[1] != tw or image.shape[0] != th:
        image = cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA)
    return image


def _detect_scaled(backend, image_bgr: np.ndarray, max_side: int) -> list[Face]:
    h, w = image_bgr.shape[:2]
    scale = min(1.0, max_side / float(max(h, w)))
    return [f.mapped(1.0 / scale) for f in backend.detect(shrink(image_bgr, scale))]


def _clip_to_image(face: Face, w: int, h: int) -> Face | None:
    x, y, bw, bh = face.box
    x0, y0, x1, y1 = max(0.0, x), max(0.0, y), min(float(w), x + bw), min(float(h), y + bh)
    if x1 - x0 < 0.5 * bw or y1 - y0 < 0.5 * bh:  # mostly on the padding: not this photo's face
        return None
    return Face((x0, y0, x1 - x0, y1 - y0), face.score, face.landmarks, face.backend, face.angle)


def _rotated_copy(image_bgr: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """The photo rotated by ``angle`` degrees (counter-clockwise as seen) on a canvas big
    enough to keep the corners, and the 2x3 affine from photo to copy."""
    h, w = image_bgr.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, 1.0)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(np.ceil(w * cos + h * sin)), int(np.ceil(w * sin + h * cos))
    m[0, 2] += nw / 2.0 - w / 2.0
    m[1, 2] += nh / 2.0 - h / 2.0
    out = cv2.warpAffine(
        image_bgr, m, (nw, nh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=NEUTRAL_GREY
    )
    return out, m


def _unrotate(face: Face, copy_to_image: np.ndarray, angle: float) -> Face:
    """Map a face found on a rotated copy back: landmarks exactly, the box by its centre."""
    x, y, w, h = face.box
    cx, cy = apply_affine(copy_to_image, [(x + w / 2.0, y + h / 2.0)])[0]
    lms = {k: tuple(float(v) for v in apply_affine(copy_to_image, [p])[0]) for k, p in face.landmarks.items()}
    return Face((cx - w / 2.0, cy - h / 2.0, w, h), face.score, lms, face.backend, angle)


def _search(backend, image_bgr: np.ndarray, face_cfg: FaceConfig, min_face_px: int | None) -> list[Face]:
    """One backend over the photo and the close-up retries, then the tilt checks: the eyes
    of the largest face on turned crops, and the turned copies when still no face has both."""
    faces = _upright_search(backend, image_bgr, face_cfg, min_face_px)
    if not face_cfg.rotation_retry:
        return faces
    if not faces:
        return _rotated_search(backend, image_bgr, face_cfg)
    # A rolled head is often still found upright, but with fewer than two eyes (or only a
    # part of it is): look for the eyes on turned crops of the box, else search turned copies.
    i = max(range(len(faces)), key=lambda k: faces[k].area)
    if _both_eyes(faces[i]):
        return faces
    faces[i] = find_tilted_eyes(image_bgr, faces[i])
    if _both_eyes(faces[i]):
        return faces
    # Turned copies of the face's surroundings only (3 box sides across, the box ~80 px there):
    # the whole photo at full size would cost 10x more for every face that hides an eye.
    h, w = image_bgr.shape[:2]
    x, y, bw, bh = faces[i].box
    half = 1.5 * max(bw, bh)
    x0, y0 = max(0, int(x + bw / 2 - half)), max(0, int(y + bh / 2 - half))
    x1, y1 = min(w, int(x + bw / 2 + half)), min(h, int(y + bh / 2 + half))
    crop = image_bgr[y0:y1, x0:x1]
    # The whole face is at least about the size of the part found (on the shrunk copy).
    smallest = int(0.6 * max(bw, bh) * min(1.0, TURNED_SEARCH_SIDE / max(crop.shape[:2])))
    around = _rotated_search(backend, crop, face_cfg, TURNED_SEARCH_SIDE, min_size_px=smallest)
    turned = [f.mapped(1.0, x0, y0) for f in around]
    return turned if turned and _both_eyes(max(turned, key=lambda f: f.area)) else faces


def _upright_search(backend, image_bgr: np.ndarray, face_cfg: FaceConfig, min_face_px: int | None) -> list[Face]:
    """The backend on a coarse copy (big faces), at detection size, then on padded copies.

    The coarse copy's faces are final when one of them is big (``COARSE_MIN_FACE_PX``), or
    when the caller needs no face smaller than ``min_face_px`` (original pixels) and such a
    face is big enough on the coarse copy for the backend to find (its ``smallest_face_px``).
    """
    h, w = image_bgr.shape[:2]
    coarse = face_cfg.coarse_side
    if coarse and coarse < min(face_cfg.detect_max_side, max(h, w)):
        # Portraits are the common case: a big face is found on a small copy in a third of the time.
        faces = _detect_scaled(backend, image_bgr, coarse)
        scale = coarse / float(max(h, w))
        fine_enough = min_face_px is not None and min_face_px * scale >= getattr(backend, "smallest_face_px", np.inf)
        if faces and (fine_enough or max(min(f.box[2], f.box[3]) for f in faces) * scale >= COARSE_MIN_FACE_PX):
            return faces
    faces = _detect_scaled(backend, image_bgr, face_cfg.detect_max_side)
    if not faces and face_cfg.close_up_retry:
        for frac in CLOSE_UP_PADS:
            px, py = int(round(frac * w)), int(round(frac * h))
            padded = cv2.copyMakeBorder(image_bgr, py, py, px, px, cv2.BORDER_CONSTANT, value=NEUTRAL_GREY)
            found = _detect_scaled(backend, padded, face_cfg.detect_max_side)
            faces = [c for f in found if (c := _clip_to_image(f.mapped(1.0, -px, -py), w, h)) is not None]
            if faces:
                break
    return faces


def _both_eyes(face: Face) -> bool:
    return "left_eye" in face.landmarks and "right_eye" in face.landmarks


def _rotated_search(
    backend, image_bgr: np.ndarray, face_cfg: FaceConfig, max_side: int | None = None, *, min_size_px: int = 0
) -> list[Face]:
    """The backend on copies turned by :data:`ROTATION_RETRIES` (long side at most ``max_side``,
    default ``detect_max_side``); the more confident wins (a wrong turn finds junk).

    A backend with ``detect_frontal`` (haar) is run without its side-view fallback there, for
    faces of at least ``min_size_px`` (pixels of the shrunk copy)."""
    h, w = image_bgr.shape[:2]
    scale = min(1.0, (max_side or face_cfg.detect_max_side) / float(max(h, w)))
    small = shrink(image_bgr, scale)
    frontal = getattr(backend, "detect_frontal", None)

    def detect(img):
        return backend.detect(img) if frontal is None else frontal(img, min_size_px=min_size_px or None)

    best: list[Face] = []
    for angle in ROTATION_RETRIES:
        rotated, m = _rotated_copy(small, angle)
        back = invert_affine(m)
        found = [_unrotate(f, back, angle).mapped(1.0 / scale) for f in detect(rotated)]
        found = [c for f in found if (c := _clip_to_image(f, w, h)) is not None]
        if found and (not best or max(f.score for f in found) > max(f.score for f in best)):
            best = found
    return best


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


def as_bgr(image: np.ndarray) -> np.ndarray:
    """A 3-channel uint8 BGR view of a grey, BGR or BGRA photo."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def detect_faces(
    image_bgr: np.ndarray, *, face_cfg: FaceConfig, host, min_face_px: int | None = None
) -> tuple[list[Face], str, list[str]]:
    """Every face in the photo, largest first, in original-photo pixels.

    With ``min_face_px``, faces smaller than that may be left out when that saves a search
    at full detection size (the analysis needs no smaller face).
    Returns ``(faces, backend_used, warnings)``.
    """
    image_bgr = as_bgr(image_bgr)
    backend, used, warnings = resolve_backend(face_cfg, host)
    faces = _search(backend, image_bgr, face_cfg, min_face_px)
    faces.sort(key=lambda f: f.area, reverse=True)
    return faces, used, warnings


# -- the stage ----------------------------------------------------------------------


#: Other faces count for MULTIPLE_FACES only from this fraction of the main face's size.
SECOND_FACE_MIN_RATIO = 0.5


def count_faces(faces: list[Face], *, min_face_px: int) -> int:
    """How many faces the photo shows for the ``MULTIPLE_FACES`` check (``faces`` largest first).

    Besides the main face, a face counts when its side is at least ``min_face_px`` and half
    the main face's: detectors take the ear of a profile for a small face, and people far
    behind the subject do not disturb the analysis.
    """
    if not faces:
        return 0
    main = min(faces[0].box[2], faces[0].box[3])
    floor = max(float(min_face_px), SECOND_FACE_MIN_RATIO * main)
    return 1 + sum(1 for f in faces[1:] if min(f.box[2], f.box[3]) >= floor)


def check_eye_line(image_bgr: np.ndarray, face: Face, *, min_correction_deg: float = 8.0) -> Face:
    """Re-measure the eye line with the eye cascade on an upright crop of the face.

    Landmark regressors such as YuNet pull the eyes of a tilted head towards an upright
    template (a 25 degree roll comes out as about 1 degree), which would hide ``TILTED`` and
    misalign the ROI. When the cascade finds both eyes, each near the regressor's eye,
    and their line differs from the regressor's by more than ``min_correction_deg``,
    the cascade's eyes replace the regressor's.
    """
    lm = face.landmarks
    if not _both_eyes(face):
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


def _face_info(face: Face, used: str, count: int, warnings: list[str]) -> FaceInfo:
    return FaceInfo(
        box=[int(round(v)) for v in face.box],
        confidence=round(float(face.score), 4),
        landmarks={k: [round(float(x), 1), round(float(y), 1)] for k, (x, y) in face.landmarks.items()},
        backend_used=used,
        count=count,
        warnings=warnings,
    )


def _mouth(lm: dict[str, tuple[float, float]]) -> tuple[float, float] | None:
    if "mouth_left" in lm and "mouth_right" in lm:
        (ax, ay), (bx, by) = lm["mouth_left"], lm["mouth_right"]
        return ((ax + bx) / 2.0, (ay + by) / 2.0)
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
    eyes = estimated_eyes(face, m)
    has_eyes = "left_eye" in lm and "right_eye" in lm
    t1 = time.perf_counter()
    mouth = _mouth(lm)
    zones = face_zones(
        size, left_eye=eyes["left_eye"], right_eye=eyes["right_eye"], mouth=mouth, nose=lm.get("nose"), valid=valid
    )
    frame = FaceFrame(eyes["left_eye"], eyes["right_eye"], mouth=mouth, nose=lm.get("nose"))
    t2 = time.perf_counter()
    exclude = reference = None
    if features:  # (one array each: every fresh full-size buffer costs its page faults)
        exclude = features_mask(
            size, left_eye=eyes["left_eye"], right_eye=eyes["right_eye"], mouth=mouth, nose=lm.get("nose")
        )
        reference = cv2.bitwise_or(zones["left_cheek"], zones["right_cheek"])
        cv2.bitwise_or(reference, zones["nose"], dst=reference)
    centre = lm.get("nose", (size / 2.0, size / 2.0)) if features else None
    skin = skin_mask(roi, reference=reference, exclude=exclude, valid=valid, centre=centre)
    t3 = time.perf_counter()
    ctx = FaceContext(
        image=roi,
        skin_mask=skin,
        zones=zones,
        roi_to_image=invert_affine(m),
        face_box=[int(round(v)) for v in face.box],
        landmarks=lm,
        px_per_mm=px_per_mm_from_eyes(lm["left_eye"], lm["right_eye"], yaw=frame.yaw) if has_eyes else None,
    )
    timings = {"roi": (t1 - t0) * 1e3, "zones": (t2 - t1) * 1e3, "skin_mask": (t3 - t2) * 1e3}
    return ctx, valid, timings


def _skip_stage(image_bgr: np.ndarray, face_cfg: FaceConfig, quality_cfg: QualityConfig) -> FaceStage:
    """``face.mode: skip``: the whole photo is the skin region, letterboxed into the ROI."""
    h, w = image_bgr.shape[:2]
    size = face_cfg.roi_size
    cfg = face_cfg.model_copy(update={"padding": 0.0})
    whole = Face((0.0, 0.0, float(w), float(h)), 1.0, {}, "skip")
    ctx, valid, timings = build_context(image_bgr, whole, face_cfg=cfg, level_eyes=False, features=False)
    # Canonical eye positions put the zones where they are on a frontal face filling the ROI.
    left, right = (0.35 * size, 0.38 * size), (0.65 * size, 0.38 * size)
    t0 = time.perf_counter()
    ctx.zones = face_zones(size, left_eye=left, right_eye=right, valid=valid)
    ctx.landmarks = {}
    metrics = image_metrics(
        cv2.resize(ctx.image, (256, 256), interpolation=cv2.INTER_AREA),
        valid=cv2.resize(valid, (256, 256), interpolation=cv2.INTER_NEAREST),
    )
    metrics.update(
        face_px=float(min(w, h)),
        face_fraction=1.0,
        roll_deg=None,
        eyes_found=0,
        colour_cast=colour_cast(image_bgr),
        face_count=1,
    )
    quality = assess_quality(metrics, quality_cfg=quality_cfg, face_cfg=face_cfg)
    timings["quality"] = (time.perf_counter() - t0) * 1e3
    info = FaceInfo(box=[0, 0, w, h], confidence=1.0, backend_used="skip", count=1)
    return FaceStage([whole], info, quality, ctx, timings)


def run_face_stage(image_bgr: np.ndarray, *, face_cfg: FaceConfig, quality_cfg: QualityConfig, host) -> FaceStage:
    """Find the face, check quality and build the aligned face context.

    When no face is found: ``face`` and ``ctx`` are None and the quality report says
    ``NO_FACE`` (``passed`` False).
    """
    image_bgr = as_bgr(image_bgr)
    if face_cfg.mode == "skip":
        return _skip_stage(image_bgr, face_cfg, quality_cfg)
    t0 = time.perf_counter()
    faces, used, warnings = detect_faces(image_bgr, face_cfg=face_cfg, host=host, min_face_px=face_cfg.min_face_px)
    timings = {"face_detect": (time.perf_counter() - t0) * 1e3}
    if not faces:
        t1 = time.perf_counter()
        quality = no_face_report(image_bgr)
        quality.metrics.update(backend_used=used, warnings=warnings)  # FaceInfo is None: keep them here
        timings["quality"] = (time.perf_counter() - t1) * 1e3
        return FaceStage([], None, quality, None, timings)

    face = faces[0]
    if face_cfg.check_eye_line and face.backend != "haar":  # haar's eyes come from the eye cascade already
        t1 = time.perf_counter()
        face = faces[0] = check_eye_line(image_bgr, face)
        timings["eye_line"] = (time.perf_counter() - t1) * 1e3
    count = count_faces(faces, min_face_px=face_cfg.min_face_px)
    if count > 1:
        warnings = [*warnings, "MULTIPLE_FACES"]
    ctx, valid, roi_timings = build_context(image_bgr, face, face_cfg=face_cfg)
    timings.update(roi_timings)

    t1 = time.perf_counter()
    h, w = image_bgr.shape[:2]
    eyes_found = sum(k in face.landmarks for k in ("left_eye", "right_eye"))
    roll = face_roll_deg(face)
    metrics = image_metrics(
        face_patch(ctx.image, face_cfg.padding),
        valid=face_patch(valid, face_cfg.padding, interpolation=cv2.INTER_NEAREST),
    )
    metrics.update(
        face_px=float(min(face.box[2], face.box[3])),
        face_fraction=float(face.area / (w * h)),
        roll_deg=None if roll is None else round(roll, 2),
        eyes_found=eyes_found,
        colour_cast=colour_cast(image_bgr),
        face_count=count,
    )
    quality = assess_quality(metrics, quality_cfg=quality_cfg, face_cfg=face_cfg, face_count=count)
    timings["quality"] = (time.perf_counter() - t1) * 1e3
    return FaceStage(faces, _face_info(face, used, count, warnings), quality, ctx, timings)
