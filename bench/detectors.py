"""Detector benchmarks (figures, not pass/fail tests).

    python bench/detectors.py                  # median ms per installed detector on a 512 px ROI, 1 OpenCV thread, + total
    python bench/detectors.py --grades         # mean score per ACNE04 grade for every detector, over ../shared/data/acne
    python bench/detectors.py --grades --face-stage   # same, on the engine's aligned ROI (slower; photos without a face are skipped)
    python bench/detectors.py --grades --detectors redness,texture --limit 200

Every detector registered by the installed plugins
(``harerun.host.PluginHost(autoload=True).detectors``) is built with its default
params and run on a ``harerun.testing.make_context`` over a real acne photo resized
to 512 px (skin mask from the static Chai & Ngan skin classifier, canonical zones),
or over synthetic skin when $HARERUN_SHARED (default <repo>/../shared) is absent.
The context's cached LAB and grey images are shared by all detectors, as in the
engine, so they are timed once on their own ("context").
Timings are medians; the machine may be shared, so read them as rough figures.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HARERUN_SHARED", REPO.parent / "shared"))
ACNE = SHARED / "data" / "acne"

from harerun.host import PluginHost  # noqa: E402
from harerun.testing import make_context, synthetic_skin  # noqa: E402


def skin_pixels(image: np.ndarray) -> np.ndarray:
    try:
        from harerun.face.skin import classify_skin_pixels
    except ImportError:  # older core: the same Chai & Ngan YCrCb box inline
        ycc = cv2.cvtColor(image, cv2.COLOR_BGR2YCrCb)
        return cv2.inRange(ycc, (0, 133, 77), (255, 173, 127))
    return classify_skin_pixels(image)


def photo_context(path: Path):
    img = cv2.resize(cv2.imread(str(path)), (512, 512), interpolation=cv2.INTER_AREA)
    return make_context(img, skin_mask=skin_pixels(img))


def detectors(names: list[str] | None):
    registry = PluginHost(autoload=True).detectors
    chosen = sorted(registry) if not names else names
    missing = [n for n in chosen if n not in registry]
    if missing:
        sys.exit(f"bench/detectors.py: not registered: {', '.join(missing)} (installed: {', '.join(sorted(registry))})")
    return {n: registry[n].cls() for n in chosen}


def timing(names: list[str] | None, repeats: int) -> None:
    cv2.setNumThreads(1)
    if (ACNE / "labels.csv").exists():
        first = next(csv.DictReader(open(ACNE / "labels.csv")))["image"]
        ctx, source = photo_context(ACNE / "images" / first), f"acne photo {first} resized to 512"
    else:
        ctx, source = make_context(synthetic_skin(512)), f"synthetic skin ({SHARED} not found)"
    dets = detectors(names)
    print(f"ROI: {source}; OpenCV threads: {cv2.getNumThreads()}; {repeats} runs each; median ms")

    def ctx_cost() -> float:
        c = make_context(ctx.image, skin_mask=ctx.skin_mask)
        t = time.perf_counter()
        c.lab, c.gray  # noqa: B018 - cached properties
        return (time.perf_counter() - t) * 1e3

    ctx.lab, ctx.gray  # noqa: B018
    rows = [("context (lab+gray, shared)", statistics.median(ctx_cost() for _ in range(repeats)))]
    per_run = np.zeros(repeats)
    for name, det in dets.items():
        try:
            det.analyze(ctx)  # warm-up
        except Exception as exc:  # one broken plugin must not hide the others' figures
            print(f"  {name}: error {type(exc).__name__}: {exc}")
            continue
        ts = []
        for i in range(repeats):
            t = time.perf_counter()
            res = det.analyze(ctx)
            ts.append((time.perf_counter() - t) * 1e3)
            per_run[i] += ts[-1]
        rows.append((f"{name} (score {res.score})", statistics.median(ts)))
    for label, ms in rows:
        print(f"  {label:40s} {ms:7.2f}")
    print(f"  {'sum of detector medians':40s} {sum(ms for _, ms in rows[1:]):7.2f}")
    print(f"  {'median of all detectors per run':40s} {float(np.median(per_run)):7.2f}")


def grades(names: list[str] | None, limit: int | None, face_stage: bool) -> None:
    if not (ACNE / "labels.csv").exists():
        sys.exit(f"bench/detectors.py: {ACNE / 'labels.csv'} not found; set HARERUN_SHARED to the folder holding data/")
    from scipy.stats import spearmanr

    rows = list(csv.DictReader(open(ACNE / "labels.csv")))
    if limit:
        rows = rows[:: max(1, len(rows) // limit)][:limit]
    dets = detectors(names)
    stage = None
    if face_stage:
        from harerun.face.config import FaceConfig, QualityConfig
        from harerun.face.stage import run_face_stage

        host, fcfg, qcfg = PluginHost(autoload=True), FaceConfig(), QualityConfig()

        def stage(img):
            return run_face_stage(img, face_cfg=fcfg, quality_cfg=qcfg, host=host).ctx

    scores: dict[str, list[tuple[int, float]]] = {n: [] for n in dets}
    skipped = 0
    failed: set[str] = set()
    for r in rows:
        path = ACNE / "images" / r["image"]
        ctx = stage(cv2.imread(str(path))) if stage else photo_context(path)
        if ctx is None:
            skipped += 1
            continue
        for name, det in dets.items():
            try:
                res = det.analyze(ctx)
            except Exception as exc:
                if name not in failed:
                    print(f"{name}: error {type(exc).__name__}: {exc} (left out where it fails)")
                failed.add(name)
                continue
            if res.status == "ok" and res.score is not None:
                scores[name].append((int(r["grade"]), res.score))
    how = "engine face stage" if face_stage else "make_context over the photo resized to 512 + static skin mask"
    print(f"ACNE04 dev set: {len(rows)} photos ({skipped} without a face), context: {how}")
    print(f"{'detector':14s} " + " ".join(f"{'grade ' + str(g):>14s}" for g in range(4)) + "   spearman")
    for name, vals in scores.items():
        if not vals:
            continue
        a = np.array(vals, float).reshape(-1, 2)
        cells = []
        for g in range(4):
            s = a[a[:, 0] == g, 1]
            cells.append(f"{s.mean():6.1f} (n={len(s):3d})" if len(s) else f"{'-':>14s}")
        rho = spearmanr(a[:, 0], a[:, 1])[0] if len(a) > 2 else float("nan")
        print(f"{name:14s} " + " ".join(cells) + f"   {rho:+.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grades", action="store_true", help="mean score per acne grade over ../shared/data/acne")
    ap.add_argument("--face-stage", action="store_true", help="with --grades: build the ROI with the engine's face stage")
    ap.add_argument("--detectors", help="comma-separated detector names (default: all installed)")
    ap.add_argument("--limit", type=int, help="with --grades: use about this many photos, spread over the set")
    ap.add_argument("--repeats", type=int, default=50, help="timing runs per detector")
    args = ap.parse_args()
    names = [n.strip() for n in args.detectors.split(",")] if args.detectors else None
    if args.grades:
        grades(names, args.limit, args.face_stage)
    else:
        timing(names, args.repeats)


if __name__ == "__main__":
    main()
