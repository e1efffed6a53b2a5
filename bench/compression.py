"""Every detector's score on the same photo as decoded and after JPEG compression.

    python bench/compression.py                 # the bundled astronaut (never JPEG-compressed)
    python bench/compression.py photo.png ...   # your own photos (PNG or other lossless)

Product path: ``Engine().run`` with the default pipeline on the photo's pixels, then on the same
pixels encoded as JPEG at quality 95, 90 and 75 (OpenCV, 4:2:0) and decoded. A detector whose
score moves far between "as decoded" and q95 depends on compression, not on the skin.
"""

from __future__ import annotations

import sys

import cv2
import numpy as np

from harerun.engine import Engine
from harerun.errors import NoUsableFace

QUALITIES = (None, 95, 90, 75)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    return cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_COLOR)


def main() -> int:
    if sys.argv[1:]:
        photos = {p: cv2.imread(p) for p in sys.argv[1:]}
    else:
        from skimage import data

        photos = {"astronaut": np.ascontiguousarray(data.astronaut()[:, :, ::-1])}
    engine = Engine()
    for name, img in photos.items():
        if img is None:
            print(f"{name}: cannot read")
            continue
        rows = {}
        for q in QUALITIES:
            try:
                result = engine.run(img if q is None else jpeg(img, q)).result
            except NoUsableFace as exc:
                print(f"{name} q{q}: {exc.code}")
                continue
            for det, r in result.results.items():
                rows.setdefault(det, {})[q] = r.score
        print(f"\n{name}\n\n| detector | as decoded | JPEG q95 | q90 | q75 |\n|---|---|---|---|---|")
        for det, by_q in rows.items():
            cells = ["–" if by_q.get(q) is None else f"{by_q[q]:.1f}" for q in QUALITIES]
            print(f"| {det} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
