"""A clinician's walk in a real browser: sign in, capture a photo, see its verdict, save it, and find
it in Series review. Elements are found by Streamlit test ids and by roles/labels, as a person
would find them. Screenshots of every clinician page go to benchmarks/out/."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import open_page, painted, settled, sign_in
from tests.support.clinician_clinic import astronaut_jpeg

if TYPE_CHECKING:
    pass

pytestmark = pytest.mark.browser


def test_capture_a_photo_see_its_verdict_save_it_and_review_it(
    page, app_url: str, tmp_path: Path, screenshot_dir: Path
) -> None:
    sign_in(page, app_url, "clinician@demo.candor")
    page.get_by_role("heading", name="Patients").wait_for()
    settled(page)
    page.get_by_test_id("stDataFrame").wait_for()
    painted(page)
    page.screenshot(path=screenshot_dir / "clinician-1-patients.png", full_page=True)

    open_page(page, "Capture photos")
    upload = tmp_path / "follow-up.jpg"
    upload.write_bytes(astronaut_jpeg(shift_px=4))
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(upload))
    save = page.get_by_role("button", name="Save photo")
    save.wait_for(timeout=90_000)
    settled(page)
    ghost = page.get_by_test_id("stImage").filter(has_text="as a ghost")
    ghost.wait_for()
    page.screenshot(path=screenshot_dir / "clinician-2-capture-verdict.png", full_page=True)
    badge = page.get_by_text(
        re.compile(r"^\W*(\w+\s)?(Comparable|Check before comparing|Not comparable)$")
    )
    expect(badge.first).to_be_visible(timeout=30_000)
    expect(page.get_by_text("follow-up.jpg").first).to_be_visible(timeout=30_000)
    expect(page.get_by_text("Baseline ghost opacity")).to_be_visible(timeout=30_000)
    page.screenshot(path=screenshot_dir / "clinician-2-capture-verdict.png", full_page=True)
    if page.get_by_role("textbox", name="Reason to keep it anyway").count():
        page.get_by_role("textbox", name="Reason to keep it anyway").fill("browser test photo")
    save.click()
    page.get_by_text("Saved follow-up.jpg as Face · frontal").wait_for(timeout=60_000)
    settled(page)
    assert page.get_by_role("button", name="Save photo").count() == 0
    page.screenshot(path=screenshot_dir / "clinician-3-capture-saved.png", full_page=True)

    open_page(page, "Series review")
    page.get_by_text("P-0001").first.wait_for()
    images = page.get_by_test_id("stImage")
    images.first.wait_for(timeout=60_000)
    # 3 seeded photos + the new one, which sits in session 3's cell with its badge.
    expect(page.get_by_text("Session 3").first).to_be_visible(timeout=30_000)
    expect(images).to_have_count(4, timeout=30_000)
    expect(page.get_by_text("Not comparable", exact=False).first).to_be_visible()
    page.screenshot(path=screenshot_dir / "clinician-4-series-review.png", full_page=True)
    page.get_by_role("tab", name="Compare").click()
    page.get_by_text("Session 1 → Session 3").first.wait_for(timeout=60_000)
    settled(page)
    expect(page.get_by_text("Between these sessions: retinoid")).to_be_visible(timeout=30_000)
    page.screenshot(path=screenshot_dir / "clinician-5-series-compare.png", full_page=True)
    page.get_by_role("tab", name="Endpoints").click()
    page.get_by_text("Change from baseline (session 1)").first.wait_for(timeout=60_000)
    settled(page)
    page.screenshot(path=screenshot_dir / "clinician-5b-series-endpoints.png", full_page=True)

    open_page(page, "Record visit")
    expect(page.get_by_role("button", name="Save treatment")).to_be_visible(timeout=30_000)
    page.get_by_role("spinbutton", name="Volume (mL)").wait_for()
    page.get_by_role("radiogroup").first.wait_for()
    page.screenshot(path=screenshot_dir / "clinician-6-record-visit.png", full_page=True)
