"""The HTTP API in process (FastAPI TestClient): each endpoint, each error code, limits."""

from __future__ import annotations

import asyncio
import base64
import io
import threading
import time

import cv2
import httpx
import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient
from PIL import Image

from harerun.api import Settings, create_app, routes_analyze
from harerun.api.service import Service
from harerun.engine import Engine
from harerun.experiments import photo_key, subject_hash

ANALYZE = "/api/v6/skin/analyze-hare-run"
DETECT = "/api/v4/face/detect"


def _jpeg(bgr: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    return buf.tobytes()


@pytest.fixture(scope="module")
def photo(astronaut_bgr) -> bytes:
    return _jpeg(astronaut_bgr)


@pytest.fixture(scope="module")
def grey() -> bytes:
    return _jpeg(np.full((300, 400, 3), 128, np.uint8))


@pytest.fixture(scope="module")
def client(pipelines_dir):
    with TestClient(create_app(Settings(pipelines_dir=pipelines_dir)), raise_server_exceptions=False) as c:
        yield c


def _error(r: httpx.Response, status: int, code: str) -> dict:
    assert r.status_code == status, r.text[:500]
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    return body["error"]


# -- operations ------------------------------------------------------------------------


def test_health_and_ready(client):
    assert client.get("/health").json()["status"] == "ok"
    ready = client.get("/ready").json()
    assert ready["ready"] is True
    assert {"default", "strict"} <= set(ready["pipelines"])
    assert "skin-ab" in ready["experiments"]
    assert set(ready["warm_up_ms"]) == set(ready["pipelines"])  # every pipeline was run once at start-up
    assert ready["capacity"] == Settings().analysis_threads + Settings().queue_size


def test_pipelines_lists_detectors_and_experiments(client, pipelines_dir):
    body = client.get("/api/pipelines").json()
    assert body["default"] == "default"
    by_name = {p["name"]: p for p in body["pipelines"]}
    default = yaml.safe_load((pipelines_dir / "default.yaml").read_text())
    assert [d["id"] for d in by_name["default"]["detectors"]] == [
        s.get("id", s["plugin"]) for s in default["detectors"]
    ]
    assert all(d["version"] and d["package"] for d in by_name["default"]["detectors"])
    ab = {e["name"]: e for e in body["experiments"]}["skin-ab"]
    assert {v["name"]: v["pipeline"] for v in ab["variants"]} == {"A": "default", "B": "fast"}


def test_analyze_multipart_is_the_cli_json(client, photo, pipelines_dir):
    r = client.post(ANALYZE, files={"image": ("astronaut.jpg", photo, "image/jpeg")})
    assert r.status_code == 200, r.text[:500]
    body = r.json()
    assert r.headers["x-harerun-pipeline"] == body["pipeline"] == "default"
    assert body["variant"] is None and "overlay_png" not in body
    assert body["image"] == {"width": 512, "height": 512, "format": "JPEG"}
    assert body["face"] is not None
    # the same JSON as `harerun analyze --json` (engine.run(...).result.model_dump(mode="json")), timings aside
    expected = Engine(pipelines_dir=pipelines_dir).run(photo, pipeline="default").result.model_dump(mode="json")
    for key in ("timings_ms",):
        body.pop(key), expected.pop(key)
    # ... plus the API's own two fields: no subject id sent, no experiment
    assert (body.pop("subject_hash"), body.pop("assigned_by")) == (None, None)
    assert body == expected
    for res in body["results"].values():
        assert res["score"] is None or 0 <= res["score"] <= 100


def test_analyze_json_base64_data_url_and_raw_body_agree(client, photo):
    multipart = client.post(ANALYZE, files={"image": ("a.jpg", photo, "image/jpeg")}).json()
    b64 = base64.b64encode(photo).decode()
    for r in (
        client.post(ANALYZE, json={"image": b64}),
        client.post(ANALYZE, json={"image": "data:image/jpeg;base64," + b64}),
        client.post(ANALYZE, json={"image": base64.urlsafe_b64encode(photo).decode().rstrip("=")}),
        client.post(ANALYZE, content=photo, headers={"content-type": "image/jpeg"}),
    ):
        assert r.status_code == 200, r.text[:300]
        assert r.json()["results"] == multipart["results"]


def test_overlay_on_request(client, photo, astronaut_bgr):
    for r in (
        client.post(ANALYZE, json={"image": base64.b64encode(photo).decode(), "include_overlay": True}),
        client.post(ANALYZE, files={"image": ("a.jpg", photo, "image/jpeg")}, data={"include_overlay": "true"}),
        client.post(ANALYZE + "?include_overlay=true", content=photo, headers={"content-type": "image/jpeg"}),
    ):
        assert r.status_code == 200
        png = base64.b64decode(r.json()["overlay_png"])
        assert png.startswith(b"\x89PNG")
        overlay = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
        assert overlay.shape == astronaut_bgr.shape
        assert np.abs(overlay.astype(int) - astronaut_bgr.astype(int)).max() > 100  # something was drawn


def test_detect_face(client, photo):
    r = client.post(DETECT, files={"image": ("a.jpg", photo, "image/jpeg")})
    assert r.status_code == 200
    body = r.json()
    assert body["face_detected"] is True
    assert body["image"] == {"width": 512, "height": 512, "format": "JPEG"}
    x, y, w, h = body["face"]["box"]
    assert 0 <= x and 0 <= y and x + w <= 512 and y + h <= 512 and w >= 48
    assert body["faces"][0]["box"] == body["face"]["box"]
    assert 0 <= body["quality"]["score"] <= 100
    assert isinstance(body["quality"]["issues"], list)


def test_detect_without_face_is_an_answer_not_an_error(client, grey):
    body = client.post(DETECT, content=grey, headers={"content-type": "image/jpeg"}).json()
    assert body["face_detected"] is False and body["face"] is None and body["faces"] == []
    assert "NO_FACE" in body["quality"]["issues"]


def test_model_status_lists_every_model_of_the_pipelines(client):
    body = client.get("/api/v5/skin/model-status").json()
    pipes = {p["name"]: p for p in client.get("/api/pipelines").json()["pipelines"]}
    wanted = {spec for p in pipes.values() for spec in p["models"]}
    got = {f"{m['name']}@{m['version']}" for m in body["models"]}
    assert got == wanted
    for m in body["models"]:
        assert m["used_by"] and set(m["used_by"]) <= set(pipes)
        if m["available"]:
            assert m["source"] in ("local", "cache", "s3") and len(m["sha256"]) == 64
        else:
            assert m["reason"]


@pytest.mark.shared
def test_model_status_with_the_shared_models(shared, pipelines_dir):
    app = create_app(Settings(pipelines_dir=pipelines_dir, model_dir=shared / "models", warm_up=False))
    with TestClient(app) as c:
        rows = {m["name"]: m for m in c.get("/api/v5/skin/model-status").json()["models"]}
    assert rows["yunet"]["available"] is True and rows["yunet"]["source"] == "local"
    assert rows["yunet"]["sha256"] == "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"


def test_ab_experiment_is_sticky_and_named(client, photo):
    seen = {}
    for i in range(8):
        sid = f"subject-{i}"
        a = client.post(
            ANALYZE,
            params={"pipeline": "skin-ab", "subject_id": sid},
            content=photo,
            headers={"content-type": "image/jpeg"},
        ).json()
        b = client.post(
            ANALYZE + "?pipeline=skin-ab", content=photo, headers={"content-type": "image/jpeg", "X-Subject-Id": sid}
        ).json()
        assert a["variant"] == b["variant"] and a["pipeline"] == b["pipeline"]
        assert a["assigned_by"] == b["assigned_by"] == "subject_id"
        assert a["subject_hash"] == b["subject_hash"] == subject_hash(sid)  # the hash, never the id
        assert sid not in str(a) and sid not in str(b)
        seen[a["variant"]] = a["pipeline"]
    assert seen == {"skin-ab:A": "default", "skin-ab:B": "fast"}


def test_ab_request_without_subject_is_assigned_by_its_photo(client, photo, astronaut_bgr):
    """Without a subject id the variant follows the photo's SHA-256 (not always the control):
    the same photo gets the same variant, different photos split between the variants."""
    photos = [photo] + [_jpeg(np.ascontiguousarray(astronaut_bgr[:, : 512 - 4 * i])) for i in range(1, 8)]
    before = _sample(client.get("/metrics").text, "harerun_ab_photo_assignments_total", 'experiment="skin-ab"')
    seen = set()
    for data in photos:
        r = client.post(ANALYZE + "?pipeline=skin-ab", content=data, headers={"content-type": "image/jpeg"})
        body = r.json()
        assert r.status_code == 200 and body["assigned_by"] == "photo" and body["subject_hash"] is None
        variant = client.app.state.service.engine.experiments.experiments["skin-ab"].assign("skin-ab", photo_key(data))
        assert body["variant"] == f"skin-ab:{variant.name}"
        seen.add(body["variant"])
    again = client.post(ANALYZE + "?pipeline=skin-ab", content=photos[1], headers={"content-type": "image/jpeg"})
    assert (
        again.json()["variant"]
        == client.post(ANALYZE + "?pipeline=skin-ab", content=photos[1], headers={"content-type": "image/jpeg"}).json()[
            "variant"
        ]
    )
    assert seen == {"skin-ab:A", "skin-ab:B"}
    after = _sample(client.get("/metrics").text, "harerun_ab_photo_assignments_total", 'experiment="skin-ab"')
    assert after - before == len(photos) + 2


def _sample(text: str, name: str, labels: str) -> float:
    """The value of the sample ``name{labels}`` in Prometheus text (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(f"{name}{{{labels}}} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics(client, photo):
    client.post(
        ANALYZE,
        params={"pipeline": "skin-ab", "subject_id": "metrics"},
        content=photo,
        headers={"content-type": "image/jpeg"},
    )
    client.get("/nowhere")
    text = client.get("/metrics").text
    assert 'harerun_http_requests_total{method="POST",route="/api/v6/skin/analyze-hare-run",status="200"}' in text
    assert 'harerun_http_requests_total{method="GET",route="unmatched",status="404"}' in text
    assert "harerun_http_request_duration_seconds_bucket{" in text
    steps = [d["plugin"] for d in client.get("/api/pipelines").json()["pipelines"][0]["detectors"]]
    for name in steps:  # each detector is timed, or counted as an error when it raised
        assert (
            f'harerun_detector_duration_seconds_count{{detector="{name}"}}' in text
            or f'harerun_detector_errors_total{{detector="{name}"}}' in text
        ), name
    assert 'harerun_ab_assignments_total{experiment="skin-ab",variant=' in text
    # per-variant score histograms, labelled by experiment, variant and pipeline step only
    scored = [line for line in text.splitlines() if line.startswith("harerun_ab_score_count{")]
    assert scored, "no per-variant score histogram"
    for line in scored:
        labels = line[line.index("{") + 1 : line.index("}")]
        assert [kv.split("=")[0] for kv in labels.split(",")] == ["detector", "experiment", "variant"], line
        assert 'experiment="skin-ab"' in line and float(line.rsplit(" ", 1)[1]) >= 1


def test_openapi_documents_bodies_and_errors(client):
    spec = client.get("/openapi.json").json()
    op = spec["paths"][ANALYZE]["post"]
    assert {"multipart/form-data", "application/json", "image/*"} == set(op["requestBody"]["content"])
    assert {"200", "400", "404", "405", "413", "415", "422", "429", "503", "default"} <= set(op["responses"])
    assert "AnalyzeResponse" in spec["components"]["schemas"]
    assert {
        "/api/v4/face/detect",
        "/api/v5/skin/model-status",
        "/health",
        "/ready",
        "/metrics",
        "/api/pipelines",
    } <= set(spec["paths"])
    assert client.get("/docs").status_code == 200


# -- errors -------------------------------------------------------------------------------


def test_no_face_and_quality_gate_are_422_with_reason_codes(client, grey, photo):
    err = _error(client.post(ANALYZE, content=grey, headers={"content-type": "image/jpeg"}), 422, "NO_FACE")
    assert err["issues"] == ["NO_FACE"] or "NO_FACE" in err["issues"]
    err = _error(
        client.post(ANALYZE + "?pipeline=strict", content=photo, headers={"content-type": "image/jpeg"}),
        422,
        "QUALITY_REJECTED",
    )
    assert "TOO_DARK" in err["issues"]


def test_unknown_pipeline_is_404_and_never_a_file(client, photo):
    err = _error(
        client.post(ANALYZE + "?pipeline=defualt", content=photo, headers={"content-type": "image/jpeg"}),
        404,
        "UNKNOWN_PIPELINE",
    )
    assert "did you mean 'default'" in err["message"]
    for name in ("../pipelines/default", "/etc/passwd", "default.yaml", "experiments"):
        _error(
            client.post(ANALYZE, json={"image": base64.b64encode(photo).decode(), "pipeline": name}),
            404,
            "UNKNOWN_PIPELINE",
        )


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"files": {"other": ("a.jpg", b"x", "image/jpeg")}}, "no `image` field"),
        ({"json": {"image": "!!not base64!!"}}, "not valid base64"),
        ({"json": {"photo": "AAAA"}}, "image"),
        ({"json": {"image": "AAAA", "colour": "red"}}, "colour"),
        ({"json": ["image"]}, "JSON"),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, "not valid JSON"),
        ({"json": {"image": "AAAA", "subject_id": "x" * 300}}, "subject_id"),
        (
            {"params": {"include_overlay": "maybe"}, "content": b"x", "headers": {"content-type": "image/jpeg"}},
            "include_overlay",
        ),
        ({"files": {"image": ("a.jpg", b"x", "image/jpeg")}, "data": {"include_overlay": "maybe"}}, "include_overlay"),
        ({"content": b"--nope\r\n", "headers": {"content-type": "multipart/form-data; boundary=zz"}}, "multipart"),
    ],
)
def test_malformed_requests_are_400(client, kwargs, needle):
    err = _error(client.post(ANALYZE, **kwargs), 400, "BAD_REQUEST")
    assert needle in err["message"]


def test_image_part_without_filename_is_the_photo(client, photo):
    """Generated clients send a file without a filename unless told: the `image` part is the photo
    all the same (Starlette would make it a 64 KB text field); text there is no photo (415)."""
    r = client.post(DETECT, files={"image": (None, photo)})
    assert r.status_code == 200 and r.json()["face_detected"] is True, r.text[:300]
    err = _error(
        client.post(ANALYZE, data={"image": "text, not a file"}, files={"x": ("x", b"x")}), 415, "UNSUPPORTED_FORMAT"
    )
    assert "not an image" in err["message"]
    err = _error(
        client.post(ANALYZE, files={"image": ("a.jpg", photo), "pipeline": ("p.txt", b"default")}), 400, "BAD_REQUEST"
    )
    assert err["details"] == [{"loc": "body.pipeline", "message": "`pipeline` must be a text field, not a file"}]


def test_unreadable_and_unsupported_photos(client, photo):
    _error(client.post(ANALYZE, files={"image": ("a.jpg", b"", "image/jpeg")}), 422, "UNREADABLE_IMAGE")
    _error(client.post(ANALYZE, files={"image": ("a.jpg", photo[:2000], "image/jpeg")}), 422, "UNREADABLE_IMAGE")
    _error(client.post(ANALYZE, files={"image": ("a.jpg", b"plain text", "image/jpeg")}), 415, "UNSUPPORTED_FORMAT")
    _error(client.post(ANALYZE, content=photo, headers={"content-type": "text/plain"}), 415, "UNSUPPORTED_MEDIA_TYPE")
    _error(client.post(DETECT, content=photo, headers={"content-type": ""}), 415, "UNSUPPORTED_MEDIA_TYPE")


def test_upload_and_pixel_limits_are_413(photo, pipelines_dir):
    limit = len(photo) - 1
    app = create_app(Settings(pipelines_dir=pipelines_dir, max_upload_bytes=limit, max_pixels=100_000, warm_up=False))
    big_b64 = base64.b64encode(photo + b"\0" * (len(photo) // 2)).decode()
    with TestClient(app) as c:
        _error(
            c.post(ANALYZE, files={"image": ("a.jpg", photo + b"\0" * 70_000, "image/jpeg")}), 413, "IMAGE_TOO_LARGE"
        )
        _error(c.post(ANALYZE, files={"image": ("a.jpg", photo, "image/jpeg")}), 413, "IMAGE_TOO_LARGE")
        _error(c.post(ANALYZE, content=photo, headers={"content-type": "image/jpeg"}), 413, "IMAGE_TOO_LARGE")
        _error(c.post(ANALYZE, json={"image": big_b64}), 413, "IMAGE_TOO_LARGE")
        _error(c.post(ANALYZE, json={"image": base64.b64encode(photo).decode()}), 413, "IMAGE_TOO_LARGE")

        def lying(n):  # a body longer than its Content-Length says is cut off by the server, not trusted
            yield photo
            yield b"\0" * n

        _error(c.post(DETECT, content=lying(1000), headers={"content-type": "image/jpeg"}), 413, "IMAGE_TOO_LARGE")
        small = _jpeg(np.full((400, 400, 3), 120, np.uint8))  # 160 000 px > 100 000
        err = _error(c.post(DETECT, content=small, headers={"content-type": "image/png"}), 413, "IMAGE_TOO_LARGE")
        assert "pixel" in err["message"]


def test_404_405_and_unexpected_errors_are_json(client, photo, monkeypatch):
    _error(client.get("/api/v7/whatever"), 404, "NOT_FOUND")
    r = client.get(ANALYZE)
    _error(r, 405, "METHOD_NOT_ALLOWED")
    assert "POST" in r.headers["allow"]

    def boom(*a, **k):
        raise RuntimeError("a bug")

    monkeypatch.setattr(routes_analyze, "analyze_job", boom)
    _error(client.post(ANALYZE, content=photo, headers={"content-type": "image/jpeg"}), 500, "INTERNAL_ERROR")


def test_not_ready_is_503(photo):
    c = TestClient(create_app(Settings(warm_up=False)))  # no `with`: the lifespan has not run
    assert c.get("/health").status_code == 200
    r = c.get("/ready")
    _error(r, 503, "NOT_READY")
    r = c.post(ANALYZE, content=photo, headers={"content-type": "image/jpeg"})
    _error(r, 503, "NOT_READY")
    assert r.headers["retry-after"] == "1"


def test_cors_is_off_by_default_and_configurable(client, pipelines_dir, monkeypatch):
    assert "access-control-allow-origin" not in client.get("/health", headers={"Origin": "http://evil.example"}).headers
    monkeypatch.setenv("HARERUN_CORS_ORIGINS", "http://a.example, http://b.example")
    settings = Settings(pipelines_dir=pipelines_dir, warm_up=False)
    assert settings.cors_origins == ["http://a.example", "http://b.example"]
    with TestClient(create_app(settings)) as c:
        r = c.get("/health", headers={"Origin": "http://b.example"})
        assert r.headers["access-control-allow-origin"] == "http://b.example"
        assert "access-control-allow-origin" not in c.get("/health", headers={"Origin": "http://c.example"}).headers


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("HARERUN_MAX_UPLOAD_BYTES", "1234")
    monkeypatch.setenv("HARERUN_ANALYSIS_THREADS", "3")
    monkeypatch.setenv("HARERUN_DEFAULT_PIPELINE", "fast")
    s = Settings()
    assert (s.max_upload_bytes, s.analysis_threads, s.default_pipeline) == (1234, 3, "fast")
    assert s.cors_origins == []


# -- load: bounded pool, timeout ------------------------------------------------------------


def _service_app(pipelines_dir, **settings) -> tuple:
    """An app whose service is started by hand, for driving with httpx's ASGI transport."""
    s = Settings(pipelines_dir=pipelines_dir, warm_up=False, **settings)
    app = create_app(s)
    service = Service.create(s, app.state.metrics)
    service.start()
    app.state.service = service
    return app, service


def test_overload_is_503_with_retry_after_not_a_queue(pipelines_dir, photo, monkeypatch):
    app, service = _service_app(pipelines_dir, analysis_threads=1, queue_size=1, retry_after_s=2)
    release = threading.Event()
    started = threading.Semaphore(0)
    real = routes_analyze.analyze_job

    def slow(*args):
        started.release()
        release.wait(30)
        return real(*args)

    monkeypatch.setattr(routes_analyze, "analyze_job", slow)

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            post = lambda: c.post(ANALYZE, content=photo, headers={"content-type": "image/jpeg"})  # noqa: E731
            first, second = asyncio.create_task(post()), asyncio.create_task(post())
            while service.pool.in_flight < 2:
                await asyncio.sleep(0.01)
            refused = await post()  # one running + one queued = capacity 2
            metrics = (await c.get("/metrics")).text
            release.set()
            return refused, await first, await second, metrics

    refused, first, second, metrics = asyncio.run(scenario())
    assert "harerun_analyses_in_flight 2.0" in metrics
    assert 'harerun_rejected_total{reason="OVERLOADED"} 1.0' in metrics
    err = _error(refused, 503, "OVERLOADED")
    assert "busy" in err["message"] and refused.headers["retry-after"] == "2"
    assert first.status_code == second.status_code == 200
    assert service.pool.in_flight == 0
    service.pool.shutdown()


def test_requests_in_progress_are_capped_but_probes_still_answer(pipelines_dir, photo, monkeypatch):
    app, service = _service_app(pipelines_dir, max_requests=1, retry_after_s=4)
    release = threading.Event()
    real = routes_analyze.analyze_job
    monkeypatch.setattr(routes_analyze, "analyze_job", lambda *a: (release.wait(30), real(*a))[1])

    async def scenario():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            first = asyncio.create_task(c.post(ANALYZE, content=photo, headers={"content-type": "image/jpeg"}))
            while service.pool.in_flight < 1:
                await asyncio.sleep(0.01)
            refused = await c.post(DETECT, content=photo, headers={"content-type": "image/jpeg"})
            probes = [await c.get(p) for p in ("/health", "/ready", "/metrics")]
            release.set()
            return refused, probes, await first

    refused, probes, first = asyncio.run(scenario())
    _error(refused, 503, "OVERLOADED")
    assert refused.headers["retry-after"] == "4"
    assert [p.status_code for p in probes] == [200, 200, 200]
    assert 'route="/api/v4/face/detect",status="503"' in probes[2].text
    assert first.status_code == 200
    service.pool.shutdown()


def test_timeout_is_503_and_keeps_the_slot_until_the_work_ends(pipelines_dir, photo, monkeypatch):
    app, service = _service_app(pipelines_dir, request_timeout_s=0.3, analysis_threads=1, queue_size=0)
    release = threading.Event()
    monkeypatch.setattr(routes_analyze, "analyze_job", lambda *a: (release.wait(30), {"pipeline": "x"})[1])

    async def scenario():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            timed_out = await c.post(ANALYZE, content=photo, headers={"content-type": "image/jpeg"})
            busy = await c.post(ANALYZE, content=photo, headers={"content-type": "image/jpeg"})
            return timed_out, busy

    t0 = time.perf_counter()
    timed_out, busy = asyncio.run(scenario())
    assert time.perf_counter() - t0 < 10
    _error(timed_out, 503, "TIMEOUT")
    _error(busy, 503, "OVERLOADED")  # the timed-out work still runs and still holds the only thread
    release.set()
    for _ in range(100):
        if service.pool.in_flight == 0:
            break
        time.sleep(0.02)
    assert service.pool.in_flight == 0
    service.pool.shutdown()


def test_exif_rotation_is_applied(client, astronaut_bgr):
    crop = np.ascontiguousarray(astronaut_bgr[:, 40:-40])  # 432 wide, 512 high
    stored = cv2.rotate(crop, cv2.ROTATE_90_COUNTERCLOCKWISE)
    img = Image.fromarray(np.ascontiguousarray(stored[:, :, ::-1]))
    exif = img.getexif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=92, exif=exif.tobytes())
    body = client.post(DETECT, content=buf.getvalue(), headers={"content-type": "image/jpeg"}).json()
    assert body["image"]["width"] == 432 and body["image"]["height"] == 512
    assert body["face_detected"] is True


def test_bad_settings_are_listed_like_pipeline_problems(monkeypatch):
    import subprocess
    import sys

    from harerun.api.settings import load_settings
    from harerun.errors import ConfigError

    monkeypatch.setenv("HARERUN_MAX_UPLOAD_BYTES", "0")
    monkeypatch.setenv("HARERUN_QUEUE_SIZE", "many")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.problems[0] == "environment: HARERUN_MAX_UPLOAD_BYTES: must be ≥ 1 (got '0')"
    assert info.value.problems[1].startswith("environment: HARERUN_QUEUE_SIZE: input should be a valid integer")
    cli = [sys.executable, "-c", "import sys; from harerun.cli import main; sys.exit(main())", "serve"]
    r = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "HARERUN_QUEUE_SIZE" in r.stderr and "Traceback" not in r.stderr
