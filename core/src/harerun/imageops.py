"""Small OpenCV building blocks that several detectors share."""

from __future__ import annotations

import cv2
import numpy as np


def gaussian(image: np.ndarray, sigma: float) -> np.ndarray:
    """``cv2.GaussianBlur`` with the kernel cut at 2.5 sigma.

    OpenCV's default for float images is 4 sigma, twice the work for weights below 0.2 %.
    """
    k = 2 * int(np.ceil(2.5 * sigma)) + 1
    return cv2.GaussianBlur(image, (k, k), sigma)


def masked_gaussian_mean(image: np.ndarray, weight: np.ndarray, sigma: float, *, downscale: int = 1) -> np.ndarray:
    """Gaussian mean of ``image`` over the pixels where ``weight`` > 0 (normalised convolution).

    Computed on a copy shrunk ``downscale`` times (area averaging) and scaled back
    linearly: the mean of smooth skin needs no full resolution. ``weight`` is float32.
    """
    h, w = weight.shape
    size = (max(1, w // downscale), max(1, h // downscale))
    num = gaussian(cv2.resize(image * weight, size, interpolation=cv2.INTER_AREA), sigma / downscale)
    den = gaussian(cv2.resize(weight, size, interpolation=cv2.INTER_AREA), sigma / downscale)
    return cv2.resize(num / np.maximum(den, 1e-3), (w, h), interpolation=cv2.INTER_LINEAR)


def peak_coordinates(peak: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.nonzero`` of a boolean image (row-major order), through ``cv2.findNonZero``.

    Several times faster than ``np.nonzero`` on a 512 px image with a few thousand hits.
    """
    pts = cv2.findNonZero(np.ascontiguousarray(peak, dtype=bool).view(np.uint8))
    if pts is None:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    pts = pts.reshape(-1, 2).astype(np.intp)
    return pts[:, 1], pts[:, 0]
