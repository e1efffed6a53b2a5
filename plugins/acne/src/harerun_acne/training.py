"""Train the lesion network: ``harerun train acne-lesions --data DIR --out models/acne-lesions-1.tflite``.

Train/serve parity: every photo goes through the engine's own face stage (default pipeline's
``face`` and ``quality`` blocks), exactly as :meth:`harerun.engine.Engine.run` does, and the
network is trained on the aligned 512 px ROI the ``acne`` plugin sees, with the input built by
:func:`harerun_acne.lesion_net.lesion_input` from the ROI and its CIELAB computed by
:class:`harerun.detector.FaceContext` itself. Annotated circles (photo pixels) are mapped into
the ROI with the inverse of ``ctx.roi_to_image``. Photos without a face are skipped and counted.

The ROIs and circles of each split are cached in ``~/.cache/harerun/train/`` (``HARERUN_CACHE_DIR``'s
parent when set), keyed by a hash of the face-stage code, the face/quality config, this module's
cache version and the photo list.

Split: ``train`` minus about 100 photos held out by ``group`` (labels.csv) is fitted; the held-out
photos pick the epoch and the peak threshold (F1-optimal, matched as ``bench/acne.py`` does:
centre inside the circle or within 10 photo px, one-to-one). ``val`` is only reported.
TensorFlow is imported inside :func:`train`, never by the plugin.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from harerun_acne.lesion_net import (
    INPUT_CHANNELS,
    INPUT_FORMAT,
    INPUT_SIZE,
    OUTPUT_CHANNELS,
    OUTPUT_STRIDE,
    lesion_input,
    lesions_from_heatmap,
)

#: Bump when the cached content changes meaning.
CACHE_VERSION = 1
MATCH_PX = 10.0
_FACE_SRC = Path(__import__("harerun.face", fromlist=["x"]).__file__).parent


# -- the engine's ROI, as the plugin sees it ---------------------------------------------------


def face_pipeline():
    """The engine and the default pipeline whose face stage makes the training ROIs."""
    from harerun.engine import Engine

    engine = Engine()
    pipe, _ = engine.choose("default", None)
    return engine, pipe


def roi_lab(roi_bgr: np.ndarray) -> np.ndarray:
    """CIELAB of a ROI exactly as the engine's context computes it (``FaceContext.lab``)."""
    from harerun.detector import FaceContext

    ctx = FaceContext(
        image=roi_bgr,
        skin_mask=np.zeros(roi_bgr.shape[:2], np.uint8),
        zones={},
        roi_to_image=np.eye(2, 3),
        face_box=[0, 0, 1, 1],
    )
    return ctx.lab


def training_input(roi_bgr: np.ndarray) -> np.ndarray:
    """The network input of a (cropped, augmented) ROI: the plugin's own input function."""
    return lesion_input(roi_bgr, roi_lab(roi_bgr))


@dataclass
class RoiSample:
    roi: np.ndarray  # (S, S, 3) uint8 BGR
    roi_to_image: np.ndarray  # (2, 3)
    face_skin: np.ndarray  # (S, S) uint8
    circles_roi: np.ndarray  # (K, 3) annotated circles in ROI px (all of them, also outside the ROI)


def roi_sample(bgr: np.ndarray, circles: np.ndarray, engine, pipe, scale: float = 1.0) -> RoiSample | None:
    """Run the engine's face stage on a photo (``scale``: photo pixels per pixel of ``bgr``; the
    circles are in photo pixels); None when it finds no face."""
    st = engine.face_stage(bgr, pipe, scale=scale)
    if st.ctx is None:
        return None
    ctx = st.ctx
    inv = cv2.invertAffineTransform(np.asarray(ctx.roi_to_image, np.float64))
    c = np.asarray(circles, np.float64).reshape(-1, 3)
    xy = c[:, :2] @ inv[:, :2].T + inv[:, 2]
    scale = float(np.sqrt(abs(np.linalg.det(inv[:, :2]))))
    return RoiSample(
        ctx.image.copy(),
        np.asarray(ctx.roi_to_image, np.float64),
        ctx.face_skin.copy(),
        np.column_stack([xy, c[:, 2] * scale]),
    )


# -- the cache ---------------------------------------------------------------------------------


@dataclass
class SplitCache:
    names: list[str]
    groups: list[str]
    grades: np.ndarray
    rois: np.ndarray  # (N, S, S, 3) uint8
    roi_to_image: np.ndarray  # (N, 2, 3)
    face_skin: np.ndarray  # (N, S, S) uint8
    circles_roi: list[np.ndarray]
    circles_photo: list[np.ndarray]
    skipped: list[str] = field(default_factory=list)  # no face found


def cache_dir() -> Path:
    base = os.environ.get("HARERUN_CACHE_DIR")
    return (Path(base).expanduser().parent if base else Path("~/.cache/harerun").expanduser()) / "train"


def _cache_key(data: Path, rows: list[dict], pipe) -> str:
    h = hashlib.sha256()
    h.update(f"acne-lesions cache v{CACHE_VERSION} {INPUT_SIZE}".encode())
    for p in sorted(_FACE_SRC.rglob("*.py")):
        h.update(p.read_bytes())
    h.update(pipe.spec.face.model_dump_json().encode())
    h.update(pipe.spec.quality.model_dump_json().encode())
    for r in rows:
        st = (data / "images" / r["image"]).stat()
        h.update(f"{r['image']} {st.st_size} {st.st_mtime_ns}".encode())
    h.update(hashlib.sha256((data / "lesions.json").read_bytes()).digest())
    return h.hexdigest()[:16]


def read_rows(data: Path, split: str, limit: int | None = None) -> list[dict]:
    labels = data / "labels.csv"
    if not labels.is_file():
        raise FileNotFoundError(
            f"{labels} not found; --data must be a folder with labels.csv, images/ and lesions.json"
        )
    with open(labels, newline="") as f:
        rows = sorted((r for r in csv.DictReader(f) if r.get("split") == split), key=lambda r: r["image"])
    if limit:
        rows = rows[:limit]
    if not rows:
        raise ValueError(f"{labels} has no rows with split == '{split}'")
    return rows


def load_split(data: Path, split: str, *, limit: int | None = None, log=print) -> SplitCache:
    """The split's ROIs and circles through the engine's face stage, from the cache when it is there."""
    from harerun.engine import photo_scale

    rows = read_rows(data, split, limit)
    engine, pipe = face_pipeline()
    if pipe.spec.face.roi_size != INPUT_SIZE:
        raise ValueError(
            f"the default pipeline's roi_size is {pipe.spec.face.roi_size}; the network takes {INPUT_SIZE}"
        )
    path = cache_dir() / f"acne-lesions-{split}-{len(rows)}-{_cache_key(data, rows, pipe)}.npz"
    if path.is_file():
        log(f"{split}: cached ROIs {path}")
        z = np.load(path, allow_pickle=False)
        meta = json.loads(str(z["meta"]))
        off = z["circle_offsets"]
        off_p = z["photo_offsets"]
        return SplitCache(
            meta["names"],
            meta["groups"],
            z["grades"],
            z["rois"],
            z["roi_to_image"],
            z["face_skin"],
            [z["circles_roi"][a:b] for a, b in zip(off[:-1], off[1:], strict=True)],
            [z["circles_photo"][a:b] for a, b in zip(off_p[:-1], off_p[1:], strict=True)],
            meta["skipped"],
        )
    lesions = json.loads((data / "lesions.json").read_text())
    names, groups, grades, rois, affines, skins, c_roi, c_photo, skipped = [], [], [], [], [], [], [], [], []
    t0 = time.perf_counter()
    for i, r in enumerate(rows):
        bgr, info = engine.decode(str(data / "images" / r["image"]))  # the engine's own decoding
        circles = np.asarray(lesions.get(r["image"], []), np.float64).reshape(-1, 3)
        s = roi_sample(bgr, circles, engine, pipe, photo_scale(bgr, info))
        if s is None:
            skipped.append(r["image"])
            continue
        names.append(r["image"])
        groups.append(r["group"])
        grades.append(int(r["grade"]))
        rois.append(s.roi)
        affines.append(s.roi_to_image)
        skins.append(s.face_skin)
        c_roi.append(s.circles_roi.astype(np.float32))
        c_photo.append(circles.astype(np.float32))
        if (i + 1) % 100 == 0:
            log(f"{split}: face stage {i + 1}/{len(rows)} ({time.perf_counter() - t0:.0f} s)")
    off = np.cumsum([0] + [len(c) for c in c_roi])
    cache = SplitCache(
        names, groups, np.asarray(grades), np.stack(rois), np.stack(affines), np.stack(skins), c_roi, c_photo, skipped
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part.npz")
    np.savez(
        tmp,
        rois=cache.rois,
        roi_to_image=cache.roi_to_image,
        face_skin=cache.face_skin,
        grades=cache.grades,
        circles_roi=np.concatenate(c_roi).reshape(-1, 3),
        circle_offsets=off,
        circles_photo=np.concatenate(c_photo).reshape(-1, 3),
        photo_offsets=off,
        meta=json.dumps({"names": names, "groups": groups, "skipped": skipped}),
    )
    os.replace(tmp, path)
    log(f"{split}: {len(names)} ROIs, {len(skipped)} photos without a face, cached in {path}")
    return cache


# -- targets, augmentation, evaluation (numpy) -----------------------------------------------


def heatmap_target(circles: np.ndarray, size: int, *, stride: int = OUTPUT_STRIDE, sigma: float = 1.5):
    """CenterNet targets for a ``size`` x ``size`` ROI crop: a Gaussian (``sigma`` output px) per
    lesion centre, 1 exactly at the centre's output pixel; the radius (ROI px) at that pixel and
    a mask of those pixels.

    Returns (g, g) heat, (g, g) radius, (g, g) mask, ``g = size // stride``.
    """
    g = size // stride
    heat = np.zeros((g, g), np.float32)
    radius = np.zeros((g, g), np.float32)
    mask = np.zeros((g, g), np.float32)
    rr = int(np.ceil(3 * sigma))
    off = np.arange(-rr, rr + 1)
    ker = np.exp(-(off[:, None] ** 2 + off[None, :] ** 2) / (2 * sigma * sigma)).astype(np.float32)
    for x, y, r in np.asarray(circles, np.float64).reshape(-1, 3):
        cx, cy = int(np.floor(x / stride)), int(np.floor(y / stride))  # ROI pixel x lies in cell x // stride
        if not (0 <= cx < g and 0 <= cy < g):
            continue
        y0, y1, x0, x1 = max(0, cy - rr), min(g, cy + rr + 1), max(0, cx - rr), min(g, cx + rr + 1)
        np.maximum(
            heat[y0:y1, x0:x1], ker[y0 - cy + rr : y1 - cy + rr, x0 - cx + rr : x1 - cx + rr], out=heat[y0:y1, x0:x1]
        )
        radius[cy, cx] = r
        mask[cy, cx] = 1.0
    return heat, radius, mask


def augment_crop(roi: np.ndarray, circles: np.ndarray, rng: np.random.Generator, crop: int):
    """A random ``crop`` square of the ROI (usually around a lesion), flipped and colour-jittered.

    The jitter acts on the uint8 BGR pixels, before the input (and its a*) is computed from them.
    """
    s = roi.shape[0]
    c = circles
    inside = c[(c[:, 0] >= 0) & (c[:, 0] < s) & (c[:, 1] >= 0) & (c[:, 1] < s)] if len(c) else c
    if len(inside) and rng.random() < 0.7:
        x, y = inside[rng.integers(len(inside)), :2]
        x0 = int(np.clip(x - rng.integers(16, crop - 16), 0, s - crop))
        y0 = int(np.clip(y - rng.integers(16, crop - 16), 0, s - crop))
    else:
        x0, y0 = (int(v) for v in rng.integers(0, s - crop + 1, size=2))
    x0 -= x0 % OUTPUT_STRIDE
    y0 -= y0 % OUTPUT_STRIDE
    img = roi[y0 : y0 + crop, x0 : x0 + crop]
    cc = c - [x0, y0, 0] if len(c) else c.reshape(0, 3)
    if rng.random() < 0.5:
        img = img[:, ::-1]
        cc = cc.copy()
        if len(cc):
            cc[:, 0] = crop - 1 - cc[:, 0]
    gain = rng.uniform(0.85, 1.15) * rng.uniform(0.95, 1.05, size=3)
    bias = rng.uniform(-12, 12)
    img = np.clip(img.astype(np.float32) * gain.astype(np.float32) + np.float32(bias), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img), cc


def match_count(detected: np.ndarray, annotated: np.ndarray, tol: float = MATCH_PX) -> int:
    """One-to-one matches, the rule of ``bench/acne.py``: centre inside the circle or within ``tol`` px."""
    from scipy.optimize import linear_sum_assignment

    if len(detected) == 0 or len(annotated) == 0:
        return 0
    d = np.linalg.norm(detected[:, None, :2] - annotated[None, :, :2], axis=2)
    ok = d <= np.maximum(annotated[None, :, 2], tol)
    rows, cols = linear_sum_assignment(np.where(ok, d, 1e6))
    return int(np.count_nonzero(ok[rows, cols]))


def product_detections(heat, radius, roi, skin, roi_to_image, *, threshold: float) -> np.ndarray:
    """Detections as the plugin reports them (on the visible face skin), in photo px, with probability."""
    rows = lesions_from_heatmap(heat, radius, roi_lab(roi), threshold=threshold)
    rows = rows[skin[rows[:, 1].astype(int), rows[:, 0].astype(int)] > 0] if len(rows) else rows
    if not len(rows):
        return np.zeros((0, 4))
    xy = rows[:, :2] @ roi_to_image[:, :2].T + roi_to_image[:, 2]
    return np.column_stack([xy, rows[:, 2], rows[:, 5]])


def sweep_thresholds(per_photo: list[tuple[np.ndarray, np.ndarray]], thresholds, *, missed: int = 0) -> list[dict]:
    """Pooled P/R/F1 per threshold; ``per_photo`` = (detections [x, y, r, p] in photo px, annotated circles).
    ``missed``: annotated lesions of photos without a face (false negatives at every threshold)."""
    out = []
    for t in thresholds:
        tp = fp = 0
        fn = missed
        for det, ann in per_photo:
            d = det[det[:, 3] >= t]
            m = match_count(d, ann)
            tp, fp, fn = tp + m, fp + len(d) - m, fn + len(ann) - m
        p, r = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
        out.append(
            {
                "threshold": round(float(t), 3),
                "precision": p,
                "recall": r,
                "f1": 2 * p * r / max(p + r, 1e-9),
                "detections": tp + fp,
            }
        )
    return out


def holdout_split(cache: SplitCache, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (fit, held out): whole groups, shuffled with ``seed``, until ``n`` photos are held out."""
    groups = sorted(set(cache.groups))
    rng = np.random.default_rng(seed)
    rng.shuffle(groups)
    held: set[str] = set()
    count = 0
    by_group: dict[str, int] = {}
    for g in cache.groups:
        by_group[g] = by_group.get(g, 0) + 1
    for g in groups:
        if count >= n:
            break
        held.add(g)
        count += by_group[g]
    mask = np.array([g in held for g in cache.groups])
    return np.nonzero(~mask)[0], np.nonzero(mask)[0]


# -- the network (Keras 3; only imported for training) ---------------------------------------


def build_network(keras, *, input_size: int | None = None, width: int = 16):
    """Encoder-decoder FCN: stride-2 convs to 1/16, bilinear upsampling with added skips back to
    1/2; heads: centre heatmap (sigmoid) and radius (ROI px). Separable convs at high resolution
    keep it near 0.3 GMAC on a 512 ROI."""
    L = keras.layers
    w1, w2, w3, w4 = width, 2 * width, 3 * width, 4 * width
    x_in = keras.Input((input_size, input_size, INPUT_CHANNELS), name="roi")

    def conv(x, c, stride=1, k=3):
        x = L.Conv2D(c, k, strides=stride, padding="same", use_bias=False)(x)
        x = L.BatchNormalization()(x)
        return L.ReLU()(x)

    def sep(x, c):
        x = L.SeparableConv2D(c, 3, padding="same", use_bias=False)(x)
        x = L.BatchNormalization()(x)
        return L.ReLU()(x)

    def up_add(x, skip, c):
        x = L.UpSampling2D(2, interpolation="bilinear")(x)
        x = L.Conv2D(c, 1, use_bias=False)(x)
        x = L.BatchNormalization()(x)
        return L.ReLU()(L.Add()([x, skip]))

    e1 = sep(conv(x_in, w1, 2), w1)  # 1/2
    e2 = sep(conv(e1, w2, 2), w2)  # 1/4
    e3 = sep(conv(e2, w3, 2), w3)  # 1/8
    e4 = sep(conv(e3, w4, 2), w4)  # 1/16
    d3 = sep(up_add(e4, e3, w3), w3)
    d2 = sep(up_add(d3, e2, w2), w2)
    d1 = sep(up_add(d2, e1, w1), w1)
    heat = L.Conv2D(1, 1, activation="sigmoid", bias_initializer=keras.initializers.Constant(-4.6), name="heat")(d1)
    radius = L.Conv2D(1, 1, bias_initializer=keras.initializers.Constant(3.0), name="radius")(d1)
    out = L.Concatenate(name="heat_radius")([heat, radius])
    return keras.Model(x_in, out, name="acne_lesions")


@dataclass
class TrainConfig:
    data: Path
    out: Path
    epochs: int = 60
    steps_per_epoch: int = 40
    batch_size: int = 16
    crop: int = 256
    width: int = 16
    learning_rate: float = 2e-3
    sigma: float = 1.5
    radius_weight: float = 0.05
    holdout: int = 100
    eval_every: int = 5
    max_minutes: float | None = None  # wall-clock guard: stop after the epoch that crosses it (evaluated)
    seed: int = 0
    threads: int = 2
    limit: int | None = None
    notes: list[str] = field(default_factory=list)


def _configure_tf(threads: int, seed: int):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass
    import keras

    keras.utils.set_random_seed(seed)
    with contextlib.suppress(Exception):
        tf.config.experimental.enable_op_determinism()
    return tf, keras


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def to_tflite(keras, tf, model, input_size: int = INPUT_SIZE) -> bytes:
    """Float32 TFLite flatbuffer of ``model``'s weights on a fixed (1, S, S, 4) input."""
    fixed = build_network(keras, input_size=input_size, width=model.get_layer(index=1).filters)
    fixed.set_weights(model.get_weights())
    with contextlib.redirect_stdout(io.StringIO()):
        return tf.lite.TFLiteConverter.from_keras_model(fixed).convert()


def train(cfg: TrainConfig, *, log=print) -> dict:
    """Fit, choose the epoch and the threshold on held-out train photos, report val, write the model."""
    t_start = time.perf_counter()
    tr = load_split(cfg.data, "train", limit=cfg.limit, log=log)
    va = load_split(cfg.data, "val", limit=cfg.limit, log=log)
    t_cache = time.perf_counter() - t_start
    tf, keras = _configure_tf(cfg.threads, cfg.seed)
    fit_idx, held_idx = holdout_split(tr, min(cfg.holdout, len(tr.names) // 5), cfg.seed)
    log(
        f"train: {len(tr.names)} ROIs ({len(tr.skipped)} without a face) -> fit {len(fit_idx)}, held out "
        f"{len(held_idx)} (by group); val: {len(va.names)} ROIs ({len(va.skipped)} without a face)"
    )

    model = build_network(keras, width=cfg.width)
    total = cfg.epochs * cfg.steps_per_epoch
    sched = keras.optimizers.schedules.CosineDecay(cfg.learning_rate, decay_steps=total, alpha=0.02, warmup_target=None)
    opt = keras.optimizers.Adam(learning_rate=sched)

    @tf.function(reduce_retracing=True)
    def train_step(x, heat_t, rad_t, mask_t):
        with tf.GradientTape() as tape:
            out = model(x, training=True)
            p = tf.clip_by_value(out[..., 0], 1e-4, 1 - 1e-4)
            pos = tf.cast(tf.equal(heat_t, 1.0), tf.float32)
            # CenterNet focal loss (alpha 2, beta 4), normalised by the number of lesions
            pos_loss = -tf.math.log(p) * tf.square(1 - p) * pos
            neg_loss = -tf.math.log(1 - p) * tf.square(p) * tf.pow(1 - heat_t, 4) * (1 - pos)
            n = tf.maximum(tf.reduce_sum(pos), 1.0)
            focal = (tf.reduce_sum(pos_loss) + tf.reduce_sum(neg_loss)) / n
            rad = tf.reduce_sum(tf.abs(out[..., 1] - rad_t) * mask_t) / tf.maximum(tf.reduce_sum(mask_t), 1.0)
            loss = focal + cfg.radius_weight * rad
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return focal, rad

    @tf.function(reduce_retracing=True)
    def predict_step(x):
        return model(x, training=False)

    def predict_split(cache: SplitCache, idx) -> list[tuple[np.ndarray, np.ndarray]]:
        per_photo = []
        for start in range(0, len(idx), 4):
            chunk = idx[start : start + 4]
            x = np.stack([training_input(cache.rois[i]) for i in chunk])
            out = predict_step(tf.constant(x)).numpy()
            for j, i in enumerate(chunk):
                det = product_detections(
                    out[j, ..., 0],
                    out[j, ..., 1],
                    cache.rois[i],
                    cache.face_skin[i],
                    cache.roi_to_image[i],
                    threshold=0.05,
                )
                per_photo.append((det, cache.circles_photo[i].astype(np.float64)))
        return per_photo

    thresholds = np.round(np.arange(0.05, 0.81, 0.025), 3)
    rng = np.random.default_rng(cfg.seed)
    history, best, best_weights = [], None, None
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        f_sum = r_sum = 0.0
        for _ in range(cfg.steps_per_epoch):
            xs, hs, rs, ms = [], [], [], []
            for i in rng.choice(fit_idx, cfg.batch_size):
                img, cc = augment_crop(tr.rois[i], tr.circles_roi[i], rng, cfg.crop)
                xs.append(training_input(img))
                h, r, m = heatmap_target(cc, cfg.crop, sigma=cfg.sigma)
                hs.append(h)
                rs.append(r)
                ms.append(m)
            f, r = train_step(
                tf.constant(np.stack(xs)),
                tf.constant(np.stack(hs)),
                tf.constant(np.stack(rs)),
                tf.constant(np.stack(ms)),
            )
            f_sum += float(f)
            r_sum += float(r)
        rec = {
            "epoch": epoch,
            "focal": round(f_sum / cfg.steps_per_epoch, 4),
            "radius_l1": round(r_sum / cfg.steps_per_epoch, 3),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        out_of_time = cfg.max_minutes is not None and time.perf_counter() - t_start > 60 * cfg.max_minutes
        if epoch % cfg.eval_every == 0 or epoch == cfg.epochs or out_of_time:
            sweep = sweep_thresholds(predict_split(tr, held_idx), thresholds)
            top = max(sweep, key=lambda s: s["f1"])
            rec["heldout"] = top
            improved = best is None or top["f1"] > best["f1"]
            if improved:
                best = dict(top, epoch=epoch, sweep=sweep)
                best_weights = model.get_weights()
            log(
                f"epoch {epoch}/{cfg.epochs}: focal {rec['focal']:.3f} radius {rec['radius_l1']:.2f}  held-out F1 "
                f"{top['f1']:.3f} (P {top['precision']:.3f} R {top['recall']:.3f} at {top['threshold']})"
                f"{'  *best' if improved else ''}  ({time.perf_counter() - t_start:.0f} s)"
            )
        else:
            log(
                f"epoch {epoch}/{cfg.epochs}: focal {rec['focal']:.3f} radius {rec['radius_l1']:.2f}  ({rec['seconds']} s)"
            )
        history.append(rec)
        sys.stdout.flush()
        if out_of_time and epoch < cfg.epochs:
            log(f"stopping after epoch {epoch}: the {cfg.max_minutes} min budget is spent")
            break

    model.set_weights(best_weights)
    threshold = best["threshold"]
    # val is only reported; its photos without a face count their lesions as missed
    missed = sum(
        len(c) for n, c in zip(*_all_photo_circles(cfg.data, "val", cfg.limit), strict=True) if n in va.skipped
    )
    val_sweep = sweep_thresholds(predict_split(va, np.arange(len(va.names))), [threshold], missed=missed)[0]
    train_seconds = time.perf_counter() - t_start

    out = cfg.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(to_tflite(keras, tf, model))
    sha = _sha256(out)
    out.with_name(out.name + ".sha256").write_text(f"{sha}  {out.name}\n")
    metrics = {
        "task": "acne-lesions",
        "input_format": INPUT_FORMAT,
        "input_shape": [1, INPUT_SIZE, INPUT_SIZE, INPUT_CHANNELS],
        "output_shape": [1, INPUT_SIZE // OUTPUT_STRIDE, INPUT_SIZE // OUTPUT_STRIDE, OUTPUT_CHANNELS],
        "file": {"name": out.name, "sha256": sha, "size_bytes": out.stat().st_size},
        "params": int(model.count_params()),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(cfg).items()},
        "photos": {
            "train_fit": len(fit_idx),
            "train_heldout": len(held_idx),
            "train_no_face": len(tr.skipped),
            "val": len(va.names),
            "val_no_face": len(va.skipped),
            "train_circles_fit": int(sum(len(tr.circles_roi[i]) for i in fit_idx)),
        },
        "peak_threshold": threshold,
        "best_epoch": best["epoch"],
        "epochs_run": len(history),
        "heldout": {k: best[k] for k in ("precision", "recall", "f1", "threshold")},
        "heldout_sweep": best["sweep"],
        "val": {k: val_sweep[k] for k in ("precision", "recall", "f1")},
        "val_lesions_missed_no_face": int(missed),
        "history": history,
        "cache_seconds": round(t_cache, 1),
        "train_seconds": round(train_seconds, 1),
        "environment": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
            "opencv": cv2.__version__,
            "machine": platform.machine(),
            "threads": cfg.threads,
        },
        "notes": list(cfg.notes),
    }
    out.with_name(out.stem + ".metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    out.with_name(out.stem + ".md").write_text(model_card(metrics))
    log(
        f"best epoch {best['epoch']}: held-out F1 {best['f1']:.3f} at threshold {threshold}; val "
        f"P {val_sweep['precision']:.3f} R {val_sweep['recall']:.3f} F1 {val_sweep['f1']:.3f}"
    )
    log(
        f"wrote {out} ({out.stat().st_size:,} B, sha256 {sha}), {out.stem}.metrics.json and {out.stem}.md "
        f"in {train_seconds:.0f} s"
    )
    log("manifest entry for models/models.yaml:")
    log(
        f"- name: acne-lesions\n  version: 'N'\n  file: {out.name}\n  sha256: {sha}\n  size_bytes: {out.stat().st_size}\n"
        f"  input_format: '{INPUT_FORMAT}'\n  peak_threshold: {threshold}"
    )
    return metrics


def _all_photo_circles(data: Path, split: str, limit: int | None):
    lesions = json.loads((data / "lesions.json").read_text())
    rows = read_rows(data, split, limit)
    return [r["image"] for r in rows], [lesions.get(r["image"], []) for r in rows]


def model_card(m: dict) -> str:
    """A markdown model card (data, split, network, training, metrics, limits, licence) from the metrics dict."""
    c = m["config"]
    ph = m["photos"]
    h, v = m["heldout"], m["val"]
    sweep = "\n".join(
        f"| {s['threshold']} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} |"
        for s in m["heldout_sweep"][::2]
    )
    evals = "\n".join(
        f"| {r['epoch']} | {r['focal']:.3f} | {r['heldout']['f1']:.3f} | {r['heldout']['threshold']} |"
        for r in m["history"]
        if "heldout" in r
    )
    env = m["environment"]
    return f"""# Model card: acne-lesions ({m["file"]["name"]})

Acne lesion centres on the engine's aligned face ROI, for the `acne` detector plugin
(`plugins/acne`, `method: net`, the default). Trained with `harerun train acne-lesions`
(`harerun_acne.training`).

| file | bytes | sha256 |
|---|---|---|
| `{m["file"]["name"]}` | {m["file"]["size_bytes"]:,} | `{m["file"]["sha256"]}` |

## Input and output (`network_data_format`)

- Input `roi`: float32 {m["input_shape"]}: the engine's aligned 512x512 face ROI (`ctx.image`, default
  pipeline's face stage), channels R, G, B in [0, 1] (uint8 / 255) and CIELAB a* / 32 (from `ctx.lab`).
  Declared as `input_format: '{m["input_format"]}'` in `models/models.yaml`; the plugin refuses a model
  that declares anything else. Built by `harerun_acne.lesion_net.lesion_input`, the one function
  training and serving share.
- Output: float32 {m["output_shape"]} at 1/2 resolution: channel 0 the lesion-centre probability
  (heatmap pixel (i, j) covers ROI pixels 2j..2j+1, 2i..2i+1), channel 1 the lesion radius in ROI px.
  Lesions are the 3x3 local maxima of channel 0 at or above `peak_threshold: {m["peak_threshold"]}` (manifest).

## Network

Fully convolutional encoder-decoder ({m["params"]:,} parameters, width {c["width"]}): a stride-2 3x3 conv
then a separable 3x3 conv at each of 1/2, 1/4, 1/8, 1/16; bilinear upsampling with 1x1-projected,
added skips back to 1/2; 1x1 heads. Batch norm (folded into the convolutions by the TFLite
converter). No pretrained weights. Float32 TFLite, run with `ai_edge_litert` on one thread.

## Data and split

ACNE04 photos (`../shared/data/acne`: 512x512 letterboxed clinical close-ups, grades from ACNE04,
lesion circles from acne04v2). Each photo went through the engine's own face stage (default
pipeline); the circles were mapped into the ROI with the inverse of `ctx.roi_to_image`.
Photos without a face are skipped: {ph["train_no_face"]} in train, {ph["val_no_face"]} in val.

- fit: {ph["train_fit"]} `train` photos ({ph["train_circles_fit"]:,} circles);
- held out: {ph["train_heldout"]} `train` photos, whole `group`s (likely same patient) chosen with seed {c["seed"]}:
  they picked the epoch and the peak threshold (F1-optimal);
- `val` ({ph["val"]} photos, group-disjoint from train): reported only, never used for a choice.

## Training

CenterNet targets (Zhou et al. 2019): a Gaussian (sigma {c["sigma"]} output px) at each lesion centre,
focal loss (alpha 2, beta 4) plus {c["radius_weight"]} x L1 on the radius at the centres. Random {c["crop"]}x{c["crop"]}
crops of the ROI (70 % around an annotated lesion), horizontal flips, brightness / contrast / colour
jitter on the uint8 pixels before the input is computed. Adam, lr {c["learning_rate"]} with cosine decay,
batch {c["batch_size"]}, {c["epochs"]} epochs x {c["steps_per_epoch"]} steps, seed {c["seed"]}, deterministic TF ops,
{env["threads"]} CPU threads (TensorFlow {env["tensorflow"]}, Keras {env["keras"]}); {m.get("epochs_run", c["epochs"])} epochs run. Face stage (or loading
its cache) {m["cache_seconds"]:.0f} s; training {m["train_seconds"] / 60:.1f} min in all.

## Results

Lesion matching as `bench/acne.py`: a detection matches an annotated circle when its centre is inside
the circle or within 10 photo px, one-to-one (Hungarian); counts pooled over photos. Detections are
counted as the plugin reports them: on the visible face skin (`ctx.face_skin`), mapped to photo px;
all annotated circles of the photo count (those outside the ROI or face are misses).

| set | photos | precision | recall | F1 |
|---|---|---|---|---|
| held-out train (chose epoch {m["best_epoch"]} and threshold {h["threshold"]}) | {ph["train_heldout"]} | {h["precision"]:.3f} | {h["recall"]:.3f} | {h["f1"]:.3f} |
| `val` (reported only) | {ph["val"]} | {v["precision"]:.3f} | {v["recall"]:.3f} | **{v["f1"]:.3f}** |

Held-out evaluations during training:

| epoch | focal loss | held-out F1 | at threshold |
|---|---|---|---|
{evals}

Threshold sweep on the held-out photos (best epoch):

| threshold | P | R | F1 |
|---|---|---|---|
{sweep}

Per-epoch figures: `{Path(m["file"]["name"]).stem}.metrics.json`.

## Limits

- Lesions are tiny in the ROI (median radius about 3 px); the annotations mark many faint, flat lesions
  that this network does not separate reliably from pores, freckles and skin texture at this resolution.
- ACNE04 grades depend on more than the count; the count only partly tracks the grade.
- Domain: clinical close-ups of mostly East-Asian patients under clinic light, 3/4 and side views.
  Expect a domain gap on selfies, other skin tones and phone cameras. Not a medical device.
- Trained from scratch in a CPU budget of minutes on {ph["train_fit"]} photos; the held-out evaluations above
  show how far the schedule got.

## Licence

Weights: Apache-2.0, like the project code. They were trained on ACNE04 photos (Wu et al., ICCV 2019),
released for academic / research use only, with acne04v2 lesion annotations (Gazeau et al., MICCAI
2024, no licence file); check those terms before any commercial use. The photos are of real patients;
no training data is included in this repository.
"""
