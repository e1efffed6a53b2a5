"""The model store against a real S3-compatible HTTP server (moto's standalone ``moto_server``).

The server runs as a subprocess on a free 127.0.0.1 port for the test session;
nothing is mocked in-process: boto3 talks HTTP to it exactly as to AWS.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

boto3 = pytest.importorskip("boto3", reason="the S3 path needs boto3 (pip install 'harerun[s3]')")
from botocore.exceptions import ClientError  # noqa: E402

from harerun import hookimpl, store_cli  # noqa: E402
from harerun.detector import Detector, DetectorParams  # noqa: E402
from harerun.modelstore import ModelStore, ModelUnavailable, describe_s3_error  # noqa: E402
from harerun.results import DetectorResult  # noqa: E402

BUCKET = "harerun-test-models"
CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def _moto_server_exe() -> str | None:
    here = Path(sys.executable).with_name("moto_server")
    return str(here) if here.exists() else shutil.which("moto_server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoServer:
    """``moto_server`` on a free local port, as a subprocess."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        exe = _moto_server_exe()
        if exe is None:
            pytest.skip("moto_server not found (pip install 'moto[server]')")
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [exe, "-H", "127.0.0.1", "-p", str(self.port)],
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while True:  # wait until it answers HTTP (start-up, not a timing assertion)
            try:
                urllib.request.urlopen(self.url + "/moto-api/", timeout=2).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    err = self.proc.stderr.read().decode(errors="replace") if self.proc.poll() is not None else ""
                    self.stop()
                    pytest.fail(f"moto_server did not start on {self.url}: {err[-2000:]}")
                time.sleep(0.2)

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()


@pytest.fixture(scope="session")
def s3_server():
    saved = {k: os.environ.get(k) for k in CREDS}
    os.environ.update(CREDS)
    server = MotoServer()
    server.client().create_bucket(Bucket=BUCKET)
    yield server
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def s3_env(s3_server, monkeypatch, tmp_path):
    """Environment of a deployment with an empty models dir, an empty cache and the bucket; a unique prefix per test."""
    prefix = f"t/{tmp_path.name}"
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("HARERUN_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("HARERUN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HARERUN_S3_BUCKET", BUCKET)
    monkeypatch.setenv("HARERUN_S3_PREFIX", prefix)
    monkeypatch.setenv("HARERUN_S3_ENDPOINT_URL", s3_server.url)
    (tmp_path / "models").mkdir()
    return tmp_path


def _store(server_url: str, tmp_path: Path, *, cache: str = "cache", manifests=(), prefix: str | None = None):
    return ModelStore(
        None,
        tmp_path / cache,
        s3_bucket=BUCKET,
        s3_prefix=prefix or f"t/{tmp_path.name}",
        s3_endpoint_url=server_url,
        manifests=list(manifests),
    )


def _file(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_publish_fetch_then_cache(s3_server, s3_env):
    tmp = s3_env
    data = b"\x00model-bytes\x01" * 1000
    store = ModelStore.from_env()
    info = store.publish(_file(tmp, "toy.onnx", data), name="toy", version="1")
    sha = hashlib.sha256(data).hexdigest()
    assert info["sha256"] == sha and info["key"] == f"t/{tmp.name}/toy/1/toy.onnx"
    head = s3_server.client().head_object(Bucket=BUCKET, Key=info["key"])
    assert head["Metadata"]["sha256"] == sha
    sidecar = s3_server.client().get_object(Bucket=BUCKET, Key=info["key"] + ".sha256")["Body"].read().decode()
    assert sidecar.split()[0] == sha

    status = store.status(["toy@1"])[0]
    assert status["available"] and status["source"] == "s3" and status["sha256"] == sha
    assert status["size_bytes"] == len(data)

    m = store.resolve("toy@1")
    assert m.source == "s3" and m.sha256 == sha and m.path.read_bytes() == data
    assert m.path == tmp / "cache" / "toy" / "1" / "toy.onnx"
    assert not list(m.path.parent.glob("*.part"))

    again = ModelStore.from_env().resolve("toy@1")
    assert again.source == "cache" and again.path == m.path
    # the cache answers even when S3 is unreachable
    dead = ModelStore(
        None, tmp / "cache", s3_bucket=BUCKET, s3_endpoint_url=f"http://127.0.0.1:{_free_port()}", manifests=[]
    )
    assert dead.resolve("toy@1").source == "cache"
    assert ModelStore.from_env().status(["toy@1"])[0]["source"] == "cache"


def test_unversioned_spec_takes_the_highest_version(s3_server, tmp_path):
    store = _store(s3_server.url, tmp_path)
    for v in ("2", "10", "9"):
        store.publish(_file(tmp_path, f"m{v}.bin", v.encode() * 10), name="multi", version=v)
    m = store.resolve("multi")
    assert (m.version, m.source, m.path.read_bytes()) == ("10", "s3", b"10" * 10)


def test_manifest_checksum_is_used_for_s3_downloads(s3_server, tmp_path):
    data = b"weights" * 50
    sha = hashlib.sha256(data).hexdigest()
    manifest = tmp_path / "models.yaml"
    manifest.write_text(
        yaml.safe_dump({"models": [{"name": "listed", "version": "3", "file": "listed.bin", "sha256": sha}]})
    )
    store = _store(s3_server.url, tmp_path, manifests=[manifest])
    s3_server.client().put_object(Bucket=BUCKET, Key=store.s3_key("listed", "3", "listed.bin"), Body=data)
    m = store.resolve("listed")  # no metadata, no sidecar: the manifest's checksum verifies it
    assert (m.version, m.source, m.sha256) == ("3", "s3", sha)


def test_corrupt_object_is_refused_and_not_cached(s3_server, tmp_path):
    store = _store(s3_server.url, tmp_path)
    good = b"good model" * 100
    info = store.publish(_file(tmp_path, "c.bin", good), name="corrupt", version="1")
    # overwrite the bytes but keep the published checksum in the metadata
    s3_server.client().put_object(
        Bucket=BUCKET, Key=info["key"], Body=b"evil bytes" * 100, Metadata={"sha256": info["sha256"]}
    )
    with pytest.raises(ModelUnavailable) as e:
        store.resolve("corrupt@1")
    assert e.value.code == "MODEL_CHECKSUM_MISMATCH"
    assert info["sha256"] in e.value.reason and "discarded" in e.value.reason
    vdir = tmp_path / "cache" / "corrupt" / "1"
    assert not [p for p in vdir.glob("*") if p.is_file()], "a file failing verification must not stay in the cache"
    # a manifest checksum that disagrees with the object is refused too (the manifest is trusted over metadata)
    manifest = tmp_path / "models.yaml"
    manifest.write_text(
        yaml.safe_dump({"models": [{"name": "corrupt", "version": "1", "file": "c.bin", "sha256": "0" * 64}]})
    )
    s3_server.client().put_object(Bucket=BUCKET, Key=info["key"], Body=good, Metadata={"sha256": info["sha256"]})
    with pytest.raises(ModelUnavailable, match="failed verification"):
        _store(s3_server.url, tmp_path, manifests=[manifest]).resolve("corrupt@1")
    assert _store(s3_server.url, tmp_path).resolve("corrupt@1").source == "s3"  # the good object, verified


def test_object_without_any_checksum_is_refused(s3_server, tmp_path):
    store = _store(s3_server.url, tmp_path)
    s3_server.client().put_object(Bucket=BUCKET, Key=store.s3_key("bare", "1", "bare.bin"), Body=b"x")
    with pytest.raises(ModelUnavailable, match="has no sha256"):
        store.resolve("bare@1")


def test_missing_object_and_bucket(s3_server, tmp_path):
    with pytest.raises(ModelUnavailable) as e:
        _store(s3_server.url, tmp_path).resolve("ghost@1")
    assert "harerun models publish" in e.value.reason
    manifest = tmp_path / "models.yaml"
    manifest.write_text(
        yaml.safe_dump({"models": [{"name": "ghost", "version": "1", "file": "g.bin", "sha256": "1" * 64}]})
    )
    with pytest.raises(ModelUnavailable, match="404"):
        _store(s3_server.url, tmp_path, manifests=[manifest]).resolve("ghost@1")
    nobucket = ModelStore(
        None, tmp_path / "c2", s3_bucket="no-such-bucket", s3_endpoint_url=s3_server.url, manifests=[]
    )
    with pytest.raises(ModelUnavailable, match="bucket 'no-such-bucket' does not exist"):
        nobucket.resolve("ghost@1")


def test_no_credentials_is_reported(s3_server, tmp_path, monkeypatch):
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    store = _store(s3_server.url, tmp_path)
    with pytest.raises(ModelUnavailable, match="no AWS credentials"):
        store.resolve("anything@1")
    row = store.status(["anything@1"])[0]
    assert not row["available"] and "no AWS credentials" in row["reason"]


def test_access_denied_is_reported(s3_server, tmp_path):
    """A server that checks credentials (moto with IAM auth on) answers 403 to unknown keys."""
    server = MotoServer(env={"INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    try:
        store = ModelStore(None, tmp_path / "cache", s3_bucket=BUCKET, s3_endpoint_url=server.url, manifests=[])
        with pytest.raises(ModelUnavailable) as e:
            store.resolve("secret@1")
        row = store.status(["secret@1"])[0]
    finally:
        server.stop()
    assert "access denied" in e.value.reason and "InvalidAccessKeyId" in e.value.reason
    assert not row["available"] and "access denied" in row["reason"]


def test_access_denied_and_timeout_messages():
    denied = ClientError(
        {"Error": {"Code": "AccessDenied", "Message": "Access Denied"}, "ResponseMetadata": {"HTTPStatusCode": 403}},
        "GetObject",
    )
    msg = describe_s3_error(denied, "b", "http://x")
    assert "access denied" in msg and "permissions" in msg
    from botocore.exceptions import ConnectTimeoutError

    msg = describe_s3_error(ConnectTimeoutError(endpoint_url="http://x"), "b", "http://x")
    assert "timed out" in msg and "HARERUN_S3_ENDPOINT_URL" in msg


def test_cli_publish_and_fetch(s3_server, s3_env, capsys):
    f = _file(s3_env, "cli.bin", b"cli model")
    assert store_cli.main(["models", "publish", str(f), "--name", "cli-model", "--version", "5", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["uri"] == f"s3://{BUCKET}/t/{s3_env.name}/cli-model/5/cli.bin"
    assert store_cli.main(["models", "fetch", "cli-model@5", "--json"]) == 0
    fetched = json.loads(capsys.readouterr().out)
    assert fetched["source"] == "s3" and Path(fetched["path"]).read_bytes() == b"cli model"
    assert store_cli.main(["models", "fetch", "cli-model@5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["source"] == "cache"
    assert store_cli.main(["models", "fetch", "cli-model@6"]) == 4
    assert "publish" in capsys.readouterr().err


# -- the ml_classifier plugin with its model in S3 -------------------------------------------------


class _MeanBrightness(Detector):
    """A trivial second detector, to show the rest of the pipeline runs when a model is unavailable."""

    name = "mean_brightness_s3test"
    version = "1"
    Params = DetectorParams

    def analyze(self, ctx):
        return DetectorResult(score=0.0, measurements={"mean_gray": float(ctx.gray.mean())})


class _TestPlugin:
    @hookimpl
    def register_detectors(self, register):
        register(_MeanBrightness)


def _tiny_keras_model(path: Path) -> Path:
    pytest.importorskip("tensorflow", reason="the ml_classifier plugin needs TensorFlow")
    from harerun_ml_classifier.network import build_model

    build_model(input_size=64, width=4).save(path)
    return path


def _engine_run(tmp_path: Path, model_spec: str):
    from harerun.engine import Engine
    from harerun.host import PluginHost
    from harerun.testing import synthetic_skin
    from harerun_ml_classifier import plugin as ml_plugin

    pipe = tmp_path / "s3pipe.yaml"
    pipe.write_text(
        yaml.safe_dump(
            {
                "schema_version": 1,
                "name": "s3pipe",
                "face": {"mode": "skip"},
                "detectors": [
                    {"id": "ml", "plugin": "ml_classifier", "params": {"model": model_spec}},
                    {"id": "other", "plugin": "mean_brightness_s3test"},
                ],
            }
        )
    )
    engine = Engine(host=PluginHost(autoload=False, plugins=[ml_plugin, _TestPlugin()]), pipelines_dir=tmp_path)
    return engine.run(synthetic_skin(256), pipeline=str(pipe)).result


def test_plugin_loads_its_model_from_s3(s3_server, s3_env):
    pytest.importorskip("harerun_ml_classifier", reason="pip install -e plugins/ml_classifier")
    from harerun_ml_classifier import runtime

    model_file = _tiny_keras_model(s3_env / "tiny.keras")
    ModelStore.from_env().publish(model_file, name="tiny-grade", version="1")
    runtime.clear_cache()
    try:
        result = _engine_run(s3_env, "tiny-grade@1")
    finally:
        runtime.clear_cache()
    ml = result.results["ml"]
    assert ml.status == "ok", ml.message
    assert ml.measurements["model_source"] == "s3" and ml.measurements["model"] == "tiny-grade@1"
    assert ml.measurements["model_load_ms"] > 0
    probs = [ml.measurements[f"p_grade_{k}"] for k in range(4)]
    # probabilities are reported to 4 decimals: an untrained model's near-tie may round to equal values
    assert abs(sum(probs) - 1) < 1e-3 and probs[ml.measurements["grade"]] >= max(probs) - 1e-4
    assert result.results["other"].status == "ok"
    row = ModelStore.from_env().status(["tiny-grade@1"])[0]
    assert row["source"] == "cache" and row["load_ms"] == ml.measurements["model_load_ms"]


def test_server_down_makes_the_plugin_unavailable_not_the_run(s3_env, monkeypatch):
    pytest.importorskip("harerun_ml_classifier", reason="pip install -e plugins/ml_classifier")
    from harerun_ml_classifier import runtime

    server = MotoServer()  # a server of its own, stopped below
    try:
        server.client().create_bucket(Bucket=BUCKET)
        monkeypatch.setenv("HARERUN_S3_ENDPOINT_URL", server.url)
        f = _file(s3_env, "down.bin", b"down model")
        ModelStore.from_env().publish(f, name="down-grade", version="1")
        assert ModelStore.from_env().status(["down-grade@1"])[0]["available"]
    finally:
        server.stop()
    runtime.clear_cache()
    try:
        result = _engine_run(s3_env, "down-grade@1")
    finally:
        runtime.clear_cache()
    ml = result.results["ml"]
    assert ml.status == "unavailable" and ml.score is None
    assert "cannot reach" in ml.message and server.url in ml.message
    assert result.results["other"].status == "ok"
    row = ModelStore.from_env().status(["down-grade@1"])[0]
    assert not row["available"] and "cannot reach" in row["reason"]


def test_concurrent_first_use_downloads_once_and_agrees(s3_server, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    store = _store(s3_server.url, tmp_path)
    data = os.urandom(200_000)
    store.publish(_file(tmp_path, "conc.bin", data), name="conc", version="1")
    fresh = _store(s3_server.url, tmp_path, cache="cache-conc")
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda _: fresh.resolve("conc@1"), range(8)))
    assert len({m.path for m in got}) == 1 and got[0].path.read_bytes() == data
    assert sorted(m.source for m in got).count("s3") == 1  # one download, the others found it in the cache
    assert sorted(p.name for p in got[0].path.parent.iterdir()) == ["conc.bin", "conc.bin.sha256"]


def _file_size_limit(limit: int):
    def apply() -> None:
        import resource
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_full_disk_leaves_no_half_written_model(s3_server, s3_env):
    """Fetching a 3 MB model into a cache that can take only 1 MB: `unavailable` with the reason,
    exit 4, and neither the model nor its partial download is left in the cache."""
    tmp = s3_env
    data = os.urandom(3 * 1024 * 1024)
    ModelStore.from_env().publish(_file(tmp, "big.onnx", data), name="big", version="1")
    cli = [sys.executable, "-c", "import sys; from harerun.cli import main; sys.exit(main())"]
    r = subprocess.run(
        [*cli, "models", "fetch", "big@1"],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
        preexec_fn=_file_size_limit(1024 * 1024),
    )
    assert r.returncode == 4, (r.returncode, r.stderr[-2000:])
    assert "cannot write to" in r.stdout + r.stderr and "Traceback" not in r.stderr
    left = [p.name for p in (tmp / "cache").rglob("*") if p.is_file()]
    assert left == [], left
    assert ModelStore.from_env().fetch("big@1").sha256 == hashlib.sha256(data).hexdigest()  # room again: it works
