"""Figures for the fault targets of issue #12 (the pass/fail checks are tests/test_faults_*.py).

    python bench/faults.py

1. A black-hole S3 endpoint (accepts connections, never answers) and a pipeline whose ML model is
   only in S3: `harerun serve` start-up time (until /health, then until /ready answers), /ready's
   answer, 6 concurrent analyses (status, wall time each), model-status time; one CLI analysis.
2. `harerun pipelines validate` on an alias bomb (depth 9) and on a 5000-digit integer: exit
   code, wall time, message size.

Wall times include the interpreter start for the CLI rows. Machine: printed at the top.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("harerun_bench_hostile", REPO / "tests" / "hostile.py")
hostile = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = hostile
_spec.loader.exec_module(hostile)
CLI = [sys.executable, "-c", "import sys; from harerun.cli import main; sys.exit(main())"]
ANALYZE = "/api/v6/skin/analyze-hare-run"


def black_hole() -> str:
    sock = socket.create_server(("127.0.0.1", 0), backlog=256)
    held = []

    def accept() -> None:
        while True:
            held.append(sock.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


def pipelines_needing(folder: Path, model: str) -> Path:
    folder.mkdir()
    for f in (REPO / "pipelines").glob("*.yaml"):
        shutil.copy(f, folder / f.name)
    default = yaml.safe_load((folder / "default.yaml").read_text())
    for step in default["detectors"]:
        if step.get("plugin") == "ml_classifier":
            step.setdefault("params", {})["model"] = model
    (folder / "default.yaml").write_text(yaml.safe_dump(default))
    return folder


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def s3_black_hole(tmp: Path) -> None:
    from skimage import data

    photo = cv2.imencode(".jpg", cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))[1].tobytes()
    env = {
        "HARERUN_PIPELINES_DIR": str(pipelines_needing(tmp / "pipelines", "acne-grade@77")),
        "HARERUN_S3_BUCKET": "models",
        "HARERUN_S3_ENDPOINT_URL": black_hole(),
        "HARERUN_CACHE_DIR": str(tmp / "cache"),
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "y",
    }
    print("## S3 endpoint that accepts connections and never answers\n")
    server = hostile.LiveServer(env, wait_for="/health", log_path=tmp / "serve.log")
    t0 = time.perf_counter()
    with server as url, httpx.Client(base_url=url, timeout=60) as http:
        up = time.perf_counter() - t0
        while "starting up" in (ready := http.get("/ready")).text:
            time.sleep(0.05)
        started = time.perf_counter() - t0
        print(f"- start-up (until it answers; uvicorn serves once start-up is done): {max(up, started):.1f} s")
        print(f"- /ready: {ready.status_code} {ready.json().get('error', {}).get('message', '')}")
        results = []

        def post() -> None:
            r, s = timed(lambda: http.post(ANALYZE, content=photo, headers={"Content-Type": "image/jpeg"}))
            results.append((r.status_code, r.json().get("results", {}).get("ml_classifier", {}).get("status"), s))

        threads = [threading.Thread(target=post) for _ in range(6)]  # the default capacity: 2 threads + 4 queued
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(
            f"- 6 concurrent analyses: statuses {sorted({(c, m) for c, m, _ in results})}, "
            f"wall median {statistics.median(s for *_, s in results):.2f} s, max {max(s for *_, s in results):.2f} s"
        )
        r, s = timed(lambda: http.get("/api/v5/skin/model-status"))
        print(f"- model-status: {r.status_code} in {s:.2f} s")
    sample = tmp / "a.jpg"
    sample.write_bytes(photo)
    r, s = timed(
        lambda: subprocess.run(
            [*CLI, "analyze", str(sample), "--pipeline", str(tmp / "pipelines/default.yaml"), "--json"],
            env={**os.environ, **env},
            capture_output=True,
            timeout=300,
        )
    )
    print(f"- CLI `harerun analyze` (one photo, cold): exit {r.returncode} in {s:.2f} s wall\n")


def hostile_yaml(tmp: Path) -> None:
    print("## Hostile pipeline files (`harerun pipelines validate FILE`)\n")
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [{','.join(f'*a{i - 1}' for _ in range(10))}]" for i in range(1, 10)]
    (tmp / "bomb.yaml").write_text("\n".join(lines) + "\n")
    base = yaml.safe_load((REPO / "pipelines/default.yaml").read_text())
    step = next(s for s in base["detectors"] if s.get("plugin") == "acne")
    step.setdefault("params", {})["min_separation_px"] = 1
    (tmp / "bigint.yaml").write_text(
        yaml.safe_dump(base).replace("min_separation_px: 1", "min_separation_px: " + "7" * 5000)
    )
    for name in ("bomb.yaml", "bigint.yaml"):
        r, s = timed(
            lambda n=name: subprocess.run(
                [*CLI, "pipelines", "validate", str(tmp / n)], capture_output=True, timeout=300
            )
        )
        print(f"- {name}: exit {r.returncode} in {s:.2f} s wall, message {len(r.stdout) + len(r.stderr)} bytes")
    r, s = timed(
        lambda: subprocess.run(
            [*CLI, "pipelines", "validate", str(REPO / "pipelines/default.yaml")], capture_output=True, timeout=300
        )
    )
    print(f"- (a good file for comparison: exit {r.returncode} in {s:.2f} s wall)\n")


def main() -> int:
    print(
        f"machine: {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}, "
        f"{platform.machine()}\n"
    )
    with tempfile.TemporaryDirectory() as d:
        s3_black_hole(Path(d))
        hostile_yaml(Path(d))
    return 0


if __name__ == "__main__":
    sys.exit(main())
