"""CLI polish (#15 item 7): no runtime noise on stderr, ``-v``, ``--version``, ``harerun doctor``;
and the slim install's promise that TensorFlow is only needed for training and Keras models."""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import socket
import sys
from pathlib import Path

import cv2
import pytest

from harerun.litert import native_stderr_to_log
from harerun.testing import run_cli


@pytest.fixture
def photo(tmp_path, astronaut_bgr) -> Path:
    path = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(path), astronaut_bgr)
    return path


def test_version_is_the_installed_distributions():
    done = run_cli("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"harerun {importlib.metadata.version('harerun')}\n"


def test_analyze_prints_no_runtime_lines_and_v_shows_them(photo):
    quiet = run_cli("analyze", photo, "--json")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""
    result = json.loads(quiet.stdout)
    assert result["face"]["backend_used"] == "blazeface"  # LiteRT ran: the face models ...
    assert result["results"]["ml_classifier"]["status"] == "ok"  # ... and the grade model

    loud = run_cli("-v", "analyze", photo, "--json")
    assert loud.returncode == 0, loud.stderr
    line = next(x for x in loud.stderr.splitlines() if "XNNPACK" in x)  # a log record now, not the raw line
    assert "harerun.litert" in line and line.endswith("Created TensorFlow Lite XNNPACK delegate for CPU.")
    assert json.loads(loud.stdout)["results"].keys() == result["results"].keys()


def test_native_stderr_info_lines_become_log_records_and_the_rest_is_kept(capfd, caplog):
    caplog.set_level(logging.DEBUG, logger="harerun.litert")
    with native_stderr_to_log():
        os.write(2, b"INFO: Created a delegate.\nERROR: a real problem\n")
    assert capfd.readouterr().err == "ERROR: a real problem\n"
    assert [r.getMessage() for r in caplog.records if r.name == "harerun.litert"] == ["Created a delegate."]
    os.write(2, b"after\n")  # stderr is back where it was
    assert capfd.readouterr().err == "after\n"


def _doctor(*args) -> tuple[int, dict]:
    done = run_cli("doctor", "--json", *args, timeout=120)
    assert "Traceback" not in done.stderr
    return done.returncode, json.loads(done.stdout)


def test_doctor_reports_versions_models_face_backend_and_threads(monkeypatch):
    monkeypatch.delenv("HARERUN_S3_BUCKET", raising=False)
    code, r = _doctor()
    assert code == 0, r["problems"]
    assert r["problems"] == []
    assert r["harerun"] == importlib.metadata.version("harerun")
    assert r["python"] == ".".join(map(str, sys.version_info[:3]))
    assert r["libraries"]["ai-edge-litert"] == importlib.metadata.version("ai-edge-litert")
    assert {"acne", "ml_classifier", "wrinkles"} <= {p["detector"] for p in r["plugins"]}
    assert r["face"]["auto"] == "blazeface"
    assert r["pipelines"]["default"]["face_backend_used"] == "blazeface"
    assert r["pipelines"]["fast"]["face_backend_used"] == "blazeface"
    models = {f"{m['name']}@{m['version']}": m for m in r["models"]}
    assert set(models) == {"acne-grade@3", "acne-lesions@1"}
    assert all(m["available"] and m["source"] == "local" for m in models.values())
    assert r["s3"]["reachable"] is None and "HARERUN_S3_BUCKET" in r["s3"]["reason"]
    assert r["cpu"]["usable_cpus"] >= 1 and r["cpu"]["opencv_threads"] >= 1


def test_doctor_exit_1_names_a_missing_model_and_an_invalid_pipeline(tmp_path, monkeypatch):
    monkeypatch.delenv("HARERUN_S3_BUCKET", raising=False)
    (tmp_path / "new.yaml").write_text(
        "schema_version: 1\nname: new\nface: {backend: haar}\n"
        "detectors:\n  - {id: ml, plugin: ml_classifier, params: {model: acne-grade@99}}\n"
    )
    (tmp_path / "broken.yaml").write_text("schema_version: 1\nname: broken\ndetectors:\n  - {id: x, plugin: nope}\n")
    code, r = _doctor("--pipelines-dir", tmp_path)
    assert code == 1
    assert r["pipelines"]["new"]["models"] == ["acne-grade@99"]
    assert [m["available"] for m in r["models"]] == [False]
    assert any(p.startswith("model acne-grade@99 unavailable") for p in r["problems"])
    assert any(p.startswith("pipeline broken:") and "nope" in p for p in r["problems"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_doctor_says_whether_the_s3_bucket_answers(monkeypatch):
    moto_server = pytest.importorskip("moto.server", reason="moto[server] is a test dependency")
    boto3 = pytest.importorskip("boto3")
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        for k, v in {
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            monkeypatch.setenv(k, v)
        url = f"http://127.0.0.1:{port}"
        boto3.client("s3", endpoint_url=url).create_bucket(Bucket="models")
        monkeypatch.setenv("HARERUN_S3_ENDPOINT_URL", url)
        monkeypatch.setenv("HARERUN_S3_BUCKET", "models")
        code, r = _doctor()
        assert code == 0, r["problems"]
        assert r["s3"]["reachable"] is True
        monkeypatch.setenv("HARERUN_S3_BUCKET", "no-such-bucket")
        code, r = _doctor()
        assert code == 1
        assert r["s3"]["reachable"] is False and "no-such-bucket" in r["s3"]["reason"]
    finally:
        server.stop()
    code, r = _doctor()  # the endpoint is gone: refused, said so, bounded by the store's time-outs
    assert code == 1
    assert r["s3"]["reachable"] is False and "cannot reach" in r["s3"]["reason"]
    assert any(p.startswith("S3 bucket no-such-bucket unreachable") for p in r["problems"])


# -- slim install: TensorFlow only for training and Keras models --------------------------


@pytest.fixture
def without_tensorflow(monkeypatch):
    """This process as if TensorFlow and Keras were not installed (``None`` in sys.modules makes
    both ``import`` and ``importlib.util.find_spec`` fail)."""
    from harerun_ml_classifier import runtime

    runtime.clear_cache()
    for name in ("tensorflow", "keras"):
        monkeypatch.setitem(sys.modules, name, None)
    yield
    runtime.clear_cache()


def test_a_keras_model_without_tensorflow_is_unavailable_naming_the_extra(without_tensorflow, astronaut_bgr, tmp_path):
    from harerun.engine import Engine

    (tmp_path / "keras.yaml").write_text(
        "schema_version: 1\nname: keras\nface: {backend: haar}\n"
        "detectors:\n  - {id: ml, plugin: ml_classifier, params: {model: acne-grade-keras@3}}\n"
        "  - {id: redness, plugin: redness}\n"
    )
    result = Engine(pipelines_dir=tmp_path).run(astronaut_bgr, pipeline="keras").result
    ml = result.results["ml"]
    assert ml.status == "unavailable"
    assert "acne-grade-3.keras is a Keras model" in ml.message
    assert "pip install 'harerun-ml-classifier[train]'" in ml.message
    assert result.results["redness"].status == "ok"


@pytest.mark.parametrize(
    ("task", "out", "extra"),
    [("acne-grade", "m.keras", "harerun-ml-classifier[train]"), ("acne-lesions", "m.tflite", "harerun-acne[train]")],
)
def test_train_without_tensorflow_exits_2_with_the_extra_to_install(
    without_tensorflow, tmp_path, capsys, task, out, extra
):
    from harerun.cli import main

    code = main(["train", task, "--data", str(tmp_path), "--out", str(tmp_path / out)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"pip install '{extra}'" in err and "TensorFlow is not installed" in err
    assert not (tmp_path / out).exists()
