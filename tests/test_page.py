"""The page at / in headless Chromium: choose a photo, see the overlay and the scores.

Needs Debian's ``chromium`` (``apt-get install -y chromium``) and the ``playwright`` Python
package; skipped with a message when either is missing (``playwright install`` is never used).
"""

from __future__ import annotations

import base64
import importlib.util
import shutil
import sys
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

_spec = importlib.util.spec_from_file_location("harerun_test_hostile", Path(__file__).with_name("hostile.py"))
hostile = sys.modules.get(_spec.name) or importlib.util.module_from_spec(_spec)
if _spec.name not in sys.modules:
    sys.modules[_spec.name] = hostile
    _spec.loader.exec_module(hostile)


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (no browser download needed)")
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium not found: apt-get install -y chromium")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = hostile.LiveServer(log_path=tmp_path_factory.mktemp("page") / "serve.log")
    srv.start()
    yield srv.url
    srv.stop()


@pytest.fixture
def page(browser, server):
    pg = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(server + "/")
    yield pg
    pg.close()
    assert not errors, errors


def test_upload_shows_overlay_and_scores(page, server, astronaut_bgr, tmp_path):
    photo = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(photo), astronaut_bgr)
    pipelines = httpx.get(server + "/api/pipelines").json()
    default = next(p for p in pipelines["pipelines"] if p["name"] == pipelines["default"])

    page.wait_for_selector("#pipeline option", state="attached")
    assert page.input_value("#pipeline") == "default"
    options = page.eval_on_selector_all("#pipeline option", "els => els.map(e => e.value)")
    assert "skin-ab" in options and "default" in options
    page.set_input_files("#file", str(photo))
    page.click("#analyze")
    page.wait_for_selector("#result:not([hidden])", timeout=120_000)
    page.wait_for_function("document.getElementById('overlay').naturalWidth > 0")

    assert page.eval_on_selector("#overlay", "img => [img.naturalWidth, img.naturalHeight]") == [512, 512]
    rows = page.eval_on_selector_all("#scores tbody tr", "trs => trs.map(tr => tr.dataset.detector)")
    assert rows == [d["id"] for d in default["detectors"]]
    headers = page.eval_on_selector_all("#scores thead th", "ths => ths.map(th => th.textContent)")
    assert headers[:3] == ["detector", "score", "severity"] and "forehead" in headers
    assert "Photo quality" in page.text_content("#warnings")
    assert "Pipeline default" in page.text_content("#caption")
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)


def test_dropping_a_photo_without_a_face_shows_the_reason(page):
    grey = base64.b64encode(cv2.imencode(".jpg", np.full((240, 320, 3), 128, np.uint8))[1].tobytes()).decode()
    page.wait_for_selector("#pipeline option", state="attached")
    transfer = page.evaluate_handle(
        """(b64) => {
            const bin = atob(b64); const bytes = new Uint8Array(bin.length);
            for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], "grey.jpg", {type: "image/jpeg"}));
            return dt;
        }""",
        grey,
    )
    page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})
    assert "grey.jpg" in page.text_content("#drop-text")
    page.click("#analyze")
    page.wait_for_selector("#status.error", timeout=60_000)
    assert "NO_FACE" in page.text_content("#status")
    assert page.is_hidden("#result")


def test_a_server_with_api_keys_asks_the_page_for_one(browser, astronaut_bgr, tmp_path):
    from harerun.api.auth import key_hash

    key = "hr_page_test_key_0123456789"
    srv = hostile.LiveServer(
        {"HARERUN_API_KEYS": f"page:{key_hash(key).hex()}", "HARERUN_WARM_UP": "false"}, log_path=tmp_path / "serve.log"
    )
    with srv as url:
        pg = browser.new_page(viewport={"width": 1200, "height": 900})
        pg.goto(url + "/")
        pg.wait_for_function("document.getElementById('status').textContent.includes('API key')")
        pg.fill("#apikey", key)
        pg.press("#apikey", "Tab")  # leaving the field commits it (its change event)
        pg.wait_for_selector("#pipeline option", state="attached")
        photo = tmp_path / "astronaut.jpg"
        cv2.imwrite(str(photo), astronaut_bgr)
        pg.set_input_files("#file", str(photo))
        pg.click("#analyze")
        pg.wait_for_function(
            "['Done.', 'failed', ':'].some(t => document.getElementById('status').textContent.includes(t))",
            timeout=120_000,
        )
        assert pg.text_content("#status") == "Done.", pg.text_content("#status")
        assert pg.is_visible("#result")
        pg.close()
