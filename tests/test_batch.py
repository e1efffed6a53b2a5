"""`harerun batch`: finding photos, JSONL/CSV records, failures as records, resuming after a kill or a signal."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from harerun.batch import LineSink, NoPhotos, Resume, Variant, collect_inputs, csv_columns

REPO = Path(__file__).resolve().parents[1]
HAAR = """schema_version: 1
name: batchtest
face: {backend: haar}
detectors:
  - {id: acne, plugin: acne}
  - {id: redness, plugin: redness}
"""


def env():
    return {k: v for k, v in os.environ.items() if k != "HARERUN_DISABLE_PLUGIN_AUTOLOAD"}


def batch_cmd(*args):
    return [sys.executable, "-m", "harerun.cli", "batch", *map(str, args)]


def harerun(*args, cwd=REPO):
    return subprocess.run(
        batch_cmd(*args), cwd=cwd, env=env(), capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL
    )


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def photos(tmp_path_factory, astronaut_bgr):
    """Three faces (one in a sub-folder, upper-case extension), a grey square (no face) and a text file named .jpg."""
    d = tmp_path_factory.mktemp("batch")
    (d / "sub").mkdir()
    cv2.imwrite(str(d / "a.jpg"), astronaut_bgr)
    cv2.imwrite(str(d / "sub" / "b.PNG"), astronaut_bgr)
    cv2.imwrite(str(d / "c.jpeg"), np.ascontiguousarray(astronaut_bgr[:, ::-1]))
    cv2.imwrite(str(d / "grey.png"), np.full((300, 300, 3), 120, np.uint8))
    (d / "notes.jpg").write_text("not a photo")
    (d / "readme.txt").write_text("not looked at")
    (d / "haar.yaml").write_text(HAAR)
    return d


def test_inputs_folders_globs_lists_sorted_and_deduplicated(photos, tmp_path):
    os.symlink(photos / "a.jpg", tmp_path / "link.jpg")
    listing = tmp_path / "list.txt"
    listing.write_text(f"# faces\n\n{photos / 'c.jpeg'}\n{tmp_path / 'link.jpg'}\n")
    found = collect_inputs([str(photos), str(photos / "a.jpg"), f"{photos}/**/*.PNG", f"@{listing}"])
    names = [Path(p).relative_to(photos).as_posix() for p in found]
    assert names == ["a.jpg", "c.jpeg", "grey.png", "notes.jpg", "sub/b.PNG"]  # no .txt, .yaml; a.jpg once
    assert collect_inputs([f"{photos}/**/*.PNG"]) == [str(photos / "sub" / "b.PNG")]
    assert collect_inputs([f"@{listing}"]) == [str(photos / "a.jpg"), str(photos / "c.jpeg")]
    warnings = []
    with pytest.raises(NoPhotos, match="no photo found"):
        collect_inputs([str(tmp_path / "nope.jpg"), f"{tmp_path}/*.webp"], warn=warnings.append)
    assert "no such file" in warnings[0] and "matched no photo" in warnings[1]


def test_nothing_matched_and_bad_output_exit_2(photos, tmp_path):
    out = harerun(tmp_path / "empty", "--out", tmp_path / "o.jsonl")
    assert out.returncode == 2 and "no photo found" in out.stderr
    out = harerun(photos / "a.jpg", "--out", tmp_path / "o.txt")
    assert out.returncode == 2 and "use .jsonl, .csv or .parquet" in out.stderr
    (tmp_path / "full.jsonl").write_text("{}\n")
    out = harerun(photos / "a.jpg", "--out", tmp_path / "full.jsonl")
    assert out.returncode == 2 and "--resume" in out.stderr
    out = harerun(photos / "a.jpg", "--out", tmp_path / "p.jsonl", "--pipeline", "defautl")
    assert out.returncode == 2 and "did you mean" in out.stderr and not (tmp_path / "p.jsonl").exists()


def test_jsonl_records_failures_and_exit_code(photos, tmp_path):
    out_file = tmp_path / "out.jsonl"
    out = harerun(photos, "--out", out_file, "--pipeline", photos / "haar.yaml", "--jobs", "1")
    assert out.returncode == 2, out.stderr  # a bad-input failure outranks a no-face one, as in `harerun analyze`
    by_name = {Path(r["path"]).name: r for r in records(out_file)}
    assert sorted(by_name) == ["a.jpg", "b.PNG", "c.jpeg", "grey.png", "notes.jpg"]
    ok = by_name["a.jpg"]
    assert ok["status"] == "ok" and ok["pipeline"] == "batchtest" and ok["results"]["acne"]["status"] == "ok"
    assert ok["sha256"] == hashlib.sha256((photos / "a.jpg").read_bytes()).hexdigest()
    assert {"image", "face", "quality", "results", "timings_ms", "versions"} <= set(ok)
    assert by_name["grey.png"]["error"]["code"] == "NO_FACE" and by_name["grey.png"]["status"] == "error"
    assert by_name["notes.jpg"]["error"]["code"] == "UNSUPPORTED_FORMAT"
    assert "error NO_FACE: 1" in out.stderr and "error UNSUPPORTED_FORMAT: 1" in out.stderr
    assert "acne" in out.stderr and "median" in out.stderr and "photos/s" in out.stderr

    only_faces = harerun(
        photos / "a.jpg", photos / "c.jpeg", "--out", tmp_path / "f.jsonl", "--pipeline", photos / "haar.yaml"
    )
    assert only_faces.returncode == 0, only_faces.stderr
    noface = harerun(photos / "grey.png", "--out", tmp_path / "g.jsonl", "--pipeline", photos / "haar.yaml")
    assert noface.returncode == 3


def test_csv_header_is_fixed_by_the_pipeline(photos, tmp_path):
    out_file = tmp_path / "out.csv"
    # The no-face photo comes first: the header must not depend on it.
    out = harerun(photos / "grey.png", photos / "a.jpg", "--out", out_file, "--pipeline", photos / "haar.yaml")
    assert out.returncode == 3, out.stderr
    rows = list(csv.DictReader(out_file.open()))
    assert tuple(rows[0]) == csv_columns(["acne", "redness"])
    grey, face = (rows[0], rows[1]) if rows[0]["path"].endswith("grey.png") else (rows[1], rows[0])
    assert grey["status"] == "error" and grey["error_code"] == "NO_FACE" and grey["acne.score"] == ""
    assert face["status"] == "ok" and float(face["acne.score"]) >= 0 and face["redness.severity"]
    assert float(face["redness.forehead"]) >= 0 and face["face.w"] and face["quality.score"]


def test_resume_drops_a_torn_line_and_stale_records(photos, tmp_path, astronaut_bgr):
    d = tmp_path / "p"
    d.mkdir()
    for name in ("x.jpg", "y.jpg", "z.jpg"):
        cv2.imwrite(str(d / name), astronaut_bgr)
    out_file = tmp_path / "out.jsonl"
    out = harerun(d, "--out", out_file, "--pipeline", photos / "haar.yaml", "--jobs", "1")
    assert out.returncode == 0, out.stderr
    lines = out_file.read_text().splitlines(keepends=True)
    by_name = {Path(json.loads(line)["path"]).name: line for line in lines}
    # killed while writing z's record; y changed since it was analysed
    out_file.write_text(by_name["x.jpg"] + by_name["y.jpg"] + by_name["z.jpg"][:40])
    cv2.imwrite(str(d / "y.jpg"), np.ascontiguousarray(astronaut_bgr[:, ::-1]))
    state = Resume([str(p) for p in d.iterdir()], (Variant(None, None, str(photos / "haar.yaml"), "batchtest"),))
    LineSink(out_file, None).prepare(state)
    assert state.done == {str(d / "x.jpg"): {None}}
    assert out_file.read_text() == by_name["x.jpg"]

    out_file.write_text(by_name["x.jpg"] + by_name["y.jpg"] + by_name["z.jpg"][:40])
    out = harerun(d, "--out", out_file, "--pipeline", photos / "haar.yaml", "--jobs", "1", "--resume")
    assert out.returncode == 0, out.stderr
    assert "1 already in" in out.stderr
    recs = records(out_file)
    assert sorted(Path(r["path"]).name for r in recs) == ["x.jpg", "y.jpg", "z.jpg"]
    y = next(r for r in recs if r["path"].endswith("y.jpg"))
    assert y["sha256"] == hashlib.sha256((d / "y.jpg").read_bytes()).hexdigest()

    again = harerun(d, "--out", out_file, "--pipeline", photos / "haar.yaml", "--resume")
    assert again.returncode == 0 and "3 already in" in again.stderr and len(records(out_file)) == 3


def test_csv_resume_checks_the_header(photos, tmp_path):
    out_file = tmp_path / "out.csv"
    out_file.write_text("path,sha256,status\n")
    out = harerun(photos / "a.jpg", "--out", out_file, "--pipeline", photos / "haar.yaml", "--resume")
    assert out.returncode == 2 and "CSV columns" in out.stderr


def _start_and_stop(cmd: list[str], out_file: Path, sig: int) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, cwd=REPO, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if out_file.exists() and out_file.read_bytes().count(b"\n") >= 2:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be stopped: " + proc.stderr.read().decode()
    proc.send_signal(sig)
    return proc


@pytest.mark.parametrize("fmt", [".jsonl", ".csv"])
def test_killed_and_resumed_gives_one_record_per_photo(photos, tmp_path, astronaut_bgr, fmt):
    d = tmp_path / "p"
    d.mkdir()
    for i in range(12):
        cv2.imwrite(str(d / f"{i:02d}.jpg"), np.roll(astronaut_bgr, 3 * i, axis=1))
    out_file = tmp_path / f"out{fmt}"
    cmd = batch_cmd(d, "--out", out_file, "--pipeline", photos / "haar.yaml", "--jobs", "2", "--quiet")
    proc = _start_and_stop(cmd, out_file, signal.SIGKILL)
    proc.wait(timeout=60)
    assert len(out_file.read_bytes().splitlines()) < 12 + (fmt == ".csv")  # stopped before the end
    out = harerun(*cmd[4:], "--resume")
    assert out.returncode == 0, out.stderr
    if fmt == ".jsonl":
        paths = [r["path"] for r in records(out_file)]
    else:
        paths = [r["path"] for r in csv.DictReader(out_file.open())]
    assert sorted(paths) == sorted(str(p) for p in d.iterdir())  # none lost, none twice


def test_sigterm_finishes_the_photos_in_progress_and_exits_143(photos, tmp_path, astronaut_bgr):
    d = tmp_path / "p"
    d.mkdir()
    for i in range(12):
        cv2.imwrite(str(d / f"{i:02d}.jpg"), np.roll(astronaut_bgr, 3 * i, axis=0))
    out_file = tmp_path / "out.jsonl"
    cmd = batch_cmd(d, "--out", out_file, "--pipeline", photos / "haar.yaml", "--jobs", "2")
    proc = _start_and_stop(cmd, out_file, signal.SIGTERM)
    assert proc.wait(timeout=120) == 143
    stderr = proc.stderr.read().decode()
    assert "stopped by SIGTERM" in stderr
    text = out_file.read_text()
    assert text.endswith("\n")
    first = records(out_file)  # every line whole
    assert 2 <= len(first) < 12
    out = harerun(*cmd[4:], "--resume")
    assert out.returncode == 0, out.stderr
    assert sorted(r["path"] for r in records(out_file)) == sorted(str(p) for p in d.iterdir())
