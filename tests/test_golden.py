"""Golden outputs: the engine's results on fixed photos, compared with tolerances.

Refactors and speed work must not change what users get. This test runs the default pipeline
on the bundled astronaut, two synthetic variants of it (red spots and dark patches painted on
its skin, so acne, redness and dark spots have something to find) and the shared face photos,
and compares every detector's status, score, severity and zone scores, the face box and the
quality score with ``tests/golden/default.json``.

When a change is *meant* to change outputs, regenerate the file and say why in the commit:

    python tests/test_golden.py --update
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np

GOLDEN = Path(__file__).with_name("golden") / "default.json"
SCORE_TOL = 0.5  # points of a 0-100 score
BOX_TOL = 2  # pixels
QUALITY_TOL = 0.5


def _astronaut() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])


def _painted(kind: str) -> np.ndarray:
    """The astronaut with spots painted on the cheeks and forehead (fixed positions, seeded)."""
    img = _astronaut().copy()
    rng = np.random.default_rng(0 if kind == "red" else 1)
    for _ in range(14):
        x, y = int(rng.uniform(190, 265)), int(rng.uniform(95, 160))
        if kind == "red":
            cv2.circle(img, (x, y), int(rng.integers(2, 4)), (70, 60, 200), -1, lineType=cv2.LINE_AA)
        else:
            cv2.circle(img, (x, y), int(rng.integers(3, 6)), (60, 80, 110), -1, lineType=cv2.LINE_AA)
    return img


def photos(shared: Path | None) -> dict[str, np.ndarray]:
    out = {
        "astronaut": _astronaut(),
        "astronaut+red_spots": _painted("red"),
        "astronaut+dark_patches": _painted("dark"),
    }
    if shared is not None:
        for p in sorted((shared / "data/faces/dlib_examples").glob("*.jpg")):
            if p.name != "dogs.jpg":
                out[p.name] = cv2.imread(str(p))
    return out


def summarise(engine, image: np.ndarray) -> dict:
    from harerun.errors import NoUsableFace

    try:
        result = engine.run(image).result
    except NoUsableFace as exc:
        return {"error": exc.code}
    out = {
        "box": result.face.box,
        "quality": round(result.quality.score, 2),
        "detectors": {
            name: {
                "status": r.status,
                "score": None if r.score is None else round(r.score, 2),
                "severity": r.severity,
                "zones": {z: round(v, 2) for z, v in sorted(r.zones.items())},
            }
            for name, r in result.results.items()
        },
    }
    return out


def _shared() -> Path | None:
    from conftest import shared_path

    path = shared_path()
    return path if (path / "data/faces").is_dir() else None


def _close(name: str, want: dict, got: dict) -> list[str]:
    if "error" in want or "error" in got:
        return [] if want.get("error") == got.get("error") else [f"{name}: {want.get('error')} -> {got.get('error')}"]
    problems = []
    if any(abs(a - b) > BOX_TOL for a, b in zip(want["box"], got["box"], strict=True)):
        problems.append(f"{name}: face box {want['box']} -> {got['box']}")
    if abs(want["quality"] - got["quality"]) > QUALITY_TOL:
        problems.append(f"{name}: quality {want['quality']} -> {got['quality']}")
    if set(want["detectors"]) != set(got["detectors"]):
        problems.append(f"{name}: detectors {sorted(want['detectors'])} -> {sorted(got['detectors'])}")
    for det, w in want["detectors"].items():
        g = got["detectors"].get(det)
        if g is None:
            continue
        if (w["status"], w["severity"]) != (g["status"], g["severity"]):
            problems.append(f"{name} {det}: {w['status']}/{w['severity']} -> {g['status']}/{g['severity']}")
        if (w["score"] is None) != (g["score"] is None) or (
            w["score"] is not None and abs(w["score"] - g["score"]) > SCORE_TOL
        ):
            problems.append(f"{name} {det}: score {w['score']} -> {g['score']}")
        if set(w["zones"]) != set(g["zones"]):
            problems.append(f"{name} {det}: zones {sorted(w['zones'])} -> {sorted(g['zones'])}")
        for z, v in w["zones"].items():
            if z in g["zones"] and abs(v - g["zones"][z]) > SCORE_TOL:
                problems.append(f"{name} {det} {z}: {v} -> {g['zones'][z]}")
    return problems


def _compare(images: dict[str, np.ndarray]) -> None:
    from harerun.engine import Engine

    golden = json.loads(GOLDEN.read_text())
    engine = Engine()
    problems = []
    for name, image in images.items():
        if name not in golden:
            problems.append(f"{name}: not in {GOLDEN.name}; run `python tests/test_golden.py --update`")
            continue
        problems += _close(name, golden[name], summarise(engine, image))
    assert not problems, "outputs changed:\n" + "\n".join(problems[:40])


def test_bundled_photos_match_the_golden_file():
    """The astronaut and its two painted variants: no shared data needed."""
    _compare(photos(None))


def test_shared_face_photos_match_the_golden_file(shared):
    bundled = photos(None)
    _compare({k: v for k, v in photos(shared).items() if k not in bundled})


def _update() -> None:
    from harerun.engine import Engine

    shared = _shared()
    if shared is None:
        sys.exit("tests/test_golden.py --update needs the shared photos (set HARERUN_SHARED)")
    engine = Engine()
    out = {name: summarise(engine, image) for name, image in photos(shared).items()}
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN} ({len(out)} photos)")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    if sys.argv[1:] == ["--update"]:
        _update()
    else:
        sys.exit(__doc__)
