"""The clinician workspace driven through the real router (AppTest): Patients, Capture photos,
Record visit, Series review. Identity is set in session state (``ui.frame.ACTOR_KEY``); the data is
the small seeded clinic of ``tests/support/clinician_clinic.py``; photos go through the real worker."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Protocol

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Element

from analysis.store import db
from analysis.store.access import Actor
from analysis.store.models import AuditEvent, Photo, Reaction, Treatment
from tests.conftest import PROJECT_ROOT
from tests.support.clinician_clinic import astronaut_jpeg
from ui.frame import ACTOR_KEY

APP = str(PROJECT_ROOT / "app.py")


class OpenPage(Protocol):
    """The ``app`` fixture: open ``path`` through the router as the signed-in clinician."""

    def __call__(self, path: str, *, series_id: int | None = None, **state: object) -> AppTest: ...


def _count(model: type[AuditEvent | Photo | Treatment], **where: object) -> int:
    with db.session_scope() as s:
        q = select(func.count(model.id))
        for name, value in where.items():
            q = q.where(getattr(model, name) == value)
        return s.scalars(q).one()


def _texts(at: AppTest) -> str:
    parts = [
        str(e.value)
        for kind in ("markdown", "caption", "error", "warning", "success", "info")
        for e in getattr(at, kind)
    ]
    return "\n".join(parts)


def _image_captions(at: AppTest) -> list[str]:
    images = at.get("image")
    assert all(isinstance(image, Element) for image in images)
    return [c for image in images if isinstance(image, Element) for c in image.captions]


def _run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture
def app(seeded_clinic: dict[str, int]) -> OpenPage:
    def open_page(path: str, *, series_id: int | None = None, **state: object) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=120)
        at.session_state[ACTOR_KEY] = Actor(
            user_id=seeded_clinic["clinician_user_id"],
            email="clinician@demo.candor",
            role="clinician",
        )
        if series_id is not None:
            at.session_state["candor_series_id"] = series_id
        for key, value in state.items():
            at.session_state[key] = value
        _run(at)
        at.switch_page(path)
        return _run(at)

    return open_page


def test_patients_lists_the_series_and_search_narrows_it(
    app: OpenPage, seeded_clinic: dict[str, int]
) -> None:
    at = app("views/patients.py")
    table = at.dataframe[0].value
    assert set(table["patient_code"]) == {"P-0001", "P-0002"}
    # what a person reads: status words, and photo sets counted against the sessions so far
    assert set(table["status_label"]) <= {"Active", "Paused", "Completed", "Dropped out"}
    assert "status" not in table.columns and "photo_compliance" not in table.columns
    assert all(
        re.fullmatch(r"\d+ of \d+ sessions?|no sessions yet", v) for v in table["photo_sets"]
    )
    at.text_input(key="patients_search").input("P-0002")
    _run(at)
    assert list(at.dataframe[0].value["patient_code"]) == ["P-0002"]
    at.selectbox[0].select(seeded_clinic["series_no_consent_id"])
    _run(at)
    assert at.session_state["candor_series_id"] == seeded_clinic["series_no_consent_id"]
    links = [link for link in at.get("page_link") if isinstance(link, Element)]
    assert "Open in Series review" in [link.label for link in links]
    at.switch_page("views/series_review.py")
    _run(at)
    assert "P-0002" in _texts(at) and "P-0001" not in _texts(at)
    at.switch_page("views/patients.py")
    _run(at)
    at.text_input(key="patients_search").input("nobody")
    _run(at)
    assert "No series match your search." in _texts(at)


def test_capture_shows_the_verdict_and_saves_the_photo(
    app: OpenPage, seeded_clinic: dict[str, int]
) -> None:
    at = app("views/capture_photos.py", series_id=seeded_clinic["series_id"])
    at.selectbox(key="capture_session_id").set_value(seeded_clinic["session2_id"])
    _run(at)
    before = _count(Photo, session_id=seeded_clinic["session2_id"])
    at.file_uploader[0].set_value(("visit.jpg", astronaut_jpeg(shift_px=4), "image/jpeg"))
    _run(at)
    text = _texts(at)
    assert "visit.jpg" in text
    assert any(
        label in text for label in ("Comparable", "Check before comparing", "Not comparable")
    ), text
    assert at.dataframe, "the per-check values are shown"
    assert [s.label for s in at.slider] == ["Baseline ghost opacity"]
    save = next(b for b in at.button if b.label == "Save photo")
    save.click()
    _run(at)
    assert "Saved visit.jpg as Face · frontal" in _texts(at)
    assert _count(Photo, session_id=seeded_clinic["session2_id"]) == before + 1
    assert not [b for b in at.button if b.label == "Save photo"], "the saved upload is gone"


def test_capture_view_can_be_corrected_and_a_retake_discards_the_upload(
    app: OpenPage, seeded_clinic: dict[str, int]
) -> None:
    at = app("views/capture_photos.py", series_id=seeded_clinic["series_id"])
    at.file_uploader[0].set_value(("side.jpg", astronaut_jpeg(shift_px=6), "image/jpeg"))
    _run(at)
    view = next(s for s in at.selectbox if s.label == "View")
    assert view.value == "face_frontal"  # suggested from the measured (near-zero) yaw
    view.set_value("face_oblique_left")
    _run(at)
    assert "No baseline of this view yet" in _texts(at)  # graded again for the new view
    assert next(s for s in at.selectbox if s.label == "View").value == "face_oblique_left"
    before = _count(Photo)
    next(b for b in at.button if b.label == "Retake (discard)").click()
    _run(at)
    assert "Discarded side.jpg" in _texts(at)
    assert not [b for b in at.button if b.label == "Save photo"]
    assert _count(Photo) == before


def test_saving_a_new_baseline_regrades_the_other_uploads_of_that_view(
    app: OpenPage, seeded_clinic: dict[str, int]
) -> None:
    at = app(
        "views/capture_photos.py",
        series_id=seeded_clinic["series_id"],
        capture_session_id=seeded_clinic["session1_id"],
    )
    at.file_uploader[0].set_value(
        [
            ("one.jpg", astronaut_jpeg(shift_px=5), "image/jpeg"),
            ("two.jpg", astronaut_jpeg(shift_px=7), "image/jpeg"),
        ]
    )
    _run(at)
    for _ in range(2):  # move both to a view with no baseline yet (one change per run)
        view = next(s for s in at.selectbox if s.label == "View" and s.value == "face_frontal")
        view.set_value("face_lateral_right")
        _run(at)
    assert _texts(at).count("No baseline of this view yet") == 2
    assert not [b for b in at.button if b.label.startswith("Save all")], "only one new baseline"
    next(b for b in at.button if b.label == "Save photo").click()
    _run(at)
    assert "Saved one.jpg as Face · lateral, patient's right" in _texts(at)
    assert "No baseline of this view yet" not in _texts(at)  # two.jpg now checked against one.jpg
    assert any(
        label in _texts(at) for label in ("Comparable", "Check before comparing", "Not comparable")
    )


def test_capture_without_photo_consent_blocks_saving(
    app: OpenPage, seeded_clinic: dict[str, int]
) -> None:
    at = app("views/capture_photos.py", series_id=seeded_clinic["series_no_consent_id"])
    assert "has not consented to clinical photography" in _texts(at)
    at.file_uploader[0].set_value(("p2.jpg", astronaut_jpeg(), "image/jpeg"))
    _run(at)
    next(b for b in at.button if b.label == "Save photo").click()
    _run(at)
    errors = [str(e.value) for e in at.error]
    assert any(e.startswith("Photo consent:") for e in errors), errors
    with db.session_scope() as s:
        from analysis.store.models import Series, Session

        n = s.scalar(
            select(func.count(Photo.id))
            .join(Session)
            .join(Series)
            .where(Series.id == seeded_clinic["series_no_consent_id"])
        )
    assert n == 0
    assert [b for b in at.button if b.label == "Save photo"], "the upload is kept for later"


def test_one_bad_file_in_a_batch_is_listed_and_the_others_survive(
    app: OpenPage, seeded_clinic: dict[str, int]
) -> None:
    at = app("views/capture_photos.py", series_id=seeded_clinic["series_id"])
    pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"
    at.file_uploader[0].set_value(
        [("scan.jpg", pdf, "image/jpeg"), ("good.jpg", astronaut_jpeg(shift_px=2), "image/jpeg")]
    )
    _run(at)
    errors = [str(e.value) for e in at.error]
    assert any("scan.jpg" in e and "PDF" in e for e in errors), errors
    assert len([b for b in at.button if b.label == "Save photo"]) == 1
    assert "good.jpg" in _texts(at)
    assert [p.text for p in at.get("progress")] == ["Analysed 2 photo(s)"]


def test_a_batch_of_comparable_photos_saves_in_one_click(
    app: OpenPage, seeded_clinic: dict[str, int]
) -> None:
    at = app(
        "views/capture_photos.py",
        series_id=seeded_clinic["series_id"],
        capture_session_id=seeded_clinic["session2_id"],
    )
    before = _count(Photo)
    at.file_uploader[0].set_value(
        [
            ("a.jpg", astronaut_jpeg(shift_px=1), "image/jpeg"),
            ("b.jpg", astronaut_jpeg(shift_px=3), "image/jpeg"),
        ]
    )
    _run(at)
    passing = [b for b in at.button if b.label.startswith("Save all")]
    if not passing:
        pytest.skip("the test photos did not both pass here; nothing to batch-save")
    assert passing[0].label == "Save all 2 comparable photos"
    passing[0].click()
    _run(at)
    assert "Saved 2 photo(s): a.jpg, b.jpg." in _texts(at)
    assert _count(Photo) == before + 2


def _visit(app: OpenPage, seeded_clinic: dict[str, int]) -> AppTest:
    at = app("views/record_visit.py", series_id=seeded_clinic["series_id"])
    at.selectbox(key="visit_session_id").set_value(seeded_clinic["session2_id"])
    return _run(at)


def test_record_visit_names_the_bad_field_and_keeps_what_was_typed(
    app: OpenPage, seeded_clinic: dict[str, int]
) -> None:
    at = _visit(app, seeded_clinic)
    before = _count(Treatment)
    at.text_input(key="tx_product").input("Booster HA")
    at.date_input(key="tx_expiry").set_value(date.today() + timedelta(days=300))
    at.number_input(key="tx_volume").set_value(2.0)
    at.multiselect(key="tx_sites_face").set_value(["malar_left", "malar_right"])
    next(b for b in at.button if b.label == "Save treatment").click()
    _run(at)
    errors = [str(e.value) for e in at.error]
    assert any("Lot number" in e and "required" in e for e in errors), errors
    assert at.text_input(key="tx_product").value == "Booster HA"
    assert at.number_input(key="tx_volume").value == 2.0
    assert at.multiselect(key="tx_sites_face").value == ["malar_left", "malar_right"]
    assert _count(Treatment) == before
    at.text_input(key="tx_lot").input("L2-2026")
    next(b for b in at.button if b.label == "Save treatment").click()
    _run(at)
    assert "Treatment saved: Booster HA, lot L2-2026." in _texts(at)
    assert _count(Treatment) == before + 1
    with db.session_scope() as s:
        row = s.scalars(select(Treatment).order_by(Treatment.id.desc())).first()
        assert row is not None
        assert row.sites == ["malar_left", "malar_right"] and row.volume_ml == 2.0
        assert row is not None
        assert row.operator_id == seeded_clinic["clinician_user_id"]  # defaults to the signed-in


def test_expired_lot_asks_for_a_reason_then_records_it(
    app: OpenPage, seeded_clinic: dict[str, int]
) -> None:
    at = _visit(app, seeded_clinic)
    at.text_input(key="tx_product").input("Old booster")
    at.text_input(key="tx_lot").input("EXP-1")
    at.date_input(key="tx_expiry").set_value(date(2020, 1, 31))
    at.number_input(key="tx_volume").set_value(1.0)
    next(b for b in at.button if b.label == "Save treatment").click()
    _run(at)
    assert any("Expiry date" in str(e.value) and "expired" in str(e.value) for e in at.error)
    at.text_input(key="tx_override").input("only lot in stock, patient informed")
    next(b for b in at.button if b.label == "Save treatment").click()
    _run(at)
    assert "Treatment saved: Old booster" in _texts(at)
    with db.session_scope() as s:
        row = s.scalars(select(Treatment).order_by(Treatment.id.desc())).first()
        assert row is not None
        assert row.expired_at_use and row.override_reason.startswith("only lot")


def test_red_flag_reaction_escalates_and_needs_an_escalation_note(
    app: OpenPage, seeded_clinic: dict[str, int]
) -> None:
    at = _visit(app, seeded_clinic)
    at.radio(key="rx_kind").set_value("expected")
    at.selectbox(key="rx_term").set_value("blanching")
    _run(at)
    assert any("Red flag: blanching" in str(e.value) for e in at.error)
    at.button(key="rx_save").click()
    _run(at)
    assert any(str(e.value).startswith("**Escalation**") for e in at.error)
    at.text_area(key="rx_escalation").input("Hyaluronidase given, director called 10:42")
    at.button(key="rx_save").click()
    _run(at)
    assert "Reaction saved: blanching." in _texts(at)
    with db.session_scope() as s:
        row = s.scalars(select(Reaction).order_by(Reaction.id.desc())).first()
        assert row is not None
        assert row.red_flag and row.kind == "adverse"


def test_endpoint_out_of_range_names_the_endpoint(
    app: OpenPage, seeded_clinic: dict[str, int]
) -> None:
    at = _visit(app, seeded_clinic)
    at.number_input(key="ep_satisfaction").set_value(12.0)
    at.selectbox(key="ep_photo_score_7").set_value(3)
    next(b for b in at.button if b.label == "Save measurements").click()
    _run(at)
    assert any("Satisfaction" in str(e.value) and "above 10" in str(e.value) for e in at.error)
    assert at.selectbox(key="ep_photo_score_7").value == 3
    at.number_input(key="ep_satisfaction").set_value(8.0)
    next(b for b in at.button if b.label == "Save measurements").click()
    _run(at)
    assert "2 measurement(s) saved." in _texts(at)


def test_confounder_end_before_start_is_named_then_saved(
    app: OpenPage, seeded_clinic: dict[str, int]
) -> None:
    at = _visit(app, seeded_clinic)
    at.selectbox(key="cf_kind").set_value("hair_dye")
    at.date_input(key="cf_started").set_value(date.today() - timedelta(days=3))
    at.date_input(key="cf_ended").set_value(date.today() - timedelta(days=10))
    at.text_input(key="cf_details").input("box dye, dark brown")
    next(b for b in at.button if b.label == "Save confounder").click()
    _run(at)
    assert any("End date" in str(e.value) and "before the start" in str(e.value) for e in at.error)
    assert at.text_input(key="cf_details").value == "box dye, dark brown"
    at.date_input(key="cf_ended").set_value(None)
    next(b for b in at.button if b.label == "Save confounder").click()
    _run(at)
    assert "Confounder saved: hair dye." in _texts(at)


def test_series_review_opens_an_aligned_comparison_and_labels_bad_pairs(
    app: OpenPage, seeded_clinic: dict[str, int]
) -> None:
    at = app("views/series_review.py", series_id=seeded_clinic["series_id"])
    assert "P-0001" in _texts(at)
    assert len(at.get("plotly_chart")) == 1  # the timeline; other tabs run only when opened
    assert len(at.get("image")) >= 3  # the photo grid (default tab)
    at.session_state["review_tab"] = "Endpoints"
    _run(at)
    assert len(at.get("plotly_chart")) >= 2  # timeline + endpoint chart
    at.session_state["review_tab"] = "Compare"
    _run(at)
    at.selectbox(key="review_b").set_value(seeded_clinic["photo3_id"])  # the far too dark one
    _run(at)
    captions = _image_captions(at)
    assert any("Session 1 → Session 3" in c and "NOT COMPARABLE" in c for c in captions), captions
    assert any("Not comparable" in str(e.value) for e in at.error)
    assert any("Between these sessions: retinoid" in str(w.value) for w in at.warning)
    at.selectbox(key="review_b").set_value(seeded_clinic["photo2_id"])
    at.segmented_control(key="review_mode").set_value("Overlay")
    _run(at)
    captions = _image_captions(at)
    assert any(
        "Session 1 → Session 2" in c and "aligned on eye and nose landmarks" in c for c in captions
    ), captions
    assert at.slider(key="review_alpha").value == 0.5


def test_series_report_is_audited_before_download(
    app: OpenPage, seeded_clinic: dict[str, int]
) -> None:
    at = app("views/series_review.py", series_id=seeded_clinic["series_id"], review_tab="Report")
    before = _count(AuditEvent, action="report.export")
    assert not at.get("download_button")
    next(b for b in at.button if b.label == "Prepare PDF progress report").click()
    _run(at)
    assert _count(AuditEvent, action="report.export") == before + 1
    assert at.get("download_button")


def test_every_thumbnail_view_is_audited_and_withdrawal_hides_photos_on_the_next_rerun(
    app: OpenPage, seeded_clinic: dict[str, int]
) -> None:
    from analysis.services import records

    clinician = Actor(
        user_id=seeded_clinic["clinician_user_id"], email="clinician@demo.candor", role="clinician"
    )
    at = app("views/series_review.py", series_id=seeded_clinic["series_id"])
    shown = len(at.get("image"))
    assert shown >= 3
    before = _count(AuditEvent, action="photo.thumbnail")
    _run(at)  # a rerun shows the photos again: each view is audited again (nothing cached)
    assert _count(AuditEvent, action="photo.thumbnail") == before + shown
    with db.session_scope() as s:
        patient_id = s.get_one(Photo, seeded_clinic["photo1_id"]).session.series.patient_id
        records.withdraw_consent(s, clinician, patient_id=patient_id, scope="clinical_record")
    try:
        _run(at)
        assert len(at.get("image")) == 0
        assert any(
            "consent to clinical photography is not active" in str(w.value) for w in at.warning
        )
    finally:
        with db.session_scope() as s:
            records.give_consent(s, clinician, patient_id=patient_id, scope="clinical_record")


def test_a_comparison_writes_one_compare_event_not_two_views(
    app: OpenPage, seeded_clinic: dict[str, int]
) -> None:
    at = app("views/series_review.py", series_id=seeded_clinic["series_id"], review_tab="Compare")
    views, compares = (
        _count(AuditEvent, action="photo.view"),
        _count(AuditEvent, action="photo.compare"),
    )
    at.selectbox(key="review_b").set_value(seeded_clinic["photo2_id"])
    _run(at)
    assert _count(AuditEvent, action="photo.compare") == compares + 1
    assert _count(AuditEvent, action="photo.view") == views


def test_an_upload_that_got_no_turn_says_so_and_is_analysed_again_on_request(
    app: OpenPage, seeded_clinic: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    from analysis.photos import worker

    monkeypatch.setenv("CANDOR_PHOTO_WORKERS", "1")
    monkeypatch.setenv("CANDOR_PHOTO_QUEUE_WAIT_S", "0.2")
    at = app("views/capture_photos.py", series_id=seeded_clinic["series_id"])
    turns = worker._turns(1)
    assert turns.acquire(timeout=30)  # another upload holds this server's only turn
    try:
        at.file_uploader[0].set_value(("visit.jpg", astronaut_jpeg(shift_px=4), "image/jpeg"))
        _run(at)
    finally:
        turns.release()
    errors = [str(e.value) for e in at.error]
    assert any("visit.jpg" in e and "analysing other photos" in e for e in errors), errors
    assert not [b for b in at.button if b.label == "Save photo"]
    [again] = [b for b in at.button if b.label == "Analyse again"]
    again.click()
    _run(at)
    assert not any("analysing other photos" in str(e.value) for e in at.error)
    assert [b for b in at.button if b.label == "Save photo"], "analysed on the second try"
