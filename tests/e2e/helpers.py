"""What the browser tests share: serving the app, signing in, and waiting on the page by what it
shows (Streamlit's script-run state, skeletons, painted grids and charts), never by fixed sleeps.

Fixtures live in ``conftest.py``; these are plain functions any browser test or benchmark imports.
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
from typing import TYPE_CHECKING, Any

from tests.conftest import PROJECT_ROOT

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = PROJECT_ROOT / "benchmarks" / "out"
E2E_PASSWORD = "e2e-password-not-secret"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seeded_env(data: Path, seed_code: str) -> dict[str, str]:
    """Environment pointing at ``data`` (created empty), after ``seed_code`` ran there in a child
    process with that environment (CANDOR_* variables of the caller removed)."""
    data.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANDOR_")}
    env.update(
        CANDOR_DATA_DIR=str(data), CANDOR_DEMO_PASSWORD=E2E_PASSWORD, PYTHONPATH=str(PROJECT_ROOT)
    )
    done = subprocess.run(
        [sys.executable, "-c", seed_code],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return env


def sign_in(
    page: Page,
    url: str,
    email: str,
    *,
    password: str = E2E_PASSWORD,
    timeout_ms: float | None = None,
) -> None:
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
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                "app.py",
                "--server.headless",
                "true",
                "--server.port",
                str(port),
                "--server.address",
                "127.0.0.1",
                "--browser.gatherUsageStats",
                "false",
                # Production-like: no reloading of modules edited while the test runs (a reloaded
                # analysis.store.access would orphan the signed-in Actor in session state).
                "--server.fileWatcherType",
                "none",
            ],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
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
                raise RuntimeError(
                    "streamlit did not become healthy:\n" + log_path.read_text()[-3000:]
                )
            time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)


# --- waiting on the page ---------------------------------------------------------------------------

#: Streamlit marks its root element with the script-run state; "notRunning" once a run finished.
APP_IDLE = "[data-testid='stApp'][data-test-connection-state='CONNECTED'][data-test-script-state='notRunning']"


def settled(page: Any, *, quiet_ms: float = 250, timeout_ms: float = 120_000) -> None:
    """Wait until the app is idle (its script-run state ``notRunning``, connected, no loading
    skeleton) and has stayed idle for ``quiet_ms``. A widget's rerun request reaches the server
    before the page shows the run, so a single look right after a click could see the previous
    idle state; a short quiet period, observed in the page, closes that gap."""
    page.wait_for_function(
        """([idle, quiet]) => {
            const now = performance.now();
            const ok = !!document.querySelector(idle)
                && !document.querySelector('[data-testid="stSkeleton"]');
            if (!ok) { window.__candorIdleSince = undefined; return false; }
            if (window.__candorIdleSince === undefined) window.__candorIdleSince = now;
            return now - window.__candorIdleSince >= quiet;
        }""",
        arg=[APP_IDLE, quiet_ms],
        timeout=timeout_ms,
    )
    page.evaluate("() => { window.__candorIdleSince = undefined; }")


def painted(page: Any, *, timeout_ms: float = 60_000) -> None:
    """Wait until every data grid has drawn its canvas and every chart its SVG (both paint after
    their element is attached), then two animation frames, so a screenshot shows them."""
    page.wait_for_function(
        """() => {
            // only what is on screen: a grid in a tab not shown draws nothing until it is shown
            const shown = sel => [...document.querySelectorAll(sel)]
                .filter(e => e.getClientRects().length && e.checkVisibility());
            return shown('[data-testid="stDataFrame"]').every(g => g.querySelector('canvas'))
                && shown('.js-plotly-plot').every(p => p.querySelector('.main-svg'));
        }""",
        timeout=timeout_ms,
    )
    _next_frames(page)


def _next_frames(page: Any) -> None:
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def open_page(page: Any, title: str) -> None:
    """Follow the sidebar link ``title`` and wait for its heading and its run to finish."""
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title).click()
    page.get_by_role("heading", name=title).wait_for()
    settled(page)


def choose(page: Any, label: str, option: str) -> None:
    """Pick ``option`` in the select box labelled ``label``."""
    page.get_by_role("combobox", name=label).click()
    page.get_by_role("option", name=option).click()
