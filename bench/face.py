"""Face-stage benchmarks (figures, not pass/fail tests).

    python bench/face.py               # dlib examples through `harerun faces`: recall / false alarms at IoU >= 0.3
    python bench/face.py --acne        # acne close-ups: share with a face, and with a face + plausible landmarks
    python bench/face.py --fresh ...   # as a fresh install: no yunet model (HARERUN_MODEL_DIR not pointed at shared)
    python bench/face.py --stage       # whole face stage on a 1280x960 photo: median ms, 1 thread and default threads
    python bench/face.py --skin        # skin-colour classifier accuracy on the UCI skin / non-skin samples
    python bench/face.py --landmarks   # Face Mesh named points vs the dlib 68-point landmarks, % of inter-ocular distance
    python bench/face.py --all

Reads $HARERUN_SHARED (default <repo>/../shared); the yunet model from $HARERUN_MODEL_DIR
(default <shared>/models here). Timings are medians of wall-clock time, with the process's
CPU time beside them (less disturbed when the machine is shared, but it adds up all threads).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HARERUN_SHARED", REPO.parent / "shared"))


def _need(path: Path) -> Path:
    if not path.exists():
        sys.exit(f"bench/face.py: {path} not found; set HARERUN_SHARED to the folder holding data/ and models/")
    return path


if "--fresh" in sys.argv:  # a fresh install: the project's own models/ only, no YuNet
    os.environ["HARERUN_MODEL_DIR"] = str(REPO / "models")
    os.environ.pop("HARERUN_YUNET_MODEL", None)
else:
    os.environ.setdefault("HARERUN_MODEL_DIR", str(SHARED / "models"))

from harerun.face import box_iou as iou  # noqa: E402
from harerun.face.config import FaceConfig, QualityConfig  # noqa: E402
from harerun.face.stage import list_faces, run_face_stage  # noqa: E402
from harerun.host import PluginHost  # noqa: E402


def match(found, truth, thr: float = 0.3) -> tuple[int, int]:
    """Greedy one-to-one matching by IoU: (true positives, false alarms)."""
    pairs = sorted(((iou(f, t), i, j) for i, f in enumerate(found) for j, t in enumerate(truth)), reverse=True)
    used_f, used_t = set(), set()
    for v, i, j in pairs:
        if v < thr:
            break
        if i in used_f or j in used_t:
            continue
        used_f.add(i)
        used_t.add(j)
    return len(used_t), len(found) - len(used_f)


def bench_dlib(host: PluginHost, backends: list[str], repeats: int = 3) -> None:
    """Through ``harerun faces`` (:func:`list_faces`: every face, each checked by the mesh)."""
    folder = _need(SHARED / "data/faces/dlib_examples")
    boxes = json.loads((folder / "boxes.json").read_text())
    boxes["dogs.jpg"] = []  # no face: every box there is a false alarm
    total = sum(len(v) for v in boxes.values())
    print(f"dlib examples through `harerun faces`: {len(boxes)} photos (dogs.jpg included), {total} faces, IoU >= 0.3")
    for name in backends:
        cfg = FaceConfig(backend=name)
        try:
            _, used, _ = list_faces(np.zeros((64, 64, 3), np.uint8), face_cfg=cfg, host=host)
        except Exception as exc:
            print(f"  {name:9s} unavailable: {exc}")
            continue
        tp = fa = 0
        times, cpu = [], []
        for img_name, truth in boxes.items():
            img = cv2.imread(str(folder / img_name))
            for _ in range(repeats):
                t, c = time.perf_counter(), time.process_time()
                faces, used, _ = list_faces(img, face_cfg=cfg, host=host)
                times.append((time.perf_counter() - t) * 1e3)
                cpu.append((time.process_time() - c) * 1e3)
            a, b = match([f.box for f in faces], truth)
            tp += a
            fa += b
        print(
            f"  {name:9s} ({used}) recall {tp}/{total}  false alarms {fa}  median {statistics.median(times):.1f} ms/image "
            f"(cpu {statistics.median(cpu):.1f} ms, {cv2.getNumThreads()} threads)"
        )


def bench_acne(host: PluginHost, backends: list[str], limit: int | None) -> None:
    """Through the face stage an analysis runs: a face, and landmarks that pass the mesh check."""
    folder = _need(SHARED / "data/acne/images")
    files = sorted(folder.glob("*.jpg"))[:limit]
    print(f"acne close-ups: {len(files)} photos (512x512 letterboxed), face stage as the analysis runs it")
    for name in backends:
        cfg = FaceConfig(backend=name)
        found = meshed = landmarked = 0
        used = set()
        misses = []
        times = []
        for f in files:
            img = cv2.imread(str(f))
            t = time.perf_counter()
            st = run_face_stage(img, face_cfg=cfg, quality_cfg=QualityConfig(), host=host)
            times.append((time.perf_counter() - t) * 1e3)
            if st.face is None:
                misses.append(f.name)
                continue
            used.add(st.face.backend_used)
            found += 1
            certain = "FACE_UNCERTAIN" not in st.quality.issues
            landmarked += certain  # a mesh, or a profile's keypoints (the mesh does not fit profiles)
            meshed += certain and st.face.landmark_confidence is not None
        n = len(files)
        print(
            f"  {name:9s} ({'/'.join(sorted(used))}) face {found}/{n} = {100.0 * found / n:.1f} %, "
            f"face + landmarks {landmarked}/{n} = {100.0 * landmarked / n:.1f} % (mesh {meshed}, profile keypoints "
            f"{landmarked - meshed})  median {statistics.median(times):.1f} ms/photo"
            f"  no face: {' '.join(misses[:8])}{' ...' if len(misses) > 8 else ''}"
        )


def bench_stage(host: PluginHost, backends: list[str], repeats: int) -> None:
    src = cv2.imread(str(_need(SHARED / "data/faces/dlib_examples/Tom_Cruise_avp_2014_4.jpg")))
    # A 1280x960 portrait: the photo scaled to 960 px high (aspect kept), widened with its own edges.
    h, w = src.shape[:2]
    fit = cv2.resize(src, (round(w * 960 / h), 960), interpolation=cv2.INTER_AREA)
    side = (1280 - fit.shape[1]) // 2
    img = cv2.copyMakeBorder(fit, 0, 0, side, 1280 - fit.shape[1] - side, cv2.BORDER_REFLECT)
    print("face stage (detect + quality + ROI + zones + skin mask) on a 1280x960 photo (Tom_Cruise_avp_2014_4.jpg):")
    default_threads = cv2.getNumThreads()
    for threads in (1, default_threads):
        cv2.setNumThreads(threads)
        for name in backends:
            cfg = FaceConfig(backend=name)
            run_face_stage(img, face_cfg=cfg, quality_cfg=QualityConfig(), host=host)  # warm-up
            totals, cpu, parts = [], [], {}
            for _ in range(repeats):
                t, c = time.perf_counter(), time.process_time()
                st = run_face_stage(img, face_cfg=cfg, quality_cfg=QualityConfig(), host=host)
                totals.append((time.perf_counter() - t) * 1e3)
                cpu.append((time.process_time() - c) * 1e3)
                for k, v in st.timings_ms.items():
                    parts.setdefault(k, []).append(v)
            split = ", ".join(f"{k} {statistics.median(v):.1f}" for k, v in parts.items())
            print(
                f"  threads={threads:<2d} {st.face.backend_used:6s} median {statistics.median(totals):.1f} ms "
                f"(cpu {statistics.median(cpu):.1f} ms)  ({split})"
            )
    cv2.setNumThreads(default_threads)


def bench_skin() -> None:
    from harerun.face.skin import classify_skin_pixels

    data = np.loadtxt(_need(SHARED / "data/skin_nonskin/Skin_NonSkin.txt"), dtype=np.int32)
    bgr = data[:, :3].astype(np.uint8)
    truth = data[:, 3] == 1
    pred = classify_skin_pixels(bgr) > 0
    print(
        f"skin classifier (Chai & Ngan YCrCb box) on UCI Skin Segmentation, {len(truth)} pixels: "
        f"accuracy {100 * np.mean(pred == truth):.2f} %, skin recall {100 * pred[truth].mean():.2f} %, "
        f"non-skin recall {100 * (~pred[~truth]).mean():.2f} %"
    )


#: Named mesh points as dlib 68-point indices (0-based, iBUG 300-W); eyes are ring means.
DLIB_POINTS = {
    "left_eye": range(36, 42),
    "right_eye": range(42, 48),
    "nose": [30],
    "mouth_left": [48],
    "mouth_right": [54],
    "chin": [8],
}


def bench_landmarks(min_side: int = 80) -> None:
    from harerun.face import Face
    from harerun.face.mediapipe import BlazeFaceBackend, fit_mesh

    folder = _need(SHARED / "data/faces/dlib_examples")
    faces = []  # (image file, box, {name: (x, y)})
    for xml in ("training_with_face_landmarks.xml", "testing_with_face_landmarks.xml"):
        for image in ET.parse(_need(folder / xml)).getroot().iter("image"):
            for b in image.iter("box"):
                box = tuple(int(b.get(k)) for k in ("left", "top", "width", "height"))
                if min(box[2:]) < min_side:
                    continue
                parts = {int(p.get("name")): (float(p.get("x")), float(p.get("y"))) for p in b.iter("part")}
                truth = {k: np.mean([parts[i] for i in idx], axis=0) for k, idx in DLIB_POINTS.items()}
                faces.append((image.get("file"), box, truth))
    detector = BlazeFaceBackend()
    print(
        f"landmarks: Face Mesh named points vs dlib 68-point landmarks (dlib model output), {len(faces)} faces "
        f"with box side >= {min_side} px; error in % of inter-ocular distance"
    )
    for label in ("annotated box", "BlazeFace detection (IoU >= 0.3)"):
        errors, scores, missed = {k: [] for k in DLIB_POINTS}, [], 0
        for name, box, truth in faces:
            img = cv2.imread(str(folder / name))
            if label == "annotated box":
                face = Face(box=box, score=1.0, landmarks={}, backend="dlib")
            else:
                found = [f for f in detector.detect(img) if iou(f.box, box) >= 0.3]
                if not found:
                    missed += 1
                    continue
                face = max(found, key=lambda f: iou(f.box, box))
            mesh = fit_mesh(img, face)
            scores.append(mesh.score)
            iod = np.linalg.norm(truth["right_eye"] - truth["left_eye"])
            for k, xy in mesh.named().items():
                errors[k].append(100.0 * np.linalg.norm(np.subtract(xy, truth[k])) / iod)
        if not scores:
            print(f"  mesh fitted from the {label}: no face matched")
            continue
        per_point = "  ".join(f"{k} {np.median(v):.1f}/{np.percentile(v, 90):.1f}" for k, v in errors.items())
        overall = np.median([e for v in errors.values() for e in v])
        print(
            f"  mesh fitted from the {label}: {len(scores)} faces{f' ({missed} not detected)' if missed else ''}, "
            f"median mesh score {np.median(scores):.3f}\n"
            f"    median/p90 %: {per_point}\n"
            f"    overall median {overall:.1f} %  (target: median <= 8 % of inter-ocular distance)"
        )


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # progress shows up when piped to a file
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--acne", action="store_true")
    ap.add_argument("--stage", action="store_true")
    ap.add_argument("--skin", action="store_true")
    ap.add_argument("--landmarks", action="store_true")
    ap.add_argument("--all", action="store_true")
    ap.add_argument("--fresh", action="store_true", help="as a fresh install: no YuNet model")
    ap.add_argument("--backends", default="auto,blazeface,yunet,haar")
    ap.add_argument("--limit", type=int, default=None, help="acne: only the first N photos")
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    _need(SHARED)
    host = PluginHost(autoload=False)
    backends = args.backends.split(",")
    only_default = not (args.acne or args.stage or args.skin or args.landmarks)
    if args.all or only_default:
        bench_dlib(host, backends)
    if args.all or args.acne:
        bench_acne(host, backends, args.limit)
    if args.all or args.stage:
        bench_stage(host, backends, args.repeats)
    if args.all or args.skin:
        bench_skin()
    if args.all or args.landmarks:
        bench_landmarks()


if __name__ == "__main__":
    main()
