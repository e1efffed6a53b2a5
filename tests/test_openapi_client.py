"""A Python client generated from the live app's OpenAPI document by ``openapi-python-client``
(the command docs/api.md gives), imported and called against the app: every endpoint, every
body type, and every kind of error parsed into the typed ``ErrorResponse``.

The generated client talks to the app through FastAPI's TestClient (an ``httpx.Client`` whose
transport calls the app in process), so the requests are the client's own, byte for byte.
"""

from __future__ import annotations

import base64
import importlib
import inspect
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import get_args

import cv2
import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator

from harerun.api import Settings, create_app, routes_analyze
from harerun.api.auth import key_hash
from harerun.errors import ERROR_CODES
from harerun.experiments import subject_hash

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "docs" / "openapi-python-client.yaml"
ANALYZE = "/api/v6/skin/analyze-hare-run"
DETECT = "/api/v4/face/detect"
GENERATOR = Path(sys.executable).with_name("openapi-python-client")


def _jpeg(bgr: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()


@pytest.fixture(scope="module")
def photo(astronaut_bgr) -> bytes:
    return _jpeg(astronaut_bgr)


@pytest.fixture(scope="module")
def grey() -> bytes:
    return _jpeg(np.full((240, 320, 3), 128, np.uint8))


@pytest.fixture(scope="module")
def app(pipelines_dir):
    return create_app(Settings(pipelines_dir=pipelines_dir, warm_up=False))


@pytest.fixture(scope="module")
def generated(app, tmp_path_factory):
    """``openapi-python-client generate`` on the app's document, as docs/api.md runs it; the
    generated package, imported."""
    if not GENERATOR.exists():
        pytest.skip("openapi-python-client is not installed: pip install -r requirements-dev.txt")
    out = tmp_path_factory.mktemp("client")
    spec = out / "openapi.json"
    spec.write_text(json.dumps(app.openapi()))
    cmd = [str(GENERATOR), "generate", "--path", str(spec), "--config", str(CONFIG), "--meta", "none"]
    cmd += ["--output-path", str(out / "harerun_client")]
    env = {**os.environ, "PATH": f"{GENERATOR.parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # its ruff hook
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    printed = done.stdout + done.stderr
    assert done.returncode == 0, printed
    assert printed.strip() == f"Generating {out / 'harerun_client'}", f"the generator warned:\n{printed}"
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module("harerun_client")
    finally:
        sys.path.remove(str(out))
        for name in [m for m in sys.modules if m == "harerun_client" or m.startswith("harerun_client.")]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def api(app, generated) -> Iterator:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        client = generated.Client(base_url=str(test_client.base_url), raise_on_unexpected_status=True)
        client.set_httpx_client(test_client)
        yield client


def _mod(generated, name: str):
    return importlib.import_module(f"harerun_client.{name}")


def test_the_client_covers_every_operation_and_body(app, generated):
    spec = app.openapi()
    operation_ids = {op["operationId"] for item in spec["paths"].values() for op in item.values()}
    snake = {"".join(f"_{c.lower()}" if c.isupper() else c for c in op) for op in operation_ids}
    found = set()
    for tag in ("analysis", "face", "models", "operations", "pipelines"):
        pkg = Path(_mod(generated, f"api.{tag}").__file__).parent
        found |= {p.stem for p in pkg.glob("*.py") if p.stem != "__init__"}
    assert found == snake
    analyze = _mod(generated, "api.analysis.analyze_skin")
    detect = _mod(generated, "api.face.detect_face")
    for module, models in ((analyze, {"AnalyzeUpload", "AnalyzeRequest"}), (detect, {"DetectUpload", "DetectRequest"})):
        body = inspect.signature(module.sync).parameters["body"].annotation
        assert {*models, "File"} <= {getattr(t, "__name__", "") for t in get_args(body)}


def test_calls_through_the_generated_client(api, generated, photo):
    models = _mod(generated, "models")
    types = _mod(generated, "types")
    api_ = lambda name: _mod(generated, f"api.{name}")  # noqa: E731

    assert api_("operations.get_health").sync(client=api).status == "ok"
    assert api_("operations.get_readiness").sync(client=api).ready is True
    assert "harerun_http_requests_total" in api_("operations.get_metrics").sync(client=api)
    pipes = api_("pipelines.list_pipelines").sync(client=api)
    assert isinstance(pipes, models.PipelinesResponse) and pipes.default == "default"
    steps = {d.plugin: d for p in pipes.pipelines for d in p.detectors}
    assert steps["dark_spots"].measurements_schema == "DarkSpotsMeasurements"
    params = models.DarkSpotsParams.from_dict(steps["dark_spots"].params.to_dict())  # typed params too
    assert params.min_delta_l > 0
    status = api_("models.get_model_status").sync(client=api)
    assert isinstance(status, models.ModelStatusResponse)
    assert all(m.source is None or isinstance(m.source, models.ModelSource) for m in status.models)

    analyze = api_("analysis.analyze_skin")
    upload = models.AnalyzeUpload(
        image=types.File(payload=io.BytesIO(photo), file_name="a.jpg", mime_type="image/jpeg")
    )
    by_upload = analyze.sync(client=api, body=upload)
    assert isinstance(by_upload, models.AnalyzeResponse), by_upload
    assert len(by_upload.face.box) == 4 and by_upload.pipeline == "default"
    dark = by_upload.results["dark_spots"]
    assert isinstance(dark.status, models.DetectorStatus) and isinstance(dark.severity, models.Severity)
    typed = models.DarkSpotsMeasurements.from_dict(dark.measurements.to_dict())
    assert typed.count >= 0

    b64 = base64.b64encode(photo).decode()
    by_json = analyze.sync(client=api, body=models.AnalyzeRequest(image=b64, pipeline="skin-ab", subject_id="user-1"))
    assert by_json.variant.startswith("skin-ab:") and by_json.assigned_by == models.VariantAssignment.SUBJECT_ID
    assert by_json.subject_hash == subject_hash("user-1")
    raw = analyze.sync(client=api, body=types.File(payload=io.BytesIO(photo)), pipeline="skin-ab")
    assert raw.assigned_by == models.VariantAssignment.PHOTO and raw.subject_hash is None
    assert raw.results["dark_spots"].score == by_upload.results["dark_spots"].score

    detect = api_("face.detect_face")
    faces = detect.sync(client=api, body=models.DetectUpload(image=types.File(payload=io.BytesIO(photo))))
    assert isinstance(faces, models.FaceDetectResponse) and faces.face_detected is True
    assert detect.sync(client=api, body=models.DetectRequest(image=b64)).faces[0].box == faces.faces[0].box


def test_errors_parse_into_the_typed_error(api, generated, grey, photo):
    models = _mod(generated, "models")
    types = _mod(generated, "types")
    analyze = _mod(generated, "api.analysis.analyze_skin")

    no_face = analyze.sync_detailed(client=api, body=types.File(payload=io.BytesIO(grey)))
    assert no_face.status_code == 422 and isinstance(no_face.parsed, models.ErrorResponse)
    assert no_face.parsed.error.code == models.ErrorCode.NO_FACE
    assert no_face.parsed.error.issues == [models.QualityIssue.NO_FACE]

    unknown = analyze.sync_detailed(client=api, body=types.File(payload=io.BytesIO(photo)), pipeline="nope")
    assert unknown.status_code == 404 and unknown.parsed.error.code == models.ErrorCode.UNKNOWN_PIPELINE

    bad = models.AnalyzeRequest(image="AAAA", pipeline="p" * 200, subject_id="s" * 300)
    refused = analyze.sync_detailed(client=api, body=bad)
    assert refused.status_code == 400 and refused.parsed.error.code == models.ErrorCode.BAD_REQUEST
    details = {d.loc: d.message for d in refused.parsed.error.details}
    assert set(details) == {"body.pipeline", "body.subject_id"}, details
    assert "128" in details["body.pipeline"]


# -- every kind of error the server answers, as a client would see it ------------------------


def error_corpus(app, pipelines_dir: Path, photo: bytes, grey: bytes, monkeypatch) -> list[httpx.Response]:
    """One response for each error the server can give (status and code)."""
    out = []
    with TestClient(app, raise_server_exceptions=False) as c:
        jpeg = {"content": photo, "headers": {"content-type": "image/jpeg"}}
        out += [
            c.post(ANALYZE, json={"image": "!!not base64!!"}),  # 400 BAD_REQUEST
            c.post(ANALYZE, json={"image": "AAAA", "colour": "red"}),  # 400 with details
            c.post(ANALYZE, params={"pipeline": "x" * 300}, **jpeg),  # 400, a query field
            c.post(DETECT, json={"image": "AAAA", "subject_id": "user-1"}),  # 400: detect takes no subject
            c.get("/api/v7/nothing"),  # 404 NOT_FOUND
            c.post(ANALYZE, params={"pipeline": "nope"}, **jpeg),  # 404 UNKNOWN_PIPELINE
            c.get(ANALYZE),  # 405
            c.post(ANALYZE, content=photo, headers={"content-type": "text/plain"}),  # 415 media type
            c.post(ANALYZE, content=b"plain text", headers={"content-type": "image/jpeg"}),  # 415 format
            c.post(ANALYZE, content=photo[:2000], headers={"content-type": "image/jpeg"}),  # 422 unreadable
            c.post(ANALYZE, content=grey, headers={"content-type": "image/jpeg"}),  # 422 NO_FACE
            c.post(ANALYZE, params={"pipeline": "strict"}, **jpeg),  # 422 QUALITY_REJECTED
        ]
        with monkeypatch.context() as m:
            m.setattr(routes_analyze, "analyze_job", lambda *a: 1 / 0)
            out.append(c.post(ANALYZE, **jpeg))  # 500 INTERNAL_ERROR
    small = create_app(Settings(pipelines_dir=pipelines_dir, warm_up=False, max_upload_bytes=1000))
    with TestClient(small) as c:
        out.append(c.post(ANALYZE, content=photo, headers={"content-type": "image/jpeg"}))  # 413
    out.append(TestClient(small).post(DETECT, content=photo, headers={"content-type": "image/jpeg"}))  # 503
    out.append(TestClient(small).get("/ready"))  # 503 NOT_READY with Retry-After
    key = "hr_client_test_key_0123456789"
    keyed = Settings(
        pipelines_dir=pipelines_dir, warm_up=False, api_keys=f"c:{key_hash(key).hex()}", rate_limit_per_minute=1
    )
    with TestClient(create_app(keyed)) as c:
        out.append(c.get("/api/pipelines"))  # 401
        out.append(c.get("/metrics", headers={"X-API-Key": key}))  # 403
        out.append(c.get("/api/pipelines", headers={"X-API-Key": key}))  # 429 (the rate is spent)
    return out


EXPECTED = {
    (400, "BAD_REQUEST"),
    (401, "UNAUTHORIZED"),
    (403, "FORBIDDEN"),
    (404, "NOT_FOUND"),
    (404, "UNKNOWN_PIPELINE"),
    (405, "METHOD_NOT_ALLOWED"),
    (413, "IMAGE_TOO_LARGE"),
    (415, "UNSUPPORTED_MEDIA_TYPE"),
    (415, "UNSUPPORTED_FORMAT"),
    (422, "UNREADABLE_IMAGE"),
    (422, "NO_FACE"),
    (422, "QUALITY_REJECTED"),
    (429, "RATE_LIMITED"),
    (500, "INTERNAL_ERROR"),
    (503, "NOT_READY"),
}


@pytest.fixture(scope="module")
def corpus(app, pipelines_dir, photo, grey) -> list[httpx.Response]:
    with pytest.MonkeyPatch.context() as m:
        return error_corpus(app, pipelines_dir, photo, grey, m)


def test_every_error_matches_the_published_schema(app, corpus):
    spec = app.openapi()
    validator = Draft202012Validator({"$ref": "#/components/schemas/ErrorResponse", "components": spec["components"]})
    seen = set()
    for r in corpus:
        body = r.json()
        assert not list(validator.iter_errors(body)), (r.status_code, body)
        code = body["error"]["code"]
        assert ERROR_CODES[code][0] == r.status_code, (code, r.status_code)
        documented = spec["paths"].get(r.request.url.path, {}).get(r.request.method.lower(), {}).get("responses", {})
        assert str(r.status_code) in documented or r.status_code == 500 or not documented, r.request.url
        if r.status_code in (429, 503):
            assert int(r.headers["retry-after"]) >= 1
        seen.add((r.status_code, code))
    assert seen == EXPECTED
    details = [d for r in corpus for d in (r.json()["error"].get("details") or [])]
    assert {"body.colour", "query.pipeline", "body.subject_id"} <= {d["loc"] for d in details}


def test_every_error_parses_in_the_generated_client(generated, corpus):
    models = _mod(generated, "models")
    for r in corpus:
        parsed = models.ErrorResponse.from_dict(r.json())
        assert parsed.error.code == models.ErrorCode(r.json()["error"]["code"])
        assert parsed.error.message


# -- the Python walkthrough in docs/api.md, run as written against a live server -------------------


@pytest.fixture(scope="module")
def live_url(pipelines_dir) -> Iterator[str]:
    """An app of its own under uvicorn on a free 127.0.0.1 port, in a thread of this process."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(Settings(pipelines_dir=pipelines_dir, warm_up=False))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


def test_the_docs_python_walkthrough_runs(generated, live_url, photo, tmp_path, capsys):
    text = (REPO / "docs" / "api.md").read_text(encoding="utf-8")
    marker = "<!-- tests/test_openapi_client.py runs this block against a live server -->"
    block = text.split(marker, 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "photo.jpg").write_bytes(photo)
    assert block.count("http://127.0.0.1:8000") == 1 and block.count('open("photo.jpg"') == 1
    code = block.replace("http://127.0.0.1:8000", live_url).replace(
        'open("photo.jpg"', f'open("{tmp_path / "photo.jpg"}"'
    )
    exec(compile(code, "docs/api.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "dark spots:" in printed and "skin-ab:" in printed and "404 UNKNOWN_PIPELINE" in printed, printed
