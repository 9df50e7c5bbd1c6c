"""Patient record in a real browser: register a patient with photo consent, start a series with its
contraindication screen, then find the series ready on Capture photos. Screenshots go to
benchmarks/out/."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import expect

from analysis.services.patient_record import SCREENING_LABELS
from tests.e2e.helpers import choose, open_page, painted, settled, sign_in

if TYPE_CHECKING:
    pass

pytestmark = pytest.mark.browser


def test_register_a_patient_and_start_a_screened_series(
    page, app_url: str, screenshot_dir: Path
) -> None:
    sign_in(page, app_url, "clinician@demo.candor")
    settled(page)
    open_page(page, "Patient record")
    page.get_by_role("textbox", name="Patient code").fill("P-0900")
    page.get_by_role("spinbutton", name="Birth year").fill("1985")
    choose(page, "Sex", "Female")
    choose(page, "Fitzpatrick skin type", "III – sometimes burns, tans uniformly")
    choose(page, "Photo consent given today", "Clinical record (needed to take and keep photos)")
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Register patient").click()
    expect(page.get_by_text("Patient P-0900 registered.")).to_be_visible(timeout=30_000)
    settled(page)
    painted(page)
    page.screenshot(path=screenshot_dir / "patient-record-1-registered.png", full_page=True)

    choose(page, "Protocol", "Skin booster, face · 3 sessions, every 28 days")
    page.get_by_role("textbox", name="Goal, in the patient's own words").fill("brighter skin")
    for label in SCREENING_LABELS.values():
        page.get_by_role("radiogroup", name=label).get_by_text("No", exact=True).click()
    page.get_by_role("button", name="Start series").click()
    expect(page.get_by_text("Series started: Skin booster, face.", exact=False)).to_be_visible(
        timeout=30_000
    )
    settled(page)
    painted(page)
    page.screenshot(path=screenshot_dir / "patient-record-2-series.png", full_page=True)

    open_page(page, "Capture photos")
    expect(page.get_by_role("combobox", name="Patient and series")).to_have_value(
        re.compile(r"^P-0900 · Skin booster, face · 0/3 sessions · active$"), timeout=30_000
    )
    expect(page.get_by_role("button", name="Start session")).to_be_attached()
