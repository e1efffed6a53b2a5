"""Validity scorecard through the product path: the Engine exactly as `harerun analyze` runs it.

    python bench/validity.py                     # the shared val split: one table
    python bench/validity.py --limit 40          # 40 photos spread over the split (CI's short card)
    python bench/validity.py --json card.json    # the same figures as JSON too
    python bench/validity.py --faces             # every detector's scores on the shared face photos
    python bench/validity.py --shrink            # diagnostic: acne and ML grade on val photos made smaller

Every photo goes through ``Engine().run(path)`` with the default pipeline and nothing hand-set.
A photo the engine refuses (no usable face) counts against every figure: its annotated lesions
are missed, its count is 0 and both grades are wrong. Lesions are matched one-to-one as in
``bench/acne.py`` (centre inside the annotated circle or within 10 px, Hungarian assignment).

Beside the product path, the detector-only figures of ``bench/acne.py`` (the photo as ROI with a
YCrCb skin mask and ``half_faces_in_roi=1``): a diagnostic, not what users get. The constant
baseline answers the train split's most common grade for every photo.

Reads ``$HARERUN_SHARED/data/acne`` (default ``<repo>/../shared``).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from acne import evaluate, match, shared_dir, spread  # noqa: E402  (bench/acne.py)

from harerun.engine import Engine  # noqa: E402
from harerun.errors import NoUsableFace  # noqa: E402

GRADES = (0, 1, 2, 3)


def grade_figures(truth: list[int], predicted: list[int | None]) -> dict:
    """Accuracy, macro-F1 over the four grades and the confusion matrix (rows: truth).
    A missing prediction (no face) is wrong and sits in no column."""
    confusion = np.zeros((4, 4), int)
    for t, p in zip(truth, predicted, strict=True):
        if p is not None:
            confusion[t, p] += 1
    f1s = []
    for g in GRADES:
        tp = confusion[g, g]
        support, called = sum(t == g for t in truth), confusion[:, g].sum()
        if support or called:
            f1s.append(2 * tp / max(support + called, 1))
    accuracy = float(np.trace(confusion) / max(len(truth), 1))
    return {"accuracy": accuracy, "macro_f1": float(np.mean(f1s)), "confusion": confusion.tolist()}


def lesions_in_area(ctx, ann: np.ndarray) -> int:
    """How many annotated lesion centres (photo px) lie in the area acne counts on (``face_skin``)."""
    import cv2

    if ctx is None or not len(ann):
        return 0
    m = cv2.invertAffineTransform(ctx.roi_to_image)
    xy = np.floor(ann[:, :2] @ m[:, :2].T + m[:, 2]).astype(int)
    h, w = ctx.face_skin.shape
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
    return int(np.count_nonzero(ctx.face_skin[xy[inside, 1], xy[inside, 0]]))


def product_path(data: Path, rows: list[dict]) -> dict:
    lesions = json.loads((data / "lesions.json").read_text())
    engine = Engine()
    tp = fp = fn = 0
    faces = certain = in_area = 0
    counts, truth, acne_grades, ml_grades, times = [], [], [], [], []
    for r in rows:
        ann = np.array(lesions.get(r["image"], []), dtype=np.float64).reshape(-1, 3)
        truth.append(int(r["grade"]))
        t0 = time.perf_counter()
        try:
            run = engine.run(str(data / "images" / r["image"]))
            result = run.result
        except NoUsableFace:
            fn += len(ann)
            counts.append(0)
            acne_grades.append(None)
            ml_grades.append(None)
            continue
        finally:
            times.append((time.perf_counter() - t0) * 1e3)
        faces += 1
        in_area += lesions_in_area(run.ctx, ann)
        certain += "FACE_UNCERTAIN" not in result.quality.issues
        acne, ml = result.results["acne"], result.results["ml_classifier"]
        det = np.array(acne.evidence.markers if acne.status == "ok" else [], dtype=np.float64).reshape(-1, 3)
        m = match(det, ann)
        tp, fp, fn = tp + m, fp + len(det) - m, fn + len(ann) - m
        counts.append(acne.measurements.get("count", 0) if acne.status == "ok" else 0)
        acne_grades.append(acne.measurements.get("grade") if acne.status == "ok" else None)
        ml_grades.append(ml.measurements.get("grade") if ml.status == "ok" else None)
    precision, recall = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    return {
        "photos": len(rows),
        "face_pct": 100.0 * faces / max(len(rows), 1),
        "face_certain_pct": 100.0 * certain / max(len(rows), 1),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / max(precision + recall, 1e-9),
        "spearman_count_grade": float(spearmanr(counts, truth).statistic),
        "acne_grade": grade_figures(truth, acne_grades),
        "ml_grade": grade_figures(truth, ml_grades),
        "median_ms": float(np.median(times)),
        "lesions_in_area_pct": 100.0 * in_area / max(sum(len(lesions.get(r["image"], [])) for r in rows), 1),
    }


def face_photo_scores(shared: Path) -> None:
    """Each detector's score on the shared face photos and the astronaut: median, max, bands."""
    import cv2
    from skimage import data as skdata

    from harerun.results import severity_for

    photos = {p.name: str(p) for p in sorted((shared / "faces/dlib_examples").glob("*.jpg")) if p.name != "dogs.jpg"}
    photos["astronaut"] = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR)
    engine, scores = Engine(), {}
    for image in photos.values():
        for step, res in engine.run(image).result.results.items():
            scores.setdefault(step, []).append(res.score)
    print(f"scores on the {len(photos)} shared face photos (incl. the astronaut), default pipeline")
    print("| detector | median | max | none | mild | moderate | severe | no score (skipped: face too small, ...) |")
    print("|---|---|---|---|---|---|---|---|")
    for step, all_scores in scores.items():
        v = [x for x in all_scores if x is not None]
        bands = [sum(severity_for(x) == b for x in v) for b in ("none", "mild", "moderate", "severe")]
        middle = f"{np.median(v):.1f} | {max(v):.1f}" if v else "– | –"
        print(f"| {step} | {middle} | " + " | ".join(map(str, bands)) + f" | {len(all_scores) - len(v)} |")


SHRINK = (1.0, 0.6, 0.45, 0.35, 0.25)


def shrink_figures(data: Path, rows: list[dict]) -> None:
    """Diagnostic for ``max_magnification``: the val photos shrunk by each factor in
    :data:`SHRINK` (so the face ROI magnifies them more), through the engine with the acne and ML
    detectors' magnification limit lifted (a hand-set param: not what users get). Lesions are
    matched with the annotations shrunk alike (same 10 px tolerance, so precision reads high)."""
    import tempfile

    import cv2
    import yaml

    from harerun.pipeline import default_pipelines_dir

    lesions = json.loads((data / "lesions.json").read_text())
    spec = yaml.safe_load((default_pipelines_dir() / "default.yaml").read_text())
    for step in spec["detectors"]:
        if step["plugin"] in ("acne", "ml_classifier"):
            step.setdefault("params", {})["max_magnification"] = 20.0
    folder = Path(tempfile.mkdtemp())
    (folder / "default.yaml").write_text(yaml.safe_dump(spec))
    engine = Engine(pipelines_dir=folder)
    print("diagnostic: val photos shrunk, magnification limit lifted (bench/validity.py --shrink)")
    print("| shrink | median magnification | ML grade acc | lesion P | lesion R | F1 |\n|---|---|---|---|---|---|")
    for f in SHRINK:
        right = tp = fp = fn = 0
        mags = []
        for r in rows:
            img = cv2.imread(str(data / "images" / r["image"]))
            img = img if f == 1.0 else cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
            ann = np.array(lesions.get(r["image"], []), dtype=np.float64).reshape(-1, 3) * f
            try:
                run = engine.run(img)
            except NoUsableFace:
                fn += len(ann)
                continue
            mags.append(1.0 / run.ctx.scale_to_image)
            res = run.result.results
            right += res["ml_classifier"].measurements.get("grade") == int(r["grade"])
            det = np.array(res["acne"].evidence.markers, dtype=np.float64).reshape(-1, 3)
            m = match(det, ann)
            tp, fp, fn = tp + m, fp + len(det) - m, fn + len(ann) - m
        precision, recall = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
        f1 = 2 * precision * recall / max(precision + recall, 1e-9)
        print(
            f"| {f:g} | {np.median(mags):.2f} | {right / len(rows):.3f} | {precision:.3f} | {recall:.3f} | {f1:.3f} |"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", choices=["train", "val"], default="val")
    ap.add_argument("--limit", type=int, default=None, help="only N photos, spread over the split")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    ap.add_argument("--faces", action="store_true", help="only the detectors' scores on the shared face photos")
    ap.add_argument("--shrink", action="store_true", help="diagnostic: acne and ML on the photos made smaller")
    ap.add_argument(
        "--area-scale",
        type=float,
        default=None,
        help="diagnostic: count acne on the face outline scaled by this (default: harerun's FACE_AREA_SCALE)",
    )
    args = ap.parse_args(argv)
    if args.area_scale is not None:
        import harerun.face.context

        harerun.face.context.FACE_AREA_SCALE = args.area_scale
    data = shared_dir()
    if args.faces:
        face_photo_scores(data.parent)
        return 0
    every = list(csv.DictReader(open(data / "labels.csv")))
    rows = spread([r for r in every if r["split"] == args.split], args.limit)
    if args.shrink:
        shrink_figures(data, rows)
        return 0
    common = Counter(int(r["grade"]) for r in every if r["split"] == "train").most_common(1)[0][0]
    constant = float(np.mean([int(r["grade"]) == common for r in rows]))

    card = {"split": args.split, "product": product_path(data, rows)}
    only = evaluate(data, args.split, {}, args.limit)
    card["detector_only"] = {k: only[k] for k in ("photos", "precision", "recall", "f1", "spearman_count_grade")}
    card["constant_baseline"] = {"grade": common, "accuracy": constant}

    p, d = card["product"], card["detector_only"]
    print(f"validity scorecard, {args.split} split, {p['photos']} photos (bench/validity.py)")
    print(
        "| path | face % | lesion P | lesion R | F1 | Spearman(count, grade) | acne grade acc / macro-F1 | ML grade acc / macro-F1 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| product: Engine, default pipeline | {p['face_pct']:.1f} ({p['face_certain_pct']:.1f} certain) "
        f"| {p['precision']:.3f} | {p['recall']:.3f} | {p['f1']:.3f} | {p['spearman_count_grade']:.3f} "
        f"| {p['acne_grade']['accuracy']:.3f} / {p['acne_grade']['macro_f1']:.3f} "
        f"| {p['ml_grade']['accuracy']:.3f} / {p['ml_grade']['macro_f1']:.3f} |"
    )
    print(
        f"| diagnostic: detector only (photo as ROI, half_faces_in_roi=1) | – | {d['precision']:.3f} "
        f"| {d['recall']:.3f} | {d['f1']:.3f} | {d['spearman_count_grade']:.3f} | – | – |"
    )
    print(f"constant baseline (always grade {common}): accuracy {constant:.3f}")
    print(f"confusion, rows = true grade 0-3: acne {p['acne_grade']['confusion']}  ML {p['ml_grade']['confusion']}")
    print(f"median {p['median_ms']:.0f} ms per photo through the engine")
    print(f"annotated lesions inside the area acne counts on: {p['lesions_in_area_pct']:.1f} %")
    if args.json:
        args.json.write_text(json.dumps(card, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
