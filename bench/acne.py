"""Acne detector on real photos: lesion precision/recall/F1 and count-vs-grade Spearman.

Runs the ``acne`` detector on the ACNE04 close-ups in ``$HARERUN_SHARED/data/acne`` (default
``<repo>/../shared``). Each 512x512 letterboxed photo is used directly as the ROI, with the
skin mask of :func:`photo_skin_mask` (the core's skin-colour classifier, cleaned) that drops
the black bars and the background, and no zone layout (``zones={}``: the canonical frontal
zones do not fit 3/4 and profile views, so the whole skin mask is analysed). Markers come back
in original-photo coordinates, so the same matching works on results from the engine.

Matching: a detection matches an annotated circle when its centre lies inside the circle or
within 10 px of its centre; one-to-one (Hungarian assignment on distance, scipy). Precision,
recall and F1 are pooled over all photos of the split. Spearman's rho (scipy) relates the
detected lesion count to the dermatologist grade in ``labels.csv``.

Tune on ``--split train``; report on ``--split val`` (the default). The photos are 3/4 or
profile views, so the detector runs with ``half_faces_in_roi=1`` (one half face visible).

Also prints the median run time of the acne, pores and dark_spots detectors on a 512 ROI
with ``cv2.setNumThreads(1)``.

    .venv/bin/python bench/acne.py                       # val figures + timings
    .venv/bin/python bench/acne.py --split train --no-timing --param min_probability=0.2
    .venv/bin/python bench/acne.py --fit                  # refit the candidate filter on train
    .venv/bin/python bench/acne.py --engine --no-timing   # through the engine's face stage and ROI
    .venv/bin/python bench/acne.py --engine --no-timing --param restrict_to_zones=false
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import yaml
from scipy.optimize import linear_sum_assignment
from scipy.stats import spearmanr

from harerun.face.skin import classify_skin_pixels
from harerun.testing import make_context
from harerun_acne.plugin import AcneDetector

REPO = Path(__file__).resolve().parent.parent
MATCH_PX = 10.0


def shared_dir() -> Path:
    path = Path(os.environ.get("HARERUN_SHARED", REPO.parent / "shared"))
    data = path / "data" / "acne"
    if not (data / "labels.csv").is_file():
        sys.exit(f"acne data not found at {data}: set HARERUN_SHARED to the folder holding data/acne/")
    return data


def photo_skin_mask(image: np.ndarray, *, min_luma: int = 40) -> np.ndarray:
    """Skin mask of a photo used directly as the ROI (no face stage, so no face-adapted mask).

    The core's skin-colour classifier (``harerun.face.skin.classify_skin_pixels``: Chai & Ngan's
    YCrCb box) without pixels darker than ``min_luma`` (letterbox bars, hair), opened with a 5 px
    and closed with a 9 px ellipse (specks out, lesions in). The DoG candidate filter
    (``--fit``) was fit on candidates from this mask, and the README's photo-as-ROI figures use it.
    """
    mask = classify_skin_pixels(image)
    mask[cv2.cvtColor(image, cv2.COLOR_BGR2YCrCb)[..., 0] < min_luma] = 0
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    return cv2.morphologyEx(mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9)))


def spread(rows: list, limit: int | None) -> list:
    """``limit`` rows evenly spread over ``rows`` (sorted by name, so over the grades); all when None."""
    if not limit or limit >= len(rows):
        return rows
    return [rows[i] for i in np.linspace(0, len(rows) - 1, limit).round().astype(int)]


def match(detected: np.ndarray, annotated: np.ndarray, tol: float = MATCH_PX) -> int:
    """Number of one-to-one matches: centre inside the annotated circle or within ``tol`` px."""
    if len(detected) == 0 or len(annotated) == 0:
        return 0
    d = np.linalg.norm(detected[:, None, :2] - annotated[None, :, :2], axis=2)
    ok = d <= np.maximum(annotated[None, :, 2], tol)
    cost = np.where(ok, d, 1e6)
    rows, cols = linear_sum_assignment(cost)
    return int(np.count_nonzero(ok[rows, cols]))


def match_pairs(detected: np.ndarray, annotated: np.ndarray, tol: float = MATCH_PX) -> np.ndarray:
    """Boolean per detection: matched one-to-one to an annotated circle (same rule as ``match``)."""
    hit = np.zeros(len(detected), bool)
    if len(detected) == 0 or len(annotated) == 0:
        return hit
    d = np.linalg.norm(detected[:, None, :2] - annotated[None, :, :2], axis=2)
    ok = d <= np.maximum(annotated[None, :, 2], tol)
    rows, cols = linear_sum_assignment(np.where(ok, d, 1e6))
    hit[rows[ok[rows, cols]]] = True
    return hit


def fit_filter(data: Path, out: Path, l2: float = 1e-3, **candidate_options) -> None:
    """Fit the candidate filter (logistic regression on quadratic features) on the train split.

    Positives are candidates matched one-to-one to an annotated lesion. The fitted model is
    written to ``out`` (the packaged ``lesion_filter.json``); the probability threshold that
    maximises pooled F1 on train is printed, to be used as the ``min_probability`` default.
    """
    from scipy.optimize import minimize

    from harerun_acne import algorithm

    rows = [r for r in csv.DictReader(open(data / "labels.csv")) if r["split"] == "train"]
    lesions = json.loads((data / "lesions.json").read_text())
    per_photo = []
    for r in rows:
        image = cv2.imread(str(data / "images" / r["image"]))
        lab = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_BGR2LAB)
        xy, feats = algorithm.lesion_candidates(lab, photo_skin_mask(image), **candidate_options)
        ann = np.array(lesions.get(r["image"], []), dtype=np.float64).reshape(-1, 3)
        per_photo.append((xy, feats, ann))
    raw = np.vstack([f for _, f, _ in per_photo])
    clip_low, clip_high = np.percentile(raw, 0.5, axis=0), np.percentile(raw, 99.5, axis=0)
    per_photo = [(xy, algorithm.quadratic_design(np.clip(f, clip_low, clip_high)), ann) for xy, f, ann in per_photo]
    X = np.vstack([q for _, q, _ in per_photo])
    y = np.concatenate([match_pairs(xy, ann) for xy, _, ann in per_photo]).astype(np.float64)
    mean, scale = X.mean(0), X.std(0) + 1e-9
    Z = (X - mean) / scale

    def loss(wb):
        w, b = wb[:-1], wb[-1]
        s = Z @ w + b
        p = 1.0 / (1.0 + np.exp(-s))
        g = p - y
        return np.mean(np.logaddexp(0, s) - y * s) + l2 * w @ w, np.append(Z.T @ g / len(y) + 2 * l2 * w, g.mean())

    res = minimize(loss, np.zeros(Z.shape[1] + 1), jac=True, method="L-BFGS-B", options={"maxiter": 2000})
    model = {
        "about": "ACNE04 lesion candidate filter: logistic regression on quadratic_design(features); "
        "fit by bench/acne.py --fit on the train split only",
        "features": list(algorithm.FEATURES),
        "clip_low": clip_low.round(6).tolist(),
        "clip_high": clip_high.round(6).tolist(),
        "mean": mean.round(6).tolist(),
        "scale": scale.round(6).tolist(),
        "weights": res.x[:-1].round(6).tolist(),
        "bias": round(float(res.x[-1]), 6),
    }
    out.write_text(json.dumps(model) + "\n")
    print(f"fit on {len(rows)} train photos, {len(y)} candidates ({y.mean():.1%} positive): {res.message}")
    model = json.loads(out.read_text())
    for key in ("clip_low", "clip_high", "mean", "scale", "weights"):
        model[key] = np.asarray(model[key])
    n_ann = sum(len(ann) for _, _, ann in per_photo)
    for thr in (0.1, 0.14, 0.18, 0.22, 0.26, 0.3, 0.35):
        tp = fp = 0
        for xy, q, _ann in per_photo:
            z = (q - model["mean"]) / model["scale"]  # q is already clipped
            keep = 1.0 / (1.0 + np.exp(-(z @ model["weights"] + model["bias"]))) >= thr
            m = match(xy[keep], _ann)
            tp += m
            fp += int(keep.sum()) - m
        p, r = tp / max(tp + fp, 1), tp / max(n_ann, 1)
        print(
            f"  min_probability {thr:.2f}: train precision {p:.3f} recall {r:.3f} F1 {2 * p * r / max(p + r, 1e-9):.3f}"
        )


ENGINE_PIPELINE = """\
schema_version: 1
name: acne_bench
face: {{backend: auto, roi_size: 512}}
quality: {{reject: false}}
detectors:
  - id: acne
    plugin: acne
    params: {params}
"""


def _engine_runner(params: dict):
    """``image path -> acne DetectorResult or None (no face)`` through the full engine."""
    import tempfile

    from harerun.engine import Engine
    from harerun.errors import NoUsableFace

    spec = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    spec.write(ENGINE_PIPELINE.format(params=json.dumps(params)))
    spec.close()
    engine = Engine()

    def run(path: Path):
        try:
            return engine.run(str(path), pipeline=spec.name).result.results["acne"]
        except NoUsableFace:
            return None

    return run


def evaluate(
    data: Path, split: str, params: dict, limit: int | None = None, verbose: bool = False, engine: bool = False
) -> dict:
    rows = [r for r in csv.DictReader(open(data / "labels.csv")) if r["split"] == split]
    rows = spread(rows, limit)
    lesions = json.loads((data / "lesions.json").read_text())
    params = {"half_faces_in_roi": 1.0, **params}
    if engine:
        run_engine = _engine_runner(params)
    else:
        detector = AcneDetector(AcneDetector.Params(**params))
    tp = fp = fn = 0
    no_face = 0
    counts, grades, scores = [], [], []
    for r in rows:
        path = data / "images" / r["image"]
        if engine:
            result = run_engine(path)
        else:
            image = cv2.imread(str(path))
            result = detector.analyze(make_context(image, skin_mask=photo_skin_mask(image), zones={}, px_per_mm=None))
        ann = np.array(lesions.get(r["image"], []), dtype=np.float64).reshape(-1, 3)
        if result is None or result.status != "ok":
            # No face found: every annotated lesion is missed; count and score are 0.
            no_face += 1
            fn += len(ann)
            counts.append(0)
            scores.append(0.0)
            grades.append(int(r["grade"]))
            continue
        det = np.array(result.evidence.markers, dtype=np.float64).reshape(-1, 3)
        m = match(det, ann)
        tp += m
        fp += len(det) - m
        fn += len(ann) - m
        counts.append(result.measurements["count"])
        grades.append(int(r["grade"]))
        scores.append(result.score)
        if verbose:
            print(f"{r['image']}: grade {r['grade']} annotated {len(ann)} detected {len(det)} matched {m}")
    precision = tp / max(tp + fp, 1)
    recall = tp / max(tp + fn, 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-9)
    grades_arr = np.array(grades)
    return {
        "split": split,
        "photos": len(rows),
        "no_face": no_face,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "spearman_count_grade": float(spearmanr(counts, grades).statistic),
        "spearman_score_grade": float(spearmanr(scores, grades).statistic),
        "mean_score_by_grade": {
            g: round(float(np.mean(np.array(scores)[grades_arr == g])), 1) for g in sorted(set(grades))
        },
        "mean_count_by_grade": {
            g: round(float(np.mean(np.array(counts)[grades_arr == g])), 1) for g in sorted(set(grades))
        },
    }


def timings(data: Path, repeats: int = 30) -> dict[str, float]:
    """Median ms per detector on one 512 ROI (LAB/gray already cached, as in the engine).

    Measured as process CPU time with one OpenCV thread, which on a shared machine is far
    steadier than wall time (and equal to it on an idle one).
    """
    from importlib.metadata import entry_points

    cv2.setNumThreads(1)
    rows = [r for r in csv.DictReader(open(data / "labels.csv")) if r["split"] == "val"]
    image = cv2.imread(str(data / "images" / rows[0]["image"]))
    ctx = make_context(image, skin_mask=photo_skin_mask(image), px_per_mm=4.0)
    t0 = time.process_time()
    for _ in range(repeats):
        cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_BGR2LAB)
    out = {"lab_conversion (shared)": (time.process_time() - t0) / repeats * 1e3}
    _ = ctx.lab, ctx.gray
    classes = {}
    for ep in entry_points(group="harerun"):
        if ep.name in ("acne", "pores", "dark_spots"):
            module = ep.load()
            module.register_detectors(lambda cls: classes.setdefault(cls.name, cls))
    for name in ("acne", "pores", "dark_spots"):
        if name not in classes:
            print(f"  {name}: not installed (pip install -e plugins/{name})")
            continue
        det = classes[name]()
        det.analyze(ctx)
        times = []
        for _ in range(repeats):
            t0 = time.process_time()
            det.analyze(ctx)
            times.append((time.process_time() - t0) * 1e3)
        out[name] = statistics.median(times)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", choices=["train", "val"], default="val")
    ap.add_argument("--param", action="append", default=[], help="detector param override, name=value")
    ap.add_argument("--limit", type=int, default=None, help="only N photos, spread over the split")
    ap.add_argument(
        "--engine", action="store_true", help="run the full engine (face stage, aligned ROI) instead of photo-as-ROI"
    )
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--fit", action="store_true", help="refit the packaged candidate filter on the train split")
    args = ap.parse_args(argv)
    data = shared_dir()
    params = {k: yaml.safe_load(v) for k, v in (p.split("=", 1) for p in args.param)}
    if args.fit:
        import harerun_acne

        fit_filter(data, Path(harerun_acne.__file__).parent / "lesion_filter.json")
        return
    res = evaluate(data, args.split, params, args.limit, args.verbose, engine=args.engine)
    mode = "engine (face stage + aligned ROI)" if args.engine else "photo as ROI + YCrCb skin mask"
    print(f"split {res['split']}: {res['photos']} photos, {mode}, params {params or 'default'}")
    if args.engine:
        print(f"  no usable face in {res['no_face']} photos (their lesions count as missed)")
    print(f"  precision {res['precision']:.3f}  recall {res['recall']:.3f}  F1 {res['f1']:.3f}")
    print(
        f"  Spearman(count, grade) {res['spearman_count_grade']:.3f}  Spearman(score, grade) {res['spearman_score_grade']:.3f}"
    )
    print(f"  mean score by grade {res['mean_score_by_grade']}  mean count by grade {res['mean_count_by_grade']}")
    if not args.no_timing:
        print("median CPU ms per detector on a 512 ROI, one OpenCV thread:")
        for name, ms in timings(data).items():
            print(f"  {name}: {ms:.2f} ms")


if __name__ == "__main__":
    main()
