"""The whole role x action matrix, enforced by the service functions themselves.

``EXPECTED`` is the specification written out by hand (who may do what); it must equal
``access.PERMISSIONS``. Then every action in ``PERMISSIONS`` is exercised for every role through
the real service function that performs it (``SERVICES``): allowed roles succeed, the others get
``PermissionDenied``, nothing is written and exactly one ``denied`` audit event is. An action
added to ``PERMISSIONS`` without a service here fails :func:`test_every_action_is_exercised`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session as DbSession

from analysis.services import audit_log, protocol_setup, rating, records
from analysis.services import users as user_admin
from analysis.services.frames import load_frames
from analysis.services.photo_access import audited_export, photo_bytes
from analysis.services.safety import trace_lot
from analysis.services.series import list_patients, series_overview
from analysis.store import db
from analysis.store.access import PERMISSIONS, SYSTEM, Actor, PermissionDenied, require
from analysis.store.models import ROLES, AuditEvent, Patient, User
from tests.support.photo_clinic import Clinic, astronaut_jpeg, make_clinic

CLINICAL = {"clinician", "medical_director"}
EXPECTED: dict[str, set[str]] = {
    # identifiable clinical record: clinicians and the medical director only
    "patient.read": CLINICAL,
    "patient.write": CLINICAL,
    "consent.write": CLINICAL,
    "series.read": CLINICAL,
    "series.write": CLINICAL,
    "photo.view": CLINICAL,
    "photo.capture": CLINICAL,
    "visit.record": CLINICAL,
    "report.export": CLINICAL,
    # clinic-wide analysis and product safety: the medical director
    "cohort.read": {"medical_director"},
    "cohort.export": {"medical_director"},
    "lot.trace": {"medical_director"},
    # protocols and their photo standard (comparability tolerances): the medical director
    "protocol.write": {"medical_director"},
    # consult timelines (consented photos, aggregates): everyone who sees patients
    "timeline.read": {"consult_staff", "medical_director", "clinician"},
    "timeline.export": {"consult_staff", "medical_director", "clinician"},
    # blinded rating studies: the director runs them, clinicians and directors rate
    "rating.manage": {"medical_director"},
    "rating.rate": CLINICAL,
    # oversight and administration
    "audit.read": {"admin", "medical_director"},
    "audit.export": {"admin", "medical_director"},
    "users.manage": {"admin"},
    "demo.seed": {"admin"},
}


@dataclass
class World:
    clinic: Clinic
    spare_user_id: int
    counter: itertools.count[int]  # unique codes for repeated writes


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root: Path = tmp_path_factory.mktemp("matrix")
    url = f"sqlite:///{root / 'candor.sqlite3'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    engine.dispose()
    clinic = make_clinic(
        url, root / "images", scopes=("clinical_record", "consult_display", "teaching", "marketing")
    )
    with db.session_scope(clinic.engine) as session:
        spare = user_admin.create_user(
            session,
            SYSTEM,
            email="spare@test",
            display_name="Spare",
            role="clinician",
            password=None,
        )
        records.get_or_create_lot(
            session, product="Booster", lot_number="LOT-1", expiry_on=date(2030, 1, 1)
        )
    yield World(clinic, spare.id, itertools.count())
    clinic.engine.dispose()


def _photo_input() -> records.PhotoInput:
    return records.PhotoInput(
        data=astronaut_jpeg(),
        original_sha256="2" * 64,
        media_type="image/jpeg",
        width_px=512,
        height_px=512,
        view="face_frontal",
        verdict="pass",
        measurements={},
        checks=[],
    )


def _days(w: World) -> timedelta:
    return timedelta(days=next(w.counter))


Service = Callable[[DbSession, Actor, World], Any]


def c(w: World) -> Clinic:
    return w.clinic


#: action -> a real service call that performs it.
SERVICES: dict[str, Service] = {
    "patient.read": lambda s, a, w: list_patients(s, a),
    "patient.write": lambda s, a, w: records.create_patient(
        s, a, code=f"M-{next(w.counter)}", birth_year=1990, sex="male", fitzpatrick=2
    ),
    "consent.write": lambda s, a, w: records.give_consent(
        s, a, patient_id=c(w).patient_id, scope="teaching"
    ),
    "series.read": lambda s, a, w: series_overview(s, a, c(w).series_id),
    "series.write": lambda s, a, w: records.set_series_status(
        s, a, series_id=c(w).series_id, status="active"
    ),
    "photo.view": lambda s, a, w: photo_bytes(s, a, photo_id=c(w).photo_id, store=c(w).store),
    "photo.capture": lambda s, a, w: records.store_photo(
        s, a, c(w).store, session_id=c(w).session_id, photo=_photo_input()
    ),
    "visit.record": lambda s, a, w: records.add_session(
        s, a, series_id=c(w).series_id, performed_on=date(2026, 6, 1) + _days(w)
    ),
    "report.export": lambda s, a, w: audited_export(
        s,
        a,
        action="report.export",
        patient_id=c(w).patient_id,
        object_type="series",
        object_id=c(w).series_id,
        consent_scope="clinical_record",
    ),
    "cohort.read": lambda s, a, w: load_frames(s, a, purpose="cohort.read"),
    "cohort.export": lambda s, a, w: audited_export(
        s, a, action="cohort.export", object_type="protocol", object_id=1
    ),
    "lot.trace": lambda s, a, w: trace_lot(s, a, lot_number="LOT-1"),
    "protocol.write": lambda s, a, w: protocol_setup.save_protocol(
        s,
        a,
        protocol_setup.ProtocolForm(
            name=f"Protocol {next(w.counter)}",
            modality="PRP",
            target_area="scalp",
            planned_sessions=4,
            interval_days=28,
            required_views=("scalp_vertex",),
        ),
    ),
    "timeline.read": lambda s, a, w: (
        load_frames(s, a, purpose="timeline.read"),
        photo_bytes(
            s,
            a,
            photo_id=c(w).photo_id,
            purpose="consult_display",
            thumbnail=True,
            store=c(w).store,
        ),
    ),
    "timeline.export": lambda s, a, w: audited_export(
        s,
        a,
        action="timeline.export",
        patient_id=c(w).patient_id,
        object_type="series",
        object_id=c(w).series_id,
        consent_scope="consult_display",
    ),
    "rating.manage": lambda s, a, w: rating.setup_options(s, a),
    "rating.rate": lambda s, a, w: rating.list_studies(s, a),
    "audit.read": lambda s, a, w: audit_log.query_events(s, a, limit=5),
    "audit.export": lambda s, a, w: audit_log.export_csv(s, a, limit=5),
    "users.manage": lambda s, a, w: (
        user_admin.set_role(s, a, user_id=w.spare_user_id, role="clinician"),
        user_admin.list_users(s, a),
    ),
}
#: actions with no per-user service function, checked through ``require`` itself.
REQUIRE_ONLY = {"demo.seed": "the demo seeder runs from the command line as SYSTEM"}


def test_the_permission_table_is_the_specification() -> None:
    assert {action: set(roles) for action, roles in PERMISSIONS.items()} == EXPECTED


def test_every_action_is_exercised() -> None:
    assert set(SERVICES) | set(REQUIRE_ONLY) == set(PERMISSIONS)
    assert not set(SERVICES) & set(REQUIRE_ONLY)


def _row_counts(world: World) -> dict[str, int]:
    with db.session_scope(world.clinic.engine) as session:
        return {
            m.__tablename__: session.scalars(select(func.count()).select_from(m)).one()
            for m in (Patient, User)
        }


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", sorted(PERMISSIONS))
def test_role_may_or_may_not(world: World, action: str, role: str) -> None:
    actor = Actor(user_id=None, email=f"{role}@matrix.test", role=role)
    permitted = role in EXPECTED[action]
    if action in REQUIRE_ONLY:
        if permitted:
            require(actor, action)
        else:
            with pytest.raises(PermissionDenied):
                require(actor, action)
        return
    before = _row_counts(world)
    if permitted:
        with db.session_scope(world.clinic.engine) as session:
            SERVICES[action](session, actor, world)
    else:
        with db.session_scope(world.clinic.engine) as session:
            start = session.scalar(select(func.max(AuditEvent.id)))
        with pytest.raises(PermissionDenied):
            with db.session_scope(world.clinic.engine) as session:
                SERVICES[action](session, actor, world)
        assert _row_counts(world) == before  # a refused write leaves no trace but the audit
        with db.session_scope(world.clinic.engine) as session:  # ... which has exactly one event
            got = [
                (e.actor_email, e.action, e.outcome)
                for e in session.scalars(select(AuditEvent).where(AuditEvent.id > start))
            ]
        assert got == [(actor.email, action, "denied")]


def test_denials_at_the_photo_and_audit_doors_are_themselves_audited(world: World) -> None:
    consult = Actor(user_id=None, email="consult@matrix.test", role="consult_staff")
    clinician = Actor(user_id=None, email="clinician@matrix.test", role="clinician")
    with db.session_scope(world.clinic.engine) as session:
        start = session.scalar(select(func.max(AuditEvent.id)))
    for actor, action in (
        (consult, "photo.view"),
        (clinician, "audit.read"),
        (clinician, "audit.export"),
    ):
        with pytest.raises(PermissionDenied):
            with db.session_scope(world.clinic.engine) as session:
                SERVICES[action](session, actor, world)
    with db.session_scope(world.clinic.engine) as session:
        got = [
            (e.actor_role, e.action, e.outcome)
            for e in session.scalars(
                select(AuditEvent).where(AuditEvent.id > start).order_by(AuditEvent.id)
            )
        ]
    assert got == [
        ("consult_staff", "photo.view", "denied"),
        ("clinician", "audit.read", "denied"),
        ("clinician", "audit.export", "denied"),
    ]
