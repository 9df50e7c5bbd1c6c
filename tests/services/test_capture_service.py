"""The capture service (analysis.services.capture): view suggestion, grading an upload against the baseline
before anything is stored, saving with consent and override rules, and the measurement cache.

Photos are skimage.data.astronaut() (public domain) with known perturbations; measurements come from
the real sandboxed worker (FaceMesh), not mocks.
"""

from __future__ import annotations

import sys
import types
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select

from analysis.photos.types import PhotoMeasurement
from analysis.services import capture, records
from analysis.store import db
from analysis.store.access import Actor
from analysis.store.images import default_store
from analysis.store.models import Photo, Protocol
from tests.support.clinician_clinic import astronaut_jpeg

CLINICIAN = Actor(user_id=None, email="clinician@test.candor", role="clinician")
#: Shared by the tests that do not test caching: each distinct photo is measured once.
CACHE = capture.MeasurementCache(max_items=64)


@pytest.fixture(scope="module")
def baseline_measurement() -> PhotoMeasurement:
    m = capture.measure_bytes(astronaut_jpeg(), view="face_frontal", cache=CACHE)
    assert m.ok and m.face_found, m.error
    return m


@pytest.fixture
def series_ids(candor_env: Path) -> dict[str, int]:
    """An empty face series with two sessions; patient 1 consented, patient 2 not."""
    db.upgrade(db.get_engine())
    with db.session_scope() as s:
        protocol = Protocol(
            name="Booster",
            modality="skin booster",
            target_area="face",
            planned_sessions=3,
            interval_days=28,
            required_views=["face_frontal", "face_oblique_left"],
        )
        s.add(protocol)
        s.flush()
        ids: dict[str, int] = {}
        for code, consent in (("A", True), ("B", False)):
            patient = records.create_patient(
                s, CLINICIAN, code=code, birth_year=1980, sex="female", fitzpatrick=2
            )
            if consent:
                records.give_consent(s, CLINICIAN, patient_id=patient.id, scope="clinical_record")
            series = records.create_series(
                s,
                CLINICIAN,
                patient_id=patient.id,
                protocol_id=protocol.id,
                started_on=date(2026, 1, 5),
            )
            ids[f"series_{code}"] = series.id
        ids["session_A1"] = capture.start_next_session(
            s, CLINICIAN, series_id=ids["series_A"], performed_on=date(2026, 1, 5)
        )
        ids["session_B1"] = capture.start_next_session(
            s, CLINICIAN, series_id=ids["series_B"], performed_on=date(2026, 1, 5)
        )
    with db.session_scope() as s:  # a new transaction, as the page does
        ids["session_A2"] = capture.start_next_session(
            s, CLINICIAN, series_id=ids["series_A"], performed_on=date(2026, 2, 2)
        )
    return ids


def _photo_count() -> int:
    with db.session_scope() as s:
        return s.scalars(select(func.count(Photo.id))).one()


@pytest.mark.parametrize(
    ("yaw_deg", "expected"),
    [
        (0.0, "face_frontal"),
        (-24.0, "face_frontal"),
        (-30.0, "face_oblique_left"),
        (40.0, "face_oblique_right"),
        (-70.0, "face_lateral_left"),
        (75.0, "face_lateral_right"),
    ],
)
def test_view_is_suggested_from_yaw_with_the_patients_side(yaw_deg: float, expected: str) -> None:
    m = PhotoMeasurement(ok=True, face_found=True, yaw_deg=yaw_deg)
    assert capture.suggest_view(m) == expected


def test_no_view_is_suggested_without_a_face_or_for_scalp_protocols() -> None:
    assert capture.suggest_view(PhotoMeasurement(ok=False, face_found=False)) is None
    m = PhotoMeasurement(ok=True, face_found=True, yaw_deg=0.0)
    assert capture.suggest_view(m, target_area="scalp") is None


def test_first_photo_of_a_view_becomes_the_baseline() -> None:
    a = capture.assess_upload(astronaut_jpeg(), view="face_frontal", cache=CACHE)
    assert a.verdict == "baseline"
    assert a.readable and a.comparison is None and not a.guidance
    assert a.suggested_view == "face_frontal"  # the astronaut faces the camera


def test_an_unreadable_baseline_fails_the_upload_instead_of_making_it_the_baseline() -> None:
    a = capture.assess_upload(
        astronaut_jpeg(),
        view="face_frontal",
        cache=CACHE,
        baseline_photo_id=7,
        baseline_unavailable="consent withdrawn",
    )
    assert a.verdict == "fail" and a.baseline_photo_id == 7
    assert "consent withdrawn" in a.guidance[0]


def test_same_photo_again_passes_and_a_much_darker_one_does_not(
    baseline_measurement: PhotoMeasurement,
) -> None:
    same = capture.assess_upload(
        astronaut_jpeg(),
        view="face_frontal",
        cache=CACHE,
        baseline=baseline_measurement,
        baseline_photo_id=1,
    )
    assert same.verdict == "pass", same.guidance
    dark = capture.assess_upload(
        astronaut_jpeg(brightness=0.45),
        view="face_frontal",
        cache=CACHE,
        baseline=baseline_measurement,
        baseline_photo_id=1,
    )
    assert dark.verdict in ("warn", "fail")
    assert dark.comparison is not None
    exposure = dark.comparison.check("exposure")
    assert exposure.status in ("warn", "fail")
    assert exposure.value is not None and exposure.value < 0
    assert any("darker" in line for line in dark.guidance)
    assert {c["name"] for c in dark.checks_json()} >= {"pose", "exposure", "sharpness"}


def test_a_file_that_is_not_a_photo_gets_a_clear_reason_and_cannot_be_saved(
    series_ids: dict[str, int],
) -> None:
    pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer <<>>\n%%EOF\n"
    a = capture.assess_upload(pdf, view="face_frontal", cache=CACHE)
    assert not a.readable and a.verdict == "fail"
    assert "PDF" in (a.error or "")
    with db.session_scope() as s, pytest.raises(records.FieldError) as info:
        capture.save_capture(
            s, CLINICIAN, session_id=series_ids["session_A1"], data=pdf, assessment=a
        )
    assert info.value.field == "photo"
    assert _photo_count() == 0


def test_saving_without_photo_consent_is_refused_and_stores_nothing(
    series_ids: dict[str, int],
) -> None:
    a = capture.assess_upload(astronaut_jpeg(), view="face_frontal", cache=CACHE)
    with db.session_scope() as s, pytest.raises(records.FieldError) as info:
        capture.save_capture(
            s, CLINICIAN, session_id=series_ids["session_B1"], data=astronaut_jpeg(), assessment=a
        )
    assert info.value.field == "consent"
    assert _photo_count() == 0


def test_a_failing_photo_needs_a_reason_which_stays_with_it(
    series_ids: dict[str, int], baseline_measurement: PhotoMeasurement
) -> None:
    with db.session_scope() as s:
        base = capture.assess_upload(astronaut_jpeg(), view="face_frontal", cache=CACHE)
        capture.save_capture(
            s,
            CLINICIAN,
            session_id=series_ids["session_A1"],
            data=astronaut_jpeg(),
            assessment=base,
            condition_tags=("makeup",),
        )
    with db.session_scope() as s:
        ctx = capture.capture_context(s, CLINICIAN, series_id=series_ids["series_A"])
    assert ctx.consent_ok
    assert ctx.missing_views(series_ids["session_A1"]) == ["face_oblique_left"]
    assert ctx.missing_views(series_ids["session_A2"]) == ["face_frontal", "face_oblique_left"]
    baseline = ctx.baseline_for("face_frontal")
    assert baseline is not None and baseline.session_number == 1 and baseline.verdict == "baseline"

    data = astronaut_jpeg(brightness=0.3)
    bad = capture.assess_upload(
        data,
        view="face_frontal",
        baseline=baseline_measurement,
        baseline_photo_id=baseline.photo_id,
        cache=CACHE,
    )
    assert bad.verdict == "fail", bad.guidance
    with db.session_scope() as s, pytest.raises(records.FieldError) as info:
        capture.save_capture(
            s, CLINICIAN, session_id=series_ids["session_A2"], data=data, assessment=bad
        )
    assert info.value.field == "override_reason"
    with db.session_scope() as s:
        photo_id = capture.save_capture(
            s,
            CLINICIAN,
            session_id=series_ids["session_A2"],
            data=data,
            assessment=bad,
            override_reason="room lights failed",
            condition_tags=("hair_product",),
        )
    with db.session_scope() as s:
        row = s.get_one(Photo, photo_id)
        assert row.verdict == "fail" and row.override_reason == "room lights failed"
        assert row.condition_tags == ["hair_product"]
        assert row.measurements["face_found"] is True
        assert any(c["name"] == "exposure" and c["status"] == "fail" for c in row.checks)
        assert default_store().exists(row.sha256) and row.media_type == "image/jpeg"


def test_condition_tags_are_checked_and_carry_days_since_procedure() -> None:
    assert capture.condition_tag_list(selected=["makeup"], days_since_last_procedure=12) == (
        "makeup",
        "last_procedure_days:12",
    )
    with pytest.raises(records.FieldError) as info:
        capture.condition_tag_list(selected=["tan"])
    assert info.value.field == "condition_tags"


def test_measurements_are_cached_by_content_and_shared_by_face_views() -> None:
    cache = capture.MeasurementCache(max_items=2)
    data = astronaut_jpeg()
    first = capture.measure_bytes(data, view="face_frontal", cache=cache)
    again = capture.measure_bytes(data, view="face_oblique_left", cache=cache)
    assert len(cache) == 1
    assert again.view == "face_oblique_left" and again.yaw_deg == first.yaw_deg
    capture.measure_bytes(data, view="scalp_vertex", cache=cache)
    assert len(cache) == 2
    capture.measure_bytes(astronaut_jpeg(shift_px=4), view="face_frontal", cache=cache)
    assert len(cache) == 2  # least recently used dropped


def test_worker_runs_when_main_is_a_streamlit_page_script(tmp_path: Path) -> None:
    """Streamlit makes the page script ``__main__``; the worker child must not re-run it."""
    marker = tmp_path / "page-ran"
    script = tmp_path / "page.py"
    script.write_text(f"open({str(marker)!r}, 'w').close()\nraise SystemExit('page ran')\n")
    fake_main = types.ModuleType("__main__")
    fake_main.__file__ = str(script)
    saved = sys.modules["__main__"]
    sys.modules["__main__"] = fake_main
    try:
        m = capture.measure_bytes(astronaut_jpeg(), view="face_frontal")
    finally:
        sys.modules["__main__"] = saved
    assert m.ok, m.error
    assert not marker.exists()
