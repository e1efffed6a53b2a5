"""Fault suite for the server (issue #12): each failure a hostile probe found, reproduced.

Hostile clients (made-up HTTP methods), a black-hole S3 endpoint (accepts connections, never
answers), an unreadable cache folder. Each test fails on the code before the fix.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import hostile
import httpx
import pytest
import yaml
from fastapi.testclient import TestClient

from harerun.api import Settings, create_app
from harerun.modelstore import ModelStore, ModelUnavailable, forget_s3_outages
from harerun.pipeline import default_pipelines_dir

ANALYZE = "/api/v6/skin/analyze-hare-run"
CLI = [sys.executable, "-c", "import sys; from harerun.cli import main; sys.exit(main())"]


@pytest.fixture(scope="module")
def photo(astronaut_bgr) -> bytes:
    return cv2.imencode(".jpg", astronaut_bgr)[1].tobytes()


class BlackHole:
    """A TCP server on 127.0.0.1 that accepts every connection and never sends a byte."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=256)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for c in self.held:
            c.close()


@pytest.fixture
def black_hole():
    hole = BlackHole()
    forget_s3_outages()
    yield hole
    hole.close()
    forget_s3_outages()


def test_metric_labels_come_from_a_closed_set(tmp_path):
    """Made-up methods and paths must not add series: they are `other` and `unmatched`."""
    with TestClient(create_app(Settings(warm_up=False))) as client:
        for i in range(50):
            client.request(f"M{i:07d}X", "/health")
            client.get(f"/no/such/path/{i}")
        text = client.get("/metrics").text
    assert "M0000001X" not in text and "/no/such/path" not in text
    assert 'method="other",route="/health"' in text
    assert 'method="GET",route="unmatched",status="404"' in text
    series = [line for line in text.splitlines() if line.startswith("harerun_http_requests_total{")]
    assert len(series) <= 5, series


def test_black_hole_s3_look_up_is_bounded_and_remembered(tmp_path, black_hole, monkeypatch):
    """One look-up times out (no retry storm); the next ones do not ask the dead endpoint again."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    store = ModelStore(tmp_path / "models", tmp_path / "cache", s3_bucket="b", s3_endpoint_url=black_hole.url)
    with pytest.raises(ModelUnavailable, match="timed out"):
        store.resolve("nosuch@1")
    assert len(black_hole.held) == 1  # one connection: not retried
    with pytest.raises(ModelUnavailable, match="not asked again"):
        store.resolve("other@1")
    assert len(black_hole.held) == 1
    rows = store.status(["other@2"])
    assert rows[0]["available"] is False and "not asked again" in rows[0]["reason"]


def _pipelines_needing(tmp_path: Path, model: str) -> Path:
    """The configured pipelines, with the default's ML classifier asking for ``model``."""
    out = tmp_path / "pipelines"
    out.mkdir()
    for f in default_pipelines_dir().glob("*.yaml"):
        shutil.copy(f, out / f.name)
    default = yaml.safe_load((out / "default.yaml").read_text())
    for step in default["detectors"]:
        if step.get("plugin") == "ml_classifier":
            step.setdefault("params", {})["model"] = model
    (out / "default.yaml").write_text(yaml.safe_dump(default))
    return out


def test_server_with_a_black_hole_s3_starts_answers_and_is_not_ready(tmp_path, black_hole, photo):
    """Start-up finishes, every analysis answers 200 (the model reported unavailable), /ready says
    which model is missing, model-status answers."""
    env = {
        "HARERUN_PIPELINES_DIR": str(_pipelines_needing(tmp_path, "acne-grade@77")),
        "HARERUN_S3_BUCKET": "models-bucket",
        "HARERUN_S3_ENDPOINT_URL": black_hole.url,
        "HARERUN_CACHE_DIR": str(tmp_path / "cache"),
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "y",
        "HARERUN_ANALYSIS_THREADS": "2",
    }
    with (
        hostile.LiveServer(env, wait_for="/health", log_path=tmp_path / "serve.log") as url,
        httpx.Client(base_url=url, timeout=60.0) as http,
    ):
        ready = http.get("/ready")
        for _ in range(100):  # /health answers while the lifespan is still starting
            if "starting up" not in ready.text:
                break
            threading.Event().wait(0.2)
            ready = http.get("/ready")
        assert ready.status_code == 503 and ready.json()["error"]["code"] == "NOT_READY"
        assert "acne-grade@77" in ready.json()["error"]["message"]
        answers = []

        def post() -> None:
            answers.append(http.post(ANALYZE, content=photo, headers={"Content-Type": "image/jpeg"}))

        threads = [threading.Thread(target=post) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [r.status_code for r in answers] == [200] * 6, [r.text[:200] for r in answers]
        for r in answers:
            ml = r.json()["results"]["ml_classifier"]
            assert ml["status"] == "unavailable"
        status = http.get("/api/v5/skin/model-status")
        assert status.status_code == 200
        row = next(m for m in status.json()["models"] if m["name"] == "acne-grade")
        assert row["available"] is False


def _locked(monkeypatch, folder: Path) -> None:
    """Make ``folder`` unreadable for this process: chmod when not root (root reads anything),
    else every stat, listing and mkdir under it fails with EACCES, as for a user whose HOME it is not."""
    if os.geteuid() != 0:
        folder.chmod(0)
        return
    import errno

    def guard(fn):
        def call(path, *args, **kwargs):
            if str(os.fspath(path)).startswith(str(folder)):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
            return fn(path, *args, **kwargs)

        return call

    for name in ("stat", "lstat", "mkdir", "scandir", "listdir", "open"):
        monkeypatch.setattr(os, name, guard(getattr(os, name)))


def test_unreadable_cache_folder_is_a_reason_not_a_crash(tmp_path, photo, monkeypatch):
    """A cache folder this user may not read (HOME not theirs): models come back `unavailable`
    with the reason, and the server starts and analyses."""
    locked = tmp_path / "home"
    (locked / ".cache").mkdir(parents=True)
    pipelines = _pipelines_needing(tmp_path, "acne-grade@77")
    settings = Settings(pipelines_dir=pipelines, cache_dir=locked / ".cache" / "harerun", warm_up=True)
    _locked(monkeypatch, locked)
    try:
        store = ModelStore(tmp_path / "models", locked / ".cache" / "harerun")
        with pytest.raises(ModelUnavailable, match="cannot read .*HARERUN_CACHE_DIR"):
            store.resolve("nosuch@1")
        assert "cannot read" in store.status(["nosuch@1"])[0]["reason"]
        with TestClient(create_app(settings)) as client:
            r = client.post(ANALYZE, content=photo, headers={"Content-Type": "image/jpeg"})
            assert r.status_code == 200, r.text[:300]
            assert r.json()["results"]["ml_classifier"]["status"] == "unavailable"
            assert client.get("/ready").status_code == 503
    finally:
        monkeypatch.undo()
        locked.chmod(0o700)


def test_a_killed_analysis_process_costs_no_photo(tmp_path, astronaut_bgr):
    """kill -9 of one analysis process while photos are analysed and queued: the pool is
    rebuilt and every photo still gets its answer (the old pool failed them all with WORKER_LOST)."""
    import signal

    big = cv2.resize(astronaut_bgr, None, fx=4, fy=4, interpolation=cv2.INTER_LINEAR)  # slower photos
    body = cv2.imencode(".png", big)[1].tobytes()
    log = tmp_path / "serve.log"
    env = {"HARERUN_ANALYSIS_PROCESSES": "2", "HARERUN_QUEUE_SIZE": "8"}
    server = hostile.LiveServer(env, log_path=log)
    with server as url, httpx.Client(base_url=url, timeout=120.0) as http:
        analysers = hostile.child_pids(server.proc.pid)
        assert len(analysers) == 2, analysers
        answers: list[httpx.Response] = []

        def post() -> None:
            answers.append(
                http.post(
                    ANALYZE, content=body, headers={"Content-Type": "image/png"}, params={"include_overlay": "true"}
                )
            )

        threads = [threading.Thread(target=post) for _ in range(6)]
        for t in threads:
            t.start()
        for _ in range(400):  # until the photos are in the pool (2 analysed, 4 queued)
            if http.get("/ready").json().get("in_flight", 0) >= 4:
                break
            threading.Event().wait(0.05)
        os.kill(analysers[0], signal.SIGKILL)
        for t in threads:
            t.join()
    codes = [(r.status_code, r.json().get("error", {}).get("code")) for r in answers]
    assert codes == [(200, None)] * 6, codes
    assert "stopped unexpectedly" in log.read_text()


def _keyed_app(**extra):
    from harerun.api.auth import key_hash

    keys = {"app": "hr_app_key_0123456789", "ops": "hr_ops_key_0123456789"}
    entries = f"app:{key_hash(keys['app']).hex()},ops:{key_hash(keys['ops']).hex()}:operator"
    return create_app(Settings(warm_up=False, api_keys=entries, **extra)), keys


def test_api_keys_401_403_429_and_open_probes(photo):
    app, keys = _keyed_app(rate_limit_per_minute=3)
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200 and client.get("/ready").status_code == 200
        r = client.get("/api/pipelines")
        assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHORIZED"
        assert r.headers["www-authenticate"] == "Bearer"
        r = client.get("/api/pipelines", headers={"X-API-Key": "hr_guess"})
        assert r.status_code == 401
        assert client.get("/api/pipelines", headers={"Authorization": f"Bearer {keys['app']}"}).status_code == 200
        assert client.get("/api/pipelines", headers={"X-API-Key": keys["app"]}).status_code == 200
        r = client.post(ANALYZE, content=photo, headers={"X-API-Key": keys["app"], "Content-Type": "image/jpeg"})
        assert r.status_code == 200
        r = client.get("/api/pipelines", headers={"X-API-Key": keys["app"]})  # the 4th in a minute
        assert r.status_code == 429 and r.json()["error"]["code"] == "RATE_LIMITED"
        assert int(r.headers["retry-after"]) >= 1
        assert client.get("/api/pipelines", headers={"X-API-Key": keys["ops"]}).status_code == 200  # its own rate
        r = client.get("/metrics")
        assert r.status_code == 401
        r = client.get("/metrics", headers={"X-API-Key": keys["ops"]})
        assert r.status_code == 200 and "harerun_http_requests_total" in r.text
        schemes = client.get("/openapi.json").json()["components"]["securitySchemes"]
        assert {s["type"] for s in schemes.values()} == {"http", "apiKey"}


def test_metrics_403_for_a_client_key():
    app, keys = _keyed_app()
    with TestClient(app) as client:
        r = client.get("/metrics", headers={"X-API-Key": keys["app"]})
        assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN"


def test_server_paths_bucket_and_endpoint_only_for_operators(tmp_path, photo, monkeypatch):
    """A missing model's reason names the cache folder, bucket and endpoint: clients see it redacted."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    forget_s3_outages()
    app, keys = _keyed_app(
        pipelines_dir=_pipelines_needing(tmp_path, "acne-grade@77"),
        cache_dir=tmp_path / "cache",
        s3_bucket="secret-bucket",
        s3_endpoint_url="http://10.9.8.7:1",
    )
    with TestClient(app) as client:

        def status(key):
            rows = client.get("/api/v5/skin/model-status", headers={"X-API-Key": key}).json()["models"]
            return next(r["reason"] for r in rows if r["name"] == "acne-grade")

        client_view, operator_view = status(keys["app"]), status(keys["ops"])
        assert str(tmp_path) in operator_view and "secret-bucket" in operator_view
        for secret in (str(tmp_path), "10.9.8.7", "secret-bucket", "/work/"):
            assert secret not in client_view, client_view
        r = client.post(ANALYZE, content=photo, headers={"X-API-Key": keys["app"], "Content-Type": "image/jpeg"})
        message = r.json()["results"]["ml_classifier"]["message"]
        assert "unavailable" in r.json()["results"]["ml_classifier"]["status"]
        assert str(tmp_path) not in message and "10.9.8.7" not in message
    forget_s3_outages()


def test_multipart_uploads_stay_in_memory(photo, monkeypatch):
    """A 3 MB multipart photo is never written to a temporary file (Starlette spools >1 MB to disk)."""
    import starlette.formparsers as fp

    rolled = []

    class Watched(fp.SpooledTemporaryFile):
        def rollover(self):
            rolled.append(self._max_size)
            super().rollover()

    monkeypatch.setattr(fp, "SpooledTemporaryFile", Watched)
    big = photo + b"\0" * (3 * 1024 * 1024)  # trailing bytes after the JPEG's end are ignored by decoders
    with TestClient(create_app(Settings(warm_up=False))) as client:
        r = client.post(ANALYZE, files={"image": ("a.jpg", big, "image/jpeg")})
    assert r.status_code == 200, r.text[:300]
    assert rolled == []


def test_idle_and_half_sent_connections_are_closed(tmp_path):
    env = {"HARERUN_HEADER_TIMEOUT_S": "1", "HARERUN_WARM_UP": "false"}
    server = hostile.LiveServer(env, log_path=tmp_path / "serve.log")
    with server:
        idle = socket.create_connection(("127.0.0.1", server.port))
        half = socket.create_connection(("127.0.0.1", server.port))
        half.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # never finished
        for s in (idle, half):
            s.settimeout(30)
            assert s.recv(1024) == b""  # closed by the server, not by our timeout
            s.close()
        with socket.create_connection(("127.0.0.1", server.port)) as ok:  # a prompt request is served
            ok.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            ok.settimeout(30)
            assert ok.recv(1024).startswith(b"HTTP/1.1 200")


def test_workers_leave_no_metrics_folder_after_sigterm(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    server = hostile.LiveServer(
        {"TMPDIR": str(tmp), "HARERUN_WARM_UP": "false"}, workers=2, log_path=tmp_path / "serve.log"
    )
    server.start()
    assert [p.name for p in tmp.iterdir() if p.name.startswith("harerun-metrics-")]
    server.stop()
    assert server.proc.returncode is not None
    assert not [p.name for p in tmp.iterdir() if p.name.startswith("harerun-metrics-")]


def test_s3_messages_name_the_endpoint_boto3_uses(monkeypatch):
    from harerun.modelstore import describe_s3_error

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://minio.internal:9000")
    message = describe_s3_error(_connect_error(), "b", None)
    assert "minio.internal" in message and "AWS S3" not in message


def _connect_error():
    from botocore.exceptions import EndpointConnectionError

    return EndpointConnectionError(endpoint_url="http://minio.internal:9000")


class SlowS3:
    """An HTTP server that answers every request with 404 NoSuchKey after ``delay_s``."""

    def __init__(self, delay_s: float) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        delay = delay_s
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                outer.requests += 1
                threading.Event().wait(delay)
                body = b"<Error><Code>NoSuchKey</Code><Message>no</Message></Error>"
                self.send_response(404)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)) if self.command != "HEAD" else "0")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = _answer

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_refusing_and_slow_s3_endpoints(tmp_path, monkeypatch):
    """Refused: said at once, then not asked again. Slow but answering (0.5 s): its answer (404)
    is reported and it is asked again next time: only silence counts as down."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    forget_s3_outages()
    closed = hostile.free_port()  # nothing listens there
    store = ModelStore(tmp_path / "m", tmp_path / "c", s3_bucket="b", s3_endpoint_url=f"http://127.0.0.1:{closed}")
    with pytest.raises(ModelUnavailable, match="cannot reach"):
        store.resolve("x@1")
    with pytest.raises(ModelUnavailable, match="not asked again"):
        store.resolve("y@1")
    slow = SlowS3(0.5)
    try:
        store = ModelStore(tmp_path / "m", tmp_path / "c", s3_bucket="b", s3_endpoint_url=slow.url)
        for spec in ("x@1", "y@1"):
            with pytest.raises(ModelUnavailable, match="404"):
                store.resolve(spec)
        assert slow.requests == 2
    finally:
        slow.close()
        forget_s3_outages()


def test_sigterm_under_load_finishes_the_photos_and_leaves_nothing(tmp_path, astronaut_bgr):
    import signal

    big = cv2.resize(astronaut_bgr, None, fx=4, fy=4, interpolation=cv2.INTER_LINEAR)
    body = cv2.imencode(".png", big)[1].tobytes()
    server = hostile.LiveServer({"HARERUN_ANALYSIS_PROCESSES": "2"}, log_path=tmp_path / "serve.log")
    with server as url, httpx.Client(base_url=url, timeout=120.0) as http:
        analysers = hostile.child_pids(server.proc.pid)
        answers: list[httpx.Response] = []

        def post() -> None:
            answers.append(
                http.post(
                    ANALYZE, content=body, headers={"Content-Type": "image/png"}, params={"include_overlay": "true"}
                )
            )

        threads = [threading.Thread(target=post) for _ in range(4)]
        for t in threads:
            t.start()
        for _ in range(400):
            if http.get("/ready").json().get("in_flight", 0) >= 3:
                break
            threading.Event().wait(0.05)
        server.proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join()
        server.proc.wait(timeout=60)
    assert [r.status_code for r in answers] == [200] * 4, [r.text[:200] for r in answers]
    assert all(not Path(f"/proc/{k}").exists() for k in analysers)
    assert "Traceback" not in (tmp_path / "serve.log").read_text()


def test_access_log_has_no_subject_ids(tmp_path, photo):
    """The access log names the route and status, never the query string (subject ids)."""
    log = tmp_path / "serve.log"
    port = hostile.free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*CLI, "serve", "--port", str(port), "--log-level", "info"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HARERUN_WARM_UP": "false"},
        )
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(600):
                try:
                    if httpx.get(url + "/ready", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    threading.Event().wait(0.25)
            r = httpx.post(
                url + ANALYZE,
                params={"subject_id": "patient-4711"},
                content=photo,
                headers={"Content-Type": "image/jpeg"},
                timeout=60,
            )
            assert r.status_code == 200
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    text = log.read_text()
    assert "patient-4711" not in text
    assert "POST /api/v6/skin/analyze-hare-run 200" in text  # the access line, from our logger
    assert "ready: pipelines" in text  # harerun.api's own lines reach the log too


def test_a_failed_model_look_up_is_remembered_from_when_it_ended(monkeypatch):
    """A look-up that took 0.3 s and failed is not retried within the miss TTL counted from its end."""
    import time as _time

    from harerun.face import backends

    calls = []

    def slow_fail(self, spec, **kw):
        calls.append(spec)
        _time.sleep(0.3)
        raise ModelUnavailable("down", name="yunet")

    monkeypatch.delenv("HARERUN_YUNET_MODEL", raising=False)
    monkeypatch.setattr(ModelStore, "resolve", slow_fail)
    monkeypatch.setattr(backends, "_MISS_TTL_S", 0.2)  # shorter than the look-up itself
    backends.forget_model_lookups()
    try:
        assert backends.yunet_lookup()[0] is None
        assert backends.yunet_lookup()[0] is None  # within 0.2 s of the end: remembered, not asked again
        assert len(calls) == 1
    finally:
        backends.forget_model_lookups()


def test_ready_with_a_models_folder_holding_only_other_models(tmp_path):
    """HARERUN_MODEL_DIR pointing at a folder with only YuNet (as deployments do): the project's
    own shipped models are still found, so the server is ready."""
    (tmp_path / "models").mkdir()
    with TestClient(
        create_app(Settings(warm_up=False, model_dir=tmp_path / "models", cache_dir=tmp_path / "cache"))
    ) as client:
        r = client.get("/ready")
        assert r.status_code == 200, r.text
