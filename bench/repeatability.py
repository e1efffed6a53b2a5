"""Repeatability of every detector under benign photo changes (figures, not pass/fail tests).

    python bench/repeatability.py                     # 11 dlib photos + astronaut + 100 val close-ups
    python bench/repeatability.py --limit 20          # fewer close-ups (spread over the val split)
    python bench/repeatability.py --json repeat.json  # the same figures (ICC per change, every pair) as JSON
    python bench/repeatability.py --detectors pores,wrinkles   # only these detectors (quicker; same scores)
    python bench/repeatability.py --without 2008_004176.jpg    # diagnostic: leave these photos out
    python bench/repeatability.py --shrink            # how far each score survives a smaller face (train)

Each photo is analysed as it is and after each change: ``jpeg75`` (cv2 re-encode at quality 75),
``bright+8`` / ``bright-8`` (pixels x1.08 / x0.92, saturated uint8), ``scale0.8`` / ``scale1.25``
(INTER_AREA / INTER_LINEAR), ``rot+3`` / ``rot-3`` (about the centre, BORDER_REFLECT) and
``mirror`` (horizontal flip; per-zone scores are compared with left/right zone names swapped).
Per detector, over every (photo, change) pair where both runs are ``ok``: median and 90th
percentile of |score_changed - score_original| (0-100 points), and ICC(3,1) (two-way mixed,
consistency, single measures) between original and changed scores across photos, per change;
the table shows the worst change. Targets: median |d| <= 3, p90 |d| <= 10, ICC(3,1) >= 0.9.
Photos whose face is lost under a change are counted per change.

Figures come through the product path (Engine, default pipeline): ``Engine().run(array)``, nothing
hand-set. ``--detectors`` keeps only the named entries of the default pipeline: a detector's score
does not depend on the others, so its figures are the same, only quicker to get. Reads
``$HARERUN_SHARED/data`` (default ``<repo>/../shared``).

``--shrink`` sets the detectors' ``max_magnification`` (how far the face ROI may magnify the photo
before a score is no longer trusted): 100 ``train`` close-ups, spread over the split, are shrunk
(INTER_AREA, x0.8 down to x1/8) and analysed; for each limit L it prints, over the copies whose ROI
magnifies the photo at most L times, the median |score change| against the full-size photo and
ICC(3,1), and the largest L where every smaller limit keeps median |d| <= 5 and ICC >= 0.9.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import yaml

from harerun.engine import Engine
from harerun.errors import NoUsableFace

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HARERUN_SHARED", REPO.parent / "shared"))
TARGET_MEDIAN, TARGET_P90, TARGET_ICC = 3.0, 10.0, 0.9


def rotate(img: np.ndarray, degrees: float) -> np.ndarray:
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    _, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


CHANGES = {
    "jpeg75": lambda im: jpeg(im, 75),
    "bright+8": lambda im: cv2.convertScaleAbs(im, alpha=1.08),
    "bright-8": lambda im: cv2.convertScaleAbs(im, alpha=0.92),
    "scale0.8": lambda im: cv2.resize(im, None, fx=0.8, fy=0.8, interpolation=cv2.INTER_AREA),
    "scale1.25": lambda im: cv2.resize(im, None, fx=1.25, fy=1.25, interpolation=cv2.INTER_LINEAR),
    "rot+3": lambda im: rotate(im, 3.0),
    "rot-3": lambda im: rotate(im, -3.0),
    "mirror": lambda im: cv2.flip(im, 1),
}


def mirrored_zone(name: str) -> str:
    """left_cheek <-> right_cheek, under_eye_left <-> under_eye_right, ..."""
    return name.replace("left", "\0").replace("right", "left").replace("\0", "right")


def photos(limit: int) -> list[tuple[str, np.ndarray]]:
    """The shared face photos (not dogs.jpg), the astronaut and ``limit`` val close-ups."""
    faces, acne = SHARED / "data/faces/dlib_examples", SHARED / "data/acne"
    if not faces.is_dir() or not (acne / "labels.csv").is_file():
        sys.exit(f"bench/repeatability.py: no shared data under {SHARED}; set HARERUN_SHARED to the shared folder")
    out = [(p.name, cv2.imread(str(p))) for p in sorted(faces.glob("*.jpg")) if p.name != "dogs.jpg"]
    from skimage import data

    out.append(("astronaut", cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)))
    with open(acne / "labels.csv", newline="") as f:
        val = sorted((r for r in csv.DictReader(f) if r["split"] == "val"), key=lambda r: r["image"])
    picks = np.linspace(0, len(val) - 1, min(limit, len(val))).round().astype(int) if limit > 0 else []
    for i in np.unique(picks):  # spread over the sorted rows: every grade is covered
        out.append((f"{val[i]['image']} (g{val[i]['grade']})", cv2.imread(str(acne / "images" / val[i]["image"]))))
    return out


def analyse(engine: Engine, img: np.ndarray, mirror: bool = False) -> dict | None:
    """{detector: (score, {zone: score})} for the ok detectors, or None when no usable face."""
    try:
        result = engine.run(img).result
    except NoUsableFace:
        return None
    rename = mirrored_zone if mirror else (lambda z: z)
    return {
        d: (r.score, {rename(z): s for z, s in r.zones.items()})
        for d, r in result.results.items()
        if r.status == "ok" and r.score is not None
    }


def icc31(x: np.ndarray, y: np.ndarray) -> float | None:
    """ICC(3,1) of two raters (columns) over n targets: (MS_R - MS_E) / (MS_R + MS_E); None if undefined."""
    data = np.column_stack([x, y]).astype(float)
    n, k = data.shape
    if n < 3:
        return None
    grand = data.mean()
    ss_r = k * ((data.mean(axis=1) - grand) ** 2).sum()
    ss_c = n * ((data.mean(axis=0) - grand) ** 2).sum()
    ss_e = ((data - grand) ** 2).sum() - ss_r - ss_c
    ms_r, ms_e = ss_r / (n - 1), ss_e / ((n - 1) * (k - 1))
    return float((ms_r - ms_e) / (ms_r + (k - 1) * ms_e)) if ms_r + ms_e > 0 else None


def percentiles(values: list[float]) -> tuple[float | None, float | None]:
    """Median and 90th percentile (None, None for no values)."""
    return (float(np.median(values)), float(np.percentile(values, 90))) if values else (None, None)


def fmt(v: float | None, digits: int = 1) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def collect(engine: Engine, pics: list[tuple[str, np.ndarray]]):
    """Every (photo, change, detector) pair with both runs ok, per-zone |d| per detector, lost faces."""
    pairs: list[dict] = []
    zone_deltas: dict[str, list[float]] = defaultdict(list)
    lost: dict[str, list[str]] = {c: [] for c in CHANGES}
    no_face: list[str] = []
    for name, img in pics:
        base = analyse(engine, img)
        if base is None:
            no_face.append(name)
            continue
        for change, apply in CHANGES.items():
            got = analyse(engine, apply(img), mirror=change == "mirror")
            if got is None:
                lost[change].append(name)
                continue
            for det, (s0, z0) in base.items():
                if det in got:
                    s1, z1 = got[det]
                    delta = round(abs(s1 - s0), 2)
                    pairs.append(
                        dict(photo=name, change=change, detector=det, original=s0, changed=s1, abs_delta=delta)
                    )
                    zone_deltas[det] += [abs(z1[z] - z0[z]) for z in z0 if z in z1]
    return pairs, zone_deltas, lost, no_face


def detector_figures(pairs: list[dict], zone_deltas: dict[str, list[float]]) -> dict[str, dict]:
    figures = {}
    for det in dict.fromkeys(p["detector"] for p in pairs):
        mine = [p for p in pairs if p["detector"] == det]
        med, p90 = percentiles([p["abs_delta"] for p in mine])
        icc = {}
        for c in CHANGES:
            rows = [p for p in mine if p["change"] == c]
            icc[c] = icc31(np.array([p["original"] for p in rows]), np.array([p["changed"] for p in rows]))
        defined = {c: v for c, v in icc.items() if v is not None}
        worst = min(defined, key=defined.get) if defined else None
        bad = {
            "median": med > TARGET_MEDIAN,
            "p90": p90 > TARGET_P90,
            "ICC": not defined or defined[worst] < TARGET_ICC,
        }
        zmed, zp90 = percentiles(zone_deltas[det])
        figures[det] = {
            "n_pairs": len(mine), "median_abs_delta": med, "p90_abs_delta": p90, "icc31": icc,
            "worst_icc_change": worst, "worst_icc": defined.get(worst), "failed": [k for k, v in bad.items() if v],
            "zone_median_abs_delta": zmed, "zone_p90_abs_delta": zp90, "zone_n": len(zone_deltas[det]),
        }  # fmt: skip
    return figures


def change_figures(pairs: list[dict], lost: dict[str, list[str]], dets: list[str]) -> dict[str, dict]:
    """Per change: median |d| of each detector and of all detectors together, and faces lost."""
    out = {}
    for c in CHANGES:
        mine = [p for p in pairs if p["change"] == c]
        row = {d: percentiles([p["abs_delta"] for p in mine if p["detector"] == d])[0] for d in dets}
        out[c] = row | {"all": percentiles([p["abs_delta"] for p in mine])[0], "faces_lost": len(lost[c])}
    return out


def report(n_photos, no_face, elapsed, figures, per_change, lost, worst, only=None) -> None:
    kept = f" (only {only})" if only else ""
    print(f"{n_photos} photos ({n_photos - len(no_face)} with a face) x {len(CHANGES)} changes, default pipeline"
          f"{kept}, {elapsed:.0f} s")  # fmt: skip
    if no_face:
        print(f"no usable face in the original (left out): {', '.join(no_face)}")
    print(f"\n| detector | median abs d (<= {TARGET_MEDIAN:g}) | p90 abs d (<= {TARGET_P90:g}) "
          f"| worst ICC(3,1) (>= {TARGET_ICC}) | n | verdict |\n|---|---|---|---|---|---|")  # fmt: skip
    for det, f in figures.items():
        verdict = "pass" if not f["failed"] else "FAIL: " + ", ".join(f["failed"])
        print(f"| {det} | {fmt(f['median_abs_delta'])} | {fmt(f['p90_abs_delta'])} | "
              f"{fmt(f['worst_icc'], 3)} ({f['worst_icc_change']}) | {f['n_pairs']} | {verdict} |")  # fmt: skip
    dets = list(figures)
    print("\nmedian abs d per change (faces lost: a face in the original, none in the changed copy)\n")
    print("| change | faces lost | all | " + " | ".join(dets) + " |\n" + "|---" * (len(dets) + 3) + "|")
    for c, row in per_change.items():
        print(f"| {c} | {row['faces_lost']} | {fmt(row['all'])} | " + " | ".join(fmt(row[d]) for d in dets) + " |")
    print("\nper-zone scores, all zones pooled (mirror: left/right names swapped)\n")
    print("| detector | zone median abs d | zone p90 abs d | n |\n|---|---|---|---|")
    for det, f in figures.items():
        if f["zone_n"]:
            print(f"| {det} | {fmt(f['zone_median_abs_delta'])} | {fmt(f['zone_p90_abs_delta'])} | {f['zone_n']} |")
    print("\nworst 10 pairs\n\n| photo | change | detector | original | changed |\n|---|---|---|---|---|")
    for p in worst:
        print(f"| {p['photo']} | {p['change']} | {p['detector']} | {p['original']:.1f} | {p['changed']:.1f} |")
    for c, names in lost.items():
        if names:
            print(f"face lost under {c}: {', '.join(names)}")


#: Detectors with a ``max_magnification`` param (``--shrink`` lifts it to see the scores beyond).
GATED = ("acne", "ml_classifier", "dark_spots", "texture", "pores", "wrinkles")
SHRINK_FACTORS = (0.8, 0.65, 0.5, 0.4, 1 / 3, 0.25, 0.2, 1 / 6, 1 / 8)
SHRINK_LIMITS = (1.25, 1.5, 2, 2.5, 3, 3.5, 4, 5, 6, 8, 12)
SHRINK_MEDIAN, SHRINK_ICC = 5.0, 0.9


def train_photos(n: int) -> list[tuple[str, np.ndarray]]:
    """``n`` train close-ups spread over the sorted split (tuning happens on train, never val)."""
    acne = SHARED / "data/acne"
    if not (acne / "labels.csv").is_file():
        sys.exit(f"bench/repeatability.py: no shared data under {SHARED}; set HARERUN_SHARED to the shared folder")
    with open(acne / "labels.csv", newline="") as f:
        rows = sorted((r for r in csv.DictReader(f) if r["split"] == "train"), key=lambda r: r["image"])
    picks = np.unique(np.linspace(0, len(rows) - 1, min(n, len(rows))).round().astype(int))
    return [(rows[i]["image"], cv2.imread(str(acne / "images" / rows[i]["image"]))) for i in picks]


def shrink_table(engine: Engine, pics: list[tuple[str, np.ndarray]]) -> None:
    """Print how each detector's score follows the photo as the face gets smaller (see ``--shrink``)."""

    def run(img):
        try:
            r = engine.run(img)
        except NoUsableFace:
            return None
        scores = {d: x.score for d, x in r.result.results.items() if x.status == "ok" and x.score is not None}
        return 1.0 / r.ctx.scale_to_image, scores

    copies, as_taken = [], []  # (magnification, full-size scores, shrunk scores); full-size magnifications
    for _, img in pics:
        full = run(img)
        as_taken += [full[0]] if full else []
        for f in SHRINK_FACTORS if full else ():
            small = run(cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_AREA))
            if small:
                copies.append((small[0], full[1], small[1]))
    dets = list(dict.fromkeys(d for _, full, _ in copies for d in full))
    print(f"{len(pics)} train close-ups x {len(SHRINK_FACTORS)} sizes; per limit L (ROI px per photo px): "
          f"median |d| / ICC(3,1) over the copies magnified at most L times\n")  # fmt: skip
    lo, mid, hi = np.percentile(as_taken, (5, 50, 95))
    print(f"the photos as they are: magnified x{lo:.2f} / x{mid:.2f} / x{hi:.2f} (5th / 50th / 95th percentile)\n")
    print("| detector | " + " | ".join(f"<= {lim:g}" for lim in SHRINK_LIMITS) + " | trusted up to |")
    print("|---" * (len(SHRINK_LIMITS) + 2) + "|")
    for d in dets:
        cells, trusted, ok = [], None, True
        for lim in SHRINK_LIMITS:
            pairs = np.array([(a[d], b[d]) for m, a, b in copies if m <= lim and d in a and d in b])
            if len(pairs) < 3:
                cells.append("n/a")
                continue
            med, icc = float(np.median(np.abs(pairs[:, 1] - pairs[:, 0]))), icc31(pairs[:, 0], pairs[:, 1])
            cells.append(f"{med:.1f} / {fmt(icc, 2)}")
            ok = ok and med <= SHRINK_MEDIAN and icc is not None and icc >= SHRINK_ICC
            trusted = lim if ok else trusted
        print(f"| {d} | " + " | ".join(cells) + f" | {'below 1.25' if trusted is None else f'{trusted:g}'} |")


def engine_for(detectors: str | None, workdir: str, *, no_gates: bool = False) -> Engine:
    """The default pipeline's engine, or one whose default pipeline keeps only ``detectors``;
    ``no_gates``: every detector's ``max_magnification`` lifted (for ``--shrink``)."""
    if not detectors and not no_gates:
        return Engine()
    spec = yaml.safe_load((REPO / "pipelines/default.yaml").read_text())
    wanted = detectors.split(",") if detectors else [d["id"] for d in spec["detectors"]]
    unknown = set(wanted) - {d["id"] for d in spec["detectors"]}
    if unknown:
        sys.exit(f"bench/repeatability.py: not in the default pipeline: {', '.join(sorted(unknown))}")
    spec["detectors"] = [d for d in spec["detectors"] if d["id"] in wanted]
    for d in spec["detectors"] if no_gates else ():
        if d["plugin"] in GATED:
            d["params"] = {**d.get("params", {}), "max_magnification": 20.0}
    (Path(workdir) / "default.yaml").write_text(yaml.safe_dump(spec))
    return Engine(pipelines_dir=workdir)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=100, help="val close-ups to use (default 100)")
    ap.add_argument("--json", type=Path, help="also write every figure and pair here")
    ap.add_argument("--detectors", help="comma-separated detector ids of the default pipeline to keep (default: all)")
    ap.add_argument("--without", help="diagnostic: comma-separated photo file names to leave out")
    ap.add_argument("--shrink", action="store_true", help="how far each score survives a smaller face (train)")
    args = ap.parse_args()
    cv2.setNumThreads(1)  # modest on a shared machine
    if args.shrink:
        with tempfile.TemporaryDirectory() as workdir:
            shrink_table(engine_for(args.detectors, workdir, no_gates=True), train_photos(args.limit))
        return 0
    t0 = time.perf_counter()
    pics = photos(args.limit)
    if args.without:
        gone = set(args.without.split(","))
        pics = [(name, img) for name, img in pics if name.split(" ")[0] not in gone]
    with tempfile.TemporaryDirectory() as workdir:
        pairs, zone_deltas, lost, no_face = collect(engine_for(args.detectors, workdir), pics)
    elapsed = time.perf_counter() - t0

    figures = detector_figures(pairs, zone_deltas)
    per_change = change_figures(pairs, lost, list(figures))
    worst = sorted(pairs, key=lambda p: -p["abs_delta"])[:10]
    report(len(pics), no_face, elapsed, figures, per_change, lost, worst, args.detectors)
    if args.json:
        out = {
            "photos": [n for n, _ in pics], "no_face": no_face, "elapsed_s": elapsed,
            "targets": {"median_abs_delta": TARGET_MEDIAN, "p90_abs_delta": TARGET_P90, "icc31": TARGET_ICC},
            "detectors": figures, "per_change": per_change, "faces_lost": lost, "worst": worst, "pairs": pairs,
        }  # fmt: skip
        args.json.write_text(json.dumps(out, indent=1))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
