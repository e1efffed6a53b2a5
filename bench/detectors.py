"""Detector benchmarks (figures, not pass/fail tests).

    python bench/detectors.py                  # median ms per installed detector on a 512 px ROI, 1 OpenCV thread, + total
    python bench/detectors.py --grades         # mean score per ACNE04 grade for every detector, over ../shared/data/acne
    python bench/detectors.py --grades --face-stage   # same, on the engine's aligned ROI (slower; photos without a face are skipped)
    python bench/detectors.py --grades --detectors redness,texture --limit 200
    python bench/detectors.py --synthetic      # ground-truth figures for redness, texture, wrinkles, pigmentation

Every detector registered by the installed plugins
(``harerun.host.PluginHost(autoload=True).detectors``) is built with its default
params and run on a ``harerun.testing.make_context`` over a real acne photo resized
to 512 px (skin mask from the static Chai & Ngan skin classifier, canonical zones),
or over synthetic skin when $HARERUN_SHARED (default <repo>/../shared) is absent.
The context's cached LAB and grey images are shared by all detectors, as in the
engine, so they are timed once on their own ("context").
Timings are medians of wall-clock time and of the thread's CPU time (the latter is
less inflated when the machine is shared); read them as rough figures.
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

    def ctx_cost() -> tuple[float, float]:
        c = make_context(ctx.image, skin_mask=ctx.skin_mask)
        t, c0 = time.perf_counter(), time.thread_time()
        c.lab, c.gray  # noqa: B018 - cached properties
        return (time.perf_counter() - t) * 1e3, (time.thread_time() - c0) * 1e3

    ctx.lab, ctx.gray  # noqa: B018
    costs = [ctx_cost() for _ in range(repeats)]
    rows = [
        ("context (lab+gray, shared)", statistics.median(w for w, _ in costs), statistics.median(c for _, c in costs))
    ]
    per_run = np.zeros(repeats)
    per_run_cpu = np.zeros(repeats)
    for name, det in dets.items():
        try:
            det.analyze(ctx)  # warm-up
        except Exception as exc:  # one broken plugin must not hide the others' figures
            print(f"  {name}: error {type(exc).__name__}: {exc}")
            continue
        wall, cpu = [], []
        for i in range(repeats):
            t, c0 = time.perf_counter(), time.thread_time()
            res = det.analyze(ctx)
            cpu.append((time.thread_time() - c0) * 1e3)
            wall.append((time.perf_counter() - t) * 1e3)
            per_run[i] += wall[-1]
            per_run_cpu[i] += cpu[-1]
        rows.append((f"{name} (score {res.score})", statistics.median(wall), statistics.median(cpu)))
    print(f"  {'':40s} {'wall':>7s} {'cpu':>7s}")
    for label, ms, cpu_ms in rows:
        print(f"  {label:40s} {ms:7.2f} {cpu_ms:7.2f}")
    print(f"  {'sum of detector medians':40s} {sum(r[1] for r in rows[1:]):7.2f} {sum(r[2] for r in rows[1:]):7.2f}")
    print(
        f"  {'median of all detectors per run':40s} {float(np.median(per_run)):7.2f} {float(np.median(per_run_cpu)):7.2f}"
    )
    print(
        f"  (wall = elapsed; cpu = this thread's CPU time, less affected by other load; "
        f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )


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


# -- synthetic ground truth ---------------------------------------------------------


def _lab_shift(bgr, *, dl: float = 0.0, da: float = 0.0) -> tuple[int, int, int]:
    lab = cv2.cvtColor(np.array([[bgr]], np.float32) / 255.0, cv2.COLOR_BGR2LAB)
    lab[..., 0] += dl
    lab[..., 1] += da
    out = np.clip(cv2.cvtColor(lab, cv2.COLOR_LAB2BGR) * 255.0, 0, 255).round().astype(np.uint8)
    return tuple(int(c) for c in out[0, 0])


def _noisy(img: np.ndarray, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, 2.0, img.shape)
    return np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def synthetic(names: list[str] | None) -> None:
    from harerun.testing import SKIN_BGR, canonical_zones

    registry = PluginHost(autoload=True).detectors
    want = names or ["redness", "texture", "wrinkles", "pigmentation"]
    zones = canonical_zones(512)
    union = np.zeros((512, 512), np.uint8)
    for z in zones.values():
        union |= z
    if "redness" in want and "redness" in registry:
        det = registry["redness"].cls()
        print("redness: red disk (a* + da, radius r) on the left cheek of synthetic skin")
        print("   da   r  left_cheek  other zones max  red_area_pct (expected)  score")
        for da, r in ((0, 30), (8, 30), (14, 30), (20, 30), (30, 30), (20, 15), (20, 45)):
            img = synthetic_skin(512, noise=0.0)
            if da:
                cv2.circle(img, (150, 325), r, _lab_shift(SKIN_BGR, da=da), -1)
            res = det.analyze(make_context(_noisy(img)))
            other = max(v for k, v in res.zones.items() if k != "left_cheek")
            exp = 100 * np.pi * r * r / np.count_nonzero(union) if da else 0.0
            print(
                f"  {da:3d} {r:3d} {res.zones['left_cheek']:11.1f} {other:16.1f} "
                f"{res.measurements['red_area_pct']:13.2f} ({exp:5.2f}) {res.score:9.1f}"
            )
    if "texture" in want and "texture" in registry:
        det = registry["texture"].cls()
        print("texture: score vs noise SD / vs depth of 2000 Gaussian pits (sigma 2 px)")
        row = [det.analyze(make_context(synthetic_skin(512, noise=s))).score for s in (2, 4, 8, 16, 32)]
        print("  noise SD 2/4/8/16/32:  " + "  ".join(f"{v:5.1f}" for v in row))
        row = []
        for a in (0, 8, 16, 32, 64):
            img = synthetic_skin(512).astype(np.float32)
            pits = np.zeros((512, 512), np.float32)
            xs, ys = np.random.default_rng(1).integers(60, 452, (2, 2000))
            pits[ys, xs] = 1.0
            pits = cv2.GaussianBlur(pits, (0, 0), 2.0) * a * 2 * np.pi * 4.0
            row.append(det.analyze(make_context(np.clip(img - pits[..., None], 0, 255).astype(np.uint8))).score)
        print("  pit depth 0/8/16/32/64: " + "  ".join(f"{v:5.1f}" for v in row))
    if "wrinkles" in want and "wrinkles" in registry:
        det = registry["wrinkles"].cls()
        print("wrinkles: n horizontal forehead lines of length L, 30 grey levels deep, 2 px wide")
        print("   n    L  found  mean length px (error)  forehead  score")
        for n, length in ((0, 170), (1, 170), (2, 170), (3, 170), (4, 170), (3, 60), (3, 120)):
            img = synthetic_skin(512, noise=0.0).astype(np.float32)
            m = np.zeros((512, 512), np.float32)
            for i in range(n):
                cv2.line(m, (171, 70 + 12 * i), (171 + length, 70 + 12 * i), 1.0, 2, cv2.LINE_AA)
            img -= 30 * cv2.GaussianBlur(m, (0, 0), 0.8)[..., None]
            res = det.analyze(make_context(_noisy(img)))
            found = res.measurements["forehead_count"]
            mean_len = res.measurements["forehead_length_px"] / found if found else 0.0
            err = f"{100 * (mean_len - length) / length:+.0f}%" if found else "-"
            print(
                f"  {n:2d} {length:4d} {found:6d} {mean_len:15.1f} ({err:>5s}) {res.zones['forehead']:9.1f} {res.score:6.1f}"
            )
    if "pigmentation" in want and "pigmentation" in registry:
        det = registry["pigmentation"].cls()
        print("pigmentation: uniform colour -> ITA vs atan((L*-50)/b*) from OpenCV's L*, b* of that colour")
        for bgr in ((200, 215, 240), (150, 170, 215), (120, 150, 200), (90, 130, 180), (50, 80, 120), (20, 30, 50)):
            lab = cv2.cvtColor(np.array([[bgr]], np.float32) / 255.0, cv2.COLOR_BGR2LAB)[0, 0]
            expected = np.degrees(np.arctan((lab[0] - 50) / lab[2]))
            res = det.analyze(make_context(np.full((512, 512, 3), bgr, np.uint8)))
            print(
                f"  BGR {bgr!s:16s} ITA {res.measurements['ita_deg']:7.2f} (formula {expected:7.2f}) "
                f"band {res.measurements['ita_band']:12s} score {res.score:.1f}"
            )
        row = []
        for dl in (0, 5, 10, 20, 30):
            img = synthetic_skin(512, seed=1)
            lab = cv2.cvtColor(img.astype(np.float32) / 255, cv2.COLOR_BGR2LAB)
            lab[..., 0] -= dl * (zones["forehead"] > 0)
            img = np.clip(cv2.cvtColor(lab, cv2.COLOR_LAB2BGR) * 255, 0, 255).round().astype(np.uint8)
            row.append(det.analyze(make_context(img)).score)
        print("  forehead darker by dL* 0/5/10/20/30: " + "  ".join(f"{v:5.1f}" for v in row))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grades", action="store_true", help="mean score per acne grade over ../shared/data/acne")
    ap.add_argument("--synthetic", action="store_true", help="ground-truth figures on synthetic skin")
    ap.add_argument(
        "--face-stage", action="store_true", help="with --grades: build the ROI with the engine's face stage"
    )
    ap.add_argument("--detectors", help="comma-separated detector names (default: all installed)")
    ap.add_argument("--limit", type=int, help="with --grades: use about this many photos, spread over the set")
    ap.add_argument("--repeats", type=int, default=50, help="timing runs per detector")
    args = ap.parse_args()
    names = [n.strip() for n in args.detectors.split(",")] if args.detectors else None
    if args.synthetic:
        synthetic(names)
    elif args.grades:
        grades(names, args.limit, args.face_stage)
    else:
        timing(names, args.repeats)


if __name__ == "__main__":
    main()
