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

from harerun.batch import LineSink, NoPhotos, Resume, Variant, collect_inputs, csv_columns, flatten, iter_records

try:
    import pyarrow.parquet as pq
except ImportError:  # only the Parquet tests need it (core extra `parquet`)
    pq = None

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


def _written(out_file: Path) -> int:
    """Records saved so far: whole lines (JSONL, CSV with its header), or rows in Parquet parts."""
    if out_file.suffix == ".parquet":
        parts = sorted(out_file.with_name(out_file.name + ".parts").glob("part-*.parquet"))
        return sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
    return out_file.read_bytes().count(b"\n") if out_file.exists() else 0


def _start_and_stop(cmd: list[str], out_file: Path, sig: int) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, cwd=REPO, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if _written(out_file) >= 2:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be stopped: " + proc.stderr.read().decode()
    proc.send_signal(sig)
    return proc


def needs_pyarrow(fmt: str = ".parquet") -> None:
    if fmt == ".parquet" and pq is None:
        pytest.skip("pyarrow is not installed (pip install 'harerun[parquet]')")


def read_paths(out_file: Path) -> list[str]:
    return [r["path"] for r in iter_records(out_file)]


@pytest.mark.parametrize("fmt", [".jsonl", ".csv", ".parquet"])
def test_killed_and_resumed_gives_one_record_per_photo(photos, tmp_path, astronaut_bgr, fmt):
    needs_pyarrow(fmt)
    d = tmp_path / "p"
    d.mkdir()
    for i in range(12):
        cv2.imwrite(str(d / f"{i:02d}.jpg"), np.roll(astronaut_bgr, 3 * i, axis=1))
    out_file = tmp_path / f"out{fmt}"
    cmd = batch_cmd(d, "--out", out_file, "--pipeline", photos / "haar.yaml", "--jobs", "2", "--quiet")
    if fmt == ".parquet":
        cmd += ["--row-group-size", "2"]
    proc = _start_and_stop(cmd, out_file, signal.SIGKILL)
    proc.wait(timeout=60)
    kept = _written(out_file)
    assert 2 <= kept < 12 + (fmt == ".csv")  # stopped before the end, with what it had saved
    if fmt == ".parquet":  # the parts of a killed run: a readable dataset, the file itself not yet there
        assert not out_file.exists()
        assert pq.read_table(out_file.with_name(out_file.name + ".parts")).num_rows == kept
        again = harerun(*cmd[4:])
        assert again.returncode == 2 and "unfinished run" in again.stderr and "--resume" in again.stderr
    out = harerun(*cmd[4:], "--resume")
    assert out.returncode == 0, out.stderr
    assert sorted(read_paths(out_file)) == sorted(str(p) for p in d.iterdir())  # none lost, none twice
    if fmt == ".parquet":
        assert not out_file.with_name(out_file.name + ".parts").exists()
        assert pq.ParquetFile(out_file).num_row_groups >= 6  # row groups of 2 records


@pytest.mark.parametrize("fmt", [".jsonl", ".parquet"])
def test_sigterm_finishes_the_photos_in_progress_and_exits_143(photos, tmp_path, astronaut_bgr, fmt):
    needs_pyarrow(fmt)
    d = tmp_path / "p"
    d.mkdir()
    for i in range(12):
        cv2.imwrite(str(d / f"{i:02d}.jpg"), np.roll(astronaut_bgr, 3 * i, axis=0))
    out_file = tmp_path / f"out{fmt}"
    cmd = batch_cmd(d, "--out", out_file, "--pipeline", photos / "haar.yaml", "--jobs", "2", "--row-group-size", "1")
    proc = _start_and_stop(cmd, out_file, signal.SIGTERM)
    assert proc.wait(timeout=120) == 143
    stderr = proc.stderr.read().decode()
    assert "stopped by SIGTERM" in stderr
    if fmt == ".jsonl":
        assert out_file.read_text().endswith("\n")
    else:  # the parts were joined into the file on the way out
        assert not out_file.with_name(out_file.name + ".parts").exists()
    first = read_paths(out_file)  # every record whole
    assert 2 <= len(first) < 12
    out = harerun(*cmd[4:], "--resume")
    assert out.returncode == 0, out.stderr
    assert sorted(read_paths(out_file)) == sorted(str(p) for p in d.iterdir())


def _without_timings(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "timings_ms"}


def test_parquet_holds_the_csv_columns_and_the_whole_record(photos, tmp_path):
    needs_pyarrow()
    args = (photos / "a.jpg", photos / "grey.png", "--pipeline", photos / "haar.yaml", "--jobs", "1")
    assert harerun(*args, "--out", tmp_path / "r.jsonl").returncode == 3
    out = harerun(*args, "--out", tmp_path / "r.parquet")
    assert out.returncode == 3, out.stderr
    table = pq.read_table(tmp_path / "r.parquet")
    columns = csv_columns(["acne", "redness"])
    assert table.column_names == [*columns, "record"]
    assert str(table.schema.field("acne.score").type) == "double" and str(table.schema.field("path").type) == "string"
    by_path = {r["path"]: r for r in records(tmp_path / "r.jsonl")}
    for row in table.to_pylist():
        record = json.loads(row.pop("record"))
        assert _without_timings(record) == _without_timings(by_path[record["path"]])
        assert list(row.values()) == flatten(record, columns)
    grey = next(r for r in table.to_pylist() if r["path"].endswith("grey.png"))
    assert grey["error_code"] == "NO_FACE" and grey["acne.score"] is None and grey["pipeline"] == "batchtest"


def test_parquet_resume_keeps_the_finished_file_and_drops_stale_records(photos, tmp_path, astronaut_bgr):
    needs_pyarrow()
    d = tmp_path / "p"
    d.mkdir()
    for name in ("x.jpg", "y.jpg", "z.jpg"):
        cv2.imwrite(str(d / name), astronaut_bgr)
    out_file = tmp_path / "out.parquet"
    args = (d, "--out", out_file, "--pipeline", photos / "haar.yaml", "--jobs", "1")
    assert harerun(*args).returncode == 0
    first = {r["path"]: r for r in iter_records(out_file)}
    cv2.imwrite(str(d / "y.jpg"), np.ascontiguousarray(astronaut_bgr[:, ::-1]))
    out = harerun(*args, "--resume")
    assert out.returncode == 0, out.stderr
    assert "1 photo(s) analysed" in out.stderr and "2 already in" in out.stderr
    second = {r["path"]: r for r in iter_records(out_file)}
    assert sorted(second) == sorted(first)
    assert second[str(d / "x.jpg")] == first[str(d / "x.jpg")]  # kept as it was, timings and all
    assert second[str(d / "y.jpg")]["sha256"] == hashlib.sha256((d / "y.jpg").read_bytes()).hexdigest()
    assert second[str(d / "y.jpg")]["sha256"] != first[str(d / "y.jpg")]["sha256"]
    other = harerun(d, "--out", out_file, "--pipeline", "fast", "--resume")
    assert other.returncode == 2 and "columns are not this pipeline's" in other.stderr


@pytest.fixture(scope="module")
def ab_dir(tmp_path_factory):
    """Pipelines haar-a (acne, redness) and haar-b (acne with other params) and experiment ab over them."""
    d = tmp_path_factory.mktemp("ab")
    (d / "haar-a.yaml").write_text(HAAR.replace("name: batchtest", "name: haar-a"))
    (d / "haar-b.yaml").write_text(
        "schema_version: 1\nname: haar-b\nface: {backend: haar}\ndetectors:\n  - {id: acne, plugin: acne}\n"
    )
    (d / "experiments.yaml").write_text(
        "schema_version: 1\nexperiments:\n  ab:\n    variants:\n"
        "      - {name: A, pipeline: haar-a, weight: 50}\n      - {name: B, pipeline: haar-b, weight: 50}\n"
    )
    return d


def test_all_variants_gives_one_record_per_photo_and_variant(photos, ab_dir, tmp_path):
    args = (photos / "a.jpg", photos / "grey.png", "--pipelines-dir", ab_dir, "--pipeline", "ab", "--jobs", "2")
    out = harerun(*args, "--all-variants", "--out", tmp_path / "r.csv")
    assert out.returncode == 3, out.stderr
    assert "A:acne" in out.stderr and "B:acne" in out.stderr and "2 photo(s) (4 records)" in out.stderr
    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert tuple(rows[0]) == csv_columns(["acne", "redness"])
    got = sorted((Path(r["path"]).name, r["experiment"], r["variant"], r["pipeline"], r["status"]) for r in rows)
    assert got == [
        ("a.jpg", "ab", "A", "haar-a", "ok"),
        ("a.jpg", "ab", "B", "haar-b", "ok"),
        ("grey.png", "ab", "A", "haar-a", "error"),
        ("grey.png", "ab", "B", "haar-b", "error"),
    ]
    b = next(r for r in rows if r["variant"] == "B" and r["status"] == "ok")
    assert b["acne.score"] and b["redness.score"] == ""  # haar-b has no redness step

    jsonl = tmp_path / "r.jsonl"
    assert harerun(*args, "--all-variants", "--out", jsonl).returncode == 3
    recs = records(jsonl)
    assert {(r["variant"], r["pipeline"]) for r in recs} == {("A", "haar-a"), ("B", "haar-b")}
    assert all(r["experiment"] == "ab" for r in recs)
    assert {r["variant"]: sorted(r.get("results", {})) for r in recs if r["status"] == "ok"} == {
        "A": ["acne", "redness"],
        "B": ["acne"],
    }
    # Resume keys by (path, sha256, variant): only the missing variant of a.jpg is analysed again.
    kept = [r for r in recs if not (r["path"].endswith("a.jpg") and r["variant"] == "B")]
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in kept))
    out = harerun(*args, "--all-variants", "--out", jsonl, "--resume")
    assert out.returncode == 0, out.stderr  # only a.jpg's variant B ran, and it is ok
    assert "1 photo(s) analysed" in out.stderr and "1 already in" in out.stderr
    again = sorted((Path(r["path"]).name, r["variant"]) for r in records(jsonl))
    assert again == [("a.jpg", "A"), ("a.jpg", "B"), ("grey.png", "A"), ("grey.png", "B")]
    other = harerun(photos / "a.jpg", "--pipelines-dir", ab_dir, "--pipeline", "haar-a", "--out", jsonl, "--resume")
    assert other.returncode == 2 and "experiment ab variant" in other.stderr


def test_experiments_need_all_variants_and_all_variants_needs_an_experiment(photos, ab_dir, tmp_path):
    out = harerun(photos / "a.jpg", "--pipelines-dir", ab_dir, "--pipeline", "ab", "--out", tmp_path / "r.jsonl")
    assert (
        out.returncode == 2
        and "is an experiment (A: haar-a, B: haar-b)" in out.stderr
        and "--all-variants" in out.stderr
    )
    out = harerun(
        photos / "a.jpg",
        "--pipelines-dir",
        ab_dir,
        "--pipeline",
        "haar-a",
        "--all-variants",
        "--out",
        tmp_path / "r.jsonl",
    )
    assert out.returncode == 2 and "needs an experiment" in out.stderr and "experiments: ab" in out.stderr
    assert not (tmp_path / "r.jsonl").exists()


@pytest.mark.parametrize(
    ("blocked", "args", "extra"),
    [
        ("pyarrow", ["a.jpg", "--out", "r.parquet"], "harerun[parquet]"),
        ("ray", ["a.jpg", "--out", "r.jsonl", "--ray"], "harerun[ray]"),
        ("boto3", ["s3://bucket/photos/", "--out", "r.jsonl"], "harerun[s3]"),
    ],
)
def test_a_missing_extra_is_named(photos, tmp_path, blocked, args, extra):
    cv2.imwrite(str(tmp_path / "a.jpg"), np.full((64, 64, 3), 120, np.uint8))
    fake = tmp_path / "site" / blocked
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(f"raise ImportError('{blocked} is hidden by this test')\n")
    proc = subprocess.run(
        batch_cmd(*args, "--pipeline", photos / "haar.yaml"),
        cwd=tmp_path,
        env={**env(), "PYTHONPATH": str(tmp_path / "site")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert f"pip install '{extra}'" in proc.stderr and "Traceback" not in proc.stderr


def _children(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids += [int(k) for k in (task / "children").read_text().split()]
    return kids


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the analysis processes in /proc (Linux)")
def test_an_analysis_process_that_dies_is_recorded_and_resumed(photos, tmp_path, astronaut_bgr):
    d = tmp_path / "p"
    d.mkdir()
    for i in range(12):
        cv2.imwrite(str(d / f"{i:02d}.jpg"), np.roll(astronaut_bgr, 5 * i, axis=1))
    out_file = tmp_path / "out.jsonl"
    cmd = batch_cmd(d, "--out", out_file, "--pipeline", photos / "haar.yaml", "--jobs", "2", "--quiet")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while proc.poll() is None and _written(out_file) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    workers = _children(proc.pid) if proc.poll() is None else []
    assert workers, "the run ended before an analysis process could be killed"
    os.kill(workers[0], signal.SIGKILL)  # as the kernel's OOM killer would
    assert proc.wait(timeout=120) == 1
    recs = records(out_file)
    crashed = [r for r in recs if r["status"] == "error"]
    assert crashed and all(r["error"]["code"] == "WORKER_CRASHED" for r in crashed)
    assert sorted(r["path"] for r in recs) == sorted(str(p) for p in d.iterdir())  # the others went on
    out = harerun(*cmd[4:], "--resume")
    assert out.returncode == 0, out.stderr
    assert f"{len(crashed)} photo(s) analysed" in out.stderr
    again = records(out_file)
    assert sorted(r["path"] for r in again) == sorted(str(p) for p in d.iterdir())
    assert all(r["status"] == "ok" for r in again)


def test_a_ray_address_nobody_answers_at_is_refused(photos, tmp_path):
    pytest.importorskip("ray", reason="--ray needs Ray Data (pip install 'harerun[ray]')")
    import socket

    with socket.socket() as s:  # a port nobody listens on (Ray itself would retry for minutes)
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"
    out = harerun(photos / "a.jpg", "--out", tmp_path / "r.jsonl", "--pipeline", photos / "haar.yaml", "--ray", address)
    assert out.returncode == 2 and f"--ray {address}: nothing answers there" in out.stderr
    assert not (tmp_path / "r.jsonl").exists()
