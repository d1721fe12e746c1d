"""The browser fixtures' own promises, each checked by running pytest on a small test file in a
subprocess: a missing Chromium fails the test and says how to install it (never a skip), a
failing browser test leaves its screenshot in ``STOCKLINK_ARTEFACTS``, and the browser is gone
before the next module runs."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


# The inner tests' server: one static page, so no database or Redis is started for them.
STATIC_SERVER = """
import pytest
from werkzeug.wrappers import Response

from stocklink.sandbox.server import serve_in_thread

pytest_plugins = ["tests.fixtures_browser"]


@pytest.fixture
def stocklink_server():
    server = serve_in_thread(lambda environ, start: Response("<h1>page</h1>", mimetype="text/html")(environ, start))
    yield server
    server.stop()
"""


def run_pytest(tmp_path: Path, source: str, *, after: str | None = None, **env: str) -> subprocess.CompletedProcess:
    """Run ``STATIC_SERVER`` + ``source`` as a test file outside ``tests/`` with the project's
    pytest settings, then ``after`` (if given) as a second file."""
    files = [tmp_path / "test_inner.py"]
    files[0].write_text(STATIC_SERVER + source, encoding="utf-8")
    if after is not None:
        files.append(tmp_path / "test_inner_after.py")
        files[1].write_text(after, encoding="utf-8")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    environ.update(PYTHONPATH=str(ROOT), **env)
    return subprocess.run([sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir",
                           str(ROOT), "-rA", *map(str, files)],
                          cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=120)


def test_a_missing_chromium_fails_and_says_how_to_install_it(tmp_path):
    """CHROMIUM naming no executable is a failure with the apt command, not a skip."""
    missing = tmp_path / "no-such-chromium"
    result = run_pytest(tmp_path, "def test_needs_a_browser(chromium):\n    pass\n",
                        CHROMIUM=str(missing), STOCKLINK_ARTEFACTS=str(tmp_path / "artefacts"))
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert f"Chromium not found at {missing}" in output
    assert "apt install chromium fonts-noto-cjk" in output
    assert "1 error" in output and "skipped" not in output


def test_a_failing_browser_test_leaves_its_screenshot_in_the_artefacts_folder(tmp_path):
    """The failed test's page is saved as ``<test name>.failed.png``; a passing one saves none."""
    artefacts = tmp_path / "artefacts"
    result = run_pytest(tmp_path, "def test_fails_on_the_page(page):\n"
                                  '    page.goto("/")\n    assert False, "on purpose"\n\n'
                                  "def test_passes(page):\n"
                                  '    page.goto("/")\n',
                        STOCKLINK_ARTEFACTS=str(artefacts))
    output = result.stdout + result.stderr
    assert result.returncode == 1 and "1 failed, 1 passed" in output, output
    shots = sorted(p.name for p in artefacts.iterdir())
    assert shots == ["test_fails_on_the_page.failed.png"]
    assert (artefacts / shots[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_next_module_can_run_asyncio_after_the_browser_tests(tmp_path):
    """Playwright's sync API marks an asyncio loop running in the main thread while it is started:
    the browser stops with its module, so a later module's ``asyncio.run`` works."""
    result = run_pytest(tmp_path, "def test_uses_the_browser(page):\n    page.goto('/')\n",
                        after="import asyncio\n\n\ndef test_runs_a_coroutine():\n"
                              "    assert asyncio.run(asyncio.sleep(0, 'done')) == 'done'\n",
                        STOCKLINK_ARTEFACTS=str(tmp_path / "artefacts"))
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "2 passed" in output, output
