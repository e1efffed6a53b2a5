"""The quality gate: is this photo good enough to analyse skin on?

Metrics are measured on the face region (the face box, inside the aligned ROI, resized
to 256 x 256 so that sharpness is comparable across face sizes); colour cast on the whole
photo. Thresholds come from the pipeline's ``quality`` block
(:class:`harerun.face.config.QualityConfig`). ``OVEREXPOSED`` counts blown highlights
(grey 255) only: pixels at 0 are mostly letterbox bars and deep shadow, reported as
``clipped_dark_pct`` but left to ``TOO_DARK``. Reason codes
(:data:`harerun.results.QUALITY_ISSUES`): ``NO_FACE``, ``FACE_UNCERTAIN``, ``MULTIPLE_FACES``,
``FACE_TOO_SMALL``, ``TOO_DARK``, ``TOO_BRIGHT``, ``BLURRY``, ``TILTED``, ``OVEREXPOSED``,
``LOW_CONTRAST``.
"""

from __future__ import annotations

import cv2
import numpy as np

from harerun.face.config import FaceConfig, QualityConfig
from harerun.results import QUALITY_ISSUES, QualityReport

#: Side of the square face patch the metrics are computed on.
METRIC_SIZE = 256

REASON_CODES = QUALITY_ISSUES  # said once, in harerun.results


def face_patch(roi_bgr: np.ndarray, padding: float, *, interpolation: int = cv2.INTER_AREA) -> np.ndarray:
    """The face box inside an aligned ROI (the ROI minus its margin), as a METRIC_SIZE square
    (``interpolation=cv2.INTER_NEAREST`` for masks)."""
    s = roi_bgr.shape[0]
    inner = s / (1.0 + 2.0 * padding)
    a = int(round((s - inner) / 2.0))
    patch = roi_bgr[a : s - a, a : s - a]
    return cv2.resize(patch, (METRIC_SIZE, METRIC_SIZE), interpolation=interpolation)


def image_metrics(patch_bgr: np.ndarray, *, valid: np.ndarray | None = None) -> dict[str, float]:
    """Brightness (mean L*), contrast (std L*), sharpness (variance of Laplacian of the
    8-bit grey patch), clipping (% pixels with grey at 0 or 255) on a face patch."""
    gray = cv2.cvtColor(patch_bgr, cv2.COLOR_BGR2GRAY)
    lab = cv2.cvtColor(patch_bgr.astype(np.float32) / 255.0, cv2.COLOR_BGR2LAB)
    lap = cv2.Laplacian(gray, cv2.CV_32F, ksize=3)
    sel = None if valid is None else valid > 0
    if sel is not None and not 16 <= np.count_nonzero(sel) < sel.size:
        sel = None  # every pixel (too few valid ones, or all of them: the same values without gathers)
    if sel is None:
        # Flat row-major copies/views: the same values in the same order as a full boolean gather.
        L, lap_vals, g = lab[..., 0].ravel(), lap.ravel(), gray.ravel()
    else:
        L = lab[..., 0][sel]
        inner = cv2.erode(sel.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0  # no edges at the warp border
        lap_vals = lap[inner] if inner.sum() >= 16 else lap[sel]
        g = gray[sel]
    return {
        "brightness": float(L.mean()),
        "contrast": float(L.std()),
        "sharpness": float(lap_vals.var()),
        "clipped_dark_pct": float(100.0 * np.mean(g <= 0)),
        "clipped_bright_pct": float(100.0 * np.mean(g >= 255)),
    }


def colour_cast(image_bgr: np.ndarray) -> float:
    """Grey-world colour cast of the whole photo: chroma (sqrt(a*^2 + b*^2)) of its mean colour."""
    h, w = image_bgr.shape[:2]
    if h * w > 1 << 18:  # every 4th pixel (nearest-neighbour quarter copy) gives the same mean
        image_bgr = cv2.resize(image_bgr, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_NEAREST)
    mean = np.array([[cv2.mean(image_bgr)[:3]]], np.float32) / 255.0
    lab = cv2.cvtColor(mean, cv2.COLOR_BGR2LAB)[0, 0]
    return float(np.hypot(lab[1], lab[2]))


def _ramp(value: float, bad: float, good: float) -> float:
    """0 at ``bad``, 1 at ``good`` (either order), linear between."""
    if good == bad:
        return 1.0 if value >= good else 0.0
    return float(np.clip((value - bad) / (good - bad), 0.0, 1.0))


def assess_quality(
    metrics: dict[str, float],
    *,
    quality_cfg: QualityConfig,
    face_cfg: FaceConfig | None = None,
    face_count: int = 1,
) -> QualityReport:
    """Turn measured metrics into reason codes and a 0-100 score.

    ``metrics`` needs the keys of :func:`image_metrics` plus ``face_px`` (face side),
    ``face_fraction`` (face area / photo area) and ``roll_deg`` (None when the eyes are
    unknown), optionally ``face_uncertain`` (why the landmarks are no plausible face).
    Each metric gets a sub-score in [0, 1] that is 0.5 at its threshold; the
    score is ``100 * (mean + min) / 2`` of the sub-scores, so one bad metric costs a lot
    but not everything.
    """
    q = quality_cfg
    min_face_px = face_cfg.min_face_px if face_cfg is not None else 48
    issues: list[str] = []
    clipped = metrics["clipped_bright_pct"]  # black clipping is letterbox bars and shadows (TOO_DARK's job)
    roll = metrics.get("roll_deg")
    uncertain = metrics.get("face_uncertain")
    checks = [
        # A box whose landmarks are no plausible face: everything measured on it is suspect.
        ("FACE_UNCERTAIN", bool(uncertain), 0.0 if uncertain else 1.0),
        ("MULTIPLE_FACES", face_count > 1, 1.0 if face_count <= 1 else 0.8),
        (
            "FACE_TOO_SMALL",
            metrics["face_px"] < min_face_px or metrics["face_fraction"] < q.min_face_fraction,
            min(
                _ramp(metrics["face_px"], 0.0, 2.0 * min_face_px),
                _ramp(metrics["face_fraction"], 0.0, 2.0 * q.min_face_fraction),
            ),
        ),
        (
            "TOO_DARK",
            metrics["brightness"] < q.min_brightness,
            _ramp(metrics["brightness"], 0.5 * q.min_brightness, 1.5 * q.min_brightness),
        ),
        (
            "TOO_BRIGHT",
            metrics["brightness"] > q.max_brightness,
            _ramp(metrics["brightness"], 100.0, q.max_brightness - (100.0 - q.max_brightness)),
        ),
        ("BLURRY", metrics["sharpness"] < q.min_sharpness, _ramp(metrics["sharpness"], 0.0, 2.0 * q.min_sharpness)),
        (
            "TILTED",
            roll is not None and abs(roll) > q.max_roll_deg,
            1.0 if roll is None else _ramp(abs(roll), 2.0 * q.max_roll_deg, 0.0),
        ),
        ("OVEREXPOSED", clipped > q.max_clipped_pct, _ramp(clipped, 2.0 * q.max_clipped_pct, 0.0)),
        ("LOW_CONTRAST", metrics["contrast"] < q.min_contrast, _ramp(metrics["contrast"], 0.0, 2.0 * q.min_contrast)),
    ]
    subs = []
    for code, failed, sub in checks:
        if failed:
            issues.append(code)
        subs.append(sub)
    score = 100.0 * (float(np.mean(subs)) + float(np.min(subs))) / 2.0
    return QualityReport(score=round(score, 1), metrics=metrics, issues=issues, passed=not issues)


def no_face_report(image_bgr: np.ndarray) -> QualityReport:
    """The quality report when no face was found: score 0, ``NO_FACE``, whole-photo metrics."""
    small = cv2.resize(image_bgr, (METRIC_SIZE, METRIC_SIZE), interpolation=cv2.INTER_AREA)
    metrics = image_metrics(small)
    metrics["colour_cast"] = colour_cast(image_bgr)
    metrics["face_count"] = 0
    return QualityReport(score=0.0, metrics=metrics, issues=["NO_FACE"], passed=False)
