"""Browser fixtures: a headless ``streamlit run app.py`` on a free port over a freshly seeded clinic,
and a Playwright page driving Debian's ``/usr/bin/chromium`` (Playwright never downloads a browser).

Outside CI the browser tests skip, saying why, when ``/usr/bin/chromium`` is missing; in CI
(``CI=true``) that is a failure. Screenshots go to ``benchmarks/out/`` (git-ignored).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.conftest import in_ci
from tests.e2e.helpers import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, seeded_env, serve_app

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not CHROMIUM.is_file():
        reason = f"{CHROMIUM} is not installed (Debian package chromium); browser tests need it"
        if in_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    return str(CHROMIUM)


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
