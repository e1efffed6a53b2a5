"""The server's logs (issue #15 item 3): one access line per request with its request id, route
template, status, error code, variant, duration and the engine's stage timings; JSON lines with
HARERUN_LOG_FORMAT=json, text otherwise; never image bytes or subject ids."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading

import cv2
import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from harerun.api import Settings, create_app
from harerun.api.logs import configure_logging

ANALYZE = "/api/v6/skin/analyze-hare-run"
SUBJECT = "patient-4711-secret"


@pytest.fixture(scope="module")
def photo(astronaut_bgr) -> bytes:
    return cv2.imencode(".jpg", astronaut_bgr)[1].tobytes()


def _client(fmt: str):
    """An app whose ``harerun`` log lines go to a buffer, as ``fmt``; the buffer and the client."""
    buf = io.StringIO()
    configure_logging(fmt, stream=buf)
    return buf, TestClient(create_app(Settings(warm_up=False, log_format=fmt)), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def json_logged(photo):
    """Requests through the app with JSON logs: (their answers by name, every log line parsed)."""
    buf, client = _client("json")
    grey = cv2.imencode(".jpg", np.full((240, 320, 3), 128, np.uint8))[1].tobytes()
    try:
        with client:
            answers = {
                "ab": client.post(
                    ANALYZE,
                    params={"pipeline": "skin-ab", "subject_id": SUBJECT, "include_overlay": "true"},
                    files={"image": ("me.jpg", photo, "image/jpeg")},
                    headers={"X-Request-Id": "req-42.a:b"},
                ),
                "header_subject": client.post(
                    ANALYZE,
                    content=photo,
                    headers={"Content-Type": "image/jpeg", "X-Subject-Id": SUBJECT, "X-Request-Id": "x" * 129},
                ),
                "no_face": client.post(ANALYZE, content=grey, headers={"Content-Type": "image/jpeg"}),
                "unknown_pipeline": client.post(
                    ANALYZE, params={"pipeline": "nope"}, content=photo, headers={"Content-Type": "image/jpeg"}
                ),
                "unmatched": client.get("/secret-path-xyz", headers={"X-Request-Id": "bad id\twith space"}),
            }
    finally:
        logging.getLogger("harerun").handlers.clear()
    lines = [json.loads(line) for line in buf.getvalue().splitlines()]  # every line is JSON
    return answers, lines, buf.getvalue()


def _access(lines: list[dict], request_id: str) -> dict:
    found = [x for x in lines if x["logger"] == "harerun.access" and x.get("request_id") == request_id]
    assert len(found) == 1, (request_id, lines)
    return found[0]


def test_analysis_access_line_has_route_status_variant_and_stage_timings(json_logged):
    answers, lines, _ = json_logged
    r = answers["ab"]
    assert r.status_code == 200 and r.headers["X-Request-Id"] == "req-42.a:b"
    line = _access(lines, "req-42.a:b")
    assert line["level"] == "info" and line["method"] == "POST" and line["route"] == ANALYZE
    assert line["status"] == 200 and "code" not in line
    assert line["pipeline"] == r.json()["pipeline"] and line["variant"] == r.json()["variant"]
    assert line["variant"].startswith("skin-ab:")
    stages = line["stages_ms"]
    assert {"decode", "face_detect", "landmarks", "total"} <= set(stages)
    assert {f"detector.{d}" for d in r.json()["results"]} <= set(stages)
    assert stages == {k: round(v, 1) for k, v in r.json()["timings_ms"].items()}
    assert line["duration_ms"] >= stages["total"] > 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", line["ts"])


def test_no_subject_id_file_name_or_image_bytes_in_the_log(json_logged, photo):
    answers, _, text = json_logged
    overlay = answers["ab"].json()["overlay_png"]
    assert SUBJECT not in text and "me.jpg" not in text and "secret-path-xyz" not in text
    assert base64.b64encode(photo[:60]).decode()[:40] not in text and overlay[:40] not in text
    assert max(len(line) for line in text.splitlines()) < 2000


def test_an_unusable_request_id_is_replaced_and_echoed(json_logged):
    answers, lines, _ = json_logged
    for name in ("header_subject", "unmatched"):
        rid = answers[name].headers["X-Request-Id"]
        assert re.fullmatch(r"[0-9a-f]{32}", rid)
        _access(lines, rid)
    assert len({answers[n].headers["X-Request-Id"] for n in answers}) == len(answers)  # one id per request


def test_client_errors_are_logged_with_their_code(json_logged):
    answers, lines, _ = json_logged
    expected = {"no_face": (422, "NO_FACE"), "unknown_pipeline": (404, "UNKNOWN_PIPELINE"), "unmatched": (404, None)}
    for name, (status, code) in expected.items():
        r = answers[name]
        assert r.status_code == status
        line = _access(lines, r.headers["X-Request-Id"])
        assert line["level"] == "info" and line["status"] == status
        assert line["code"] == (code or r.json()["error"]["code"]) == r.json()["error"]["code"]
    assert _access(lines, answers["unmatched"].headers["X-Request-Id"])["route"] == "unmatched"


def test_the_api_loggers_own_lines_are_there(json_logged):
    _, lines, _ = json_logged
    ready = [x for x in lines if x["logger"] == "harerun.api" and x["message"].startswith("ready: pipelines")]
    assert len(ready) == 1 and "request_id" not in ready[0]


def test_text_format_is_one_readable_line_per_request():
    buf, client = _client("text")
    try:
        with client:
            r = client.get("/health", headers={"X-Request-Id": "t-1"})
            client.post(ANALYZE, content=b"not a photo", headers={"Content-Type": "image/jpeg"})
    finally:
        logging.getLogger("harerun").handlers.clear()
    access = [line for line in buf.getvalue().splitlines() if "GET /health" in line or ANALYZE in line]
    assert r.headers["X-Request-Id"] == "t-1"
    assert re.fullmatch(r"INFO: +GET /health 200 [\d.]+ ms id=t-1", access[0]), access
    assert re.fullmatch(rf"INFO: +POST {ANALYZE} 415 [\d.]+ ms code=UNSUPPORTED_FORMAT id=[0-9a-f]{{32}}", access[1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_with_json_format_logs_every_line_as_json(tmp_path, photo):
    """`harerun serve` itself (uvicorn's lines too) under HARERUN_LOG_FORMAT=json."""
    log = tmp_path / "serve.log"
    port = _free_port()
    cmd = [sys.executable, "-c", "import sys; from harerun.cli import main; sys.exit(main())"]
    env = {**os.environ, "HARERUN_WARM_UP": "false", "HARERUN_LOG_FORMAT": "json"}
    with open(log, "wb") as out:
        proc = subprocess.Popen([*cmd, "serve", "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(600):
                assert proc.poll() is None, log.read_text()[-2000:]
                try:
                    if httpx.get(url + "/ready", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    threading.Event().wait(0.25)
            else:
                pytest.fail(f"harerun serve did not get ready: {log.read_text()[-2000:]}")
            r = httpx.post(
                url + ANALYZE,
                params={"subject_id": SUBJECT},
                content=photo,
                headers={"Content-Type": "image/jpeg", "X-Request-Id": "live-1"},
                timeout=60,
            )
            assert r.status_code == 200 and r.headers["X-Request-Id"] == "live-1"
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    text = log.read_text()
    lines = [json.loads(line) for line in text.splitlines()]  # uvicorn's lines are JSON as well
    assert {"uvicorn.error", "harerun.api", "harerun.access"} <= {x["logger"] for x in lines}
    line = _access(lines, "live-1")
    assert line["route"] == ANALYZE and line["status"] == 200 and "detector.acne" in line["stages_ms"]
    assert SUBJECT not in text
