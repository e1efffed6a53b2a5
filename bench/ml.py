"""Benchmark the ml_classifier plugin: inference time per photo on one core, and val accuracy.

    python bench/ml.py                 # 40 val photos, median ms per stage, tflite (default) and keras
    python bench/ml.py --n 140 --accuracy   # also recompute val accuracy / macro-F1 / confusion matrix

Reads the ACNE04 photos from $HARERUN_SHARED/data/acne (default <repo>/../shared) and the model
from the model store (HARERUN_MODEL_DIR, default <repo>/models). Timings are medians after warm-up,
with TensorFlow, TFLite and OpenCV limited to one thread. The photo is used as the ROI directly.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=40, help="val photos to time (default 40)")
    ap.add_argument("--repeat", type=int, default=3, help="timed passes over the photos")
    ap.add_argument("--accuracy", action="store_true", help="also score every val photo")
    args = ap.parse_args()

    shared = Path(os.environ.get("HARERUN_SHARED", REPO.parent / "shared"))
    data = shared / "data" / "acne"
    if not (data / "labels.csv").is_file():
        print(
            f"bench/ml.py: shared data not found at {data} (set HARERUN_SHARED to the folder holding data/)",
            file=sys.stderr,
        )
        return 2
    os.environ.setdefault("HARERUN_MODEL_DIR", str(REPO / "models"))

    import cv2
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    cv2.setNumThreads(1)

    from harerun.testing import make_context
    from harerun_ml_classifier.algorithm import classification_metrics, prepare_input
    from harerun_ml_classifier.plugin import MLClassifierDetector, MLClassifierParams
    from harerun_ml_classifier.runtime import get_model

    with open(data / "labels.csv", newline="") as f:
        rows = sorted((r for r in csv.DictReader(f) if r["split"] == "val"), key=lambda r: r["image"])
    photos = [(cv2.imread(str(data / "images" / r["image"])), int(r["grade"])) for r in rows]
    timed = photos[: args.n]
    print(
        f"{len(timed)} val photos, 512x512, one thread; load average {os.getloadavg()[0]:.1f} "
        f"(machine shared with other jobs: timings are noisy, medians shown)"
    )

    def median_ms(fn, items) -> str:
        """Median wall-clock and CPU ms per call (CPU time is less disturbed by other jobs on the machine)."""
        for img, _ in items[:3]:
            fn(img)  # warm-up
        wall, cpu = [], []
        for _ in range(args.repeat):
            for img, _ in items:
                t0, c0 = time.perf_counter(), time.process_time()
                fn(img)
                wall.append((time.perf_counter() - t0) * 1000)
                cpu.append((time.process_time() - c0) * 1000)
        return f"{np.median(wall):6.2f} ms (cpu {np.median(cpu):6.2f})"

    print(f"  input maps (prepare_input)        {median_ms(prepare_input, timed)}")
    ctxs = {id(img): make_context(img) for img, _ in timed}  # the engine builds the context, not the plugin
    for spec in ("acne-grade@1", "acne-grade-keras@1"):
        model = get_model(spec)
        xs = [(prepare_input(img, size=model.input_size), g) for img, g in timed]
        net = median_ms(model.run, xs)
        det = MLClassifierDetector(MLClassifierParams(model=spec))
        full = median_ms(lambda img, det=det: det.analyze(ctxs[id(img)]), timed)
        print(
            f"  {spec:20s} ({model.runtime:6s}) network {net}   whole analyze() {full}   "
            f"load {model.resolved.load_ms:.0f} ms  [{model.resolved.path.name}, {model.resolved.source}]"
        )

    if args.accuracy:
        det = MLClassifierDetector(MLClassifierParams(model="acne-grade@1"))
        pred = [det.analyze(make_context(img)).measurements["grade"] for img, _ in photos]
        m = classification_metrics(np.array([g for _, g in photos]), np.array(pred))
        print(f"val ({m['n']} photos): accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}")
        print("confusion matrix (rows true 0-3, columns predicted):")
        for row in m["confusion_matrix"]:
            print("  " + " ".join(f"{v:4d}" for v in row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
