"""HTTP API benchmark: latency percentiles and throughput of `harerun serve` on 127.0.0.1.

    python bench/http_load.py                      # default pipeline; 1, 2 and 8 clients; 1 and 2 server processes
    python bench/http_load.py --requests 200 --pipeline fast
    python bench/http_load.py --fuzz 2000          # then schemathesis with 2,000 examples per operation
    python bench/http_load.py --servers "" --fuzz 2000   # only the long fuzzing run

Photos: $HARERUN_SHARED/data/faces/dlib_examples/*.jpg (default <repo>/../shared); the YuNet
model from $HARERUN_MODEL_DIR (default <shared>/models). Every request loop is bounded in count
and time and talks only to 127.0.0.1. Figures are client-side wall times; the clients run on the
same (2-core, possibly shared) machine as the server, so read them as rough figures.

Targets: p50 <= 100 ms at 1 client; >= 20 photos/s with 2 server processes; p99 <= 400 ms at
8 clients; resident memory per server process <= 800 MB.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HARERUN_SHARED", REPO.parent / "shared"))
PHOTOS = SHARED / "data" / "faces" / "dlib_examples"
ANALYZE = "/api/v6/skin/analyze-hare-run"
MB = 1024 * 1024

_spec = importlib.util.spec_from_file_location("harerun_test_hostile", REPO / "tests" / "hostile.py")
hostile = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = hostile
_spec.loader.exec_module(hostile)


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def server_pids(pid: int, deep: bool = False) -> list[int]:
    """The processes serving requests: uvicorn's workers when it forked them, else itself
    (with ``deep``, also their analysis processes)."""
    kids = hostile.child_pids(pid)
    if deep:
        return [pid, *kids, *(g for k in kids for g in hostile.child_pids(k))]
    return kids or [pid]


def run_level(
    url: str, photos: list[tuple[str, bytes]], clients: int, total: int, pipeline: str, max_seconds: float
) -> dict:
    import httpx

    latencies: list[float] = []
    engine_ms: list[float] = []
    statuses: Counter = Counter()
    lock = threading.Lock()
    next_index = [0]
    deadline = time.monotonic() + max_seconds

    def client() -> None:
        with httpx.Client(base_url=url, timeout=60.0) as c:
            while time.monotonic() < deadline:
                with lock:
                    i = next_index[0]
                    if i >= total:
                        return
                    next_index[0] += 1
                name, data = photos[i % len(photos)]
                t0 = time.perf_counter()
                r = c.post(ANALYZE, params={"pipeline": pipeline}, files={"image": (name, data, "image/jpeg")})
                dt = time.perf_counter() - t0
                with lock:
                    statuses[r.status_code] += 1
                    if r.status_code != 503:
                        latencies.append(dt)
                    if r.status_code == 200:
                        engine_ms.append(r.json()["timings_ms"].get("total", float("nan")))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    done = sum(statuses.values())
    return {
        "clients": clients,
        "requests": done,
        "elapsed_s": elapsed,
        "statuses": dict(statuses),
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p95_ms": percentile(latencies, 0.95) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "engine_p50_ms": percentile(engine_ms, 0.50),
        "photos_per_s": (done - statuses.get(503, 0)) / elapsed if elapsed else 0.0,
    }


def bench_server(
    workers: int, threads: int, photos, levels, per_client: int, pipeline: str, max_seconds: float, processes: int = 0
) -> tuple[list[dict], list[int]]:
    env = {
        "HARERUN_ANALYSIS_THREADS": str(threads),
        "HARERUN_ANALYSIS_PROCESSES": str(processes),
        "HARERUN_QUEUE_SIZE": "32",
        "HARERUN_REQUEST_TIMEOUT_S": "60",
    }
    log = REPO / "build" / f"bench-http-w{workers}.log"
    log.parent.mkdir(exist_ok=True)
    server = hostile.LiveServer(env, workers=workers, log_path=log)
    url = server.start()
    try:
        import httpx

        pid = server.proc.pid
        with httpx.Client(base_url=url, timeout=60.0) as c:  # warm every worker's connection path
            for name, data in photos[: 2 * workers]:
                c.post(ANALYZE, params={"pipeline": pipeline}, files={"image": (name, data, "image/jpeg")})
        rows = []
        for n in levels:
            rows.append(run_level(url, photos, n, max(per_client * n, 2 * len(photos)), pipeline, max_seconds))
        rss = [hostile.rss_bytes(p) for p in server_pids(pid, deep=processes > 0)]
    finally:
        server.stop()
    return rows, rss


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pipeline", default="default")
    ap.add_argument("--clients", default="1,2,8", help="concurrency levels (default 1,2,8)")
    ap.add_argument(
        "--servers",
        default="1x2,2x1,1p2",
        help="server shapes PROCESSESxTHREADS or PROCESSESpANALYSIS_PROCESSES (default 1x2,2x1,1p2: one "
        "process with two analysis threads, two processes with one each, one process feeding two "
        "analysis processes)",
    )
    ap.add_argument("--requests", type=int, default=30, help="requests per client at each level (default 30)")
    ap.add_argument("--max-seconds", type=float, default=120.0, help="time cap per level (default 120)")
    ap.add_argument(
        "--fuzz",
        type=int,
        default=0,
        metavar="N",
        help="afterwards run the schemathesis test with N examples per operation (e.g. 2000)",
    )
    args = ap.parse_args()

    if not PHOTOS.is_dir():
        print(f"bench/http_load.py: skipped: {PHOTOS} not found (set HARERUN_SHARED to the folder holding data/)")
        return 0
    os.environ.setdefault("HARERUN_MODEL_DIR", str(SHARED / "models"))
    photos = [(p.name, p.read_bytes()) for p in sorted(PHOTOS.glob("*.jpg"))]
    levels = [int(x) for x in args.clients.split(",")]
    print(
        f"HTTP benchmark: pipeline {args.pipeline}, {len(photos)} photos from {PHOTOS}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start (figures are rough when loaded)"
    )
    print("p50/p95/p99: client wall time per request; engine p50: the server's own timings_ms.total")
    for shape in filter(None, args.servers.split(",")):
        if "p" in shape:
            workers, processes = (int(x) for x in shape.split("p"))
            threads, what = 1, f"{processes} analysis process(es) each"
        else:
            (workers, threads), processes = (int(x) for x in shape.split("x")), 0
            what = f"{threads} analysis thread(s)"
        rows, rss = bench_server(
            workers, threads, photos, levels, args.requests, args.pipeline, args.max_seconds, processes
        )
        print(f"\n== {workers} server process(es) x {what}")
        print(
            f"{'clients':>7} {'requests':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'photos/s':>9} "
            f"{'engine p50 ms':>13}  statuses"
        )
        for r in rows:
            print(
                f"{r['clients']:>7} {r['requests']:>8} {r['p50_ms']:>8.0f} {r['p95_ms']:>8.0f} {r['p99_ms']:>8.0f} "
                f"{r['photos_per_s']:>9.1f} {r['engine_p50_ms']:>13.0f}  {r['statuses']}"
            )
        print(f"RSS per server process: {', '.join(f'{x / MB:.0f} MB' for x in rss)}")
    if args.fuzz:
        print(f"\n== schemathesis, {args.fuzz} examples per operation")
        env = {**os.environ, "HARERUN_FUZZ_EXAMPLES": str(args.fuzz)}
        rc = subprocess.call(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-s",
                "-p",
                "no:cacheprovider",
                str(REPO / "tests" / "test_api_fuzz.py"),
            ],
            env=env,
            cwd=REPO,
        )
        if rc:
            return rc
    return 0


if __name__ == "__main__":
    sys.exit(main())
