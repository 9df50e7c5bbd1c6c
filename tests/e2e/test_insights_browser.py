"""The Insights pages in a real browser, as the people who use them would see them.

* The medical director opens Protocols: headings, drawn charts whose labels carry n, a CSV export
  that downloads and leaves an audit event, and a lot trace that flags the recalled lot.
* Consult staff open Timelines: the plain-language summary, the chart, two before/after pairs,
  no patient code anywhere on the page, and a one-page PDF handout that downloads (audited).
* On the clinician suite's two-patient clinic, Timelines says there is not enough data instead of
  showing a number.

The first two need more patients than ``tests/support/clinician_clinic.py`` has, so this module serves the
app over :func:`tests.support.insights_clinic.seed_insights_clinic` (sixteen synthetic patients) with the same
browser fixtures (``browser``, ``screenshot_dir`` from ``tests/e2e/conftest.py``). Screenshots:
``benchmarks/out/insights-*.png``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import painted, seeded_env, serve_app, settled, sign_in
from tests.support.insights_clinic import PATIENT_CODE_PREFIX

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, ViewportSize

pytestmark = pytest.mark.browser

TALL: ViewportSize = {
    "width": 1400,
    "height": 5200,
}  # Streamlit scrolls inside the page: see it all at once


@pytest.fixture(scope="module")
def insights_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return seeded_env(
        tmp_path_factory.mktemp("insights-e2e") / "data",
        "from tests.support.insights_clinic import seed_insights_clinic; seed_insights_clinic()",
    )


@pytest.fixture(scope="module")
def insights_url(
    insights_env: dict[str, str], chromium_path: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    log_path = tmp_path_factory.mktemp("insights-e2e-log") / "streamlit.log"
    with serve_app(insights_env, log_path) as url:
        yield url


@pytest.fixture
def tab(browser: Browser, insights_url: str) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    context.set_default_timeout(180_000)  # the shared 2-core machine can be very loaded
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


def _audit_actions(env: dict[str, str], action: str) -> list[dict[str, object]]:
    from sqlalchemy import select

    from analysis.store import db
    from analysis.store.models import AuditEvent

    engine = db.make_engine(f"sqlite:///{Path(env['CANDOR_DATA_DIR']) / 'candor.sqlite3'}")
    try:
        with db.session_scope(engine) as s:
            return [
                dict(e.details, actor=e.actor_email, outcome=e.outcome)
                for e in s.scalars(
                    select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
                )
            ]
    finally:
        engine.dispose()


def test_medical_director_compares_protocols_exports_and_traces_a_lot(
    tab: Page, insights_url: str, insights_env: dict[str, str], screenshot_dir: Path
) -> None:
    page = tab
    sign_in(page, insights_url, "director@demo.candor")
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Protocols").click()
    try:
        page.get_by_role("heading", name="Protocols").wait_for()
    except Exception:
        page.screenshot(path=screenshot_dir / "insights-failure.png", full_page=True)
        raise
    page.set_viewport_size(TALL)
    # the Outcomes section opens first; each other section draws when its tab is opened
    page.get_by_text("Responders: unblinded and blinded").wait_for()
    settled(page)
    painted(page)
    for heading in ("Patients and completion", "Outcomes"):
        expect(page.get_by_role("heading", name=heading)).to_be_visible(timeout=30_000)
    assert page.get_by_test_id("stPlotlyChart").count() == 2  # trajectory (open tab), responders
    n_labels = page.locator(".js-plotly-plot text", has_text="n=").count()
    page.screenshot(path=screenshot_dir / "insights-1-protocols.png", full_page=True)
    for tab, heading, charts in (
        ("Safety", "Reactions and adverse events", 1),
        ("Photo compliance", "Photo compliance by operator", 1),
        ("Model", "Model-based comparison (mixed model)", 0),
        ("Export", "Export", 0),
    ):
        page.get_by_role("tab", name=tab, exact=True).click()
        page.get_by_role("heading", name=heading).wait_for()
        settled(page)
        painted(page)
        assert page.get_by_test_id("stPlotlyChart").count() == charts, tab
        n_labels += page.locator(".js-plotly-plot text", has_text="n=").count()
        if tab == "Model":
            expect(page.get_by_text("Observational clinic data, not a trial")).to_be_visible(
                timeout=30_000
            )
        page.screenshot(
            path=screenshot_dir / f"insights-1-protocols-{tab.replace(' ', '_')}.png",
            full_page=True,
        )
    assert n_labels >= 8, "chart points and bars are labelled with their n"

    with page.expect_download() as download:
        page.get_by_role("button", name="Summary (CSV)").click()
    csv = Path(download.value.path()).read_text()
    assert csv.splitlines()[0].startswith("protocol_id,protocol,")
    assert "Skin booster x4" in csv and PATIENT_CODE_PREFIX not in csv
    exports = _audit_actions(insights_env, "cohort.export")
    assert exports and exports[-1]["table"] == "summary"
    assert exports[-1]["actor"] == "director@demo.candor"

    page.get_by_role("tab", name="Lot traceability").click()
    page.get_by_role("textbox", name="Lot number").fill("HB-RECALL-9")
    page.get_by_role("button", name="Trace lot").click()
    page.get_by_text("is RECALLED").wait_for()
    settled(page)
    painted(page)
    page.screenshot(path=screenshot_dir / "insights-2-lot-trace.png", full_page=True)


def test_consult_staff_see_a_de_identified_timeline_and_take_a_handout(
    tab: Page, insights_url: str, insights_env: dict[str, str], screenshot_dir: Path
) -> None:
    page = tab
    sign_in(page, insights_url, "consult@demo.candor")
    page.get_by_role("heading", name="Timelines").wait_for()
    page.set_viewport_size(TALL)
    page.get_by_role("heading", name="Take-home").wait_for()  # the last section
    settled(page)
    painted(page)
    expect(page.get_by_role("heading", name="What to expect")).to_be_visible(timeout=30_000)
    expect(page.get_by_text("had improved by at least")).to_be_visible(timeout=30_000)
    assert page.locator(".js-plotly-plot text", has_text="n=").count() >= 3
    images = page.get_by_test_id("stImage")
    assert images.count() == 4, "two pairs: before and after"
    expect(page.get_by_text("Before (first session)").first).to_be_visible(timeout=30_000)
    body = page.locator("body").inner_text()
    assert PATIENT_CODE_PREFIX not in body
    page.screenshot(path=screenshot_dir / "insights-3-timelines.png", full_page=True)

    shown = _audit_actions(insights_env, "photo.thumbnail")
    assert len(shown) >= 4 and all(e["purpose"] == "consult_display" for e in shown)
    with page.expect_download() as download:
        page.get_by_role("button", name="Handout (PDF)").click()
    pdf = Path(download.value.path()).read_bytes()
    assert pdf.startswith(b"%PDF") and b"/Count 1" in pdf, "a one-page PDF"
    exports = _audit_actions(insights_env, "timeline.export")
    assert exports and exports[-1]["format"] == "pdf"
    assert exports[-1]["size_bytes"] == len(pdf)


def test_timelines_on_a_two_patient_clinic_say_not_enough_data(
    page: Page, app_url: str, screenshot_dir: Path
) -> None:
    """The clinician suite's clinic (two patients): no figure, a plain statement instead."""
    sign_in(page, app_url, "consult@demo.candor")
    page.get_by_role("heading", name="Timelines").wait_for()
    page.get_by_text("Not enough patients have had").wait_for()
    settled(page)
    painted(page)
    assert page.get_by_test_id("stPlotlyChart").count() == 0
    assert "P-000" not in page.locator("body").inner_text()
    page.screenshot(path=screenshot_dir / "insights-4-timelines-too-few.png", full_page=True)


def test_the_chart_library_is_warmed_before_a_chart_page_is_opened(
    tab: Page, insights_url: str
) -> None:
    """ui/prefetch.py: once signed in, the browser imports the chart module while idle, so the
    first chart page does not fetch and compile it on the click; the page it was warmed on draws
    no chart, and the module is fetched once."""
    page = tab
    sign_in(page, insights_url, "director@demo.candor")
    settled(page)
    assert page.get_by_test_id("stPlotlyChart").count() == 0
    page.wait_for_function(
        "() => performance.getEntriesByType('resource')"
        ".some(r => /PlotlyChart\\.[^/]*\\.js/.test(r.name))",
        timeout=60_000,
    )
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Protocols").click()
    page.get_by_role("heading", name="Protocols").wait_for()
    settled(page)
    painted(page)
    assert page.get_by_test_id("stPlotlyChart").count() >= 1
    fetched = page.evaluate(
        "() => performance.getEntriesByType('resource')"
        ".filter(r => /PlotlyChart\\.[^/]*\\.js/.test(r.name)).length"
    )
    assert fetched == 1, "Streamlit's own loader reused the warmed module"
