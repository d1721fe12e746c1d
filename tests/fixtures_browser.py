"""Browser tests: stocklink served on loopback and driven by a real headless Chromium.

Loaded with ``pytest_plugins = ["tests.fixtures_browser"]`` (it loads
:mod:`tests.fixtures_platforms` for ``stocklink_server``). The browser is Debian's ``chromium``
driven by Playwright through ``executable_path`` — Playwright's own browsers are never
downloaded. ``CHROMIUM`` names the executable (default ``/usr/bin/chromium``); when it is
missing the tests fail and say how to install it, they never skip.

One browser per test module (see :func:`chromium`), a fresh context (cookies, storage,
history) for every test.
Screenshots go outside the repository, to ``STOCKLINK_ARTEFACTS`` (default
``/tmp/stocklink-artefacts``): ``<test name>.png`` where a test calls ``screenshot()`` at its
key step, and ``<test name>.failed.png`` of the page as it was when a test failed.
"""
from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import sync_playwright

from stocklink.infra.extensions import db
from stocklink.models import User

pytest_plugins = ["tests.fixtures_platforms"]

DEFAULT_CHROMIUM = "/usr/bin/chromium"
DEFAULT_ARTEFACTS = "/tmp/stocklink-artefacts"
INSTALL_HINT = "apt install chromium fonts-noto-cjk"
OPERATOR, PASSWORD = "operator", "correct horse battery"
TIMEOUT_MS = 10_000  # how long a locator waits before the step fails (not a timed assertion)
# Playwright hides the text caret for a screenshot by styling each input, and leaves them an
# empty ``style=""``: htmx's history snapshot would carry it, and restoring the snapshot would
# break the CSP (style-src 'self'). "initial" leaves the page untouched.
SCREENSHOT = {"full_page": True, "caret": "initial"}

_REPORTS = pytest.StashKey[dict]()


def chromium_path() -> str:
    """The Chromium executable the tests drive (``CHROMIUM``: a path or a name on ``PATH``;
    default Debian's)."""
    return os.environ.get("CHROMIUM") or DEFAULT_CHROMIUM


def artefacts_dir() -> Path:
    """Where screenshots go (``STOCKLINK_ARTEFACTS``), created on first use."""
    folder = Path(os.environ.get("STOCKLINK_ARTEFACTS") or DEFAULT_ARTEFACTS)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def artefact_name(test_name: str) -> str:
    """A test's name as a file name (parametrised ids keep their letters and digits)."""
    return re.sub(r"[^\w.-]+", "_", test_name).strip("_")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item, so the ``page`` fixture knows whether the test failed."""
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


@pytest.fixture(scope="module")
def chromium():
    """One headless Chromium per test module; fails (never skips) when it is not installed.

    Not one per session: while Playwright's sync API is started, the main thread reports a
    running asyncio loop (``asyncio.run`` refuses to start), so it must stop before the next
    module, whose tests know nothing of browsers. A launch costs a fraction of a second."""
    path = chromium_path()
    executable = shutil.which(path)  # a path, or a name looked up on PATH
    if executable is None:
        pytest.fail(f"Chromium not found at {path}: the browser tests need Debian's chromium "
                    f"(`{INSTALL_HINT}`), or CHROMIUM set to a Chromium executable.", pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True)
        yield browser
        browser.close()


@dataclass
class Console:
    """What the page reported as broken: console errors (CSP violations, failed loads) and
    uncaught JavaScript exceptions, each with the URL it came from.

    The browser's own request for ``/favicon.ico`` is left out: the console serves no icon, and
    its 404 says nothing about a page."""

    errors: list[str] = field(default_factory=list)

    def on_console(self, msg) -> None:
        url = msg.location.get("url") or ""
        if msg.type == "error" and urlsplit(url).path != "/favicon.ico":
            self.errors.append(f"{msg.text} [{url}]")

    def on_page_error(self, exc) -> None:
        self.errors.append(f"uncaught: {exc}")


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def page(request, chromium, stocklink_server, console):
    """A page in a fresh context on the served app (relative URLs go to it), recording console
    errors in ``console``; a screenshot is saved if the test fails."""
    failed_shot = artefacts_dir() / f"{artefact_name(request.node.name)}.failed.png"
    failed_shot.unlink(missing_ok=True)  # from an earlier run: it would describe another failure
    context = chromium.new_context(base_url=stocklink_server.url, locale="ja-JP",
                                   viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.on("console", console.on_console)
    page.on("pageerror", console.on_page_error)
    yield page
    report = request.node.stash.get(_REPORTS, {}).get("call")
    try:
        if report is not None and report.failed and not page.is_closed():
            page.screenshot(path=failed_shot, **SCREENSHOT)
    finally:
        context.close()


@pytest.fixture
def screenshot(request, page):
    """``screenshot()`` saves the page as ``<test name>.png`` in the artefacts folder (the test's
    key step); ``screenshot("step")`` as ``<test name>.step.png``. Returns the path."""

    def take(step: str | None = None) -> Path:
        name = artefact_name(request.node.name) + (f".{artefact_name(step)}" if step else "")
        path = artefacts_dir() / f"{name}.png"
        page.screenshot(path=path, **SCREENSHOT)
        return path

    return take


@pytest.fixture
def login(app, page):
    """``login()`` creates an operator (as ``tests/conftest.py``'s ``auth`` does) and logs in
    through the login form; returns the page, on the page the login redirected to."""

    def log_in(username: str = OPERATOR, password: str = PASSWORD):
        with app.app_context():
            user = User(username=username)
            user.set_password(password)
            db.session.add(user)
            db.session.commit()
        page.goto("/login")
        form = page.locator("main form")
        form.locator("input[name=username]").fill(username)
        form.locator("input[name=password]").fill(password)
        with page.expect_navigation():
            form.locator("button").click()
        assert "/login" not in page.url, f"login as {username} failed: still on {page.url}"
        return page

    return log_in
