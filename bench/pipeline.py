"""Median time per stage of a pipeline over the shared face photos.

    python bench/pipeline.py [--pipeline default] [--repeat 3] [--threads 1]

Reads $HARERUN_SHARED/data/faces (default ../shared); exits with a message when absent.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import cv2

from harerun.engine import Engine
from harerun.errors import HareRunError

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pipeline", default="default")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="OpenCV threads (1 = one-core figure)")
    args = ap.parse_args()

    shared = Path(os.environ.get("HARERUN_SHARED", REPO.parent / "shared"))
    photos = sorted((shared / "data/faces").rglob("*.jpg"))
    if not photos:
        print(f"no photos under {shared / 'data/faces'}: set HARERUN_SHARED to the shared folder", file=sys.stderr)
        return 0
    os.environ.setdefault("HARERUN_MODEL_DIR", str(shared / "models"))
    cv2.setNumThreads(args.threads)
    engine = Engine(pipelines_dir=REPO / "pipelines")
    datas = [p.read_bytes() for p in photos]

    stages: dict[str, list[float]] = defaultdict(list)
    failed: dict[str, str] = {}
    for data in datas[:2]:  # warm-up: cascades, models, pipeline loading
        try:
            engine.run(data, pipeline=args.pipeline)
        except HareRunError:
            pass
    for _ in range(args.repeat):
        for photo, data in zip(photos, datas, strict=True):
            try:
                timings = engine.run(data, pipeline=args.pipeline).result.timings_ms
            except HareRunError as exc:
                failed[photo.name] = exc.code
                continue
            for name, ms in timings.items():
                stages[name].append(ms)

    print(
        f"pipeline {args.pipeline}: {len(photos)} photos x {args.repeat}, OpenCV threads {args.threads}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    )
    for name, values in stages.items():
        print(f"  {name:<28} median {statistics.median(values):8.2f} ms   (n={len(values)})")
    if failed:
        print(f"  not analysed: {', '.join(f'{k} ({v})' for k, v in sorted(failed.items()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
