"""`harerun batch s3://bucket/prefix/`: listing, streaming, records keyed by the s3:// URL, resuming,
and clear errors, against moto's S3 server on 127.0.0.1 (boto3 talks HTTP to it as to AWS)."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

boto3 = pytest.importorskip("boto3", reason="s3:// inputs need boto3 (pip install 'harerun[s3]')")
moto_server = pytest.importorskip("moto.server", reason="the S3 tests need moto[server] (requirements-dev.txt)")

from harerun.batch import collect_inputs  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BUCKET = "harerun-batch-photos"
CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
HAAR = "schema_version: 1\nname: batchtest\nface: {backend: haar}\ndetectors:\n  - {id: acne, plugin: acne}\n"


@pytest.fixture(scope="module")
def s3(astronaut_bgr):
    """A moto S3 server with photos under set1/ (one in a sub-folder), a text key, and set10/ beside it."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=url, region_name="us-east-1", **_keys())
    client.create_bucket(Bucket=BUCKET)
    jpg = cv2.imencode(".jpg", astronaut_bgr)[1].tobytes()
    flipped = cv2.imencode(".png", np.ascontiguousarray(astronaut_bgr[:, ::-1]))[1].tobytes()
    grey = cv2.imencode(".png", np.full((300, 300, 3), 120, np.uint8))[1].tobytes()
    for key, body in {
        "set1/a.jpg": jpg,
        "set1/sub/b.PNG": flipped,
        "set1/grey.png": grey,
        "set1/notes.txt": b"not a photo",
        "set10/c.jpg": jpg,
    }.items():
        client.put_object(Bucket=BUCKET, Key=key, Body=body)
    yield url, client
    server.stop()


def _keys() -> dict[str, str]:
    return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def run(tmp_path: Path, *args, endpoint: str, var: str = "HARERUN_S3_ENDPOINT_URL"):
    (tmp_path / "haar.yaml").write_text(HAAR)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "HARERUN_S3_"))}
    env.pop("HARERUN_DISABLE_PLUGIN_AUTOLOAD", None)
    env.update(CREDS, **{var: endpoint})
    cmd = [sys.executable, "-m", "harerun.cli", "batch", *map(str, args), "--pipeline", tmp_path / "haar.yaml"]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


def records(path: Path) -> dict[str, dict]:
    return {r["path"]: r for r in map(json.loads, path.read_text().splitlines())}


def test_a_prefix_is_a_folder_of_image_keys(s3, monkeypatch):
    url, _ = s3
    monkeypatch.setenv("HARERUN_S3_ENDPOINT_URL", url)
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr("harerun.batch.s3input._client", None)  # this test's endpoint
    want = [f"s3://{BUCKET}/set1/a.jpg", f"s3://{BUCKET}/set1/grey.png", f"s3://{BUCKET}/set1/sub/b.PNG"]
    assert collect_inputs([f"s3://{BUCKET}/set1"]) == want  # not set10/, not notes.txt
    assert collect_inputs([f"s3://{BUCKET}/set1/"]) == want
    assert collect_inputs([f"s3://{BUCKET}/set1/sub/b.PNG"]) == [want[2]]
    assert len(collect_inputs([f"s3://{BUCKET}/"])) == 4
    warnings = []
    assert collect_inputs([f"s3://{BUCKET}/nothing/", f"s3://{BUCKET}/set10"], warn=warnings.append) == [
        f"s3://{BUCKET}/set10/c.jpg"
    ]
    assert warnings == [f"s3://{BUCKET}/nothing/: matched no photo"]


def test_photos_in_s3_are_records_keyed_by_their_url_and_resumable(s3, tmp_path):
    url, client = s3
    out_file = tmp_path / "r.jsonl"
    out = run(tmp_path, f"s3://{BUCKET}/set1/", "--out", out_file, "--jobs", "2", endpoint=url)
    assert out.returncode == 3, out.stderr  # grey.png has no face
    recs = records(out_file)
    assert sorted(recs) == [f"s3://{BUCKET}/set1/{k}" for k in ("a.jpg", "grey.png", "sub/b.PNG")]
    body = client.get_object(Bucket=BUCKET, Key="set1/a.jpg")["Body"].read()
    a = recs[f"s3://{BUCKET}/set1/a.jpg"]
    assert a["status"] == "ok" and a["sha256"] == hashlib.sha256(body).hexdigest() and a["results"]["acne"]
    assert recs[f"s3://{BUCKET}/set1/grey.png"]["error"]["code"] == "NO_FACE"

    # b changed in the bucket since, and a's record was torn by a kill: both are analysed again.
    lines = out_file.read_text().splitlines(keepends=True)
    keep = [line for line in lines if "a.jpg" not in line]
    out_file.write_text("".join(keep) + next(line for line in lines if "a.jpg" in line)[:50])
    client.put_object(Bucket=BUCKET, Key="set1/sub/b.PNG", Body=body)
    out = run(tmp_path, f"s3://{BUCKET}/set1/", "--out", out_file, "--resume", endpoint=url, var="AWS_ENDPOINT_URL")
    assert out.returncode == 0, out.stderr
    assert "2 photo(s) analysed" in out.stderr and "1 already in" in out.stderr
    again = records(out_file)
    assert sorted(again) == sorted(recs) and len(out_file.read_text().splitlines()) == 3
    assert again[f"s3://{BUCKET}/set1/sub/b.PNG"]["sha256"] == hashlib.sha256(body).hexdigest()


def test_a_missing_bucket_or_unreachable_endpoint_is_a_clear_error(s3, tmp_path):
    url, _ = s3
    out = run(tmp_path, "s3://no-such-bucket/photos/", "--out", tmp_path / "r.jsonl", endpoint=url)
    assert out.returncode == 2 and "bucket 'no-such-bucket' does not exist" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "r.jsonl").exists()
    out = run(tmp_path, "s3:///photos/", "--out", tmp_path / "r.jsonl", endpoint=url)
    assert out.returncode == 2 and "no bucket" in out.stderr
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    out = run(tmp_path, f"s3://{BUCKET}/set1/", "--out", tmp_path / "r.jsonl", endpoint=closed)
    assert out.returncode == 2 and "cannot reach" in out.stderr and closed in out.stderr
