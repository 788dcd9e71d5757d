"""Script and HTML payloads typed into the web page stay text, in real headless Chromium."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rakuten_serve.app import create_app
from rakuten_serve.predictor import Predictor
from tests.utils.live_server import live_server
from tests.utils.serve_app import DEFAULT_USERS, PASSWORD, migrate_and_add_users, serve_settings

pytestmark = [pytest.mark.slow, pytest.mark.integration]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
PAYLOAD = (
    'Lampe <img src=x id=pwned-img onerror="window.__pwned=1">'
    '<script>window.__pwned=2</script><svg onload="window.__pwned=3"></svg>'
)


@pytest.fixture
def page_at(
    tmp_path: Path, serve_bundle_dir: Path, shared_predictor: Predictor
) -> Iterator[tuple[Any, str]]:
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium not installed (scripts/system-deps.sh installs it)")
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    settings = serve_settings(tmp_path, model_path=str(serve_bundle_dir))
    migrate_and_add_users(settings, DEFAULT_USERS)
    with (
        live_server(create_app(settings, shared_predictor)) as base_url,
        sync_playwright() as pw,
    ):
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=60_000)
        try:
            page = browser.new_page()
            page.set_default_timeout(30_000)
            yield page, base_url
        finally:
            browser.close()


def test_payloads_render_inert(page_at: tuple[Any, str]) -> None:
    page, base_url = page_at
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(base_url + "/")

    page.fill("#username", PAYLOAD)
    page.fill("#password", "whatever-password")
    page.click("#login-button")
    page.wait_for_selector("#login-status.error")

    page.fill("#username", "alice")
    page.fill("#password", PASSWORD)
    page.click("#login-button")
    page.wait_for_selector("#predict-form", state="visible")
    page.fill("#designation", PAYLOAD)
    page.fill("#description", PAYLOAD)
    page.click("#predict-button")
    page.wait_for_selector("#result", state="visible")

    assert page.inner_text("#top-table tbody tr td") != ""  # a real answer was rendered
    assert page.evaluate("() => window.__pwned") is None
    assert page.locator("#pwned-img").count() == 0
    assert dialogs == []
