"""Pure numpy/OpenCV parts of the acne-grade classifier: input preparation,
lesion-density targets, augmentation and classification metrics.

Nothing here imports TensorFlow.
"""

from __future__ import annotations

import cv2
import numpy as np

#: ACNE04 grades (Hayashi criterion): 0 mild, 1 moderate, 2 severe, 3 very severe.
N_GRADES = 4
#: Side of the square network input, pixels.
INPUT_SIZE = 256
#: The density head predicts one value per DENSITY_STRIDE x DENSITY_STRIDE input pixels.
DENSITY_STRIDE = 8


def prepare_input(image_bgr: np.ndarray, *, size: int = INPUT_SIZE) -> np.ndarray:
    """Turn a BGR uint8 image (the aligned face ROI) into the network input.

    Parameters
    ----------
    image_bgr : (H, W, 3) uint8 BGR image.
    size : side of the square output.

    Returns
    -------
    (size, size, 3) float32 RGB in 0..255 (the network rescales itself).
    """
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) BGR image, got shape {image_bgr.shape}")
    h, w = image_bgr.shape[:2]
    interp = cv2.INTER_AREA if min(h, w) > size else cv2.INTER_LINEAR
    img = cv2.resize(image_bgr, (size, size), interpolation=interp)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32)


def density_target(circles: np.ndarray, *, image_size: int, grid: int, sigma: float = 1.0) -> np.ndarray:
    """A lesion density map whose sum is the number of lesions.

    Parameters
    ----------
    circles : (N, 3) lesion circles ``[x, y, r]`` in pixels of an ``image_size`` square image.
    image_size : side of the image the circles refer to.
    grid : side of the output map (one cell per ``image_size / grid`` pixels).
    sigma : Gaussian spread of each lesion, in cells.

    Returns
    -------
    (grid, grid) float32 map; ``map.sum()`` equals the number of circles inside the image.
    """
    out = np.zeros((grid, grid), np.float32)
    c = np.asarray(circles, np.float64).reshape(-1, 3)
    if len(c) == 0:
        return out
    cell = image_size / grid
    gx, gy = c[:, 0] / cell - 0.5, c[:, 1] / cell - 0.5
    keep = (gx >= -0.5) & (gx < grid - 0.5) & (gy >= -0.5) & (gy < grid - 0.5)
    xi = np.clip(np.round(gx[keep]).astype(int), 0, grid - 1)
    yi = np.clip(np.round(gy[keep]).astype(int), 0, grid - 1)
    np.add.at(out, (yi, xi), 1.0)
    if sigma > 0 and out.any():
        total = out.sum()
        out = cv2.GaussianBlur(out, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
        out *= total / max(float(out.sum()), 1e-9)
    return out


def augment(
    image: np.ndarray,
    circles: np.ndarray,
    rng: np.random.Generator,
    *,
    max_zoom: float = 0.15,
    max_shift: float = 0.06,
    max_rotate_deg: float = 10.0,
    brightness: float = 0.12,
    contrast: float = 0.12,
) -> tuple[np.ndarray, np.ndarray]:
    """Light photometric and geometric augmentation of one square image and its lesion circles.

    Horizontal flip, zoom in by up to ``max_zoom``, shift, small rotation, then
    brightness/contrast jitter. Circles are moved with the image.

    Returns
    -------
    (image, circles) with the same shapes and dtypes as the inputs.
    """
    s = image.shape[0]
    c = np.asarray(circles, np.float64).reshape(-1, 3).copy()
    zoom = 1.0 + rng.uniform(0.0, max_zoom)
    angle = rng.uniform(-max_rotate_deg, max_rotate_deg)
    m = cv2.getRotationMatrix2D((s / 2, s / 2), angle, zoom)
    m[:, 2] += rng.uniform(-max_shift, max_shift, 2) * s
    if rng.random() < 0.5:  # horizontal flip folded into the affine map
        m = m @ np.array([[-1.0, 0.0, s - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    out = cv2.warpAffine(image, m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    if len(c):
        c[:, :2] = c[:, :2] @ m[:, :2].T + m[:, 2]
        c[:, 2] *= zoom
    gain = 1.0 + rng.uniform(-contrast, contrast)
    bias = rng.uniform(-brightness, brightness) * 255.0
    mean = out.reshape(-1, out.shape[-1]).mean(0)
    out = np.clip((out.astype(np.float32) - mean) * gain + mean + bias, 0, 255).astype(image.dtype)
    return out, c


def soft_labels(grades: np.ndarray, *, n_classes: int = N_GRADES, sigma: float = 0.5) -> np.ndarray:
    """Gaussian label distributions around each grade (label-distribution learning, Wu et al. ICCV 2019)."""
    g = np.asarray(grades, np.float64).reshape(-1, 1)
    k = np.arange(n_classes, dtype=np.float64).reshape(1, -1)
    p = np.exp(-((k - g) ** 2) / (2 * sigma**2)) if sigma > 0 else (k == g).astype(np.float64)
    return (p / p.sum(1, keepdims=True)).astype(np.float32)


def class_weights(grades: np.ndarray, *, n_classes: int = N_GRADES, power: float = 0.5) -> np.ndarray:
    """Per-class weights ``(max_count / count) ** power``, normalised to mean 1 over the samples."""
    counts = np.bincount(np.asarray(grades, int), minlength=n_classes).astype(np.float64)
    w = (counts.max() / np.maximum(counts, 1)) ** power
    w /= (w[np.asarray(grades, int)]).mean()
    return w.astype(np.float32)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, *, n_classes: int = N_GRADES) -> np.ndarray:
    """(n_classes, n_classes) counts; rows are the true grade, columns the prediction."""
    cm = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(cm, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return cm


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, *, n_classes: int = N_GRADES) -> dict:
    """Accuracy, macro-F1 (over classes present in ``y_true``), per-class F1 and the confusion matrix."""
    cm = confusion_matrix(y_true, y_pred, n_classes=n_classes)
    tp = np.diag(cm).astype(np.float64)
    precision = tp / np.maximum(cm.sum(0), 1)
    recall = tp / np.maximum(cm.sum(1), 1)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    present = cm.sum(1) > 0
    return {
        "accuracy": float(tp.sum() / max(cm.sum(), 1)),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "f1_per_grade": [round(float(v), 4) for v in f1],
        "confusion_matrix": cm.tolist(),
        "n": int(cm.sum()),
    }


def zone_counts(density: np.ndarray, zones: dict[str, np.ndarray]) -> dict[str, float]:
    """Sum a lesion density map (any size) inside each zone mask (ROI size), count-preserving."""
    if not zones:
        return {}
    h, w = next(iter(zones.values())).shape[:2]
    up = cv2.resize(density.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    up *= float(density.sum()) / max(float(up.sum()), 1e-9)
    return {name: float(up[m > 0].sum()) for name, m in zones.items()}
