"""The series PDF report: built from a real series overview of the seeded clinic, it carries each
photo's comparability status (a failing photo printed as NOT COMPARABLE with its reason), the
endpoint charts and the safety record; photos refused by the audited door are left out, not faked."""

from __future__ import annotations

import io
import re

import pandas as pd
import pytest
from pypdf import PdfReader

from analysis.reports.series_report import build_series_report, endpoint_chart_png, report_photos
from analysis.services.photo_access import photo_bytes
from analysis.services.series import SeriesOverview, series_overview
from analysis.store import db
from analysis.store.access import Actor


def _pdf_text(pdf: bytes) -> tuple[str, int]:
    """The text as an independent reader (pypdf) extracts it, and how many images are drawn."""
    reader = PdfReader(io.BytesIO(pdf))
    text = " ".join(page.extract_text() or "" for page in reader.pages)
    return re.sub(r"\s+", " ", text), sum(len(page.images) for page in reader.pages)


@pytest.fixture
def overview_and_photos(
    seeded_clinic: dict[str, int],
) -> tuple[SeriesOverview, dict[int, bytes], dict[str, int]]:
    actor = Actor(
        user_id=seeded_clinic["clinician_user_id"], email="clinician@demo.candor", role="clinician"
    )
    with db.session_scope() as s:
        overview = series_overview(s, actor, seeded_clinic["series_id"])

    def fetch(photo_id: int) -> bytes:
        with db.session_scope() as s:
            return photo_bytes(s, actor, photo_id=photo_id, thumbnail=True, max_side=400)

    return overview, report_photos(overview.photos, fetch=fetch), seeded_clinic


def test_report_prints_every_photo_with_its_comparability(
    overview_and_photos: tuple[SeriesOverview, dict[int, bytes], dict[str, int]],
) -> None:
    overview, photos, ids = overview_and_photos
    assert {ids["photo1_id"], ids["photo3_id"]} <= set(photos)
    pdf = build_series_report(overview, photos=photos)
    assert pdf.startswith(b"%PDF-")
    text, images = _pdf_text(pdf)
    assert "Series progress report" in text and "P-0001" in text
    assert "NOT COMPARABLE" in text and "flash did not fire" in text
    assert "Baseline" in text
    assert images >= len(photos) + 1  # every photo and at least one chart drawn
    assert "Booster HA" in text and "erythema" in text and "retinoid" in text


def test_photos_the_door_refused_are_left_out_not_invented(
    overview_and_photos: tuple[SeriesOverview, dict[int, bytes], dict[str, int]],
) -> None:
    overview, photos, ids = overview_and_photos
    kept = {k: v for k, v in photos.items() if k != ids["photo3_id"]}
    text, _ = _pdf_text(build_series_report(overview, photos=kept))
    assert "not shown" in text
    assert report_photos(overview.photos, fetch=lambda pid: None) == {}


def test_endpoint_chart_is_a_png_with_noise_band_and_expected_course() -> None:
    m = pd.DataFrame(
        {
            "session_number": [1, 2, 3],
            "endpoint_code": ["x"] * 3,
            "value": [5.0, 4.0, 3.0],
            "baseline": [5.0] * 3,
            "change": [0.0, -1.0, -2.0],
            "improvement": [0.0, 1.0, 2.0],
            "noise_band": [0.8] * 3,
            "within_noise": [True, False, False],
            "expected_change": [float("nan"), -0.5, -1.0],
        }
    )
    comparisons = pd.DataFrame(
        {
            "from_session": [1, 2],
            "to_session": [2, 3],
            "confounders": [[], ["retinoid"]],
            "spans_confounder": [False, True],
        }
    )
    png = endpoint_chart_png(m, code="x", name="Score", comparisons=comparisons)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
