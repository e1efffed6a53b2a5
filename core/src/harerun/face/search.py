"""Finding faces: pick the backend, search the photo, its padded and turned copies.

``detect_faces`` picks the backend (``auto``: BlazeFace when MediaPipe's weights are
installed, else YuNet when its model is, else Haar; a missing model falls back with a
warning) and searches:

* backends that take the whole photo (BlazeFace letterboxes it itself) run once on it,
  and for small faces on overlapping tiles;
* other backends run on a coarse copy first (portraits: a big face is found in a third of
  the time), then at ``face.detect_max_side``;
* when nothing is found, on copies padded with a neutral grey border (close-ups fill the
  frame and detectors miss them), then on copies turned by +-25 degrees (rolled heads).

Haar's rolled heads: when the largest face comes with fewer than two eyes, the eye
cascade looks again on crops of its box turned by +-25 degrees, and when that fails too,
turned copies of its surroundings are searched (:mod:`harerun.face.eyes`).
All coordinates come back in original-photo pixels.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import cv2
import numpy as np

from harerun.errors import PipelineError
from harerun.face import Face, ModelMissing, mediapipe
from harerun.face.backends import yunet_model_path
from harerun.face.config import FaceConfig
from harerun.face.eyes import both_eyes, find_tilted_eyes
from harerun.face.roi import apply_affine, invert_affine
from harerun.imageops import shrink

log = logging.getLogger("harerun.face")
#: Backends whose missing model was logged already (once per process, not once per photo).
_fallback_logged: set[str] = set()

#: Border added around the photo for the close-up retries, as fractions of its size.
CLOSE_UP_PADS = (0.3, 0.6)
#: Grey of that border (neutral: no edges, no skin colour).
NEUTRAL_GREY = (127, 127, 127)
#: A face this big (px) on the coarse copy is trusted without a search at full detection size.
COARSE_MIN_FACE_PX = 40
#: Rotations (degrees) tried when neither the photo nor the padded copies show a face.
ROTATION_RETRIES = (25.0, -25.0)
#: Long side of the face's surroundings searched on turned copies when its eyes stay hidden.
TURNED_SEARCH_SIDE = 240

_instances: dict[tuple[Any, ...], Any] = {}
_instances_lock = threading.Lock()

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


def auto_backend(host) -> str:
    """What ``auto`` means here: BlazeFace when MediaPipe's weights are installed (a fresh
    install has them), else YuNet when its model is in the model store, else Haar."""
    if "blazeface" in host.face_backends and mediapipe.available():
        return "blazeface"
    if "yunet" in host.face_backends and yunet_model_path() is not None:
        return "yunet"
    return "haar"


def resolve_backend(face_cfg: FaceConfig, host) -> tuple[Any, str, list[str]]:
    """(backend instance, backend name used, warnings) for ``face_cfg.backend``."""
    name = face_cfg.backend
    warnings: list[str] = []
    if name == "auto":
        name = auto_backend(host)
    reg = host.face_backend(name)
    try:
        return backend_instance(reg.cls, face_cfg.backend_params.get(name)), name, warnings
    except ModelMissing as exc:
        if name == "haar":
            raise
        if name not in _fallback_logged:
            _fallback_logged.add(name)
            log.warning("%s model not found; falling back to haar: %s", name, exc.message)
        warnings.append("FACE_BACKEND_FALLBACK")  # a code from harerun.results.FACE_WARNINGS
        reg = host.face_backend("haar")
        return backend_instance(reg.cls, face_cfg.backend_params.get("haar")), "haar", warnings


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
    if both_eyes(faces[i]):
        return faces
    faces[i] = find_tilted_eyes(image_bgr, faces[i])
    if both_eyes(faces[i]):
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
    return turned if turned and both_eyes(max(turned, key=lambda f: f.area)) else faces


def _upright_search(backend, image_bgr: np.ndarray, face_cfg: FaceConfig, min_face_px: int | None) -> list[Face]:
    """The backend on a coarse copy (big faces), at detection size, then on padded copies.

    The coarse copy is searched only for an analysis (``min_face_px`` given; a listing of
    every face goes to detection size at once). Its faces are final when one of them is big
    (``COARSE_MIN_FACE_PX``), or when the analysis needs no face smaller than ``min_face_px``
    (original pixels) and such a face is big enough on the coarse copy for the backend to
    find (its ``smallest_face_px``). A false big box found there is caught by the mesh check
    of the face stage, which then searches again at detection size.
    """
    h, w = image_bgr.shape[:2]
    if getattr(backend, "whole_photo", False):
        faces = backend.detect(image_bgr)
        if not faces or min_face_px is None:  # small faces: the overlapping tiles too
            faces = backend.add_small_faces(image_bgr, faces)
        if faces or not face_cfg.close_up_retry:
            return faces
        return _padded_search(backend, image_bgr, face_cfg)
    coarse = face_cfg.coarse_side
    if coarse and min_face_px is not None and coarse < min(face_cfg.detect_max_side, max(h, w)):
        # Portraits are the common case: a big face is found on a small copy in a third of the time.
        faces = _detect_scaled(backend, image_bgr, coarse)
        scale = coarse / float(max(h, w))
        fine_enough = min_face_px is not None and min_face_px * scale >= getattr(backend, "smallest_face_px", np.inf)
        if faces and (fine_enough or max(min(f.box[2], f.box[3]) for f in faces) * scale >= COARSE_MIN_FACE_PX):
            return faces
    faces = _detect_scaled(backend, image_bgr, face_cfg.detect_max_side)
    if not faces and face_cfg.close_up_retry:
        faces = _padded_search(backend, image_bgr, face_cfg)
    return faces


def _padded_search(backend, image_bgr: np.ndarray, face_cfg: FaceConfig) -> list[Face]:
    """The backend on copies padded with :data:`CLOSE_UP_PADS` of neutral grey (close-ups)."""
    h, w = image_bgr.shape[:2]
    for frac in CLOSE_UP_PADS:
        px, py = int(round(frac * w)), int(round(frac * h))
        padded = cv2.copyMakeBorder(image_bgr, py, py, px, px, cv2.BORDER_CONSTANT, value=NEUTRAL_GREY)
        found = _detect_scaled(backend, padded, face_cfg.detect_max_side)
        faces = [c for f in found if (c := _clip_to_image(f.mapped(1.0, -px, -py), w, h)) is not None]
        if faces:
            return faces
    return []


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
