"""Browser fixtures: a headless ``streamlit run app.py`` on a free port over a freshly seeded clinic,
and a Playwright page driving Debian's ``/usr/bin/chromium`` (Playwright never downloads a browser).

The ``browser`` itself (and its skip or CI failure when ``/usr/bin/chromium`` is missing) is in
tests/conftest.py: one Playwright for the whole run, since a second sync Playwright in the same
thread refuses to start while the first is alive. Screenshots go to ``benchmarks/out/`` (git-ignored).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.e2e.helpers import SCREENSHOTS, seeded_env, serve_app

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page


@pytest.fixture(scope="session")
def e2e_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment of a clinic seeded (in a child process) into a fresh data directory."""
    data = tmp_path_factory.mktemp("e2e") / "data"
    return seeded_env(
        data,
        "from pathlib import Path; from tests.support.clinician_clinic import "
        f"seed_clinician_clinic; seed_clinician_clinic(Path({str(data)!r}))",
    )


@pytest.fixture(scope="session")
def app_url(
    e2e_env: dict[str, str], chromium_path: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The app over the small seeded clinic (:func:`serve_app`)."""
    with serve_app(e2e_env, tmp_path_factory.mktemp("e2e-log") / "streamlit.log") as url:
        yield url


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
