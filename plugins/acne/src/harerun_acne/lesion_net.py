"""The learned lesion detector: network input, heatmap peaks and lesion rows (plain numpy/OpenCV).

A small fully convolutional network (trained by :mod:`harerun_acne.training`, shipped as
``models/acne-lesions-1.tflite``) maps the engine's aligned 512 px face ROI to a lesion-centre
heatmap at half resolution (CenterNet-style: Zhou et al., "Objects as Points", 2019) and a
lesion-radius map. Lesions are the heatmap's local maxima above a threshold.

:func:`lesion_input` builds the network input. Training and the plugin both call it, so what
the network saw in training is what it sees at serving time. Everything here is TensorFlow-free;
the model runs in ``ai_edge_litert``'s TFLite interpreter (:func:`load_lesion_model`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np

from harerun.litert import native_stderr_to_log
from harerun.modelstore import LoadedModels, ModelStore, ModelUnavailable, ResolvedModel, record_load

#: Side of the ROI the network takes (the engine's default ``face.roi_size``).
INPUT_SIZE = 512
#: Heatmap pixels per ROI pixel: one heatmap pixel covers OUTPUT_STRIDE x OUTPUT_STRIDE ROI pixels.
OUTPUT_STRIDE = 2
#: a* is divided by this so the channel spans about -1..1 on skin.
A_SCALE = 32.0
#: What each input channel is; the manifest entry of a model declares the same string
#: (``input_format``) and the loader refuses a model that declares another one.
INPUT_FORMAT = "roi512 bgr-uint8/255 R,G,B in [0,1] + CIELAB a*/32 (float32, HWC)"
INPUT_CHANNELS = 4
#: Heatmap output channel 0: lesion-centre probability; channel 1: lesion radius in ROI px.
OUTPUT_CHANNELS = 2

#: Peak threshold when neither the params nor the model's manifest entry give one.
DEFAULT_THRESHOLD = 0.3

#: After a failed load, wait this long before trying again (a dead S3 costs one timeout per interval).
RETRY_AFTER_S = 30.0


def lesion_input(image_bgr: np.ndarray, lab: np.ndarray) -> np.ndarray:
    """The network input for a face ROI: RGB in [0, 1] and CIELAB a* / :data:`A_SCALE`.

    Parameters
    ----------
    image_bgr : (H, W, 3) uint8 BGR ROI (``ctx.image``).
    lab : (H, W, 3) float32 CIELAB of the same pixels (``ctx.lab``: L* 0-100, a*, b*).

    Returns
    -------
    (H, W, 4) float32, channels R, G, B, a*/A_SCALE. Purely per-pixel, so a crop of the input
    is the input of the crop (training uses crops).
    """
    if image_bgr.shape[:2] != lab.shape[:2]:
        raise ValueError(f"image {image_bgr.shape[:2]} and lab {lab.shape[:2]} differ in size")
    h, w = image_bgr.shape[:2]
    x = np.empty((h, w, INPUT_CHANNELS), np.float32)
    np.multiply(image_bgr[..., ::-1], np.float32(1.0 / 255.0), out=x[..., :3], dtype=np.float32)
    np.multiply(lab[..., 1], np.float32(1.0 / A_SCALE), out=x[..., 3])
    return x


def heatmap_peaks(
    heat: np.ndarray, *, threshold: float, min_separation: int = 1, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Local maxima of a heatmap at or above ``threshold`` (grey dilation, square window).

    Parameters
    ----------
    heat : (h, w) float32 heatmap.
    threshold : minimum peak value.
    min_separation : window radius in heatmap pixels (1 = 3x3 window).
    mask : optional (h, w) uint8/bool, peaks only where > 0.

    Returns
    -------
    ys, xs : int arrays of the peak positions (heatmap pixels), strongest first.
    """
    heat = np.asarray(heat, np.float32)
    size = 2 * int(min_separation) + 1
    level = cv2.dilate(heat, np.ones((size, size), np.uint8))
    peak = (heat >= level) & (heat >= np.float32(threshold))
    if mask is not None:
        peak &= mask > 0
    ys, xs = np.nonzero(peak)
    order = np.argsort(-heat[ys, xs], kind="stable")
    return ys[order], xs[order]


def peak_contrast(
    lab: np.ndarray, xs: np.ndarray, ys: np.ndarray, *, ring: tuple[float, float] = (5.0, 8.0)
) -> np.ndarray:
    """Δa* and ΔL* of each point: the 3x3 mean at the point minus the median of a ring around it.

    Parameters
    ----------
    lab : (H, W, 3) float32 CIELAB.
    xs, ys : integer pixel positions.
    ring : inner and outer ring radius in pixels.

    Returns
    -------
    (N, 2) float64 ``[delta_a, delta_l]``.
    """
    n = len(xs)
    if n == 0:
        return np.zeros((0, 2))
    h, w = lab.shape[:2]
    r = int(np.ceil(ring[1]))
    off = np.arange(-r, r + 1)
    iy = np.clip(np.asarray(ys)[:, None] + off, 0, h - 1)
    ix = np.clip(np.asarray(xs)[:, None] + off, 0, w - 1)
    flat = iy[:, :, None] * w + ix[:, None, :]  # (N, k, k)
    # Rows of the whole (H*W, 3) view: taking from a channel slice would copy the image first.
    patches = np.take(lab.reshape(h * w, 3), flat, axis=0)[..., :2].astype(np.float64)  # (N, k, k, [L*, a*])
    dy, dx = np.meshgrid(off, off, indexing="ij")
    d = np.hypot(dx, dy)
    centre = patches[:, r - 1 : r + 2, r - 1 : r + 2].mean(axis=(1, 2))
    ring_vals = patches[:, (d >= ring[0]) & (d <= ring[1])]  # (N, m, 2)
    sur = np.median(ring_vals, axis=1)
    diff = centre - sur
    return np.column_stack([diff[:, 1], diff[:, 0]])


def lesions_from_heatmap(
    heat: np.ndarray,
    radius: np.ndarray,
    lab: np.ndarray,
    *,
    threshold: float,
    stride: int = OUTPUT_STRIDE,
    min_separation: int = 1,
    max_radius_px: float = 10.0,
) -> np.ndarray:
    """Lesion rows from the network's outputs, in the layout of ``algorithm.detect_lesions``.

    Parameters
    ----------
    heat, radius : (h, w) centre-probability and radius (ROI px) maps, ``h = H / stride``.
    lab : (H, W, 3) float32 CIELAB of the ROI, for Δa*, ΔL* (:func:`peak_contrast`).
    threshold : minimum centre probability.
    stride : ROI pixels per heatmap pixel.
    min_separation : peak window radius in heatmap pixels.
    max_radius_px : radius cap.

    Returns
    -------
    (N, 6) float64 ``[x, y, r, delta_a, delta_l, probability]`` in ROI pixels, most probable first.
    """
    ys, xs = heatmap_peaks(heat, threshold=threshold, min_separation=min_separation)
    if len(xs) == 0:
        return np.zeros((0, 6))
    h, w = lab.shape[:2]
    # A heatmap pixel covers stride x stride ROI pixels: its centre is at (i + 0.5) * stride - 0.5.
    cx = (xs + 0.5) * stride - 0.5
    cy = (ys + 0.5) * stride - 0.5
    px = np.clip(np.round(cx).astype(int), 0, w - 1)
    py = np.clip(np.round(cy).astype(int), 0, h - 1)
    contrast = peak_contrast(lab, px, py)
    r = np.clip(np.asarray(radius, np.float64)[ys, xs], 1.0, max_radius_px)
    return np.column_stack([cx, cy, r, contrast[:, 0], contrast[:, 1], heat[ys, xs].astype(np.float64)])


# -- the model at run time (TFLite via ai_edge_litert; no TensorFlow) -------------------------


@dataclass
class LesionModel:
    """A loaded lesion network: ``run(x)`` maps one (S, S, 4) input to (heat, radius) maps."""

    resolved: ResolvedModel
    input_size: int
    stride: int
    threshold: float | None
    _interpreter: object
    _input: dict
    _output: dict
    _lock: threading.Lock

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:  # an interpreter is not thread-safe
            self._interpreter.set_tensor(self._input["index"], np.ascontiguousarray(x[None], np.float32))
            self._interpreter.invoke()
            out = self._interpreter.get_tensor(self._output["index"])[0]
        return out[..., 0].copy(), out[..., 1].copy()


_MODELS = LoadedModels(RETRY_AFTER_S)


def clear_cache() -> None:
    """Forget loaded models and remembered failures (tests)."""
    _MODELS.clear()


def load_lesion_model(spec: str, *, store: ModelStore | None = None, num_threads: int = 1) -> LesionModel:
    """The lesion network for ``spec`` (e.g. ``"acne-lesions@1"``), loaded once per process.

    The file comes from the model store (sha256-checked). Its manifest entry must declare
    ``input_format`` equal to :data:`INPUT_FORMAT`, and the TFLite input and output shapes must be
    (1, S, S, 4) and (1, S / stride, S / stride, 2). Raises :class:`ModelUnavailable` otherwise.
    """
    store = store or ModelStore.from_env()
    key = (spec, str(store.model_dir), str(store.cache_dir), store.s3_bucket, num_threads)
    return _MODELS.get(key, lambda: _load(store, spec, num_threads))


def _load(store: ModelStore, spec: str, num_threads: int) -> LesionModel:
    resolved = store.resolve(spec)
    entry = store.entry(resolved.name, resolved.version)
    extra = entry.extra if entry is not None else {}
    declared = extra.get("input_format")
    if declared != INPUT_FORMAT:
        raise ModelUnavailable(
            f"its manifest entry declares input_format {declared!r}, but this plugin feeds {INPUT_FORMAT!r}; "
            f"use a model trained by this version of harerun-acne (harerun train acne-lesions)",
            name=resolved.name,
            version=resolved.version,
        )
    t0 = time.perf_counter()
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise ModelUnavailable(
            "ai-edge-litert is not installed (pip install ai-edge-litert)", name=resolved.name, version=resolved.version
        ) from None
    try:
        with native_stderr_to_log():  # the runtime's "INFO: Created ... XNNPACK delegate" line
            interpreter = Interpreter(model_path=str(resolved.path), num_threads=num_threads)
            interpreter.allocate_tensors()
        inp = interpreter.get_input_details()[0]
        out = interpreter.get_output_details()[0]
    except Exception as exc:  # a corrupt file is a model problem, reported as such
        raise ModelUnavailable(
            f"cannot load {resolved.path}: {type(exc).__name__}: {exc}", name=resolved.name, version=resolved.version
        ) from None
    s = int(inp["shape"][1])
    stride = s // max(1, int(out["shape"][1]))
    if tuple(inp["shape"]) != (1, s, s, INPUT_CHANNELS) or tuple(out["shape"]) != (
        1,
        s // stride,
        s // stride,
        OUTPUT_CHANNELS,
    ):
        raise ModelUnavailable(
            f"{resolved.path} takes {tuple(inp['shape'])} and gives {tuple(out['shape'])}; expected "
            f"(1, S, S, {INPUT_CHANNELS}) -> (1, S/stride, S/stride, {OUTPUT_CHANNELS})",
            name=resolved.name,
            version=resolved.version,
        )
    threshold = extra.get("peak_threshold")
    model = LesionModel(
        resolved, s, stride, None if threshold is None else float(threshold), interpreter, inp, out, threading.Lock()
    )
    model.run(np.zeros((s, s, INPUT_CHANNELS), np.float32))  # warm-up inside the load time
    record_load(resolved, (time.perf_counter() - t0) * 1000.0)
    return model


def detect_lesions_net(
    image_bgr: np.ndarray,
    lab: np.ndarray,
    model: LesionModel,
    *,
    threshold: float,
    max_radius_px: float = 10.0,
) -> np.ndarray:
    """Lesions on a ROI with the network: ``[x, y, r, delta_a, delta_l, probability]`` rows.

    A ROI of another size than the network's is resized to it and the lesions mapped back.
    """
    h, w = image_bgr.shape[:2]
    s = model.input_size
    if (h, w) != (s, s):
        img = cv2.resize(image_bgr, (s, s), interpolation=cv2.INTER_AREA)
        lab_in = cv2.resize(lab, (s, s), interpolation=cv2.INTER_AREA)
    else:
        img, lab_in = image_bgr, lab
    heat, radius = model.run(lesion_input(img, lab_in))
    rows = lesions_from_heatmap(
        heat, radius, lab_in, threshold=threshold, stride=model.stride, max_radius_px=max_radius_px * s / w
    )
    if (h, w) != (s, s) and len(rows):
        rows[:, :3] *= w / s
    return rows


def time_network(spec: str = "acne-lesions@1", *, repeats: int = 50) -> dict[str, float]:
    """Median milliseconds, one thread, of the network on a 512 ROI (the astronaut through the
    engine's face stage): the interpreter call, the input, the peaks and the whole detection."""
    from skimage import data as skdata

    from harerun.engine import Engine
    from harerun.face.stage import run_face_stage

    cv2.setNumThreads(1)
    engine = Engine()
    pipe, _ = engine.choose("default", None)
    bgr = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR)
    ctx = run_face_stage(bgr, face_cfg=pipe.spec.face, quality_cfg=pipe.spec.quality, host=engine.host).ctx
    model = load_lesion_model(spec, num_threads=1)
    threshold = model.threshold if model.threshold is not None else DEFAULT_THRESHOLD
    x = lesion_input(ctx.image, ctx.lab)
    heat, radius = model.run(x)
    steps = {
        "input": lambda: lesion_input(ctx.image, ctx.lab),
        "network": lambda: model.run(x),
        "peaks": lambda: lesions_from_heatmap(heat, radius, ctx.lab, threshold=threshold),
        "detect_lesions_net": lambda: detect_lesions_net(ctx.image, ctx.lab, model, threshold=threshold),
    }
    out = {}
    for name, fn in steps.items():
        fn()
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            ts.append((time.perf_counter() - t0) * 1e3)
        out[name] = float(np.median(ts))
    return out


if __name__ == "__main__":  # python -m harerun_acne.lesion_net [spec]: one-thread timings
    import sys

    spec = sys.argv[1] if len(sys.argv) > 1 else "acne-lesions@1"
    for name, ms in time_network(spec).items():
        print(f"{name:20s} {ms:6.2f} ms (median of 50, one thread)")
