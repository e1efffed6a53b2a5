"""The face stage: find the face, check photo quality, build the aligned ROI.

Modules, one concern each:

* :mod:`harerun.face.backends` - face-detection backends (``haar``, ``yunet``), registered
  through the ``register_face_detectors`` hook like any plugin's.
* :mod:`harerun.face.quality` - the quality gate (metrics, 0-100 score, reason codes).
* :mod:`harerun.face.roi` - alignment (eyes level), crop, resize, the ROI -> photo affine.
* :mod:`harerun.face.zones` - zone masks on the aligned ROI.
* :mod:`harerun.face.skin` - the skin-colour classifier and the skin mask.
* :mod:`harerun.face.stage` - ``detect_faces`` and ``run_face_stage``, which tie them together.

Validation (``python bench/face.py --all``; 2-core machine, mostly idle, medians):

* dlib examples, 43 faces, IoU >= 0.3: yunet 43/43, 1 false alarm, ~11 ms per image
  (2 threads); haar 39/43, 2 false alarms, ~80 ms per image (2 threads, ~150 ms CPU;
  the frontal cascade is nearly all of it) (``dogs.jpg`` clean for haar; yunet takes the
  orange dog's face for a face at score 0.86).
* Whole face stage on a 1280x960 portrait (``--stage``, 1 thread): yunet ~24 ms
  (detect 8.4, eye line 3.9, ROI 2.0, zones 1.6, skin mask 4.8, quality 3.1); haar ~78 ms.
* ACNE04 close-ups (934 photos, 3/4 and profile views): a face ROI on 99.0 % with
  ``auto`` (the 9 misses are cheek close-ups without eyes), 89.5 % with ``haar``.
* UCI Skin Segmentation: the pixel classifier is right on 98.8 % of 244,962 samples.

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


class ModelMissing(HareRunError):
    """A face backend's model file is not installed."""

    code = "MODEL_MISSING"
    http_status = 503


__all__ = ["LANDMARK_NAMES", "Face", "ModelMissing"]
