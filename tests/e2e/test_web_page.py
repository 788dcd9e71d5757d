"""The web page in real headless Chromium (Playwright) against a real uvicorn server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.utils.paths import REPO_ROOT
from tests.utils.serve_app import PASSWORD, ServeProcess, jpeg_bytes, serve_settings, settings_env
from tests.utils.serve_fixtures import serve_bundle_dir

__all__ = ["serve_bundle_dir"]

pytestmark = [pytest.mark.slow, pytest.mark.integration]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def server(
    serve_bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServeProcess]:
    tmp = tmp_path_factory.mktemp("web")
    settings = serve_settings(tmp, model_path=str(serve_bundle_dir))
    env = settings_env(settings)
    cli = [sys.executable, "-m", "rakuten_serve"]
    full_env = {**{k: v for k, v in os.environ.items() if not k.startswith("RAKUTEN_")}, **env}
    subprocess.run(
        [*cli, "db", "upgrade"],
        env=full_env,
        cwd=REPO_ROOT,
        check=True,
        timeout=120,
        capture_output=True,
    )
    subprocess.run(
        [*cli, "users", "create", "alice", "--password-stdin"],
        input=PASSWORD + "\n",
        text=True,
        env=full_env,
        cwd=REPO_ROOT,
        check=True,
        timeout=120,
        capture_output=True,
    )
    process = ServeProcess(env, log_path=tmp / "server.out")
    try:
        process.wait_ready()
        yield process
    finally:
        process.close()


@pytest.fixture
def page(server: ServeProcess):  # type: ignore[no-untyped-def]
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("chromium not installed (scripts/system-deps.sh installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            context = browser.new_context()
            page = context.new_page()
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()


def _login(page, password: str) -> None:  # type: ignore[no-untyped-def]
    page.fill("#username", "alice")
    page.fill("#password", password)
    page.click("#login-button")


def test_login_predict_and_token_stays_in_memory(
    page, server: ServeProcess, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    requests: list[tuple[str, str, dict[str, str]]] = []
    page.on("request", lambda r: requests.append((r.method, r.url, r.headers)))
    page.goto(server.base_url + "/")
    assert page.is_visible("#login-form")
    assert not page.is_visible("#predict-form")

    _login(page, "not the password")
    page.wait_for_selector("#login-status.error")
    assert "incorrect" in page.inner_text("#login-status")
    assert not page.is_visible("#predict-form")

    with page.expect_response("**/token") as token_response:
        _login(page, PASSWORD)
    token = token_response.value.json()["access_token"]
    page.wait_for_selector("#predict-form", state="visible")
    assert page.inner_text("#whoami") == "alice"
    assert page.input_value("#password") == ""

    image = tmp_path / "piscine.jpg"
    image.write_bytes(jpeg_bytes((300, 300), (20, 140, 220)))
    page.fill("#designation", "Piscine tubulaire ronde 3,66 m")
    page.fill("#description", "Piscine hors sol avec pompe de filtration")
    page.set_input_files("#image", str(image))
    page.click("#predict-button")
    page.wait_for_selector("#result", state="visible")

    rows = page.locator("#top-table tbody tr")
    assert rows.count() == 5
    first = rows.nth(0).locator("td")
    assert first.nth(0).inner_text() == "2583"
    assert first.nth(1).inner_text() == "Equipement pour piscine"
    probabilities = [
        float(rows.nth(i).locator("td").nth(2).inner_text().replace("%", "").strip())
        for i in range(5)
    ]
    assert probabilities == sorted(probabilities, reverse=True)
    assert 0 < probabilities[0] <= 100
    assert len(page.inner_text("#request-id")) == 32

    # the token went in the Authorization header, never in a URL or in storage
    predict_calls = [r for r in requests if r[1].endswith("/predict")]
    assert predict_calls and predict_calls[-1][2]["authorization"] == f"Bearer {token}"
    assert all(token not in url for _, url, _ in requests)
    assert token not in page.url
    stored = page.evaluate(
        "() => JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie"
    )
    assert token not in stored


def test_page_shows_input_errors(page, server: ServeProcess, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page.goto(server.base_url + "/")
    _login(page, PASSWORD)
    page.wait_for_selector("#predict-form", state="visible")
    fake = tmp_path / "photo.jpg"
    fake.write_bytes(b"%PDF-1.4 this is not a picture")
    page.fill("#designation", "Coussin")
    page.set_input_files("#image", str(fake))
    page.click("#predict-button")
    page.wait_for_selector("#predict-status.error")
    assert "not a readable image" in page.inner_text("#predict-status")
    assert not page.is_visible("#result")
    # the page is served with a strict Content-Security-Policy
    response = page.request.get(server.base_url + "/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
