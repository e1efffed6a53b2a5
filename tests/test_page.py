"""The page at / in headless Chromium: choose a photo, see the overlay and the scores.

Needs Debian's ``chromium`` (``apt-get install -y chromium``) and the ``playwright`` Python
package; skipped with a message when either is missing (``playwright install`` is never used).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import cv2
import hostile
import httpx
import numpy as np
import pytest

from harerun.testing import chromium

BUILD = Path(__file__).resolve().parents[1] / "build"  # screenshots for people to look at


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


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

    shown = page.eval_on_selector("#photo", "i => [i.getAttribute('width'), i.getAttribute('height'), i.href.baseVal]")
    assert shown[:2] == ["512", "512"] and shown[2].startswith("blob:")  # the photo itself, in its own pixels
    x, y, w, h = map(int, page.get_attribute("#marks", "viewBox").split())
    fx, fy, fw, fh = httpx.post(server + "/api/v4/face/detect", files={"image": photo.read_bytes()}).json()["face"][
        "box"
    ]
    assert x <= fx and y <= fy and x + w >= fx + fw and y + h >= fy + fh and w < 300  # zoomed to the face
    page.check('input[name="view"][value="photo"]')
    assert page.get_attribute("#marks", "viewBox") == "0 0 512 512"
    rows = page.eval_on_selector_all("#scores tbody tr", "trs => trs.map(tr => tr.dataset.detector)")
    assert rows == [d["id"] for d in default["detectors"]]
    headers = page.eval_on_selector_all("#scores thead th", "ths => ths.map(th => th.textContent)")
    assert headers[:3] == ["detector", "score", "severity"] and "forehead" in headers
    assert "Photo quality" in page.text_content("#warnings")
    assert "Pipeline default" in page.text_content("#caption")
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)


def _analyse(pg, photo) -> None:
    pg.wait_for_selector("#pipeline option", state="attached")
    pg.set_input_files("#file", str(photo))
    pg.click("#analyze")
    pg.wait_for_selector("#result:not([hidden])", timeout=120_000)


@pytest.fixture(scope="module")
def photo(tmp_path_factory, astronaut_bgr):
    path = tmp_path_factory.mktemp("photo") / "astronaut.jpg"
    cv2.imwrite(str(path), astronaut_bgr)
    return path


@pytest.mark.parametrize("width", [1280, 390])
def test_no_horizontal_overflow_after_a_result(browser, server, photo, width):
    """The page fits a desktop and a 390-px phone: the photo fits, the wide table scrolls in its box."""
    pg = browser.new_page(viewport={"width": width, "height": 900})
    pg.goto(server + "/")
    _analyse(pg, photo)
    fit = pg.evaluate(
        """() => {
            const r = (id) => document.getElementById(id).getBoundingClientRect();
            const wrap = document.querySelector('.table-wrap');
            return {
                overflow: document.documentElement.scrollWidth - window.innerWidth,
                bodyOverflow: document.body.scrollWidth - document.body.clientWidth,
                photoRight: r('marks').right, photoWidth: r('marks').width,
                wrapRight: wrap.getBoundingClientRect().right, tableWidth: wrap.scrollWidth, wrapWidth: wrap.clientWidth,
                viewport: window.innerWidth,
            };
        }"""
    )
    BUILD.mkdir(exist_ok=True)
    pg.screenshot(path=str(BUILD / f"page-{width}.png"), full_page=True)
    pg.close()
    assert fit["overflow"] == 0 and fit["bodyOverflow"] == 0, fit
    assert fit["photoRight"] <= fit["viewport"], fit
    assert fit["photoWidth"] > 0.5 * min(width, 512), fit  # the photo is shown, not squeezed away
    assert fit["wrapRight"] <= fit["viewport"], fit
    if width == 390:
        assert fit["tableWidth"] > fit["wrapWidth"], fit  # the table is wider than the phone: it scrolls inside


def test_findings_toggles_heat_map_and_json_download(page, server, photo, tmp_path):
    _analyse(page, photo)
    body = httpx.post(server + "/api/v6/skin/analyze-hare-run", files={"image": photo.read_bytes()}, timeout=120).json()
    with_markers = [k for k, r in body["results"].items() if r["evidence"]["markers"]]
    toggles = page.eval_on_selector_all("#toggles input", "els => els.map(e => e.value)")
    assert toggles == with_markers and toggles  # one toggle per detector that marked something
    first = toggles[0]
    group = f'#marks g.det[data-detector="{first}"]'
    rings = page.eval_on_selector_all(group + " circle.ring", "cs => cs.length")
    assert rings == len(body["results"][first]["evidence"]["markers"])
    assert page.is_visible(group + " circle.ring")
    page.uncheck(f'#toggles input[value="{first}"]')
    assert not page.is_visible(group + " circle.ring")
    page.check(f'#toggles input[value="{first}"]')
    assert page.is_visible(group + " circle.ring")
    assert not page.eval_on_selector("#legend", "el => el.contains(document.getElementById('marks'))")

    # the heat map: the chosen detector's zone scores as fills of the visible zones
    heat = page.input_value("#heat")
    with_zones = {k: r for k, r in body["results"].items() if r["status"] == "ok" and r["zones"]}
    assert heat == max(with_zones, key=lambda k: with_zones[k]["score"])
    fills = page.eval_on_selector_all(
        "#heat-layer polygon", "ps => Object.fromEntries(ps.map(p => [p.dataset.zone, p.getAttribute('fill')]))"
    )
    visible = {z for z, info in body["face"]["zones"].items() if info["visible"]}
    assert set(fills) == visible
    scored = {z: v for z, v in with_zones[heat]["zones"].items() if z in visible}
    assert {z for z, f in fills.items() if f != "none"} == set(scored)
    low, high = min(scored, key=scored.get), max(scored, key=scored.get)
    assert scored[low] < scored[high] and fills[low] != fills[high]
    other = next(k for k in with_zones if k != heat)
    page.click(f'#scores tbody tr[data-detector="{other}"]')
    assert page.input_value("#heat") == other
    assert page.eval_on_selector("#scores tr.heat-on", "tr => tr.dataset.detector") == other

    with page.expect_download() as info:
        page.click("#download")
    assert info.value.suggested_filename == "astronaut-harerun.json"
    saved = json.loads(Path(info.value.path()).read_text())
    assert saved["pipeline"] == body["pipeline"] and saved["results"].keys() == body["results"].keys()
    assert saved["face"]["box"] == body["face"]["box"] and "overlay_png" not in saved


def test_a_photo_the_browser_cannot_show_is_drawn_by_the_server(page, astronaut_bgr, tmp_path):
    """Chromium shows no TIFF: the page asks for the server's overlay and shows that instead."""
    tiff = tmp_path / "astronaut.tif"
    cv2.imwrite(str(tiff), astronaut_bgr)
    _analyse(page, tiff)
    href = page.eval_on_selector("#photo", "i => i.href.baseVal")
    assert href.startswith("data:image/png;base64,")
    overlay = cv2.imdecode(np.frombuffer(base64.b64decode(href.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    assert overlay.shape == astronaut_bgr.shape
    assert page.is_hidden("#legend") and "drawn by the server" in page.text_content("#caption")
    assert page.eval_on_selector_all("#marks circle, #marks polygon", "els => els.length") == 0  # not drawn twice


def test_favicon(page, server):
    r = httpx.get(server + "/favicon.ico")
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in r.content and len(r.content) < 4096
    assert page.get_attribute("link[rel=icon]", "href") == "/favicon.ico"


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
    advice = page.text_content("#advice")
    assert page.is_visible("#advice") and "face is fully visible, well lit and facing the camera" in advice
    assert "yaml" not in (advice + page.text_content("#status")).lower()
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
