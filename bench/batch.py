"""`harerun batch` throughput with one and two analysis processes, and the runner's memory over 2000 photos.

    python bench/batch.py                   # default pipeline, 2 rounds, 2000 photos for the memory run
    python bench/batch.py --rounds 3 --pipeline fast --memory-photos 500

Throughput: the shared face photos plus the first 100 acne close-ups, as one `harerun batch` run per
setting, `--jobs 1` and `--jobs 2` alternating for ``--rounds`` rounds; photos/s is over each run's
whole wall time (start-up, plugin and model loading included), the best round of each is compared.

Memory: a folder of ``--memory-photos`` hard links to the shared face photos (distinct paths, so
none is de-duplicated) named in a list file, run with ``--jobs 2``; the runner's (parent's) resident
memory is sampled from ``/proc/PID/status`` while the records arrive and printed after 10 %, 50 % and
100 % of them with its peak (``VmHWM``): flat means the runner does not keep results.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from conftest import shared_path  # noqa: E402


def _status_kb(pid: int, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _batch(list_file: Path, out: Path, jobs: int, pipeline: str, watch: bool = False) -> tuple[float, list]:
    """Wall time of one run and, with ``watch``, (records written, RSS kB, HWM kB) samples of the runner."""
    out.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "harerun.cli", "batch", f"@{list_file}", "--out", str(out), "--quiet"]
    cmd += ["--jobs", str(jobs), "--pipeline", pipeline]
    env = {k: v for k, v in os.environ.items() if k != "HARERUN_DISABLE_PLUGIN_AUTOLOAD"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    samples = []
    while proc.poll() is None:
        if watch:
            rss, hwm = _status_kb(proc.pid, "VmRSS"), _status_kb(proc.pid, "VmHWM")
            n = out.read_bytes().count(b"\n") if out.exists() else 0
            if rss:
                samples.append((n, rss, hwm))
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    stderr = proc.stderr.read()
    if proc.returncode not in (0, 2, 3):
        sys.exit(f"harerun batch failed ({proc.returncode}):\n{stderr}")
    return wall, samples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--pipeline", default="default")
    ap.add_argument("--memory-photos", type=int, default=2000)
    args = ap.parse_args()

    data = shared_path() / "data"
    faces = sorted((data / "faces" / "dlib_examples").glob("*.jpg"))
    acne = sorted((data / "acne" / "images").glob("*.jpg"))[:100]
    if not faces or not acne:
        sys.exit(f"shared photos not found under {data}")
    print(f"machine: {os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable), Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        photos = tmp / "photos.txt"
        photos.write_text("".join(f"{p}\n" for p in faces + acne))
        n = len(faces) + len(acne)
        print(f"throughput: {len(faces)} face photos + {len(acne)} acne close-ups, pipeline {args.pipeline}")
        best: dict[int, float] = {}
        for r in range(args.rounds):
            for jobs in (1, 2):
                wall, _ = _batch(photos, tmp / "out.jsonl", jobs, args.pipeline)
                rate = n / wall
                best[jobs] = max(best.get(jobs, 0.0), rate)
                print(f"  round {r + 1} --jobs {jobs}: {n} photos in {wall:.1f} s = {rate:.2f} photos/s")
        print(
            f"  best: --jobs 1 {best[1]:.2f} photos/s, --jobs 2 {best[2]:.2f} photos/s, ratio {best[2] / best[1]:.2f}"
        )

        many = tmp / "many"
        many.mkdir()
        lines = []
        for i in range(args.memory_photos):
            src = faces[i % len(faces)]
            dst = many / f"{i:05d}-{src.name}"
            try:
                os.link(src, dst)
            except OSError:
                shutil.copyfile(src, dst)
            lines.append(f"{dst}\n")
        listing = tmp / "many.txt"
        listing.write_text("".join(lines))
        wall, samples = _batch(listing, tmp / "many.jsonl", 2, args.pipeline, watch=True)
        total = args.memory_photos
        print(
            f"memory: {total} photos (hard links to the face photos), --jobs 2, {wall:.1f} s = {total / wall:.2f} photos/s"
        )
        for frac in (0.1, 0.5, 1.0):
            at = next((s for s in samples if s[0] >= frac * total), samples[-1] if samples else None)
            if at:
                print(f"  runner RSS after {at[0]:>5} records: {at[1] / 1024:.0f} MB")
        if samples:
            print(f"  runner peak RSS (VmHWM): {max(s[2] or 0 for s in samples) / 1024:.0f} MB")


if __name__ == "__main__":
    main()
