"""Where the face zones fall: skin share of each visible zone (figures, not pass/fail tests).

    python bench/zones.py                          # face photos + acne val close-ups: skin share per zone
    python bench/zones.py --limit 40               # only the first 40 acne val close-ups
    python bench/zones.py --sheet build/zones.png  # also a contact sheet of the zones to look at

Figures come through the product's face stage (``run_face_stage`` with the default pipeline's
face and quality settings, as ``Engine.run`` calls it). Skin share of a zone = share of its
polygon's pixels (inside the photo) that the static skin classifier
(:func:`harerun.face.skin.classify_skin_pixels`) calls skin, before any clipping to the
face's skin mask. That classifier takes most brown/blond hair and lips for skin, so a high
share does not rule them out: look at the sheet. Reads $HARERUN_SHARED (default <repo>/../shared).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HARERUN_SHARED", REPO.parent / "shared"))
os.environ.setdefault("HARERUN_MODEL_DIR", str(SHARED / "models"))

from harerun.detector import ZONE_NAMES  # noqa: E402
from harerun.engine import Engine  # noqa: E402
from harerun.face.skin import classify_skin_pixels  # noqa: E402
from harerun.face.stage import run_face_stage  # noqa: E402

FACES = SHARED / "data/faces/dlib_examples"
ACNE = SHARED / "data/acne"
TARGET_MEDIAN, TARGET_P5 = 0.90, 0.75
POINTS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
# fmt: off
PALETTE = [(0, 200, 255), (0, 255, 0), (255, 128, 0), (255, 0, 255), (0, 0, 255), (255, 255, 0),
           (128, 255, 128), (255, 255, 255), (0, 128, 255), (200, 100, 255), (100, 255, 255), (255, 100, 150)]
# fmt: on
TILE, PER_ROW = 256, 6


def need(path: Path) -> Path:
    if not path.exists():
        sys.exit(f"bench/zones.py: {path} not found; set HARERUN_SHARED to the folder holding data/")
    return path


def face_photos() -> list[tuple[str, np.ndarray]]:
    paths = sorted(p for p in need(FACES).glob("*.jpg") if p.name != "dogs.jpg")
    return [(p.stem, cv2.imread(str(p))) for p in paths]


def astronaut() -> np.ndarray:
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def acne_val(limit: int | None) -> list[tuple[str, np.ndarray]]:
    with open(need(ACNE / "labels.csv"), newline="") as fh:
        names = [r["image"] for r in csv.DictReader(fh) if r["split"] == "val"]
    return [(Path(n).stem, cv2.imread(str(need(ACNE / "images" / n)))) for n in names[:limit]]


def analyse(engine: Engine, bgr: np.ndarray):
    """The product's face stage on one photo: (FaceInfo or None, quality issues)."""
    pipe, _ = engine.choose("default", None)
    st = run_face_stage(bgr, face_cfg=pipe.spec.face, quality_cfg=pipe.spec.quality, host=engine.host)
    return st.face, st.quality.issues


def skin_shares(bgr: np.ndarray, face) -> dict[str, float]:
    """Visible zone -> share of its pixels (inside the photo) that are skin-coloured."""
    skin = classify_skin_pixels(bgr) > 0
    out = {}
    for name, zone in face.zones.items():
        if not zone.visible:
            continue
        mask = np.zeros(bgr.shape[:2], np.uint8)
        cv2.fillPoly(mask, [np.round(np.array(zone.polygon)).astype(np.int32)], 255)
        inside = mask > 0
        if inside.any():
            out[name] = float(skin[inside].mean())
    return out


def run_set(engine, photos) -> list[dict]:
    rows = []
    for name, bgr in photos:
        face, issues = analyse(engine, bgr)
        shares = skin_shares(bgr, face) if face else {}
        rows.append(dict(name=name, bgr=bgr, face=face, issues=issues, shares=shares))
    return rows


def zone_order(rows: list[dict]) -> list[str]:
    """The analysis zones (ZONE_NAMES) first, then any other zone the faces carry (fold zones)."""
    seen = {z for r in rows if r["face"] for z in r["face"].zones}
    return [z for z in ZONE_NAMES if z in seen] + sorted(seen - set(ZONE_NAMES))


def pct(v: float) -> str:
    return f"{100 * v:5.1f} %"


def report(title: str, rows: list[dict]) -> None:
    faces = [r for r in rows if r["face"]]
    mesh = [r for r in faces if r["face"].landmark_confidence is not None and "FACE_UNCERTAIN" not in r["issues"]]
    framing = Counter(str(r["face"].framing) for r in faces)
    vals = [s for r in rows for s in r["shares"].values()]
    print(
        f"{title}: {len(rows)} photos, {len(faces)} faces, {len(mesh)} with a mesh; framing "
        + ", ".join(f"{k} {v}" for k, v in sorted(framing.items()))
    )
    if not vals:
        return
    print(
        f"  skin share over {len(vals)} (photo, visible zone) pairs: median {pct(np.median(vals))} "
        f"(target >= {pct(TARGET_MEDIAN)}), 5th pct {pct(np.percentile(vals, 5))} (target >= {pct(TARGET_P5)})"
    )
    for zone in zone_order(rows):
        z = [r["shares"][zone] for r in rows if zone in r["shares"]]
        print(f"    {zone:16s} n {len(z):3d}  median {pct(np.median(z)) if z else '   -   '}")


def tile(row: dict, colours: dict[str, tuple]) -> np.ndarray:
    """The face region (box + 40 %) scaled to TILE x TILE, zones, landmarks and a caption."""
    bgr, face = row["bgr"], row["face"]
    out = np.zeros((TILE, TILE, 3), np.uint8)
    if face is None:
        cv2.putText(out, f"{row['name']}: no face", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
        return out
    x, y, w, h = face.box
    side = 1.4 * max(w, h)
    x0, y0 = x + w / 2 - side / 2, y + h / 2 - side / 2
    s = TILE / side
    m = np.float32([[s, 0, -x0 * s], [0, s, -y0 * s]])
    out = cv2.warpAffine(bgr, m, (TILE, TILE), flags=cv2.INTER_AREA)

    def to_tile(pts):
        return np.round((np.array(pts, np.float32) - [x0, y0]) * s).astype(np.int32)

    for name, zone in face.zones.items():
        if not zone.polygon:  # a profile's far side: no outline
            continue
        pts = to_tile(zone.polygon)
        if zone.visible:
            cv2.polylines(out, [pts], True, colours[name], 2, cv2.LINE_AA)
        else:
            cv2.polylines(out, [pts], True, (128, 128, 128), 1, cv2.LINE_AA)
    for key in POINTS:
        if key in face.landmarks:
            cv2.circle(out, tuple(to_tile([face.landmarks[key]])[0]), 3, (255, 255, 255), -1, cv2.LINE_AA)
    yaw = f"{face.pose.yaw:+.0f}" if face.pose else "-"
    cv2.rectangle(out, (0, 0), (TILE, 16), (0, 0, 0), -1)
    cv2.putText(
        out,
        f"{row['name']} {face.framing} yaw {yaw}",
        (3, 12),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.38,
        (255, 255, 255),
        1,
        cv2.LINE_AA,
    )
    return out


def pick_acne(rows: list[dict], n: int = 8) -> list[dict]:
    """First n frontal/close-up, n three-quarter and n profile photos; fill short groups from the rest."""
    groups = [("frontal", "close_up"), ("three_quarter",), ("profile",)]
    chosen = [r for g in groups for r in [r for r in rows if r["face"] and r["face"].framing in g][:n]]
    rest = [r for r in rows if r not in chosen]
    return chosen + rest[: 3 * n - len(chosen)]


def sheet(path: Path, rows: list[dict]) -> None:
    colours = {z: PALETTE[i % len(PALETTE)] for i, z in enumerate(zone_order(rows))}
    tiles = [tile(r, colours) for r in rows]
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % PER_ROW)
    grid = np.vstack([np.hstack(tiles[i : i + PER_ROW]) for i in range(0, len(tiles), PER_ROW)])
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), grid)
    print(
        f"contact sheet: {path} ({len(rows)} photos); zone colours (BGR): "
        + ", ".join(f"{z} {c}" for z, c in colours.items())
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=None, help="acne val close-ups to use (default all 140)")
    ap.add_argument("--sheet", type=Path, default=None, help="write a contact sheet PNG here")
    args = ap.parse_args()
    t0 = time.perf_counter()
    engine = Engine()
    faces = run_set(engine, face_photos())
    astro = run_set(engine, [("astronaut", astronaut())])
    acne = run_set(engine, acne_val(args.limit))

    report("face photos", faces)
    report("acne val close-ups", acne)
    for zone in ("forehead", "chin"):
        share = astro[0]["shares"].get(zone)
        print(
            f"astronaut {zone}: skin share {pct(share) if share is not None else 'not visible'} (target: no hair or collar)"
        )
    pairs = sorted((s, r["name"], z) for r in faces + astro + acne for z, s in r["shares"].items())
    print("worst 8 (photo, zone, skin share):")
    for s, name, z in pairs[:8]:
        print(f"  {name:28s} {z:16s} {pct(s)}")
    if args.sheet:
        sheet(args.sheet, faces + astro + pick_acne(acne))
    print(f"{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
