"""Soak benchmark: `harerun serve` under a mix of good and hostile requests for minutes.

    python bench/soak.py                           # 10 minutes, 8 clients, analysis in threads
    python bench/soak.py --minutes 1               # a short run
    python bench/soak.py --minutes 0.5 --processes 2 --json soak.json

Starts the server (tests/hostile.py's LiveServer, TMPDIR set to a fresh folder, log in
build/bench-soak.log), warms it up for 20 s with the same mix, then runs ``--clients`` threads
that pick requests at random: the astronaut photo (skimage) as JPEG to the analysis route as
multipart, raw image/jpeg and base64 JSON; face detection; GET /health, /ready, /api/pipelines,
/api/v5/skin/model-status, /metrics; and hostile ones: the tests/hostile.py corpus, made-up HTTP
methods, unknown paths, sockets that send half a request head and go away, 11 MB bodies.
Afterwards the server gets SIGTERM. Every request talks only to 127.0.0.1.

Targets (exit code 1 if one fails): no 5xx other than the documented 503s (OVERLOADED, TIMEOUT,
NOT_READY, WORKER_LOST); no answer that is not JSON where JSON is due or that holds "Traceback"
(nor a Traceback in the server log); after SIGTERM no process of the server's tree and nothing in
its TMPDIR (e.g. harerun-metrics-*) left; server RSS (itself plus its analysis processes) grows
<= 10 % from after the warm-up to the end.
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MB = 1024 * 1024
DOCUMENTED_503 = {"OVERLOADED", "TIMEOUT", "NOT_READY", "WORKER_LOST"}
WARM_UP_S, RSS_TARGET_PCT = 20.0, 10.0

_spec = importlib.util.spec_from_file_location("harerun_test_hostile", REPO / "tests" / "hostile.py")
hostile = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = hostile
_spec.loader.exec_module(hostile)
ANALYZE, DETECT = hostile.ANALYZE, hostile.DETECT


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0.5, 0.99) of at least two values, else NaN."""
    if len(values) < 2:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def half_head(port: int) -> None:
    """Open a socket, send half a request head, go away."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"POST {ANALYZE} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ima".encode())
        time.sleep(random.uniform(0, 0.2))


def mix(photo: bytes, astronaut_bgr, port: int) -> list[tuple[float, str, tuple | None, object]]:
    """(weight, label, expected (status, code) or None, send(client)) for every kind of request."""
    b64, big = base64.b64encode(photo).decode(), b"\xff\xd8" + b"\0" * (11 * MB)
    file = {"image": ("astronaut.jpg", photo, "image/jpeg")}
    ok, jpg = (200, None), {"content-type": "image/jpeg"}
    out = [
        (10, "good: analyze multipart", ok, lambda c: c.post(ANALYZE, files=file)),
        (10, "good: analyze raw jpeg", ok, lambda c: c.post(ANALYZE, content=photo, headers=jpg)),
        (10, "good: analyze base64 json", ok, lambda c: c.post(ANALYZE, json={"image": b64})),
        (8, "good: face detect", ok, lambda c: c.post(DETECT, files=file)),
    ]
    for path in ["/health", "/ready", "/api/pipelines", "/api/v5/skin/model-status", "/metrics"]:
        out.append((3, f"good: GET {path}", ok, lambda c, p=path: c.get(p)))
    for k in hostile.corpus(astronaut_bgr):
        kw = k.httpx_kwargs()
        out.append((0.7, f"corpus: {k.name}", (k.status, k.code), lambda c, kw=kw: c.post(ANALYZE, **kw)))
    for method in ["BREW", "PROPFIND", "XYZZY"]:
        send = lambda c, m=method: c.request(m, ANALYZE)  # noqa: E731
        out.append((1, f"method: {method} {ANALYZE}", (405, "METHOD_NOT_ALLOWED"), send))
    for path in ["/no/such/route", "/api/v7/skin/analyze-hare-run", "/api/" + "x" * 3000, "/%00%ff"]:
        out.append((1, f"path: GET {path[:40]}", (404, "NOT_FOUND"), lambda c, p=path: c.get(p)))
    too_big = (413, "IMAGE_TOO_LARGE")
    out += [
        (4, "half request head", None, lambda c: half_head(port)),
        (1.5, "oversize raw body", too_big, lambda c: c.post(ANALYZE, content=big, headers=jpg)),
        (1.5, "oversize multipart", too_big, lambda c: c.post(ANALYZE, files={"image": ("b.jpg", big, "image/jpeg")})),
    ]  # fmt: skip
    return out


class Stats:
    def __init__(self) -> None:
        self.lock, self.half_heads = threading.Lock(), 0
        self.answers, self.unexpected, self.transport = Counter(), Counter(), Counter()
        self.all_s, self.good_s, self.undocumented_5xx, self.bad_body = [], [], [], []

    def record(self, label: str, expect: tuple, r, dt: float) -> None:
        is_json = r.headers.get("content-type", "").startswith("application/json")
        try:
            body = r.json() if is_json else None
        except ValueError:
            body, is_json = None, False
        err = body.get("error") if isinstance(body, dict) else None
        code = err.get("code") if isinstance(err, dict) else None
        note = f"{label} -> {r.status_code} {code}: {r.text[:200]!r}"
        documented_503 = r.status_code == 503 and code in DOCUMENTED_503
        with self.lock:
            self.answers[(r.status_code, code)] += 1
            self.all_s.append(dt)
            if label.startswith("good: analyze") and r.status_code == 200:
                self.good_s.append(dt)
            if (r.status_code, code) != expect and not documented_503:
                self.unexpected[(label, r.status_code, code)] += 1
            if r.status_code >= 500 and not documented_503:
                self.undocumented_5xx.append(note)
            if (not is_json and label != "good: GET /metrics") or b"Traceback" in r.content:
                self.bad_body.append(note)


def run_clients(url: str, jobs, clients: int, seconds: float, stats: Stats) -> float:
    import httpx

    deadline = time.monotonic() + seconds
    weights = [j[0] for j in jobs]

    def client(seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=url, timeout=120.0) as c:
            while time.monotonic() < deadline:
                _, label, expect, send = rng.choices(jobs, weights)[0]
                t0 = time.perf_counter()
                try:
                    r = send(c)
                except (httpx.HTTPError, OSError) as e:
                    r = type(e).__name__
                if isinstance(r, httpx.Response):
                    stats.record(label, expect, r, time.perf_counter() - t0)
                    continue
                with stats.lock:
                    if r is None:
                        stats.half_heads += 1
                    else:
                        stats.transport[(label, r)] += 1

    threads, t0 = [threading.Thread(target=client, args=(i,)) for i in range(clients)], time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def read(path: str | Path) -> str:
    try:
        return Path(path).read_text()
    except OSError:  # the process is gone
        return ""


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (analysis processes, multiprocessing's resource tracker), from /proc."""
    kids = {int(k) for task in Path(f"/proc/{pid}/task").glob("*") for k in read(task / "children").split()}
    return [*kids, *(g for k in kids for g in descendants(k))]


def alive(pid: int) -> bool:
    return read(f"/proc/{pid}/stat").rpartition(")")[2].split()[:1] not in ([], ["Z"], ["X"])


def server_rss(pid: int) -> int:
    """Resident memory of the server process plus every process below it, in bytes."""
    rss = [line.split()[1] for p in [pid, *descendants(pid)] for line in read(f"/proc/{p}/status").splitlines()
           if line.startswith("VmRSS:")]  # fmt: skip
    return sum(int(kb) * 1024 for kb in rss)


def sample_rss(pid: int, rss: list[int], done: threading.Event) -> None:
    while not done.wait(2.0):
        rss.append(server_rss(pid))


def soak(args, log: Path, tmp: Path) -> dict:
    """Start the server, warm it up, run the clients, SIGTERM it; the figures."""
    from skimage import data

    astronaut = np.ascontiguousarray(data.astronaut()[:, :, ::-1])
    env = {"HARERUN_ANALYSIS_PROCESSES": str(args.processes), "TMPDIR": str(tmp)}
    server = hostile.LiveServer(env, log_path=log)
    url, stats, rss, done = server.start(), Stats(), [], threading.Event()
    pid, jobs = server.proc.pid, mix(hostile.jpeg(astronaut), astronaut, server.port)
    try:
        run_clients(url, jobs, args.clients, WARM_UP_S, Stats())
        rss.append(server_rss(pid))
        sampler = threading.Thread(target=sample_rss, args=(pid, rss, done))
        sampler.start()
        elapsed = run_clients(url, jobs, args.clients, args.minutes * 60, stats)
        done.set()
        sampler.join()
        rss.append(server_rss(pid))
        tree = descendants(pid)
    finally:
        done.set()
        t0 = time.monotonic()
        server.stop()  # SIGTERM; SIGKILL after 20 s
        stop_s = time.monotonic() - t0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(map(alive, tree)):
        time.sleep(0.2)
    leaked = [k for k in tree if alive(k)]
    for k in leaked:  # noted; now do not leave them running
        os.kill(k, signal.SIGKILL)
    n = sum(stats.answers.values())
    return {
        "minutes": elapsed / 60, "clients": args.clients, "processes": args.processes, "requests": n,
        "requests_per_s": n / elapsed, "half_heads": stats.half_heads, "good_n": len(stats.good_s),
        "latency_ms": {f"{name}_p{round(q * 100)}": percentile(v, q) * 1000
                       for name, v in (("good", stats.good_s), ("all", stats.all_s)) for q in (0.5, 0.99)},
        "answers": sorted(((s, c, k) for (s, c), k in stats.answers.items()), key=lambda a: (a[0], str(a[1]))),
        "unexpected": [f"{k:>5} x {lb} -> {s} {c}" for (lb, s, c), k in stats.unexpected.most_common()],
        "transport_errors": [f"{k:>5} x {lb}: {e}" for (lb, e), k in stats.transport.most_common()],
        "undocumented_5xx": stats.undocumented_5xx, "bad_bodies": stats.bad_body,
        "log_tracebacks": log.read_text(errors="replace").count("Traceback"),
        "rss_bytes": rss, "rss_growth_pct": (rss[-1] - rss[0]) / rss[0] * 100 if rss[0] else float("nan"),
        "exit_code": server.proc.returncode, "stop_s": stop_s, "tree": len(tree), "processes_left": leaked,
        "tmpdir_left": sorted(p.name for p in tmp.iterdir()),
        "cpu_count": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
    }  # fmt: skip


def report(f: dict, log: Path) -> list[str]:
    """Print the figures as markdown; return the targets that failed."""
    ms, rss = f["latency_ms"], [x / MB for x in f["rss_bytes"]]
    tracebacks = sum("Traceback" in b for b in f["bad_bodies"])
    checks = {
        "undocumented 5xx": f["undocumented_5xx"], "non-JSON or Traceback answers": f["bad_bodies"],
        "Traceback in server log": f["log_tracebacks"], "processes left": f["processes_left"],
        "TMPDIR entries left": f["tmpdir_left"], "server killed after SIGTERM": f["exit_code"] == -signal.SIGKILL,
        f"RSS growth > {RSS_TARGET_PCT:g} %": not f["rss_growth_pct"] <= RSS_TARGET_PCT,
    }  # fmt: skip
    what = f"{f['processes']} analysis processes" if f["processes"] else "analysis in threads"
    print(f"\n## Soak: {f['minutes']:.1f} min, {f['clients']} clients, {what}, after a {WARM_UP_S:.0f} s warm-up\n")
    print(f"machine: {f['cpu_count']} CPUs, Python {f['python']} on {f['platform']}, load average "
          f"{os.getloadavg()[0]:.1f}; latencies are client wall times, p50 = median; server log: {log}\n")  # fmt: skip
    rows = [
        ("requests answered", f"{f['requests']} ({f['requests_per_s']:.1f}/s) + {f['half_heads']} half heads", ""),
        ("good analyses (200) p50 / p99", f"{ms['good_p50']:.0f} / {ms['good_p99']:.0f} ms (n={f['good_n']})", ""),
        ("all answers p50 / p99", f"{ms['all_p50']:.0f} / {ms['all_p99']:.0f} ms", ""),
        ("5xx other than documented 503s", len(f["undocumented_5xx"]), 0),
        ("not JSON where due / holding Traceback", f"{len(f['bad_bodies']) - tracebacks} / {tracebacks}", "0 / 0"),
        ("Traceback in server log", f["log_tracebacks"], 0),
        ("server RSS after warm-up -> end (peak)",
         f"{rss[0]:.0f} -> {rss[-1]:.0f} MB ({max(rss):.0f}), {f['rss_growth_pct']:+.1f} %", f"<= {RSS_TARGET_PCT:g} %"),
        ("exit after SIGTERM", f"code {f['exit_code']} in {f['stop_s']:.1f} s", "not killed"),
        ("processes left after SIGTERM", f"{len(f['processes_left'])} of {f['tree']} {f['processes_left'] or ''}", 0),
        ("TMPDIR entries left (harerun-metrics-*, ...)", f"{len(f['tmpdir_left'])} {f['tmpdir_left'] or ''}", 0),
    ]  # fmt: skip
    print("| figure | value | target |\n|---|---|---|")
    for name, value, target in rows:
        print(f"| {name} | {str(value).strip()} | {target} |")
    print("\n| status | code | count |\n|---|---|---|")
    for status, code, count in f["answers"]:
        print(f"| {status} | {code or '-'} | {count} |")
    for title, lines in [("answers other than the documented one (documented 503s aside)", f["unexpected"]),
                         ("transport errors (no HTTP answer)", f["transport_errors"]),
                         ("undocumented 5xx (first 5)", f["undocumented_5xx"][:5]),
                         ("bad bodies (first 5)", f["bad_bodies"][:5])]:  # fmt: skip
        if lines:
            print(f"\n{title}:\n" + "\n".join(f"  {line}" for line in lines))
    failed = [name for name, bad in checks.items() if bad]
    print(f"\nverdict: {'PASS' if not failed else 'FAIL: ' + ', '.join(failed)}")
    return failed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the measured run (default 10)")
    ap.add_argument("--clients", type=int, default=8, help="client threads (default 8)")
    ap.add_argument("--processes", type=int, default=0, help="HARERUN_ANALYSIS_PROCESSES for the server (default 0)")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = ap.parse_args()
    log, tmp = REPO / "build" / "bench-soak.log", Path(tempfile.mkdtemp(prefix="harerun-soak-"))
    log.parent.mkdir(exist_ok=True)
    try:
        figures = soak(args, log, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    figures["failed"] = report(figures, log)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 1 if figures["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
