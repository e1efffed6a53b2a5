"""Where each wrinkle type is looked for, from the eye (and optional nose / mouth) landmarks.

Geometry, in units of the inter-eye distance ``d`` from the eye midpoint
``m``, with ``u`` along the eye line (towards the image-right eye) and ``v``
perpendicular to it (downwards). Face zones from the engine are used where
they exist (forehead, under-eye); the rest is derived here:

=================  ===========================================  ===================
type               region                                       line prior
=================  ===========================================  ===================
forehead           ``zones["forehead"]`` minus the glabella      horizontal (0 deg)
                   (fallback ``|u| <= 0.8, -1.0 <= v <= -0.35``)
glabella           ``|u| <= 0.18, -0.55 <= v <= -0.05``           vertical (90 deg)
crows_feet_<side>  ``0.78 <= |u| <= 1.10, -0.25 <= v <= 0.30``    horizontal, wide tolerance
                   on the outer side of that eye                 (the lines fan out)
under_eye_<side>   ``zones["under_eye_<side>"]``                  horizontal
                   (fallback ``0.2 <= |u| <= 0.8, 0.2 <= v <= 0.45``)
nasolabial_<side>  band of width ``0.20 d`` from the nose wing    along the band
                   to below the mouth corner
=================  ===========================================  ===================

Nose wing: ``nose`` landmark + ``(±0.36, 0)``, else ``m + (±0.36, 0.80)``;
band end: ``mouth_<side>`` + ``(±0.08, 0.08)``, else ``m + (±0.58, 1.25)``.
This is the engine's face frame (``harerun.face.zones``: eyes at ``u = ±0.5``
with ~0.3 d half-width, nose tip ~0.8 d and mouth ~1.17 d below the eye line,
mouth half-width ~0.5 d), so the band runs just outside the nose and the
mouth corner rather than along the nose's own shadowed side.

Without eye landmarks the eyes are recovered from the under-eye zones, whose
centroids sit at ``(±0.525, 0.36)`` in that frame; without those either, they
are put where the aligned ROI puts them: ``(0.35 S, 0.38 S)`` and ``(0.65 S, 0.38 S)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from harerun.imageops import subsample
from harerun_wrinkles.algorithm import line_angle


@dataclass
class WrinkleRegion:
    name: str
    mask: np.ndarray  # uint8 on the ROI, 255 inside
    prior_deg: float
    tolerance_deg: float


def _centroid(mask: np.ndarray | None) -> np.ndarray | None:
    if mask is None:
        return None
    m = cv2.moments(mask, binaryImage=True)
    return np.array([m["m10"] / m["m00"], m["m01"] / m["m00"]]) if m["m00"] > 0 else None


def _eyes(landmarks: dict, zones: dict, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Image-left and image-right eye centres: landmarks, else from the under-eye zones, else fixed."""
    if "left_eye" in landmarks and "right_eye" in landmarks:
        a, b = np.array(landmarks["left_eye"], float), np.array(landmarks["right_eye"], float)
        if np.linalg.norm(b - a) > 1:
            return (a, b) if a[0] <= b[0] else (b, a)
    ca, cb = _centroid(zones.get("under_eye_left")), _centroid(zones.get("under_eye_right"))
    if ca is not None and cb is not None and np.linalg.norm(cb - ca) > 1:
        if ca[0] > cb[0]:
            ca, cb = cb, ca
        d = float(np.linalg.norm(cb - ca)) / 1.05
        ex = (cb - ca) / (1.05 * d)
        ey = np.array([-ex[1], ex[0]])
        return ca + d * (0.025 * ex - 0.36 * ey), cb + d * (-0.025 * ex - 0.36 * ey)
    return np.array([0.35 * size, 0.38 * size]), np.array([0.65 * size, 0.38 * size])


def wrinkle_regions(
    size: int,
    landmarks: dict,
    zones: dict[str, np.ndarray],
    *,
    hidden: tuple[str, ...] = (),
    tolerance_deg: float = 20.0,
    crows_feet_tolerance_deg: float = 35.0,
    shrink: int = 1,
) -> list[WrinkleRegion]:
    """The wrinkle regions of a ``size`` x ``size`` ROI (see the module docstring).

    With ``shrink`` > 1 the masks are drawn on the ROI shrunk by that factor
    (zones are subsampled), for filters that run at reduced resolution. A region the
    engine drew from the face's mesh (``zones`` holds it: glabella, crows_feet_<side>,
    nasolabial_<side>) replaces the one drawn here; a region in ``hidden`` (turned away
    from the camera) is left out.
    """
    eye_a, eye_b = _eyes(landmarks, zones, size)  # image-left eye, image-right eye
    mid = 0.5 * (eye_a + eye_b)
    d = float(np.linalg.norm(eye_b - eye_a))
    ex = (eye_b - eye_a) / d
    ey = np.array([-ex[1], ex[0]])
    roll = line_angle(eye_a, eye_b)
    if roll > 90:
        roll -= 180.0

    k = int(shrink)
    out_size = size // k
    wanted = ("forehead", "under_eye_left", "under_eye_right", "glabella", *MESH_REGIONS)
    zones = {n: subsample(zones[n], k, (out_size, out_size)) for n in wanted if n in zones}

    def to_out(p: np.ndarray) -> np.ndarray:
        return (p + 0.5) / k - 0.5

    def full(u: float, v: float) -> np.ndarray:
        return mid + d * (u * ex + v * ey)

    def pt(u: float, v: float) -> np.ndarray:
        return to_out(full(u, v))

    def quad(u0: float, u1: float, v0: float, v1: float) -> np.ndarray:
        m = np.zeros((out_size, out_size), np.uint8)
        poly = np.array([pt(u0, v0), pt(u1, v0), pt(u1, v1), pt(u0, v1)])
        cv2.fillPoly(m, [np.round(poly).astype(np.int32)], 255)
        return m

    def band(p0: np.ndarray, p1: np.ndarray, width: float) -> np.ndarray:
        m = np.zeros((out_size, out_size), np.uint8)
        p0, p1 = to_out(p0), to_out(p1)
        cv2.line(
            m, tuple(int(round(c)) for c in p0), tuple(int(round(c)) for c in p1), 255, max(1, int(round(width / k)))
        )
        return m

    horizontal = roll % 180.0
    vertical = (roll + 90.0) % 180.0
    glabella = zones.get("glabella")
    glabella = quad(-0.18, 0.18, -0.55, -0.05) if glabella is None else glabella
    forehead = zones.get("forehead")
    forehead = quad(-0.8, 0.8, -1.0, -0.35) if forehead is None else forehead.copy()
    forehead[glabella > 0] = 0
    regions = [
        WrinkleRegion("forehead", forehead, horizontal, tolerance_deg),
        WrinkleRegion("glabella", glabella, vertical, tolerance_deg),
    ]
    for side, sign in (("left", -1.0), ("right", 1.0)):
        regions.append(
            WrinkleRegion(
                f"crows_feet_{side}",
                quad(sign * 0.78, sign * 1.10, -0.25, 0.30),
                horizontal,
                crows_feet_tolerance_deg,
            )
        )
        under = zones.get(f"under_eye_{side}")
        if under is None:
            under = quad(sign * 0.2, sign * 0.8, 0.2, 0.45)
        regions.append(WrinkleRegion(f"under_eye_{side}", under, horizontal, tolerance_deg))
        nose = landmarks.get("nose")
        wing = np.array(nose, float) + d * (sign * 0.36 * ex) if nose is not None else full(sign * 0.36, 0.80)
        mouth = landmarks.get(f"mouth_{side}")
        end = (
            np.array(mouth, float) + d * (sign * 0.08 * ex + 0.08 * ey)
            if mouth is not None
            else full(sign * 0.58, 1.25)
        )
        regions.append(
            WrinkleRegion(f"nasolabial_{side}", band(wing, end, 0.20 * d), line_angle(wing, end), tolerance_deg)
        )
    for reg in regions:
        if reg.name in MESH_REGIONS and reg.name in zones:
            reg.mask = zones[reg.name]
    return [reg for reg in regions if reg.name not in hidden]


#: Regions that the engine draws from the face's mesh when it has one.
MESH_REGIONS = ("crows_feet_left", "crows_feet_right", "nasolabial_left", "nasolabial_right")
