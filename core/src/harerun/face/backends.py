"""Built-in face-detection backends, registered like any plugin's.

A backend is a class with ``name``, ``version``, a pydantic ``Params`` model and
``detect(image_bgr) -> list[Face]`` returning faces in the pixels of the image it was
given. Down-scaling, close-up retries and picking the face to analyse are the face
stage's job (:mod:`harerun.face.stage`), so a backend stays a thin wrapper.

* ``haar`` - OpenCV's bundled Viola-Jones cascades (no model file needed). The frontal
  cascade finds faces; the eye cascade, run inside each face, gives eye positions and
  raises the confidence; the profile cascade (both directions) is a fallback for
  side views when the frontal cascade finds nothing.
* ``yunet`` - ``cv2.FaceDetectorYN`` with the YuNet ONNX model (Wu et al., "YuNet: A Tiny
  Millisecond-level Face Detector", Machine Intelligence Research 2023): box, 5
  landmarks and a score. Needs ``face_detection_yunet_2023mar.onnx`` (see
  :func:`yunet_model_path`).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from pydantic import Field

from harerun.detector import DetectorParams
from harerun.face import Face, ModelMissing
from harerun.hookspecs import hookimpl
from harerun.modelstore import ModelStore, ModelUnavailable

YUNET_MODEL_FILE = "face_detection_yunet_2023mar.onnx"


YUNET_MODEL_SPEC = "yunet@2023mar"
#: How long a failed model look-up is remembered (a dead S3 endpoint must not slow every photo).
_MISS_TTL_S = 30.0
_lookup_cache: dict[tuple, tuple[Path | None, str, float]] = {}
_lookup_lock = threading.Lock()


def yunet_lookup() -> tuple[Path | None, str]:
    """Find the YuNet model: ``(path, "")`` or ``(None, why not)``.

    ``$HARERUN_YUNET_MODEL`` (an explicit file) wins; otherwise the model store
    (:mod:`harerun.modelstore`: ``$HARERUN_MODEL_DIR``, the cache, S3), which checks the
    file's SHA-256. Results are remembered per environment (misses for 30 s).
    """
    explicit = os.environ.get("HARERUN_YUNET_MODEL")
    if explicit:
        p = Path(explicit).expanduser()
        return (p, "") if p.is_file() else (None, f"HARERUN_YUNET_MODEL={explicit} does not exist")
    key = tuple(
        os.environ.get(k)
        for k in ("HARERUN_MODEL_DIR", "HARERUN_CACHE_DIR", "HARERUN_S3_BUCKET", "HARERUN_MODEL_MANIFEST")
    )
    key += (os.getcwd(),)
    now = time.monotonic()
    with _lookup_lock:
        hit = _lookup_cache.get(key)
        if hit is not None and (hit[0] is not None and hit[0].is_file() or now - hit[2] < _MISS_TTL_S):
            return hit[0], hit[1]
        try:
            found, why = ModelStore.from_env().resolve(YUNET_MODEL_SPEC).path, ""
        except ModelUnavailable as exc:
            found, why = None, exc.reason
        _lookup_cache[key] = (found, why, time.monotonic())  # a miss counts from when the look-up ended
        return found, why


def forget_model_lookups() -> None:
    """Forget remembered model look-ups (after installing a model, and in tests)."""
    with _lookup_lock:
        _lookup_cache.clear()


def yunet_model_path() -> Path | None:
    """Where the YuNet model ``face_detection_yunet_2023mar.onnx`` is, or None (see :func:`yunet_lookup`)."""
    return yunet_lookup()[0]


# -- haar ---------------------------------------------------------------------------

_CASCADES = {
    "default": "haarcascade_frontalface_default.xml",
    "alt": "haarcascade_frontalface_alt.xml",
    "alt2": "haarcascade_frontalface_alt2.xml",
}


def _load_cascade(file_name: str) -> cv2.CascadeClassifier:
    path = os.path.join(cv2.data.haarcascades, file_name)
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise ModelMissing(
            f"OpenCV cascade '{path}' could not be loaded; reinstall opencv-python-headless 4.x "
            f"(OpenCV 5 no longer ships the Haar cascades)."
        )
    return cascade


_shared_eye_cascade: cv2.CascadeClassifier | None = None
#: Guards the shared eye cascade (a CascadeClassifier must not run in two threads at once).
EYE_CASCADE_LOCK = threading.Lock()


def shared_eye_cascade() -> cv2.CascadeClassifier:
    """One eye cascade for the face stage's eye-line check (loading it takes a while)."""
    global _shared_eye_cascade
    if _shared_eye_cascade is None:
        _shared_eye_cascade = _load_cascade("haarcascade_eye.xml")
    return _shared_eye_cascade


def find_eyes(
    gray: np.ndarray, box, cascade: cv2.CascadeClassifier, *, width: int = 160
) -> dict[str, tuple[float, float]]:
    """Eye centres inside the upper part of a face box, with OpenCV's eye cascade.

    ``gray`` is an 8-bit grey image (histogram-equalised works best), ``box`` the face
    (x, y, w, h) in its pixels. Returns ``left_eye`` (image left) and/or ``right_eye``:
    the largest hit on each half of the box. The strip is scaled to ``width`` pixels
    (the cascade's window is 20 px; eyes are ~0.25 of the face width).
    """
    x, y, w, h = (int(round(v)) for v in box)
    x0, y0 = max(0, x), max(0, y + int(0.15 * h))
    top = gray[y0 : max(y0, y + int(0.6 * h)), x0 : max(x0, x + w)]
    if top.size == 0 or w < 8:
        return {}
    # The eye cascade's window is 20 px: bring the strip to ``width`` (small faces up, big ones down).
    scale = float(width) / w
    top = cv2.resize(top, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA)
    found = cascade.detectMultiScale(top, scaleFactor=1.15, minNeighbors=3, minSize=(20, 20), maxSize=(64, 64))
    mid = (x + w / 2.0 - x0) * scale
    best: dict[str, tuple[float, float, float]] = {}
    for ex, ey, ew, eh in np.asarray(found).reshape(-1, 4):
        cx, cy = ex + ew / 2.0, ey + eh / 2.0
        side = "left_eye" if cx < mid else "right_eye"
        if side not in best or ew > best[side][2]:
            best[side] = (cx, cy, ew)
    return {k: (float(x0 + cx / scale), float(y0 + cy / scale)) for k, (cx, cy, _) in best.items()}


def skin_fraction(image_bgr: np.ndarray, box) -> float:
    """Share of skin-coloured pixels (Chai & Ngan box) in the central half of ``box``;
    1.0 for grey-scale photos, where colour says nothing."""
    from harerun.face.skin import classify_skin_pixels

    x, y, w, h = (int(round(v)) for v in box)
    crop = image_bgr[max(0, y + h // 4) : max(0, y + 3 * h // 4), max(0, x + w // 4) : max(0, x + 3 * w // 4)]
    if crop.size == 0:
        return 0.0
    if image_bgr.ndim == 2 or float(np.ptp(crop.astype(np.int16), axis=2).mean()) < 3.0:
        return 1.0
    return float(np.count_nonzero(classify_skin_pixels(crop)) / (crop.shape[0] * crop.shape[1]))


class HaarParams(DetectorParams):
    # Defaults measured on the dlib examples (`python bench/face.py`): alt2 at step 1.13 with
    # 2 neighbours finds 38/43 faces with 1 false alarm in ~59 ms; alt at 1.1 / 3 found 39/43
    # with 2 in ~81 ms. It also finds more rolled heads with one eye or none, which the face
    # stage's eye search on turned crops (harerun.face.eyes.find_tilted_eyes) then levels.
    cascade: Literal["default", "alt", "alt2"] = Field("alt2", description="which bundled frontal-face cascade")
    scale_factor: float = Field(1.13, ge=1.01, le=2.0, description="image-pyramid step of detectMultiScale")
    min_neighbors: int = Field(2, ge=0, le=50, description="overlapping hits needed to keep a face")
    min_size_px: int = Field(30, ge=8, le=1024, description="smallest face side searched, in detection pixels")
    max_side_px: int = Field(480, ge=64, le=4096, description="the cascade runs on a copy with at most this long side")
    eyes: bool = Field(True, description="run the eye cascade inside each face (eye positions + confidence)")
    min_score: float = Field(0.5, ge=0.0, le=1.0, description="drop frontal faces whose confidence is below this")
    profile: bool = Field(True, description="try the profile cascade (both sides) when no frontal face is found")
    profile_min_neighbors: int = Field(
        8,
        ge=0,
        le=50,
        description="overlapping hits a profile face needs (stricter: the profile cascade fires on fur and hair)",
    )
    profile_min_skin: float = Field(
        0.9,
        ge=0.0,
        le=1.0,
        description="a profile hit needs this share of skin-coloured pixels in its centre (rejects fur, hair, walls)",
    )


class HaarBackend:
    """OpenCV Haar cascades: frontal faces, eyes inside them, profile fallback.

    Confidence: ``0.35 + 0.25 * min(1, neighbours / (3 * min_neighbors)) + 0.2 * eyes_found``
    (profile hits score 0.5), so a frontal face with both eyes found scores >= 0.75.
    """

    name = "haar"
    version = "1.2.0"
    Params = HaarParams

    def __init__(self, params: HaarParams | None = None) -> None:
        self.params = params if params is not None else self.Params()
        self._face = _load_cascade(_CASCADES[self.params.cascade])
        self._eye = _load_cascade("haarcascade_eye.xml") if self.params.eyes else None
        self._profile = _load_cascade("haarcascade_profileface.xml") if self.params.profile else None
        self._lock = threading.Lock()  # a CascadeClassifier must not be used by two threads at once
        #: Faces smaller than this (pixels of the image given to ``detect``) are not searched for.
        self.smallest_face_px = float(self.params.min_size_px)

    def detect(self, image_bgr: np.ndarray) -> list[Face]:
        return self._detect(image_bgr, profile=self._profile is not None)

    def detect_frontal(self, image_bgr: np.ndarray, *, min_size_px: int | None = None) -> list[Face]:
        """:meth:`detect` without the profile fallback, optionally for faces of at least
        ``min_size_px`` (pixels of the image given) only: the face stage uses it on turned
        copies of a face's surroundings, where neither side views nor small faces are what
        it looks for (both would cost several times the pass itself)."""
        return self._detect(image_bgr, profile=False, min_size_px=min_size_px)

    def _detect(self, image_bgr: np.ndarray, *, profile: bool, min_size_px: int | None = None) -> list[Face]:
        p = self.params
        h, w = image_bgr.shape[:2]
        scale = min(1.0, p.max_side_px / float(max(h, w)))
        small = (
            image_bgr if scale == 1.0 else cv2.resize(image_bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        )
        gray = small if small.ndim == 2 else cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        gray = cv2.equalizeHist(gray)
        smallest = max(p.min_size_px, int(round((min_size_px or 0) * scale)))
        min_size = (smallest, smallest)
        with self._lock:
            boxes, neighbours = self._face.detectMultiScale2(
                gray, scaleFactor=p.scale_factor, minNeighbors=p.min_neighbors, minSize=min_size
            )
            faces = []
            boxes = np.asarray(boxes).reshape(-1, 4)
            neighbours = np.asarray(neighbours).reshape(-1)
            largest = int(np.argmax(boxes[:, 2] * boxes[:, 3])) if len(boxes) else -1
            for i, ((x, y, bw, bh), n) in enumerate(zip(boxes, neighbours, strict=True)):
                score = 0.35 + 0.25 * min(1.0, float(n) / max(1.0, 3.0 * p.min_neighbors))
                # The eye cascade runs where it matters: the largest face (its eyes align the
                # ROI) and faces whose neighbours alone do not reach min_score.
                eyes = {}
                if self._eye is not None and (i == largest or score < p.min_score):
                    eyes = find_eyes(gray, (x, y, bw, bh), self._eye)
                score += 0.2 * len(eyes)
                if score >= p.min_score:
                    faces.append(Face((float(x), float(y), float(bw), float(bh)), min(1.0, score), eyes, self.name))
            if not faces and profile:
                faces = [f for f in self._profiles(gray, min_size) if skin_fraction(small, f.box) >= p.profile_min_skin]
        return [f.mapped(1.0 / scale) for f in faces] if scale != 1.0 else faces

    def _profiles(self, gray: np.ndarray, min_size) -> list[Face]:
        p = self.params
        faces = []
        for flipped in (False, True):
            img = cv2.flip(gray, 1) if flipped else gray
            boxes = self._profile.detectMultiScale(
                img, scaleFactor=p.scale_factor, minNeighbors=p.profile_min_neighbors, minSize=min_size
            )
            for x, y, w, h in np.asarray(boxes).reshape(-1, 4):
                if flipped:
                    x = gray.shape[1] - x - w
                faces.append(Face((float(x), float(y), float(w), float(h)), 0.5, {}, self.name))
        return faces


# -- yunet --------------------------------------------------------------------------


class YuNetParams(DetectorParams):
    score_threshold: float = Field(0.7, ge=0.0, le=1.0, description="minimum face score")
    nms_threshold: float = Field(0.3, ge=0.0, le=1.0, description="IoU above which overlapping boxes are merged")
    top_k: int = Field(100, ge=1, le=5000, description="at most this many candidates before NMS")


class YuNetBackend:
    """``cv2.FaceDetectorYN`` with the YuNet model: box, 5 landmarks, score.

    Raises :class:`harerun.face.ModelMissing` at construction when the model file is absent.
    """

    name = "yunet"
    version = "2023mar"
    Params = YuNetParams
    #: Faces of this side (pixels of the image given to ``detect``) and up are found reliably
    #: (YuNet is trained down to ~10 px faces; all 13 dlib-example faces of 48 px and more
    #: are found at a 320 px long side, where they are 30 px and up).
    smallest_face_px = 20.0

    def __init__(self, params: YuNetParams | None = None) -> None:
        self.params = params if params is not None else self.Params()
        path, why = yunet_lookup()
        if path is None:
            raise ModelMissing(
                f"yunet model '{YUNET_MODEL_FILE}' not found ({why}): put it in HARERUN_MODEL_DIR "
                f"(`harerun models fetch {YUNET_MODEL_SPEC}` with S3 configured), or set HARERUN_YUNET_MODEL "
                f"to the file, or use face.backend: haar."
            )
        self.model_path = path
        p = self.params
        self._net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), p.score_threshold, p.nms_threshold, p.top_k)
        self._size = (320, 320)
        self._lock = threading.Lock()  # setInputSize + detect must not interleave

    def detect(self, image_bgr: np.ndarray) -> list[Face]:
        if image_bgr.ndim == 2:
            image_bgr = cv2.cvtColor(image_bgr, cv2.COLOR_GRAY2BGR)
        h, w = image_bgr.shape[:2]
        with self._lock:
            if self._size != (w, h):
                self._net.setInputSize((w, h))
                self._size = (w, h)
            _, rows = self._net.detect(image_bgr)
        faces = []
        for r in np.asarray(rows if rows is not None else []).reshape(-1, 15):
            pts = r[4:14].reshape(5, 2)
            # YuNet order: right eye, left eye (subject's), nose tip, right and left mouth corner.
            eyes = sorted([tuple(pts[0]), tuple(pts[1])])
            mouth = sorted([tuple(pts[3]), tuple(pts[4])])
            landmarks = {
                "left_eye": eyes[0],
                "right_eye": eyes[1],
                "nose": tuple(pts[2]),
                "mouth_left": mouth[0],
                "mouth_right": mouth[1],
            }
            landmarks = {k: (float(v[0]), float(v[1])) for k, v in landmarks.items()}
            faces.append(Face(tuple(float(v) for v in r[:4]), float(r[14]), landmarks, self.name))
        return faces


@hookimpl
def register_face_detectors(register) -> None:
    from harerun.face.mediapipe import BlazeFaceBackend

    register(HaarBackend)
    register(YuNetBackend)
    register(BlazeFaceBackend)
