"""The web application's fixtures: a small demo world, a live server, a real browser.

The world is built once per test run by ``immos demo`` (400 synthetic persons; ``demo_build``
in tests/shared_demo.py, shared with the oversight tests) and copied for these tests, so they
see what a new user sees. Browser tests drive Debian's chromium (``/usr/bin/chromium``,
installed by ``tasks.py``) through Playwright; without it they skip with the reason, and
under ``CI=true`` they fail instead. Screenshots go to ``var/test-artifacts/screenshots``;
with ``IMMOS_DOCS_SCREENSHOTS=1`` also to ``docs/images/ui`` for the user guide.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient
from tests.shared_demo import DemoBuild

from immigrationos.accounts.service import DEMO_ACCOUNTS
from immigrationos.api.app import create_app
from immigrationos.core.settings import Settings
from immigrationos.runtime import Runtime, open_runtime

ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() == "true"
CHROMIUM = os.environ.get("IMMOS_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "var" / "test-artifacts" / "screenshots"
DOC_SHOTS = ROOT / "docs" / "images" / "ui"
PASSWORDS = {a.username: a.password for a in DEMO_ACCOUNTS}


@pytest.fixture(scope="session")
def demo_world(demo_build: DemoBuild, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory holding the demo's world, loaded and verified: the run's one build
    (``demo_build``, tests/shared_demo.py), copied because these tests change it."""
    assert "audit chain intact" in demo_build.output, demo_build.output
    return demo_build.copy(tmp_path_factory.mktemp("web-demo") / "data")


@pytest.fixture(scope="session")
def web_runtime(demo_world: Path) -> Iterator[Runtime]:
    """The runtime over the demo world (the background deadline tick is off)."""
    settings = Settings(
        mode="demo",
        data_dir=demo_world,
        lifecycle_tick_seconds=0,
        sign_in_attempts_per_minute=100_000,
    )
    runtime = open_runtime(settings)
    yield runtime
    runtime.engine.dispose()


@pytest.fixture(scope="session")
def web_app(web_runtime: Runtime) -> Any:
    """One application for the session (its sign-in throttle is per application)."""
    return create_app(web_runtime)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def live_server(web_runtime: Runtime) -> Iterator[str]:
    """The application served by uvicorn on a free local port; yields its base URL."""
    port = _free_port()
    config = uvicorn.Config(
        create_app(web_runtime), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


class Browser:
    """A signed-in browser tab per role; ``shot`` saves a screenshot as a test artifact."""

    def __init__(self, playwright_browser: Any, base_url: str) -> None:
        self.browser, self.base_url = playwright_browser, base_url

    def sign_in(
        self, username: str, purpose: str | None = None, *, case: str = "", reason: str = ""
    ) -> Any:
        """A new tab signed in as ``username``, working under ``purpose`` if given."""
        context = self.browser.new_context(
            base_url=self.base_url, viewport={"width": 1280, "height": 900}
        )
        tab = context.new_page()
        tab.goto("/login")
        tab.get_by_label("Username").fill(username)
        tab.get_by_label("Password").fill(PASSWORDS[username])
        tab.get_by_role("button", name="Sign in").click()
        if purpose:
            if "/purpose" not in tab.url:
                tab.goto("/purpose")
            tab.locator(f'input[name="purpose"][value="{purpose}"]').check()
            tab.get_by_label("Case or investigation (optional)").fill(case)
            tab.get_by_label("Reason (optional)").fill(reason or f"browser test as {username}")
            tab.get_by_role("button", name="Work under this purpose").click()
        return tab

    @staticmethod
    def shot(tab: Any, name: str) -> Path:
        """Save a full-page screenshot (and, when asked, the user guide's copy)."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        tab.screenshot(path=str(path), full_page=True)
        if os.environ.get("IMMOS_DOCS_SCREENSHOTS") == "1":
            DOC_SHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, DOC_SHOTS / f"{name}.png")
        return path


def _chromium_problem() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"no chromium at {CHROMIUM} (python3 tasks.py test installs Debian's chromium)"
    try:
        import playwright  # noqa: F401
    except ImportError as exc:
        return f"playwright is not installed: {exc}"
    return None


@pytest.fixture(scope="session")
def browser(live_server: str) -> Iterator[Browser]:
    """Chromium driven by Playwright against the live server."""
    problem = _chromium_problem()
    if problem:
        if IN_CI:
            pytest.fail(f"CI=true requires the browser: {problem}")
        pytest.skip(problem)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-background-networking"],
        )
        yield Browser(launched, live_server)
        launched.close()


@dataclass
class Client:
    """A TestClient signed in through the sign-in page, with its CSRF token at hand."""

    http: TestClient
    csrf: str

    def post(self, url: str, data: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """A form POST carrying the CSRF token, as the pages' forms do."""
        return self.http.post(url, data={**(data or {}), "csrf_token": self.csrf}, **kwargs)


def sign_in(app: Any, username: str, purpose: str | None = None, **extra: str) -> Client:
    """Sign ``username`` in through ``/login`` and choose ``purpose`` through ``/purpose``."""
    http = TestClient(app, raise_server_exceptions=False)
    done = http.post("/login", data={"username": username, "password": PASSWORDS[username]})
    assert done.status_code == 200, done.text
    found = re.search(r'name="csrf-token" content="([^"]+)"', done.text)
    assert found, "no CSRF token on the page after signing in"
    client = Client(http, found.group(1))
    if purpose:
        chosen = client.post("/purpose", {"purpose": purpose, "justification": "test", **extra})
        assert chosen.status_code == 200, chosen.text
    return client


@pytest.fixture
def signed(web_app: Any) -> Any:
    """``signed(username, purpose)``: a TestClient signed in through the pages."""
    return lambda username, purpose=None, **extra: sign_in(web_app, username, purpose, **extra)
