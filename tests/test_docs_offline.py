"""/docs (Swagger UI) and /redoc (ReDoc) render in headless Chromium with every request that
does not go to the server refused: their files come from the fastapi-offline package.

The server is reached under a made-up host name (``docs.test``, resolved to 127.0.0.1 by
Chromium), so the pages behave as on a real deployment rather than on localhost (Swagger UI
skips its online validator only for localhost addresses). Needs Debian's ``chromium`` and the
``playwright`` package, as tests/test_page.py.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import hostile
import pytest

from harerun.testing import chromium

HOST = "docs.test"
OPERATIONS = ("analyzeSkin", "detectFace", "getModelStatus", "listPipelines", "getHealth", "getReadiness", "getMetrics")


@pytest.fixture(scope="module")
def browser():
    with chromium(f"--host-resolver-rules=MAP {HOST} 127.0.0.1, EXCLUDE localhost") as b:
        yield b


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> str:
    srv = hostile.LiveServer({"HARERUN_WARM_UP": "false"}, log_path=tmp_path_factory.mktemp("docs") / "serve.log")
    srv.start()
    yield f"http://{HOST}:{srv.port}"
    srv.stop()


@pytest.fixture
def offline_page(browser, base):
    """A page whose requests to anywhere but the server are refused (and recorded)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")
    refused: list[str] = []
    served: list[str] = []
    ours = urlsplit(base).netloc

    def only_the_server(route):
        url = route.request.url
        if urlsplit(url).netloc == ours:
            served.append(url)
            route.continue_()
        else:
            refused.append(url)
            route.abort("internetdisconnected")

    context.route("**/*", only_the_server)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page, refused, served
    context.close()
    assert not errors, errors


def test_swagger_ui_renders_every_operation_offline(offline_page, base, tmp_path):
    page, refused, served = offline_page
    page.goto(base + "/docs")
    page.wait_for_selector(".opblock", timeout=60_000)
    ids = page.eval_on_selector_all(".opblock", "els => els.map(e => e.id)")
    assert {i.rsplit("-", 1)[-1] for i in ids} == set(OPERATIONS), ids
    assert "Hare Run" in page.text_content(".info .title")
    page.click("#operations-analysis-analyzeSkin .opblock-summary")  # open one: its body types are listed
    page.wait_for_selector("#operations-analysis-analyzeSkin select[aria-label='Request content type']", timeout=30_000)
    types = page.eval_on_selector_all(
        "#operations-analysis-analyzeSkin select[aria-label='Request content type'] option",
        "os => os.map(o => o.value)",
    )
    assert set(types) == {"multipart/form-data", "application/json", "image/*"}
    page.screenshot(path=str(tmp_path / "docs.png"), full_page=False)
    assert any("/static-offline-docs/swagger-ui-bundle.js" in u for u in served)
    assert not refused, f"the page asked the network for: {refused}"


def test_redoc_renders_every_operation_offline(offline_page, base, tmp_path):
    page, refused, served = offline_page
    page.goto(base + "/redoc")
    page.wait_for_selector("[data-section-id='operation/analyzeSkin']", state="attached", timeout=60_000)
    sections = page.eval_on_selector_all(
        "[data-section-id^='operation/']", "els => els.map(e => e.getAttribute('data-section-id'))"
    )
    assert {s.split("/", 1)[1] for s in sections} == set(OPERATIONS), sections
    assert "ErrorCode" in page.content() or "NO_FACE" in page.content()
    page.screenshot(path=str(tmp_path / "redoc.png"), full_page=False)
    assert any("/static-offline-docs/redoc.standalone.js" in u for u in served)
    assert not refused, f"the page asked the network for: {refused}"
