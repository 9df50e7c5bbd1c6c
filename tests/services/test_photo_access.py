"""Photo reads and exports: role, current consent, exactly one audit event, fail closed.

Runs on SQLite and PostgreSQL (``db_url``). The photo is ``skimage.data.astronaut()`` encoded as a
JPEG, stored through ``records.store_photo`` like any upload.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from analysis.services import records
from analysis.services.photo_access import (
    ConsentMissing,
    PhotoNotFound,
    audited_export,
    photo_bytes,
    photo_pair_bytes,
    visible_photo_ids,
)
from analysis.store import db
from analysis.store.access import PermissionDenied
from analysis.store.audit import AuditWriteError
from analysis.store.images import BlobCorruptError, BlobMissingError
from tests.support.photo_clinic import (
    ADMIN,
    CLINICIAN,
    CONSULT,
    DIRECTOR,
    YESTERDAY,
    Clinic,
    break_audit_inserts,
    count_events,
    events,
    make_clinic,
)


@pytest.fixture
def clinic(db_url: str, tmp_path: Path) -> Iterator[Clinic]:
    c = make_clinic(db_url, tmp_path / "images")
    yield c
    c.engine.dispose()


def test_clinical_view_returns_the_stored_bytes_and_writes_one_event(clinic: Clinic) -> None:
    before = count_events(clinic.engine)
    with db.session_scope(clinic.engine) as session:
        got = photo_bytes(session, CLINICIAN, photo_id=clinic.photo_id, store=clinic.store)
    assert got == clinic.photo
    assert count_events(clinic.engine) == before + 1
    (event,) = events(clinic.engine, "photo.view")
    assert (
        event.actor_email,
        event.outcome,
        event.patient_id,
        event.object_type,
        event.object_id,
    ) == ("clin@test", "success", clinic.patient_id, "photo", str(clinic.photo_id))
    assert event.details["purpose"] == "clinical_record"
    assert event.occurred_at.tzinfo is not None and event.occurred_at.utcoffset() == timedelta(0)


def test_thumbnail_is_a_small_jpeg_and_audited_as_a_thumbnail(clinic: Clinic) -> None:
    with db.session_scope(clinic.engine) as session:
        thumb = photo_bytes(
            session,
            DIRECTOR,
            photo_id=clinic.photo_id,
            thumbnail=True,
            max_side=128,
            store=clinic.store,
        )
    with Image.open(io.BytesIO(thumb)) as image:
        assert image.format == "JPEG" and max(image.size) == 128
        small = np.asarray(image.convert("L"), dtype=float)
    with Image.open(io.BytesIO(clinic.photo)) as image:  # same picture, just smaller
        reference = np.asarray(image.convert("L").resize(small.shape[::-1]), dtype=float)
    assert np.abs(small - reference).mean() < 12
    assert [e.outcome for e in events(clinic.engine, "photo.thumbnail")] == ["success"]
    assert events(clinic.engine, "photo.view") == []


def test_consult_staff_cannot_open_the_identifiable_record_and_the_denial_is_kept(
    clinic: Clinic,
) -> None:
    before = count_events(clinic.engine)
    with pytest.raises(PermissionDenied, match="consult staff"):
        with db.session_scope(clinic.engine) as session:  # rolls back on the error...
            photo_bytes(session, CONSULT, photo_id=clinic.photo_id, store=clinic.store)
    (event,) = events(clinic.engine, "photo.view")  # ...but the denial was committed
    assert event.outcome == "denied" and event.patient_id == clinic.patient_id
    assert count_events(clinic.engine) == before + 1


def test_consult_display_needs_the_consult_scope_read_fresh_each_call(clinic: Clinic) -> None:
    with pytest.raises(ConsentMissing, match="consult display"):
        with db.session_scope(clinic.engine) as session:
            photo_bytes(
                session,
                CONSULT,
                photo_id=clinic.photo_id,
                purpose="consult_display",
                store=clinic.store,
            )
    with db.session_scope(clinic.engine) as session:
        assert (
            visible_photo_ids(
                session, CONSULT, patient_id=clinic.patient_id, purpose="consult_display"
            )
            == []
        )
        records.give_consent(
            session, CLINICIAN, patient_id=clinic.patient_id, scope="consult_display", at=YESTERDAY
        )
    with db.session_scope(clinic.engine) as session:
        assert visible_photo_ids(
            session, CONSULT, patient_id=clinic.patient_id, purpose="consult_display"
        ) == [clinic.photo_id]
        assert photo_bytes(
            session,
            CONSULT,
            photo_id=clinic.photo_id,
            purpose="consult_display",
            thumbnail=True,
            store=clinic.store,
        )
    with db.session_scope(clinic.engine) as session:
        records.withdraw_consent(
            session, DIRECTOR, patient_id=clinic.patient_id, scope="consult_display"
        )
    with pytest.raises(ConsentMissing):  # the very next call, no cache to expire
        with db.session_scope(clinic.engine) as session:
            photo_bytes(
                session,
                CONSULT,
                photo_id=clinic.photo_id,
                purpose="consult_display",
                thumbnail=True,
                store=clinic.store,
            )
    with db.session_scope(clinic.engine) as session:
        assert (
            visible_photo_ids(
                session, CONSULT, patient_id=clinic.patient_id, purpose="consult_display"
            )
            == []
        )
    outcomes = [
        (e.action, e.outcome)
        for e in events(clinic.engine)
        if e.action.startswith(("photo.view", "photo.thumbnail", "consent.withdraw"))
    ]
    assert outcomes == [
        ("photo.view", "denied"),
        ("photo.thumbnail", "success"),
        ("consent.withdraw", "success"),
        ("photo.thumbnail", "denied"),
    ]


def test_teaching_and_marketing_need_their_own_scopes(clinic: Clinic) -> None:
    for purpose in ("teaching", "marketing"):
        with pytest.raises(ConsentMissing):
            with db.session_scope(clinic.engine) as session:
                photo_bytes(
                    session, DIRECTOR, photo_id=clinic.photo_id, purpose=purpose, store=clinic.store
                )
    with db.session_scope(clinic.engine) as session:
        records.give_consent(
            session, CLINICIAN, patient_id=clinic.patient_id, scope="teaching", at=YESTERDAY
        )
    with db.session_scope(clinic.engine) as session:
        assert (
            photo_bytes(
                session, DIRECTOR, photo_id=clinic.photo_id, purpose="teaching", store=clinic.store
            )
            == clinic.photo
        )
    with pytest.raises(ConsentMissing):
        with db.session_scope(clinic.engine) as session:
            photo_bytes(
                session, DIRECTOR, photo_id=clinic.photo_id, purpose="marketing", store=clinic.store
            )


def test_withdrawn_clinical_consent_hides_the_photo_from_clinicians_too(clinic: Clinic) -> None:
    with db.session_scope(clinic.engine) as session:
        records.withdraw_consent(
            session, CLINICIAN, patient_id=clinic.patient_id, scope="clinical_record"
        )
    with pytest.raises(ConsentMissing, match="clinical record"):
        with db.session_scope(clinic.engine) as session:
            photo_bytes(session, CLINICIAN, photo_id=clinic.photo_id, store=clinic.store)
    with db.session_scope(clinic.engine) as session:
        assert visible_photo_ids(session, CLINICIAN, patient_id=clinic.patient_id) == []


def test_unknown_photo_is_a_clear_error_and_audited(clinic: Clinic) -> None:
    with pytest.raises(PhotoNotFound, match="no photo with id 9999"):
        with db.session_scope(clinic.engine) as session:
            photo_bytes(session, CLINICIAN, photo_id=9999, store=clinic.store)
    assert [e.outcome for e in events(clinic.engine, "photo.view")] == ["failure"]
    with pytest.raises(ValueError, match="unknown purpose"):
        with db.session_scope(clinic.engine) as session:
            photo_bytes(session, CLINICIAN, photo_id=clinic.photo_id, purpose="selfie")


def test_audit_write_failure_means_no_bytes_and_no_export(clinic: Clinic) -> None:
    before = count_events(clinic.engine)
    break_audit_inserts(clinic.engine)
    for thumbnail in (False, True):
        got = None
        with pytest.raises(AuditWriteError):
            with db.session_scope(clinic.engine) as session:
                got = photo_bytes(
                    session,
                    CLINICIAN,
                    photo_id=clinic.photo_id,
                    thumbnail=thumbnail,
                    store=clinic.store,
                )
        assert got is None
    exported = []
    with pytest.raises(AuditWriteError):
        with db.session_scope(clinic.engine) as session:
            audited_export(
                session,
                CLINICIAN,
                action="report.export",
                patient_id=clinic.patient_id,
                object_type="series",
                object_id=clinic.series_id,
                details={"format": "pdf"},
            )
            exported.append(b"%PDF")  # never reached
    assert exported == [] and count_events(clinic.engine) == before


def test_audited_export_checks_role_and_consent_and_writes_one_event(clinic: Clinic) -> None:
    with db.session_scope(clinic.engine) as session:
        audited_export(
            session,
            CLINICIAN,
            action="report.export",
            patient_id=clinic.patient_id,
            object_type="series",
            object_id=clinic.series_id,
            details={"format": "pdf"},
            consent_scope="clinical_record",
        )
    with pytest.raises(PermissionDenied):
        with db.session_scope(clinic.engine) as session:
            audited_export(
                session,
                ADMIN,
                action="report.export",
                patient_id=clinic.patient_id,
                object_type="series",
                object_id=clinic.series_id,
            )
    with pytest.raises(ConsentMissing):
        with db.session_scope(clinic.engine) as session:
            audited_export(
                session,
                CONSULT,
                action="timeline.export",
                patient_id=clinic.patient_id,
                object_type="series",
                object_id=clinic.series_id,
                consent_scope="consult_display",
            )
    got = [
        (e.action, e.actor_role, e.outcome, e.patient_id)
        for e in events(clinic.engine)
        if e.action.endswith(".export")
    ]
    assert got == [
        ("report.export", "clinician", "success", clinic.patient_id),
        ("report.export", "admin", "denied", clinic.patient_id),
        ("timeline.export", "consult_staff", "denied", clinic.patient_id),
    ]


def test_a_comparison_is_one_event_and_follows_the_same_rules(clinic: Clinic) -> None:
    with db.session_scope(clinic.engine) as session:  # a second photo at a later visit
        visit = records.add_session(
            session, CLINICIAN, series_id=clinic.series_id, performed_on=date(2026, 2, 2)
        )
        flipped = io.BytesIO()
        Image.fromarray(skdata.astronaut()[:, ::-1]).save(flipped, format="JPEG")
        follow_up = records.store_photo(
            session,
            CLINICIAN,
            clinic.store,
            session_id=visit.id,
            photo=records.PhotoInput(
                data=flipped.getvalue(),
                original_sha256="1" * 64,
                media_type="image/jpeg",
                width_px=512,
                height_px=512,
                view="face_frontal",
                verdict="pass",
                measurements={},
                checks=[],
            ),
        ).id
    before = count_events(clinic.engine)
    with db.session_scope(clinic.engine) as session:
        base, later = photo_pair_bytes(
            session,
            CLINICIAN,
            baseline_id=clinic.photo_id,
            follow_up_id=follow_up,
            store=clinic.store,
        )
    assert base == clinic.photo and later == flipped.getvalue()
    assert count_events(clinic.engine) == before + 1
    (event,) = events(clinic.engine, "photo.compare")
    assert event.details["follow_up_id"] == follow_up and event.outcome == "success"
    with pytest.raises(PermissionDenied):
        with db.session_scope(clinic.engine) as session:
            photo_pair_bytes(
                session,
                ADMIN,
                baseline_id=clinic.photo_id,
                follow_up_id=follow_up,
                store=clinic.store,
            )
    assert [e.outcome for e in events(clinic.engine, "photo.compare")] == ["success", "denied"]


def test_a_missing_or_corrupt_image_is_one_failure_event_and_no_bytes(clinic: Clinic) -> None:
    path = clinic.store.path_for(clinic.store.names().pop())
    path.write_bytes(clinic.photo[:-1] + b"\0")  # bit rot
    with pytest.raises(BlobCorruptError):
        with db.session_scope(clinic.engine) as session:
            photo_bytes(session, CLINICIAN, photo_id=clinic.photo_id, store=clinic.store)
    path.unlink()
    with pytest.raises(BlobMissingError):
        with db.session_scope(clinic.engine) as session:
            photo_bytes(
                session, CLINICIAN, photo_id=clinic.photo_id, thumbnail=True, store=clinic.store
            )
    got = [
        (e.action, e.outcome, e.patient_id)
        for e in events(clinic.engine)
        if e.action.startswith("photo.") and e.action != "photo.store"
    ]
    assert got == [
        ("photo.view", "failure", clinic.patient_id),
        ("photo.thumbnail", "failure", clinic.patient_id),
    ]


def _second_photo(clinic: Clinic) -> int:
    """A second stored photo of the same patient (the astronaut shifted, another blob)."""
    out = io.BytesIO()
    Image.fromarray(np.roll(skdata.astronaut(), 9, axis=1)).save(out, format="JPEG", quality=90)
    with db.session_scope(clinic.engine) as session:
        row = records.store_photo(
            session,
            CLINICIAN,
            clinic.store,
            session_id=clinic.session_id,
            photo=records.PhotoInput(
                data=out.getvalue(),
                original_sha256="1" * 64,
                media_type="image/jpeg",
                width_px=512,
                height_px=512,
                view="face_oblique_left",
                verdict="pass",
                measurements={},
                checks=[],
            ),
        )
        return int(row.id)


def test_a_grid_of_thumbnails_is_one_transaction_with_one_event_per_photo(clinic: Clinic) -> None:
    from analysis.services.photo_access import photo_thumbnails

    second = _second_photo(clinic)
    with db.session_scope(clinic.engine) as session:
        got = photo_thumbnails(
            session,
            CLINICIAN,
            photo_ids=[clinic.photo_id, second, 999_999],
            store=clinic.store,
            max_side=64,
        )
    assert {k for k, v in got.items() if isinstance(v, bytes)} == {clinic.photo_id, second}
    assert isinstance(got[999_999], PhotoNotFound)
    for photo_id in (clinic.photo_id, second):
        with Image.open(io.BytesIO(got[photo_id])) as im:  # type: ignore[arg-type]
            assert max(im.size) == 64
    thumbs = events(clinic.engine, "photo.thumbnail")
    assert [(e.object_id, e.outcome) for e in thumbs] == [
        (str(clinic.photo_id), "success"),
        (str(second), "success"),
        ("999999", "failure"),
    ]
    assert {e.patient_id for e in thumbs[:2]} == {clinic.patient_id}


def test_a_grid_is_refused_whole_without_consent_and_a_bad_blob_fails_alone(clinic: Clinic) -> None:
    from analysis.services.photo_access import photo_thumbnails

    second = _second_photo(clinic)
    clinic.store.path_for(
        next(n for n in clinic.store.names() if clinic.store.get(n) == clinic.photo)
    ).unlink()
    with db.session_scope(clinic.engine) as session:
        got = photo_thumbnails(
            session, CLINICIAN, photo_ids=[clinic.photo_id, second], store=clinic.store
        )
    assert isinstance(got[clinic.photo_id], BlobMissingError) and isinstance(got[second], bytes)
    with db.session_scope(clinic.engine) as session:
        records.withdraw_consent(
            session, CLINICIAN, patient_id=clinic.patient_id, scope="clinical_record"
        )
    before = count_events(clinic.engine)
    with pytest.raises(ConsentMissing):
        with db.session_scope(clinic.engine) as session:
            photo_thumbnails(
                session, CLINICIAN, photo_ids=[clinic.photo_id, second], store=clinic.store
            )
    denied = events(clinic.engine, "photo.thumbnail")[-1]
    assert denied.outcome == "denied" and count_events(clinic.engine) == before + 1
    with pytest.raises(PermissionDenied):
        with db.session_scope(clinic.engine) as session:
            photo_thumbnails(session, ADMIN, photo_ids=[second], store=clinic.store)
