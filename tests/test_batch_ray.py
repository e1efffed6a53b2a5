"""`harerun batch --ray`: the same 40 photos through the local runner and through Ray Data (a local
Ray instance on 127.0.0.1 with 2 CPUs, joined by address) give the same records, timings aside.

One Ray instance and one moto S3 server serve the whole module (Ray takes seconds to start).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="--ray needs Ray Data (pip install 'harerun[ray]')")
pq = pytest.importorskip("pyarrow.parquet", reason="Parquet output needs pyarrow (pip install 'harerun[parquet]')")
boto3 = pytest.importorskip("boto3", reason="s3:// inputs need boto3 (pip install 'harerun[s3]')")
moto_server = pytest.importorskip("moto.server", reason="the S3 server is moto's (requirements-dev.txt)")

from harerun.batch import iter_records  # noqa: E402

pytestmark = pytest.mark.slow  # Ray's start-up alone takes seconds

REPO = Path(__file__).resolve().parents[1]
BUCKET = "harerun-ray-photos"
CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def cluster():
    """(S3 endpoint, Ray address): a moto S3 server, then a Ray instance whose workers see its credentials."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as mp:
        for k, v in CREDS.items():
            mp.setenv(k, v)
        mp.setenv("HARERUN_S3_ENDPOINT_URL", endpoint)
        mp.delenv("HARERUN_DISABLE_PLUGIN_AUTOLOAD", raising=False)  # the actors need the detectors
        context = ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", logging_level="warning")
        try:
            yield endpoint, context.address_info["gcs_address"]
        finally:
            ray.shutdown()
            server.stop()


def harerun(*args, endpoint: str):
    env = {k: v for k, v in os.environ.items() if k != "HARERUN_DISABLE_PLUGIN_AUTOLOAD"}
    env.update(CREDS, HARERUN_S3_ENDPOINT_URL=endpoint)
    cmd = [sys.executable, "-m", "harerun.cli", "batch", *map(str, args), "--quiet"]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)


def without_timings(record: dict) -> dict:
    """The record without what a clock measured: ``timings_ms`` and measurements named ``*_ms``
    (e.g. the ML classifier's ``model_load_ms``)."""
    record = {k: v for k, v in record.items() if k != "timings_ms"}
    record["results"] = {
        step: {**r, "measurements": {m: v for m, v in r["measurements"].items() if not m.endswith("_ms")}}
        for step, r in record.get("results", {}).items()
    }
    return record


def same_records(a: Path, b: Path) -> list[dict]:
    """The records of two outputs, checked equal but for timings; returns them."""
    ra = sorted(iter_records(a), key=lambda r: r["path"])
    rb = sorted(iter_records(b), key=lambda r: r["path"])
    assert [r["path"] for r in ra] == [r["path"] for r in rb]
    for x, y in zip(ra, rb, strict=True):
        assert without_timings(x) == without_timings(y), x["path"]
    return ra


def painted_photos(astronaut_bgr: np.ndarray) -> dict[str, bytes]:
    """40 photos from the bundled astronaut: shifted, mirrored, lit differently, with red spots painted on;
    two without a face and one that is no photo."""
    rng = np.random.default_rng(14)
    photos = {}
    for i in range(37):
        img = np.roll(astronaut_bgr, 4 * i, axis=1) if i % 2 else np.ascontiguousarray(astronaut_bgr[:, ::-1])
        img = cv2.convertScaleAbs(img, alpha=0.8 + 0.01 * i, beta=i % 7)
        for x, y in rng.integers(180, 330, size=(i % 9, 2)):
            cv2.circle(img, (int(x), int(y)), 3, (40, 40, 200), -1)
        photos[f"face-{i:02d}.jpg"] = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    photos["grey.png"] = cv2.imencode(".png", np.full((300, 300, 3), 120, np.uint8))[1].tobytes()
    photos["noise.png"] = cv2.imencode(".png", rng.integers(0, 255, (256, 256, 3), dtype=np.uint8))[1].tobytes()
    photos["notes.jpg"] = b"not a photo"
    return photos


def test_local_and_ray_give_the_same_records_on_40_photos_from_s3(cluster, astronaut_bgr, tmp_path):
    endpoint, address = cluster
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    for name, body in painted_photos(astronaut_bgr).items():
        client.put_object(Bucket=BUCKET, Key=f"painted/{name}", Body=body)
    src = f"s3://{BUCKET}/painted/"
    local = harerun(src, "--out", tmp_path / "local.jsonl", "--jobs", "2", endpoint=endpoint)
    assert local.returncode == 2, local.stderr  # notes.jpg is no photo
    on_ray = harerun(src, "--out", tmp_path / "ray.parquet", "--ray", address, "--jobs", "2", endpoint=endpoint)
    assert on_ray.returncode == 2, on_ray.stderr
    assert "40 photo(s) analysed" in on_ray.stderr
    recs = same_records(tmp_path / "local.jsonl", tmp_path / "ray.parquet")
    assert len(recs) == 40 and sum(r["status"] == "ok" for r in recs) >= 30
    assert {r["error"]["code"] for r in recs if r["status"] == "error"} >= {"NO_FACE", "UNSUPPORTED_FORMAT"}
    assert all(r["path"].startswith(src) for r in recs)


@pytest.mark.shared
def test_local_and_ray_give_the_same_records_on_40_shared_photos(cluster, shared, tmp_path):
    endpoint, address = cluster
    faces = sorted((shared / "data" / "faces" / "dlib_examples").glob("*.jpg"))
    acne = sorted((shared / "data" / "acne" / "images").glob("*.jpg"))
    listing = tmp_path / "photos.txt"
    listing.write_text("".join(f"{p}\n" for p in (faces + acne)[:40]))
    args = (f"@{listing}", "--pipeline", "skin-ab", "--all-variants", "--jobs", "2")
    local = harerun(*args, "--out", tmp_path / "local.jsonl", endpoint=endpoint)
    assert local.returncode in (0, 3), local.stderr
    on_ray = harerun(*args, "--out", tmp_path / "ray.csv", "--ray", address, endpoint=endpoint)
    assert on_ray.returncode == local.returncode, on_ray.stderr
    assert "40 photo(s) (80 records) analysed" in on_ray.stderr
    assert "ok" in {r["status"] for r in iter_records(tmp_path / "ray.csv")}
    # CSV holds the flat columns: compare them with the local records flattened.
    from harerun.batch import csv_columns, flatten

    rows = sorted(iter_records(tmp_path / "ray.csv"), key=lambda r: (r["path"], r["variant"]))
    local_recs = sorted(iter_records(tmp_path / "local.jsonl"), key=lambda r: (r["path"], r["variant"]))
    columns = list(rows[0])
    assert tuple(columns) == csv_columns(list(dict.fromkeys(s for r in local_recs for s in r.get("results", {}))))
    for row, rec in zip(rows, local_recs, strict=True):
        assert list(row.values()) == ["" if v is None else str(v) for v in flatten(rec, columns)], rec["path"]
    assert {(r["variant"], r["experiment"]) for r in rows} == {("A", "skin-ab"), ("B", "skin-ab")}
    assert json.loads(json.dumps(local_recs[0]))["pipeline"] in ("default", "fast")
