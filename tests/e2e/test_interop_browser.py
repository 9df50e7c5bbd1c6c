"""A clinician exports a series for a PACS in a real browser: Series review → Report → Prepare
export → the downloaded zip holds one DICOM file per photo, each passing ``dciodvfy``."""

from __future__ import annotations

import io
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.conftest import system_tool
from tests.e2e.helpers import settled, sign_in

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser


@pytest.fixture
def tab(browser: Browser, app_url: str) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1600}, accept_downloads=True)
    context.set_default_timeout(120_000)  # the shared 2-core machine can be very loaded
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


def test_series_review_downloads_a_dicom_zip_that_validates(
    tab, app_url: str, tmp_path: Path
) -> None:
    dciodvfy = system_tool("dciodvfy", "dicom3tools")
    page = tab
    sign_in(page, app_url, "clinician@demo.candor")
    page.get_by_role("heading", name="Patients").wait_for()
    settled(page)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Series review").click()
    page.get_by_role("heading", name="Series review").wait_for()
    settled(page)
    page.get_by_role("tab", name="Report").click()
    settled(page)
    page.get_by_role("button", name="Prepare export").click()
    settled(page)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download export (zip)").click()
    data = Path(download.value.path()).read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        assert "manifest.json" in names
        dicoms = [n for n in names if n.endswith(".dcm")]
        assert len(dicoms) >= 3  # the seeded series' photos (another browser test may add one)
        for name in dicoms:
            path = tmp_path / Path(name).name
            path.write_bytes(zf.read(name))
            out = subprocess.run([dciodvfy, str(path)], capture_output=True, text=True, timeout=60)
            errors = [ln for ln in (out.stdout + out.stderr).splitlines() if ln.startswith("Error")]
            assert errors == [], (name, errors)
