"""Protocol setup in a real browser: the medical director defines a protocol; it is then offered
when a clinician starts a series. Screenshot to benchmarks/out/."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import choose, open_page, painted, settled, sign_in

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser


def test_director_defines_a_protocol(page: Page, app_url: str, screenshot_dir: Path) -> None:
    sign_in(page, app_url, "director@demo.candor")
    settled(page)
    open_page(page, "Protocol setup")
    page.get_by_role("textbox", name="Name").fill("Microneedling, face, 3 x monthly")
    page.get_by_role("textbox", name="Modality").fill("microneedling")
    page.get_by_role("textbox", name="Target area").fill("face")
    page.get_by_role("spinbutton", name="Planned sessions").fill("3")
    page.get_by_role("spinbutton", name="Interval (days)").fill("28")
    choose(page, "Required photo views", "Face · frontal")
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Save protocol").click()
    expect(page.get_by_text("Protocol saved: Microneedling, face, 3 x monthly.")).to_be_visible(
        timeout=30_000
    )
    settled(page)
    painted(page)
    page.screenshot(path=screenshot_dir / "protocol-setup.png", full_page=True)
    course = page.get_by_text("Expected course", exact=False).first
    course.scroll_into_view_if_needed()  # the saved protocol's course editor, below the tolerances
    expect(
        page.get_by_text("Save the protocol with its endpoints and sessions first")
    ).to_be_visible(timeout=30_000)
    page.screenshot(path=screenshot_dir / "protocol-setup-course.png")
    page.get_by_role("tab", name="Endpoints").click()
    page.get_by_role("button", name="Add endpoint").wait_for()
    painted(page)
    page.screenshot(path=screenshot_dir / "protocol-setup-endpoints.png", full_page=True)
    open_page(page, "Patient record")
    choose(page, "Patient", "P-0001")
    settled(page)  # the choice reruns the page; expand the form only once that run is done
    page.get_by_text("Start a new series").click()
    protocol = page.get_by_role("combobox", name="Protocol")
    protocol.wait_for()
    protocol.click()
    expect(
        page.get_by_role(
            "option", name="Microneedling, face, 3 x monthly · 3 sessions, every 28 days"
        )
    ).to_be_visible(timeout=30_000)
