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
INPUT_SIZE = 128
#: The density head predicts one value per DENSITY_STRIDE x DENSITY_STRIDE input pixels.
DENSITY_STRIDE = 8
#: Side at which the lesion feature maps are computed (lesions are ~1.5 px in radius there).
FEATURE_SIZE = 256
#: Input channels: RGB, then the lesion feature maps of :func:`lesion_feature_maps`.
CHANNELS = ("red", "green", "blue", "redness_spot", "redness_blob", "dark_spot", "bright_spot")


def lesion_feature_maps(
    image_bgr: np.ndarray, *, size: int = INPUT_SIZE, feature_size: int = FEATURE_SIZE
) -> np.ndarray:
    """The network input: a small RGB copy plus lesion-contrast maps that keep tiny lesions visible.

    At 128 px a 3-px acne lesion (on a 512-px face) is below one pixel, so the
    colour image alone loses it. Four high-pass maps are computed at
    ``feature_size`` (256 px) in CIELAB and reduced with a block *maximum* (not an
    average), so a single lesion still lights a cell:

    * ``redness_spot``: a* minus its Gaussian background (sigma 3 px), >= 0;
    * ``redness_blob``: difference of Gaussians of a* (sigma 0.75 and 2 px), >= 0 (papules, pustules);
    * ``dark_spot``: background L* minus L* (sigma 3 px), >= 0;
    * ``bright_spot``: L* minus background L*, >= 0 (whiteheads, glare).

    Near-black pixels (letterbox bars) are zeroed in the maps.

    Parameters
    ----------
    image_bgr : (H, W, 3) uint8 BGR image (the aligned face ROI).
    size : side of the output.
    feature_size : side at which the maps are computed; a multiple of ``size``.

    Returns
    -------
    (size, size, 7) float32: RGB in 0..1, then the four maps scaled to about 0..1 (see ``CHANNELS``).
    """
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) BGR image, got shape {image_bgr.shape}")
    if feature_size % size:
        raise ValueError("feature_size must be a multiple of size")
    # The direct form (tests/test_ml_classifier.py keeps it and checks the two give
    # bit-identical inputs) with fewer passes over full-size buffers: the 8-bit LAB channels
    # are converted to float32 one at a time, ``L > 8`` is tested on the 8-bit L channel, the
    # maps are computed in place, and the dark map is the exact negation of the bright one
    # (``l_bg - L == -(L - l_bg)`` in floating point).
    h, w = image_bgr.shape[:2]
    big = (
        image_bgr
        if (h, w) == (feature_size, feature_size)
        else cv2.resize(
            image_bgr,
            (feature_size, feature_size),
            interpolation=cv2.INTER_AREA if h > feature_size else cv2.INTER_LINEAR,
        )
    )
    big = np.ascontiguousarray(big, dtype=np.uint8)
    lab8 = cv2.cvtColor(big, cv2.COLOR_BGR2LAB)
    L = np.multiply(lab8[..., 0], _L_SCALE, dtype=np.float32)  # 8-bit LAB: L* scaled to 0..255, a* offset by 128
    a = np.subtract(lab8[..., 1], _A_OFFSET, dtype=np.float32)
    valid = cv2.erode((lab8[..., 0] >= _VALID_MIN_L8).view(np.uint8), _ERODE_5)  # 0/1: L* > 8, eroded
    bright = cv2.GaussianBlur(L, (0, 0), 3)
    np.subtract(L, bright, out=bright)
    bright *= _BRIGHT_SCALE
    dark = np.subtract(_ZERO, bright, out=L)  # 0 - x rather than -x: +0.0 where the direct form has +0.0
    spot = cv2.GaussianBlur(a, (0, 0), 3)
    np.subtract(a, spot, out=spot)
    spot *= _SPOT_SCALE
    blob = cv2.GaussianBlur(a, (0, 0), 0.75)
    blob -= cv2.GaussianBlur(a, (0, 0), 2)
    blob *= _BLOB_SCALE
    k = feature_size // size
    maps = []
    for m in (spot, blob, dark, bright):
        np.clip(m, 0, 1, out=m)
        m *= valid
        maps.append(_block_max(m, k))
    rgb = cv2.cvtColor(cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB).astype(
        np.float32
    )
    rgb *= _RGB_SCALE
    return cv2.merge([rgb, *maps])


_L_SCALE = np.float32(100.0 / 255.0)
_A_OFFSET = np.float32(128.0)
#: Smallest 8-bit L for which L * 100/255 > 8 in float32: the letterbox test done on the 8-bit channel.
_VALID_MIN_L8 = int(np.argmax(np.arange(256, dtype=np.float32) * _L_SCALE > 8))
_ERODE_5 = np.ones((5, 5), np.uint8)
_SPOT_SCALE = np.float32(1 / 12.0)
_BLOB_SCALE = np.float32(1 / 6.0)
_BRIGHT_SCALE = np.float32(1 / 15.0)
_RGB_SCALE = np.float32(1 / 255.0)
_ZERO = np.float32(0.0)


def _block_max(m: np.ndarray, k: int) -> np.ndarray:
    """Maximum over each k x k block: the dilation anchored at the block's corner, sampled every k pixels."""
    if k == 1:
        return m
    h, w = m.shape[:2]
    return cv2.resize(
        cv2.dilate(m, np.ones((k, k), np.uint8), anchor=(0, 0)), (w // k, h // k), interpolation=cv2.INTER_NEAREST
    )


def prepare_input(image_bgr: np.ndarray, *, size: int = INPUT_SIZE) -> np.ndarray:
    """The network input for one BGR uint8 image: ``lesion_feature_maps`` at ``size``."""
    return lesion_feature_maps(image_bgr, size=size)


# -- framing: what picture the network looks at --------------------------------------------

#: The framing this plugin feeds: the engine's aligned face ROI (``FaceContext.image``,
#: ``face.roi_size`` square, from the face stage of the pipeline that runs the plugin).
FRAMING = "face_roi"
#: Framings a model may declare. ``letterbox_photo``: the whole photo letterboxed to a square
#: (how ``acne-grade@1`` was trained; served on the face ROI it loses accuracy).
FRAMINGS = {
    "face_roi": "the engine's aligned face ROI (FaceContext.image from the pipeline's face stage)",
    "letterbox_photo": "the whole photo letterboxed to a square, no face stage",
}
#: What each input channel is, in order, with its range (see :func:`lesion_feature_maps`).
CHANNEL_DOC = {
    "red": "sRGB red / 255 of the framed image, INTER_AREA-resized to the input size; 0..1",
    "green": "sRGB green / 255; 0..1",
    "blue": "sRGB blue / 255; 0..1",
    "redness_spot": "(a* - Gaussian(a*, sigma 3 px)) / 12 at 256 px, clipped to 0..1, block maximum to the input size",
    "redness_blob": "(Gaussian(a*, 0.75 px) - Gaussian(a*, 2 px)) / 6 at 256 px, clipped to 0..1, block maximum",
    "dark_spot": "(Gaussian(L*, 3 px) - L*) / 15 at 256 px, clipped to 0..1, block maximum",
    "bright_spot": "(L* - Gaussian(L*, 3 px)) / 15 at 256 px, clipped to 0..1, block maximum",
}


def model_input(ctx, *, size: int = INPUT_SIZE) -> np.ndarray:
    """The network input for a face context: what ``ml_classifier`` feeds and what training fits.

    The one place that decides the picture the network sees (train/serve parity):
    the plugin calls it on the engine's :class:`~harerun.detector.FaceContext`, the
    trainer on the same ROI taken from the same face stage (only ``ctx.image`` is read).

    Returns
    -------
    (size, size, len(CHANNELS)) float32, see :func:`lesion_feature_maps`.
    """
    return prepare_input(ctx.image, size=size)


def circles_to_roi(circles: np.ndarray, roi_to_image: np.ndarray) -> np.ndarray:
    """Map circles ``[x, y, r]`` from photo pixels into ROI pixels.

    ``roi_to_image`` is the (2, 3) affine map ROI -> photo of the face context (a
    similarity: rotation, scale, shift); its inverse moves the centres, and radii scale
    by the inverse's scale. Circles outside the ROI are kept (callers decide).
    """
    c = np.asarray(circles, np.float64).reshape(-1, 3)
    inv = cv2.invertAffineTransform(np.asarray(roi_to_image, np.float64))
    out = np.empty_like(c)
    out[:, :2] = c[:, :2] @ inv[:, :2].T + inv[:, 2]
    out[:, 2] = c[:, 2] * float(np.sqrt(abs(np.linalg.det(inv[:, :2]))))
    return out


def network_data_format(*, size: int = INPUT_SIZE, framing: str = FRAMING) -> dict:
    """The model's input/output declaration (after MONAI bundles' ``network_data_format``).

    Written next to every trained model (``<stem>.metadata.json``) and checked by the
    plugin with :func:`declaration_problems` before it feeds the model.
    """
    grid = size // DENSITY_STRIDE
    return {
        "inputs": {
            "image": {
                "type": "image",
                "format": "float32, NHWC (a batch of 1 at run time)",
                "shape": [size, size, len(CHANNELS)],
                "value_range": [0.0, 1.0],
                "framing": framing,
                "framing_doc": FRAMINGS[framing],
                "channel_def": {str(i): name for i, name in enumerate(CHANNELS)},
                "channel_doc": dict(CHANNEL_DOC),
                "note": "the four lesion maps are 0 where L* <= 8 (eroded 5x5 at 256 px): letterbox bars and the "
                "black fill of a ROI that reaches past the photo",
                "made_by": "harerun_ml_classifier.algorithm.model_input",
            }
        },
        "outputs": {
            "grade": {
                "type": "probabilities",
                "shape": [N_GRADES],
                "value_range": [0.0, 1.0],
                "channel_def": {"0": "mild", "1": "moderate", "2": "severe", "3": "very severe"},
                "doc": "ACNE04 / Hayashi grade, softmax",
            },
            "density": {
                "type": "density map",
                "shape": [grid, grid, 1],
                "value_range": [0.0, None],
                "doc": f"acne lesions per {DENSITY_STRIDE}x{DENSITY_STRIDE}-input-pixel cell; sum = count",
            },
        },
    }


def declaration_problems(
    declared: dict | None, *, framing: str = FRAMING, channels: tuple[str, ...] = CHANNELS, size: int | None = None
) -> dict[str, str]:
    """Compare a model's declared input with what the plugin feeds.

    ``declared`` holds ``framing`` and optionally ``channels`` (names, in order) and
    ``size``; missing keys are not checked. Returns ``{"framing" | "channels" | "size":
    problem}``, empty when everything declared matches.
    """
    problems: dict[str, str] = {}
    if not declared:
        return problems
    got = declared.get("framing")
    if got is not None and got != framing:
        problems["framing"] = (
            f"the model was trained on framing '{got}' ({FRAMINGS.get(got, 'unknown framing')}); "
            f"this plugin feeds '{framing}' ({FRAMINGS.get(framing, '')})"
        )
    names = declared.get("channels")
    if names is not None and tuple(names) != tuple(channels[: len(names)]):
        problems["channels"] = f"the model declares input channels {list(names)}; this plugin feeds {list(channels)}"
    want = declared.get("size")
    if want is not None and size is not None and int(want) != int(size):
        problems["size"] = f"the model declares a {want}-px input; its file takes {size} px"
    return problems


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
    full_scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Light photometric and geometric augmentation of one square input and its lesion circles.

    Horizontal flip, zoom in by up to ``max_zoom``, shift, small rotation (all
    channels), then brightness/contrast jitter of the first three (RGB, 0..``full_scale``)
    channels. Circles are moved with the image.

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
    out = np.dstack(
        [
            cv2.warpAffine(
                np.ascontiguousarray(image[..., i : i + 3]),
                m,
                (s, s),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
            ).reshape(s, s, -1)
            for i in range(0, image.shape[-1], 3)
        ]
    )
    if len(c):
        c[:, :2] = c[:, :2] @ m[:, :2].T + m[:, 2]
        c[:, 2] *= zoom
    gain = 1.0 + rng.uniform(-contrast, contrast)
    bias = rng.uniform(-brightness, brightness) * full_scale
    rgb = out[..., :3].astype(np.float32)
    mean = rgb.reshape(-1, 3).mean(0)
    out = out.copy()
    out[..., :3] = np.clip((rgb - mean) * gain + mean + bias, 0, full_scale).astype(image.dtype)
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


def zone_counts(
    density: np.ndarray, zones: dict[str, np.ndarray], *, bounds: tuple[int, int, int, int] | None = None
) -> dict[str, float]:
    """Lesions inside each zone: the density map (any grid) weighted by each cell's zone coverage.

    Each zone mask (ROI size, 255 inside) is reduced to the density grid by area
    averaging, so a cell half inside a zone contributes half its lesions; zones
    that tile the ROI split the total exactly. ``bounds`` (x, y, w, h), when given,
    must hold every non-zero pixel of every zone (e.g. the bounding box of their
    union); it only saves looking at the rest of the ROI.
    """
    g = density.shape[:2]
    return {name: float((density * zone_cell_fractions(m, g, bounds=bounds)).sum()) for name, m in zones.items()}


def zone_cell_fractions(
    mask: np.ndarray, grid: tuple[int, int], *, bounds: tuple[int, int, int, int] | None = None
) -> np.ndarray:
    """(grid) float32: the fraction of each cell's pixels where ``mask > 0``.

    The same numbers as ``cv2.resize((mask > 0).astype(np.float32), grid[::-1], interpolation=cv2.INTER_AREA)``.
    When the grid divides the mask evenly (the usual case: a 512-px ROI on a 16-cell grid)
    each cell is the mean of its own block only, so only the cells under the mask's bounding
    box are computed (a zone is a small part of the ROI); the rest are 0. ``bounds``
    (x, y, w, h), when given, must hold every non-zero pixel of the mask: the bounding box
    is then searched there only.
    """
    gh, gw = grid
    h, w = mask.shape[:2]
    if h % gh or w % gw or mask.dtype != np.uint8 or mask.ndim != 2:
        return cv2.resize((mask > 0).astype(np.float32), (gw, gh), interpolation=cv2.INTER_AREA)
    ky, kx = h // gh, w // gw
    out = np.zeros((gh, gw), np.float32)
    bx, by, bw, bh = (0, 0, w, h) if bounds is None else bounds
    if bw <= 0 or bh <= 0:
        return out
    x, y, bw, bh = cv2.boundingRect(mask[by : by + bh, bx : bx + bw])
    if bw == 0 or bh == 0:
        return out
    x, y = x + bx, y + by
    c0, r0, c1, r1 = x // kx, y // ky, -(-(x + bw) // kx), -(-(y + bh) // ky)
    crop = mask[r0 * ky : r1 * ky, c0 * kx : c1 * kx]
    out[r0:r1, c0:c1] = cv2.resize((crop > 0).astype(np.float32), (c1 - c0, r1 - r0), interpolation=cv2.INTER_AREA)
    return out


def fit_count_thresholds(counts: np.ndarray, grades: np.ndarray, *, n_classes: int = N_GRADES) -> list[float]:
    """Lesion-count thresholds t1 < t2 < t3 (grade = number of thresholds <= count) with the best accuracy.

    A baseline for the grade: ACNE04 grades are defined by lesion counts (Hayashi),
    so this says how much of the grade the count alone explains.
    """
    counts = np.asarray(counts, np.float64)
    grades = np.asarray(grades, int)
    cands = np.unique(np.concatenate([[0.0], counts + 0.5]))
    best, best_t = -1.0, [0.0] * (n_classes - 1)
    # exhaustive over candidate cut points is cubic; coordinate ascent from quantiles is plenty here
    t = list(np.quantile(counts, np.linspace(0, 1, n_classes + 1)[1:-1]))
    for _ in range(5):
        for i in range(n_classes - 1):
            lo = t[i - 1] if i > 0 else -np.inf
            hi = t[i + 1] if i < n_classes - 2 else np.inf
            for c in cands[(cands > lo) & (cands < hi)]:
                trial = t[:i] + [c] + t[i + 1 :]
                acc = float(np.mean(np.searchsorted(trial, counts, side="right") == grades))
                if acc > best:
                    best, best_t = acc, trial
            t = list(best_t)
    return [float(v) for v in best_t]


def grade_from_count(counts: np.ndarray, thresholds: list[float]) -> np.ndarray:
    """Apply :func:`fit_count_thresholds` thresholds."""
    return np.searchsorted(np.asarray(thresholds), np.asarray(counts, np.float64), side="right")


# -- serving: from the network's outputs to measurements and evidence -------------------------

#: Lesions per density cell drawn at full strength in the evidence mask.
MASK_FULL_SCALE = 0.25


def predict(model, x: np.ndarray, *, flip_tta: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Grade probabilities (summing to 1) and the lesion-density map (or None) for input ``x``;
    with ``flip_tta`` the mean of ``x`` and its mirror image (the density mirrored back)."""
    probs, density = model.run(x)
    if flip_tta:
        probs_m, density_m = model.run(np.ascontiguousarray(x[:, ::-1]))
        probs = (probs + probs_m) / 2
        if density is not None and density_m is not None:
            density = (density + density_m[:, ::-1]) / 2
    probs = np.clip(probs, 0.0, 1.0)
    return probs / max(float(probs.sum()), 1e-9), density


def grade_measurements(probs: np.ndarray) -> dict:
    """The most likely grade, each grade's probability and the expected grade."""
    return {
        "grade": int(np.argmax(probs)),
        **{f"p_grade_{k}": round(float(probs[k]), 4) for k in range(N_GRADES)},
        "grade_expected": round(float(np.dot(probs, np.arange(N_GRADES))), 3),
    }


def density_measurements(ctx, density: np.ndarray) -> dict:
    """The lesion-count estimate of the whole density map and of each zone's skin."""
    bounds = cv2.boundingRect(ctx.zone_skin) if ctx.zones else None
    counts = zone_counts(density, ctx.zone_skin_masks, bounds=bounds)
    return {
        "lesion_count_est": round(float(density.sum()), 1),
        "zone_lesion_count_est": {z: round(v, 1) for z, v in counts.items()},
    }


def density_mask(ctx, density: np.ndarray) -> np.ndarray:
    """The density map on the ROI's pixels as an evidence mask (:data:`MASK_FULL_SCALE` = 255), on skin only."""
    h, w = ctx.image.shape[:2]
    up = cv2.resize(density.astype(np.float32) * (255.0 / MASK_FULL_SCALE), (w, h), interpolation=cv2.INTER_LINEAR)
    mask = np.clip(up, 0, 255, out=up).astype(np.uint8)
    return cv2.bitwise_and(mask, ctx.skin_mask, dst=mask)
