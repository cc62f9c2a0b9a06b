"""The playground page in a real headless Chromium against a real `dropserve serve`.

Drives the system Chromium (Debian package `chromium`) through Playwright's Python package; no
browser is downloaded. Skipped without Chromium or Playwright, unless DROPSERVE_REQUIRE_TOOLS=1
(as `.ci/run` sets, after installing Chromium), where that fails. Screenshots are saved under
pytest's tmp dir and, when DROPSERVE_ARTIFACTS_DIR is set, copied there.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.e2e.conftest import Server

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path(os.environ.get("DROPSERVE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 20_000
DONE = '#results[data-state="done"][data-model="{}"]'


def missing_browser() -> str:
    """Why the browser test cannot run here, or "" when it can."""
    missing = []
    if not CHROMIUM.exists():
        missing.append(
            f"Chromium is not at {CHROMIUM}; install it with: "
            "apt-get install -y --no-install-recommends chromium"
        )
    if importlib.util.find_spec("playwright") is None:
        missing.append("playwright is not installed; install it with: make install")
    return "; ".join(missing)


REQUIRED = os.environ.get("DROPSERVE_REQUIRE_TOOLS") == "1"
# Skipped at collection, so that no server is started for nothing; under DROPSERVE_REQUIRE_TOOLS=1
# (CI) the `browser` fixture fails instead.
pytestmark = pytest.mark.skipif(bool(missing_browser()) and not REQUIRED, reason=missing_browser())


# Module-scoped: Playwright's sync API keeps an event loop running while it is open, which
# would break asyncio.run() in the test modules after this one.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if missing_browser():
        pytest.fail(
            f"{missing_browser()} (DROPSERVE_REQUIRE_TOOLS=1 turns the skip into a failure)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Playground:
    page: Page
    requested: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # script errors and CSP refusals


@pytest.fixture
def playground(browser: Browser, server: Server) -> Iterator[Playground]:
    """A fresh page on the playground (at the README screenshot's 1200x900), recording every
    URL it requests."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    opened = Playground(context.new_page())
    opened.page.set_default_timeout(TIMEOUT_MS)
    opened.page.on("request", lambda request: opened.requested.append(request.url))
    opened.page.on("pageerror", lambda error: opened.problems.append(str(error)))
    opened.page.on(
        "console",
        lambda message: (
            opened.problems.append(message.text)
            if "Content Security Policy" in message.text
            else None
        ),
    )
    opened.page.goto(f"{server.base_url}/")
    try:
        yield opened
    finally:
        context.close()


def screenshot(page: Page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    artifacts = os.environ.get("DROPSERVE_ARTIFACTS_DIR")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(artifacts) / name)
    return path


def assert_only_own_origin(playground: Playground, server: Server) -> None:
    """Every request went to the server itself, and nothing failed in the page's scripts."""
    assert playground.requested, "the page made no request at all"
    origin = f"{server.base_url}/"
    elsewhere = [url for url in playground.requested if not url.startswith(origin)]
    assert not elsewhere, f"the page asked another host: {elsewhere}"
    assert not playground.problems


def choose(page: Page, model: str) -> None:
    page.select_option("#model", model)
    page.wait_for_selector(DONE.format(model))


def typed_row(page: Page) -> dict[str, Any]:
    inputs = page.locator("#features input")
    return {
        inputs.nth(i).get_attribute("name"): float(inputs.nth(i).input_value())
        for i in range(inputs.count())
    }


def api(server: Server, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.base_url}{path}", json=body, timeout=30)


def test_concrete_shows_the_predict_value_and_an_interval(
    playground: Playground, server: Server, tmp_path: Path
) -> None:
    page = playground.page
    choose(page, "concrete")
    page.click("#run")
    page.wait_for_selector(DONE.format("concrete"))
    row = typed_row(page)
    assert len(row) == 8

    shown = float(page.locator(".det-value").first.get_attribute("value") or "nan")
    predicted = api(server, "/v1/models/concrete/versions/1/predict", {"instances": [row]})
    assert shown == predicted.json()["predictions"][0][0]

    interval = page.locator("svg line.interval[data-lower]")
    assert interval.count() == 1
    x1, x2 = (float(interval.get_attribute(a) or "nan") for a in ("x1", "x2"))
    assert x1 < x2, "the interval is drawn as a bar of positive length"
    samples = int(page.input_value("#samples"))
    seed = int(page.input_value("#seed"))
    mc = api(
        server,
        "/v1/models/concrete/versions/1/uncertainty",
        {"instances": [row], "samples": samples, "seed": seed},
    ).json()["predictions"][0]
    assert float(interval.get_attribute("data-lower") or "nan") == mc["lower"][0]
    assert float(interval.get_attribute("data-upper") or "nan") == mc["upper"][0]
    assert page.locator("svg rect.hist-bar").count() > 3, "a histogram of the T passes"
    assert "interval" in (page.text_content("#summary") or "")
    screenshot(page, tmp_path, "playground-concrete.png")
    assert_only_own_origin(playground, server)


def test_digits_shows_ten_probability_bars(
    playground: Playground, server: Server, tmp_path: Path
) -> None:
    page = playground.page
    choose(page, "digits")
    bars = page.locator("svg rect.prob-bar")
    assert bars.count() == 10
    labels = [bars.nth(i).get_attribute("data-label") for i in range(10)]
    assert labels == [str(d) for d in range(10)]
    total = sum(float(bars.nth(i).get_attribute("data-value") or "nan") for i in range(10))
    assert total == pytest.approx(1.0, abs=1e-5)
    assert page.locator(".mutual-information").count() == 1
    screenshot(page, tmp_path, "playground-digits.png")
    assert_only_own_origin(playground, server)


def test_bad_value_shows_the_api_message_at_the_field(
    playground: Playground, server: Server, tmp_path: Path
) -> None:
    page = playground.page
    choose(page, "concrete")
    row: dict[str, Any] = typed_row(page)
    page.fill('#features input[name="cement"]', "abc")
    page.click("#run")
    page.wait_for_selector('#results[data-state="error"]', state="attached")

    row["cement"] = "abc"
    refused = api(server, "/v1/models/concrete/versions/1/predict", {"instances": [row]})
    assert refused.status_code == 422
    message = refused.json()["error"]
    assert "cement" in message
    cement = page.locator('#features input[name="cement"]')
    assert cement.get_attribute("aria-invalid") == "true"
    shown_at = page.locator(f"#{cement.get_attribute('aria-describedby')}")
    assert shown_at.text_content() == message
    assert cement.evaluate("node => node === document.activeElement"), "focus moves to the field"
    assert page.text_content("#form-error") == ""
    screenshot(page, tmp_path, "playground-error.png")
    assert_only_own_origin(playground, server)


def test_digits_inputs_are_drawn_as_an_image(
    playground: Playground, server: Server, tmp_path: Path
) -> None:
    page = playground.page
    choose(page, "digits")
    pixels = page.locator("#picture rect.pixel")
    assert pixels.count() == 64
    row = typed_row(page)
    values = list(row.values())
    shown = [float(pixels.nth(i).get_attribute("data-value") or "nan") for i in range(64)]
    assert shown == values
    darkest = max(range(64), key=lambda i: values[i])
    assert pixels.nth(darkest).get_attribute("fill") == "rgb(0,0,0)"
    page.fill('#features input[name="pixel_0_0"]', "16")
    assert pixels.nth(0).get_attribute("data-value") == "16"
    pixels.nth(0).click()  # on at the brightest value: a click turns it off
    assert page.input_value('#features input[name="pixel_0_0"]') == "0"
    meaning = page.text_content(".mi-meaning") or ""
    assert "passes disagree" in meaning
    assert "at most ln 10 = 2.3" in (page.text_content("#results") or "")
    screenshot(page, tmp_path, "playground-digits-image.png")
    assert_only_own_origin(playground, server)


def test_concrete_has_no_image(playground: Playground) -> None:
    choose(playground.page, "concrete")
    assert playground.page.locator("#picture").is_hidden()


@pytest.mark.parametrize(("page_path", "rendered"), [("/docs", ".opblock"), ("/redoc", "h1")])
def test_api_docs_render_with_the_network_blocked(
    browser: Browser, server: Server, page_path: str, rendered: str
) -> None:
    context = browser.new_context()
    origin = f"{server.base_url}/"
    blocked: list[str] = []

    def only_own_origin(route: Any) -> None:
        if route.request.url.startswith(origin):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", only_own_origin)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(f"{server.base_url}{page_path}")
        page.wait_for_selector(rendered)
        if page_path == "/docs":
            operations = page.locator(".opblock")
            assert operations.count() >= 8
            assert "/v1/models/{name}/predict" in (page.text_content("#swagger-ui") or "")
    finally:
        context.close()
    assert not blocked
    assert not errors
