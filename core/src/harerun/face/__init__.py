"""The face stage: find the face, fit its landmarks, draw its zones, check photo quality.

See ``README.md`` beside this file for the modules (one concern each), the choice of face
detector and landmark model with its figures, and the zones' geometry.

Side convention: ``left_eye``, ``mouth_left``, ``left_cheek``, ``under_eye_left`` are on the
*image* left (smaller x) as the photo is seen, which is the subject's right.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harerun.errors import HareRunError

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass
class Face:
    """One detected face in original-photo pixels.

    Attributes
    ----------
    box : (x, y, w, h) in pixels.
    score : detector confidence in [0, 1].
    landmarks : any of ``LANDMARK_NAMES`` -> (x, y); ``left_*`` is the image left (smaller x).
    backend : name of the backend that found it.
    angle : in-plane rotation (degrees, counter-clockwise as seen) of the copy the face was
        found on; the face is upright in a copy rotated by ``angle``. Used for alignment
        when the eyes are unknown. 0 for faces found on the photo as it is.
    mesh : the fitted Face Mesh (:class:`harerun.face.mediapipe.Mesh`), once the face stage
        has fitted one; the named landmarks then come from it.
    profile : ``(pose, polygons, visible)`` of a profile the mesh could not fit, from the
        detector's keypoints (:func:`harerun.face.geometry.profile_layout`).
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: dict[str, tuple[float, float]] = field(default_factory=dict)
    backend: str = ""
    angle: float = 0.0
    mesh: Any = None
    profile: Any = None

    @property
    def area(self) -> float:
        return float(self.box[2] * self.box[3])

    def mapped(self, scale: float = 1.0, dx: float = 0.0, dy: float = 0.0) -> Face:
        """This face with every coordinate mapped by ``p * scale + (dx, dy)``."""
        x, y, w, h = self.box
        return Face(
            box=(x * scale + dx, y * scale + dy, w * scale, h * scale),
            score=self.score,
            landmarks={k: (px * scale + dx, py * scale + dy) for k, (px, py) in self.landmarks.items()},
            backend=self.backend,
            angle=self.angle,
            mesh=None if self.mesh is None else self.mesh.mapped(scale, dx, dy),
        )


def box_iou(a, b) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    return inter / max(aw * ah + bw * bh - inter, 1e-9)


class ModelMissing(HareRunError):
    """A face backend's model file is not installed."""

    code = "MODEL_MISSING"
    http_status = 503


__all__ = ["LANDMARK_NAMES", "Face", "ModelMissing", "box_iou"]
