"""The HTTP API over real HTTP: `harerun serve` (uvicorn) on a free 127.0.0.1 port.

Each endpoint, each error code, the hostile-input corpus (the server stays up and its
memory bounded), A/B stickiness and concurrent requests.
"""

from __future__ import annotations

import base64
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import hostile
import httpx
import numpy as np
import pytest

ANALYZE, DETECT = hostile.ANALYZE, hostile.DETECT
MB = 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log = tmp_path_factory.mktemp("server") / "serve.log"
    srv = hostile.LiveServer(log_path=log)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
    assert srv.proc.returncode is not None


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=60.0) as c:
        yield c


@pytest.fixture(scope="module")
def photo(astronaut_bgr) -> bytes:
    ok, buf = cv2.imencode(".jpg", astronaut_bgr, [cv2.IMWRITE_JPEG_QUALITY, 92])
    return buf.tobytes()


def _code(r: httpx.Response) -> str | None:
    try:
        return r.json().get("error", {}).get("code")
    except ValueError:
        return None


def test_endpoints_over_http(http, photo):
    assert http.get("/health").json()["status"] == "ok"
    assert http.get("/ready").json()["ready"] is True
    names = [p["name"] for p in http.get("/api/pipelines").json()["pipelines"]]
    assert "default" in names
    assert "models" in http.get("/api/v5/skin/model-status").json()
    r = http.post(ANALYZE, files={"image": ("astronaut.jpg", photo, "image/jpeg")}, params={"include_overlay": "true"})
    assert r.status_code == 200, r.text[:300]
    body = r.json()
    assert body["pipeline"] == "default" and body["face"] is not None
    assert base64.b64decode(body["overlay_png"]).startswith(b"\x89PNG")
    r = http.post(DETECT, json={"image": base64.b64encode(photo).decode()})
    assert r.status_code == 200 and r.json()["face_detected"] is True
    page = http.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    metrics = http.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'route="/api/v6/skin/analyze-hare-run",status="200"' in metrics.text


def test_error_codes_over_http(http, photo):
    grey = cv2.imencode(".jpg", np.full((200, 300, 3), 128, np.uint8))[1].tobytes()
    cases = [
        (http.post(ANALYZE, json={"picture": "x"}), 400, "BAD_REQUEST"),
        (
            http.post(ANALYZE, params={"pipeline": "nope"}, content=photo, headers={"content-type": "image/jpeg"}),
            404,
            "UNKNOWN_PIPELINE",
        ),
        (http.get("/no/such/route"), 404, "NOT_FOUND"),
        (http.delete(ANALYZE), 405, "METHOD_NOT_ALLOWED"),
        (
            http.post(ANALYZE, files={"image": ("big.jpg", photo + b"\0" * (11 * MB), "image/jpeg")}),
            413,
            "IMAGE_TOO_LARGE",
        ),
        (http.post(ANALYZE, content=b"x" * (11 * MB), headers={"content-type": "image/jpeg"}), 413, "IMAGE_TOO_LARGE"),
        (http.post(ANALYZE, content=photo, headers={"content-type": "text/csv"}), 415, "UNSUPPORTED_MEDIA_TYPE"),
        (http.post(ANALYZE, content=grey, headers={"content-type": "image/jpeg"}), 422, "NO_FACE"),
    ]
    for r, status, code in cases:
        assert (r.status_code, _code(r)) == (status, code), (r.request.url, r.text[:300])
    assert http.get("/health").status_code == 200  # still serving after the 413s cut bodies short


def test_hostile_corpus_gets_documented_codes_and_memory_stays_bounded(server, http, astronaut_bgr):
    cases = hostile.corpus(astronaut_bgr)
    http.post(ANALYZE, **cases[-1].httpx_kwargs())  # first real analysis done before the baseline
    before = hostile.rss_bytes(server.proc.pid)
    rss = []
    for _ in range(3):
        for case in cases:
            r = http.post(ANALYZE, **case.httpx_kwargs())
            assert r.status_code == case.status, (case.name, r.text[:300])
            if case.code:
                assert _code(r) == case.code, (case.name, r.text[:300])
            else:
                assert r.json()["face"] is not None, case.name
        rss.append(hostile.rss_bytes(server.proc.pid))
    assert http.get("/health").status_code == 200 and server.proc.poll() is None
    print(f"uvicorn RSS: {before / MB:.0f} MB before, {[round(x / MB) for x in rss]} MB after each round")
    assert rss[-1] - before < 300 * MB
    assert rss[-1] - rss[0] < 64 * MB  # repeating the corpus does not keep growing memory


def test_exif_rotated_photo_is_reported_upright(http, astronaut_bgr):
    data, (w, h) = hostile.exif_rotated_jpeg(np.ascontiguousarray(astronaut_bgr[:, 40:-40]))
    body = http.post(DETECT, files={"image": ("r.jpg", data, "image/jpeg")}).json()
    assert (body["image"]["width"], body["image"]["height"]) == (w, h)
    assert body["face_detected"] is True


def test_ab_stickiness_over_http(http, photo):
    def ask(sid: str, header: bool) -> tuple[str, str]:
        kw = {"headers": {"X-Subject-Id": sid}} if header else {"data": {"subject_id": sid}}
        r = http.post(ANALYZE, params={"pipeline": "skin-ab"}, files={"image": ("a.jpg", photo, "image/jpeg")}, **kw)
        assert r.status_code == 200, r.text[:300]
        assert r.headers["x-harerun-variant"] == r.json()["variant"]
        return r.json()["variant"], r.json()["pipeline"]

    assigned = {}
    for i in range(6):
        sid = f"http-subject-{i}"
        first = ask(sid, header=False)
        assert ask(sid, header=True) == first == ask(sid, header=False)
        assigned[sid] = first
    variants = {v for v, _ in assigned.values()}
    assert variants <= {"skin-ab:A", "skin-ab:B"} and len(variants) == 2
    assert all(p == ("default" if v.endswith(":A") else "fast") for v, p in assigned.values())


def test_concurrent_requests_agree_and_excess_load_is_503(server, photo):
    barrier = threading.Barrier(8)

    def one(_):
        barrier.wait()
        with httpx.Client(base_url=server.url, timeout=120.0) as c:
            return c.post(ANALYZE, files={"image": ("a.jpg", photo, "image/jpeg")})

    with ThreadPoolExecutor(8) as ex:
        responses = list(ex.map(one, range(8)))
    ok = [r for r in responses if r.status_code == 200]
    busy = [r for r in responses if r.status_code == 503]
    assert len(ok) + len(busy) == 8 and ok
    assert all(_code(r) == "OVERLOADED" and int(r.headers["retry-after"]) >= 1 for r in busy)
    first = ok[0].json()["results"]
    assert all(r.json()["results"] == first for r in ok)  # the shared engine is thread-safe


def test_a_small_pool_refuses_instead_of_queueing(tmp_path, photo):
    env = {
        "HARERUN_ANALYSIS_THREADS": "1",
        "HARERUN_QUEUE_SIZE": "0",
        "HARERUN_WARM_UP": "false",
        "HARERUN_RETRY_AFTER_S": "3",
    }
    with hostile.LiveServer(env, log_path=tmp_path / "serve.log") as url:
        barrier = threading.Barrier(6)

        def one(_):
            barrier.wait()
            with httpx.Client(base_url=url, timeout=120.0) as c:
                return c.post(ANALYZE, content=photo, headers={"content-type": "image/jpeg"})

        with ThreadPoolExecutor(6) as ex:
            responses = list(ex.map(one, range(6)))
        statuses = sorted(r.status_code for r in responses)
        assert set(statuses) == {200, 503}, statuses
        assert all(r.headers["retry-after"] == "3" for r in responses if r.status_code == 503)
        with httpx.Client(base_url=url) as c:
            m = c.get("/metrics").text
        assert 'harerun_rejected_total{reason="OVERLOADED"}' in m


def test_a_client_that_stalls_mid_upload_is_cut_off_by_the_timeout(tmp_path):
    import json
    import socket
    import time

    env = {"HARERUN_REQUEST_TIMEOUT_S": "1", "HARERUN_WARM_UP": "false"}
    with hostile.LiveServer(env, log_path=tmp_path / "serve.log") as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
            s.sendall(
                b"POST " + ANALYZE.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
                b"Content-Length: 100000\r\n\r\n\xff\xd8\xff\xe0"
            )
            t0 = time.monotonic()
            raw = b""
            while b"\r\n\r\n" not in raw or not raw.rstrip().endswith(b"}"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                raw += chunk
            waited = time.monotonic() - t0
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503"), raw[:200]
        assert json.loads(body)["error"]["code"] == "TIMEOUT"
        assert 0.5 < waited < 10
        assert httpx.get(url + "/health").status_code == 200


def test_past_the_connection_limit_the_answer_is_an_error_response(tmp_path):
    """uvicorn's own 503 (past HARERUN_MAX_CONNECTIONS) is the API's JSON, so clients parse it too."""
    import socket

    env = {"HARERUN_MAX_CONNECTIONS": "2", "HARERUN_WARM_UP": "false"}
    with hostile.LiveServer(env, log_path=tmp_path / "serve.log") as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=15):  # an open connection: 1 of 2
            r = httpx.get(url + "/api/pipelines")  # the second: at the limit
        assert r.status_code == 503, r.text[:200]
        assert r.headers["content-type"] == "application/json" and r.headers["retry-after"] == "1"
        assert r.json()["error"]["code"] == "OVERLOADED"
        assert httpx.get(url + "/health").status_code == 200  # alone again: served


def test_analysis_processes_serve_errors_metrics_and_survive_a_lost_process(tmp_path, astronaut_bgr, photo):
    import os
    import signal
    import time

    env = {"HARERUN_ANALYSIS_PROCESSES": "2", "HARERUN_QUEUE_SIZE": "8"}
    server = hostile.LiveServer(env, log_path=tmp_path / "serve.log")
    url = server.start()
    try:
        analysers = hostile.child_pids(server.proc.pid)
        assert len(analysers) == 2  # both started (and warmed up) before /ready said yes
        with httpx.Client(base_url=url, timeout=120.0) as c:
            assert c.get("/ready").json()["capacity"] == 2 + 8
            # Errors raised inside an analysis process keep their code and details.
            grey = cv2.imencode(".jpg", np.full((200, 300, 3), 128, np.uint8))[1].tobytes()
            for case in hostile.corpus(astronaut_bgr)[:6]:
                r = c.post(ANALYZE, **case.httpx_kwargs())
                assert (r.status_code, _code(r)) == (case.status, case.code), case.name
            r = c.post(ANALYZE, content=grey, headers={"content-type": "image/jpeg"})
            assert (r.status_code, _code(r), r.json()["error"]["issues"]) == (422, "NO_FACE", ["NO_FACE"])
            r = c.post(DETECT, content=photo, headers={"content-type": "image/jpeg"})
            assert r.status_code == 200 and r.json()["face_detected"] is True
            # Concurrent photos agree, and detector timings reach this process's /metrics.
            with ThreadPoolExecutor(6) as ex:
                responses = list(
                    ex.map(lambda _: c.post(ANALYZE, content=photo, headers={"content-type": "image/jpeg"}), range(6))
                )
            assert {r.status_code for r in responses} == {200}

            def same(r):  # each process loaded the model itself: only its load time differs
                out = r.json()["results"]
                out["ml_classifier"]["measurements"].pop("model_load_ms")
                return out

            assert all(same(r) == same(responses[0]) for r in responses)
            assert 'harerun_detector_duration_seconds_count{detector="acne"}' in c.get("/metrics").text
            # A killed analysis process costs at most the photos it held (503 WORKER_LOST), then the pool is rebuilt.
            os.kill(analysers[0], signal.SIGKILL)
            time.sleep(0.5)
            codes = []
            for _ in range(4):
                r = c.post(ANALYZE, content=photo, headers={"content-type": "image/jpeg"})
                codes.append((r.status_code, _code(r)))
            assert set(codes) <= {(200, None), (503, "WORKER_LOST")} and codes[-1] == (200, None), codes
        # A server killed outright leaves no analysis process behind (the rebuilt pool starts
        # its processes as photos come: one or two by now).
        analysers = hostile.child_pids(server.proc.pid)
        assert analysers
        server.proc.kill()
        server.proc.wait(timeout=20)
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{k}").exists() for k in analysers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [k for k in analysers if Path(f"/proc/{k}").exists()]
    finally:
        server.stop()


def test_analysis_processes_end_with_the_server(tmp_path):
    import time

    server = hostile.LiveServer({"HARERUN_ANALYSIS_PROCESSES": "1"}, log_path=tmp_path / "serve.log")
    server.start()
    analysers = hostile.child_pids(server.proc.pid)
    assert len(analysers) == 1
    server.stop()  # SIGTERM: uvicorn shuts down, then re-raises the signal
    deadline = time.monotonic() + 10
    while Path(f"/proc/{analysers[0]}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not Path(f"/proc/{analysers[0]}").exists()
