"""The detector contract: what the engine hands a detector and what it expects back.

A detector is a class with ``name``, ``version``, a pydantic ``Params`` model
and one method, ``analyze(ctx) -> DetectorResult``. Plugins hand such classes
to the engine through the ``register_detectors`` hook (see ``hookspecs``). A detector
may also declare ``Measurements``, a pydantic model of the ``measurements`` it reports;
the HTTP API publishes it in its OpenAPI document so clients get typed measurements.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import ClassVar

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from harerun.imageops import Window, mask_window, union
from harerun.results import DetectorResult

ZONE_NAMES = ("forehead", "left_cheek", "right_cheek", "nose", "chin", "under_eye_left", "under_eye_right")

#: The ``skipped`` message of a detector that measures only the zones' skin and finds none.
NO_ZONE_SKIN = "no skin pixels inside the face zones"


class DetectorParams(BaseModel):
    """Base for a detector's ``Params``: unknown keys are an error, not ignored."""

    model_config = ConfigDict(extra="forbid")


def max_magnification_param(default: float, evidence: str):
    """The ``max_magnification`` field of a detector that needs skin detail: how many times the
    ROI may magnify the photo before :meth:`FaceContext.too_small_for` skips the face;
    ``evidence`` says where ``default`` comes from (``bench/repeatability.py --shrink``)."""
    return Field(
        default,
        ge=1.0,
        le=20.0,
        description=f"skip faces the ROI magnifies more than this (ROI px per photo px): {evidence}",
    )


@dataclass
class FaceContext:
    """Everything a detector may look at, on the aligned face ROI.

    Attributes
    ----------
    image : (S, S, 3) uint8 BGR aligned face ROI.
    skin_mask : (S, S) uint8, 255 where the pixel is skin.
    zones : zone name -> (S, S) uint8 mask (255 inside); names from ``ZONE_NAMES``.
    roi_to_image : (2, 3) affine matrix mapping ROI pixels to original-photo pixels.
    face_box : [x, y, w, h] of the face in original-photo pixels.
    landmarks : name -> (x, y) in ROI pixels (``left_eye``, ``right_eye``, ...).
    px_per_mm : pixels per millimetre on the ROI, estimated from the eye distance
        (None when the eyes were not found).
    pose : ``{"yaw", "pitch", "roll"}`` in degrees from the Face Mesh (None without one).
    framing : ``frontal``, ``three_quarter``, ``profile`` or ``close_up`` (None without a mesh).
    fold_zones : masks of the fold zones (``glabella``, ``crows_feet_<side>``,
        ``nasolabial_<side>``) when a mesh placed them; visible ones only.
    hidden_zones : names of the zones left out of ``zones`` because they face away from
        the camera or lie outside the photo (the far cheek of a 3/4 view).
    face_mask : the visible face and its surroundings where acne is graded (the mesh's face
        outline scaled by 1.3 about its centre: hairline, temples, jaw; eyes, brows, lips and
        nostrils left out) when a mesh was fitted; see :attr:`face_skin`.
    face_inside : share of the face's area inside the photo (a close-up cuts it; 1 without a mesh).
    """

    image: np.ndarray
    skin_mask: np.ndarray
    zones: dict[str, np.ndarray]
    roi_to_image: np.ndarray
    face_box: list[int]
    landmarks: dict[str, tuple[float, float]] = field(default_factory=dict)
    px_per_mm: float | None = None
    pose: dict[str, float] | None = None
    framing: str | None = None
    fold_zones: dict[str, np.ndarray] = field(default_factory=dict)
    hidden_zones: tuple[str, ...] = ()
    face_mask: np.ndarray | None = None
    face_inside: float = 1.0

    @property
    def half_faces(self) -> float:
        """How many half-faces the photo shows, for per-half-face counts (Hayashi grading):
        2 for a frontal face, falling with the yaw to 1 for a profile (``1 + cos(yaw)``), times
        the share of the face inside the photo (at least a quarter of a half-face)."""
        if self.pose is None:
            return 2.0
        turned = 1.0 + float(np.cos(np.radians(min(90.0, abs(self.pose["yaw"])))))
        return max(0.25, turned * self.face_inside)

    @cached_property
    def face_skin(self) -> np.ndarray:
        """Skin on the visible face and around it (:attr:`face_mask`) AND the skin mask (without a mesh,
        :attr:`zone_skin`). Lesion counts that stand for the whole face are taken here."""
        if self.face_mask is None:
            return self.zone_skin
        return cv2.bitwise_and(self.skin_mask, self.face_mask)

    @cached_property
    def lab(self) -> np.ndarray:
        """CIELAB of ``image`` as float32: L* in [0, 100], a*, b* roughly [-128, 127]."""
        # One ufunc pass (uint8 -> float32 / 255), bit-identical to ``image.astype(float32) / 255``,
        # converted in place: every fresh 3 MB buffer costs about as much in page faults as the
        # conversion itself (6.6 -> 2.8 ms on a 512 px ROI, same values).
        unit = np.divide(self.image, np.float32(255.0), dtype=np.float32)
        return cv2.cvtColor(unit, cv2.COLOR_BGR2LAB, dst=unit)

    @cached_property
    def zone_skin(self) -> np.ndarray:
        """Skin inside the union of the zones (the whole skin mask when there are no zones).

        Detectors that look at neighbourhoods filter on the whole skin mask, and
        report only features centred here.
        """
        if not self.zones:
            return self.skin_mask
        return cv2.bitwise_and(self.skin_mask, union(self.zones.values(), self.skin_mask.shape))

    @cached_property
    def zone_skin_masks(self) -> dict[str, np.ndarray]:
        """Each zone's mask AND the skin mask, computed once for all detectors (read-only)."""
        return {name: cv2.bitwise_and(mask, self.skin_mask) for name, mask in self.zones.items()}

    @cached_property
    def zone_skin_px(self) -> dict[str, int]:
        """How many skin pixels each zone holds (0 for a zone with none)."""
        return {name: cv2.countNonZero(mask) for name, mask in self.zone_skin_masks.items()}

    def zone_skin_window(self, margin: int, *, step: int = 1, align: int = 1) -> Window:
        """The box around the zones' skin (:attr:`zone_skin`) grown by ``margin`` ROI px, on a
        ``step`` grid (see :func:`harerun.imageops.mask_window` for ``align``).

        With ``margin`` at least a filter's reach, the filter gives the same values on the zones'
        skin as over the whole ROI, for a fraction of the work.
        """
        rows, cols = mask_window(self.zone_skin, margin, align=align)
        return Window(rows, cols, step)

    def grid(self, step: int) -> Window:
        """The whole ROI on a grid ``step`` times coarser."""
        h, w = self.skin_mask.shape
        return Window(slice(0, h), slice(0, w), step)

    def zone_skin_on(self, window: Window | None = None) -> dict[str, np.ndarray]:
        """Each zone's skin (:attr:`zone_skin_masks`) on ``window``'s grid (the ROI without one),
        for the zones with skin there, in :attr:`zones` order."""
        if window is None:
            return {name: m for name, m in self.zone_skin_masks.items() if self.zone_skin_px[name]}
        grid = {name: window.sample(m) for name, m in self.zone_skin_masks.items()}
        return {name: m for name, m in grid.items() if cv2.countNonZero(m)}

    def zone_members(self, points: np.ndarray) -> dict[str, np.ndarray]:
        """For each zone with skin, which (N, 2+) ROI points ``[x, y, ...]`` it holds (bool (N,);
        ``x``, ``y`` truncated to the pixel)."""
        pts = np.asarray(points)
        xs, ys = pts[:, 0].astype(int), pts[:, 1].astype(int)
        return {name: self.zones[name][ys, xs] > 0 for name, px in self.zone_skin_px.items() if px}

    @cached_property
    def gray(self) -> np.ndarray:
        return cv2.cvtColor(self.image, cv2.COLOR_BGR2GRAY)

    @cached_property
    def scale_to_image(self) -> float:
        """How many original-photo pixels one ROI pixel spans."""
        return float(np.sqrt(abs(np.linalg.det(self.roi_to_image[:, :2]))))

    def too_small_for(self, what: str, *, max_magnification: float) -> DetectorResult | None:
        """A ``skipped`` result saying why, when the ROI magnifies the photo more than
        ``max_magnification`` times (ROI px per photo px): the face is too small in the photo for
        ``what`` (a detector trained on close-ups has never seen such a blurred face). None when
        the face is large enough."""
        magnification = 1.0 / self.scale_to_image
        if magnification <= max_magnification:
            return None
        face_px = min(self.face_box[2], self.face_box[3])
        return DetectorResult(
            status="skipped",
            message=f"the face is {face_px:.0f} px across in the photo, too small for {what} (the analysis would "
            f"magnify it {magnification:.1f} times, at most {max_magnification:g} is trusted): use a photo where the "
            f"face is at least {face_px * magnification / max_magnification:.0f} px across",
            measurements={"magnification": round(magnification, 2)},
        )

    def to_image_points(self, points: np.ndarray) -> np.ndarray:
        """Map (N, 2) ROI points to original-photo pixels."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return pts @ self.roi_to_image[:, :2].T + self.roi_to_image[:, 2]

    def to_image_markers(self, markers: np.ndarray) -> list[list[float]]:
        """Map (N, 3) ROI circles ``[x, y, r]`` to original-photo circles."""
        m = np.asarray(markers, dtype=np.float64).reshape(-1, 3)
        if len(m) == 0:
            return []
        xy = self.to_image_points(m[:, :2])
        r = m[:, 2] * self.scale_to_image
        return np.column_stack([xy, r]).round(1).tolist()


class Detector:
    """Base class for skin-feature detectors (subclassing is optional).

    A subclass names itself in its class line and implements ``analyze``::

        class ShineDetector(Detector, name="shine", version="0.1.0", params=ShineParams):
            def analyze(self, ctx: FaceContext) -> DetectorResult: ...

    The keywords set the class attributes ``name``, ``version``, ``Params`` and (optional)
    ``Measurements``, which is all the engine reads (a class that does not subclass this one
    sets them itself). The engine builds one instance per pipeline step with validated params.
    ``Measurements`` is a pydantic model every ``ok`` result's ``measurements`` validate
    against (keys with units in their names, descriptions, bounds); without one the API
    documents them as an open object.
    """

    name: ClassVar[str]
    version: ClassVar[str] = "0.0.0"
    Params: ClassVar[type[BaseModel]] = DetectorParams
    Measurements: ClassVar[type[BaseModel] | None] = None

    def __init_subclass__(
        cls,
        *,
        name: str | None = None,
        version: str | None = None,
        params: type[BaseModel] | None = None,
        measurements: type[BaseModel] | None = None,
        **kwargs,
    ) -> None:
        super().__init_subclass__(**kwargs)
        for attr, value in (("name", name), ("version", version), ("Params", params), ("Measurements", measurements)):
            if value is not None:
                setattr(cls, attr, value)

    def __init__(self, params: BaseModel | None = None) -> None:
        self.params = params if params is not None else self.Params()

    def analyze(self, ctx: FaceContext) -> DetectorResult:  # pragma: no cover - interface
        raise NotImplementedError
