"""Browser fixtures: a headless ``streamlit run app.py`` on a free port over a freshly seeded clinic,
and a Playwright page driving Debian's ``/usr/bin/chromium`` (Playwright never downloads a browser).

Outside CI the browser tests skip, saying why, when ``/usr/bin/chromium`` is missing; in CI
(``CI=true``) that is a failure. Screenshots go to ``benchmarks/out/`` (git-ignored).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.conftest import PROJECT_ROOT, in_ci

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = PROJECT_ROOT / "benchmarks" / "out"
E2E_PASSWORD = "e2e-password-not-secret"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not CHROMIUM.is_file():
        reason = f"{CHROMIUM} is not installed (Debian package chromium); browser tests need it"
        if in_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    return str(CHROMIUM)


def seeded_env(data: Path, seed_code: str) -> dict[str, str]:
    """Environment pointing at ``data`` (created empty), after ``seed_code`` ran there in a child
    process with that environment (CANDOR_* variables of the caller removed)."""
    data.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANDOR_")}
    env.update(CANDOR_DATA_DIR=str(data), CANDOR_DEMO_PASSWORD=E2E_PASSWORD,
               PYTHONPATH=str(PROJECT_ROOT))
    done = subprocess.run([sys.executable, "-c", seed_code], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return env


@pytest.fixture(scope="session")
def e2e_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment of a clinic seeded (in a child process) into a fresh data directory."""
    data = tmp_path_factory.mktemp("e2e") / "data"
    return seeded_env(data, "from pathlib import Path; from tests.clinician_seed import "
                            f"seed_small_clinic; seed_small_clinic(Path({str(data)!r}))")


def sign_in(page: Page, url: str, email: str, *, password: str = E2E_PASSWORD,
            timeout_ms: float | None = None) -> None:
    """Open ``url`` and sign in through the form; returns once the app shows "Sign out"."""
    page.goto(url)
    page.get_by_role("textbox", name="Email").fill(email)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Sign out").wait_for(timeout=timeout_ms)


@contextmanager
def serve_app(env: dict[str, str], log_path: Path) -> Iterator[str]:
    """``streamlit run app.py`` headless on a free port with ``env``; yields its URL once
    /_stcore/health answers ok, and stops the server afterwards."""
    port = _free_port()
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1",
             "--browser.gatherUsageStats", "false",
             # Production-like: no reloading of modules edited while the test runs (a reloaded
             # analysis.store.access would orphan the signed-in Actor in session state).
             "--server.fileWatcherType", "none"],
            cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("streamlit did not become healthy:\n"
                                   + log_path.read_text()[-3000:])
            time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)


@pytest.fixture(scope="session")
def app_url(e2e_env: dict[str, str], chromium_path: str,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app over the small seeded clinic (:func:`serve_app`)."""
    with serve_app(e2e_env, tmp_path_factory.mktemp("e2e-log") / "streamlit.log") as url:
        yield url


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser, app_url: str) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 2000})
    context.set_default_timeout(30_000)
    tab = context.new_page()
    try:
        yield tab
    finally:
        context.close()


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
