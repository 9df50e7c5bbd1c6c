"""Blinded rating in a real browser.

* An invited clinician opens Blinded rating, sees a masked pair (two photos, no patient code, date
  or session number anywhere on the page), picks the better photo and its grade, saves, and is
  moved on to the next pair; the rating is stored with its side and audited.
* The medical director opens Blinded rating and reads a closed study's results, and downloads its
  ratings as CSV (audited).

Serves the app over :func:`tests.support.rating_clinic.seed_rating_clinic` with one closed study (rated as
the demo study is, :mod:`analysis.demo.rating_study`) and one open study.
Screenshots: ``benchmarks/out/blinded-rating-*.png``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.helpers import painted, seeded_env, serve_app, settled, sign_in

pytestmark = pytest.mark.browser

OPEN_STUDY = 2  # study 1 is the closed, demo-style one
SEED = """
import os
from pathlib import Path
from analysis.services import rating
from analysis.store import db
from analysis.store.access import Actor
from tests.support.rating_clinic import seed_rating_clinic
data = Path(os.environ["CANDOR_DATA_DIR"])
ids = seed_rating_clinic(f"sqlite:///{data / 'candor.sqlite3'}", data / "images")
director = Actor(ids["director_id"], ids["director_email"], "medical_director")
from analysis.demo.rating_study import seed_demo_rating_study
with db.session_scope() as s:
    print(seed_demo_rating_study(s, director, protocol_name="Booster test",
                                 endpoint_code="gais_test", min_pairs=4))
with db.session_scope() as s:
    rating.create_study(s, Actor(ids["director_id"], ids["director_email"], "medical_director"),
                        rating.StudySpec(title="Booster: baseline vs session 3",
                                         endpoint_code="gais_test",
                                         protocol_ids=(ids["protocol_id"],),
                                         views=("face_frontal",), rater_ids=(ids["clinician_id"],),
                                         followup_session=3, repeat_share=0.0, seed=3))
"""


@pytest.fixture(scope="module")
def rating_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return seeded_env(tmp_path_factory.mktemp("rating-e2e") / "data", SEED)


@pytest.fixture(scope="module")
def rating_url(
    rating_env: dict[str, str], chromium_path: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with serve_app(rating_env, tmp_path_factory.mktemp("rating-e2e-log") / "streamlit.log") as url:
        yield url


def _db_rows(env: dict[str, str]) -> tuple[list[tuple], list[str], list[str]]:
    import os

    from sqlalchemy import select

    from analysis.store import db
    from analysis.store.models import AuditEvent, Patient, RatingAssignment, Session

    saved = os.environ.get("CANDOR_DATA_DIR")
    os.environ["CANDOR_DATA_DIR"] = env["CANDOR_DATA_DIR"]
    try:
        engine = db.make_engine(f"sqlite:///{Path(env['CANDOR_DATA_DIR']) / 'candor.sqlite3'}")
        with db.session_scope(engine) as s:
            rated = [
                (a.rater_id, a.better_side, a.grade, a.left_is_baseline, a.change)
                for a in s.scalars(
                    select(RatingAssignment).where(
                        RatingAssignment.rated_at.is_not(None),
                        RatingAssignment.study_id == OPEN_STUDY,
                    )
                )
            ]
            actions = [
                e.actor_email
                for e in s.scalars(select(AuditEvent).where(AuditEvent.action == "rating.rate"))
                if e.details.get("study_id") == OPEN_STUDY
            ]
            secrets = [p.code for p in s.scalars(select(Patient))] + [
                v.performed_on.isoformat() for v in s.scalars(select(Session))
            ]
        engine.dispose()
    finally:
        if saved is None:
            os.environ.pop("CANDOR_DATA_DIR", None)
        else:
            os.environ["CANDOR_DATA_DIR"] = saved
    return rated, actions, secrets


def test_a_rater_rates_a_masked_pair(
    browser: Browser, rating_url: str, rating_env: dict[str, str], screenshot_dir: Path
) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 2000})
    context.set_default_timeout(60_000)
    page = context.new_page()
    try:
        sign_in(page, rating_url, "clinician@demo.candor")
        settled(page)
        page.get_by_test_id("stSidebarNav").get_by_role(
            "link", name="Blinded rating", exact=True
        ).click()
        page.get_by_role("heading", name="Blinded rating").wait_for()
        expect(page.get_by_role("combobox", name="Study")).to_have_value(
            re.compile(r"^Study 2 · GAIS \(test\)$")
        )  # the open one, under a neutral label
        expect(page.get_by_text("Pair 1 of 6")).to_be_visible(timeout=180_000)
        settled(page)
        images = page.get_by_test_id("stImage")
        expect(images).to_have_count(2, timeout=180_000)  # measured and aligned first
        page.screenshot(path=screenshot_dir / "blinded-rating-1-pair.png", full_page=True)
        body = page.locator("body").inner_text()
        _, _, secrets = _db_rows(rating_env)
        for secret in secrets + ["session 3", "Session 3", "Booster: baseline"]:
            assert secret not in body, secret

        page.get_by_role("radiogroup", name="Which photo looks better?").get_by_text(
            "Right photo", exact=True
        ).click()
        page.get_by_role("radiogroup", name="How much better").get_by_text(
            "1 – much improved", exact=True
        ).click()
        page.get_by_role("button", name="Save rating").click()
        expect(page.get_by_text("Rating saved (1 of 6).")).to_be_visible(timeout=180_000)
        expect(page.get_by_text("Pair 2 of 6")).to_be_visible(timeout=180_000)
        expect(page.get_by_text("You have rated 1 of 6 showings")).to_be_visible()
        expect(images).to_have_count(2, timeout=180_000)
        settled(page)
        page.screenshot(path=screenshot_dir / "blinded-rating-2-saved.png", full_page=True)
    except Exception:
        page.screenshot(path=screenshot_dir / "blinded-rating-failure.png", full_page=True)
        raise
    finally:
        context.close()
    rated, actions, _ = _db_rows(rating_env)
    assert len(rated) == 1
    _rater, side, grade, left_is_baseline, change = rated[0]
    assert (side, grade) == ("right", 1.0)
    assert change == (2.0 if left_is_baseline else -2.0)  # the recorded side decides the sign
    assert actions == ["clinician@demo.candor"]


def test_the_director_reads_a_closed_studys_results_and_exports_them(
    browser: Browser, rating_url: str, rating_env: dict[str, str], screenshot_dir: Path
) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 3600}, accept_downloads=True)
    context.set_default_timeout(60_000)
    page = context.new_page()
    try:
        sign_in(page, rating_url, "director@demo.candor")
        settled(page)
        page.get_by_test_id("stSidebarNav").get_by_role(
            "link", name="Blinded rating", exact=True
        ).click()
        page.get_by_role("heading", name="Blinded rating").wait_for()
        settled(page)
        page.get_by_role("combobox", name="Study").click()
        page.get_by_role("option", name=re.compile(r"\(closed\)$")).click()
        settled(page)
        expect(page.get_by_text("Results: Demo:", exact=False)).to_be_visible()
        for heading in (
            "Agreement between raters (first showings)",
            "Intra-rater agreement on the blinded repeats",
            "Responders by protocol: blinded against unblinded (same pairs)",
        ):
            expect(page.get_by_text(heading)).to_be_visible()
        painted(page)
        page.screenshot(path=screenshot_dir / "blinded-rating-3-results.png", full_page=True)
        with page.expect_download() as download:
            page.get_by_role("button", name="Ratings (CSV)").click()
        csv = Path(download.value.path()).read_text()
    except Exception:
        page.screenshot(path=screenshot_dir / "blinded-rating-failure.png", full_page=True)
        raise
    finally:
        context.close()
    lines = csv.strip().splitlines()
    assert lines[0].startswith("assignment_id,rater_id,rater,pair_id")
    assert len(lines) == 1 + 3 * (6 + 1)  # 3 raters x (6 pairs + 1 blinded repeat)
    assert _exports(rating_env) == ["director@demo.candor"]


def _exports(env: dict[str, str]) -> list[str]:
    from sqlalchemy import select

    from analysis.store import db
    from analysis.store.models import AuditEvent

    engine = db.make_engine(f"sqlite:///{Path(env['CANDOR_DATA_DIR']) / 'candor.sqlite3'}")
    with db.session_scope(engine) as s:
        out = [
            e.actor_email
            for e in s.scalars(select(AuditEvent).where(AuditEvent.action == "rating.export"))
        ]
    engine.dispose()
    return out
