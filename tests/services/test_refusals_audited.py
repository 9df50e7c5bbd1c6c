"""Every refused service call leaves one ``denied`` audit event that survives the caller's rollback
(issue #12: refused series_choices, capture_context, give_consent, list_users and add_session left
none), on SQLite and PostgreSQL, including when the caller's transaction has already written."""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session as DbSession

from analysis.services import capture, records
from analysis.services import users as user_admin
from analysis.store import anchor, audit, db
from analysis.store.access import Actor, PermissionDenied
from analysis.store.models import AuditEvent, Patient
from tests.conftest import PROJECT_ROOT
from tests.support.photo_clinic import CLINICIAN, Clinic, make_clinic

CONSULT = Actor(user_id=None, email="consult@refusal.test", role="consult_staff")
ADMIN = Actor(user_id=None, email="admin@refusal.test", role="admin")


@pytest.fixture
def clinic(db_url: str, tmp_path: Path) -> Iterator[Clinic]:
    c = make_clinic(db_url, tmp_path / "images")
    yield c
    c.engine.dispose()


#: the refusals the issue measured with 0 events: (name, actor, call, permission, where)
CALLS: list[tuple[str, Actor, Callable[[DbSession, Actor, Clinic], Any], str, dict[str, Any]]] = [
    ("series_choices", CONSULT, lambda s, a, c: capture.series_choices(s, a), "series.read", {}),
    (
        "capture_context",
        CONSULT,
        lambda s, a, c: capture.capture_context(s, a, series_id=c.series_id),
        "series.read",
        {"object_type": "series"},
    ),
    (
        "give_consent",
        ADMIN,
        lambda s, a, c: records.give_consent(s, a, patient_id=c.patient_id, scope="teaching"),
        "consent.write",
        {"patient": True},
    ),
    ("list_users", CONSULT, lambda s, a, c: user_admin.list_users(s, a), "users.manage", {}),
    (
        "add_session",
        CONSULT,
        lambda s, a, c: records.add_session(
            s, a, series_id=c.series_id, performed_on=date(2026, 3, 1)
        ),
        "visit.record",
        {"object_type": "series"},
    ),
]


def _newest_id(clinic: Clinic) -> int:
    with db.session_scope(clinic.engine) as session:
        return int(session.scalar(select(func.max(AuditEvent.id))) or 0)


def _since(clinic: Clinic, start: int) -> list[AuditEvent]:
    with db.session_scope(clinic.engine) as session:
        return list(
            session.scalars(select(AuditEvent).where(AuditEvent.id > start).order_by(AuditEvent.id))
        )


@pytest.mark.parametrize("name", [c[0] for c in CALLS])
def test_each_refused_call_leaves_one_denied_event(clinic: Clinic, name: str) -> None:
    _name, actor, call, permission, where = next(c for c in CALLS if c[0] == name)
    start = _newest_id(clinic)
    with pytest.raises(PermissionDenied):
        with db.session_scope(clinic.engine) as session:
            call(session, actor, clinic)
    (event,) = _since(clinic, start)
    assert (event.actor_email, event.actor_role, event.action, event.outcome) == (
        actor.email,
        actor.role,
        permission,
        "denied",
    )
    assert "may not" in event.details["reason"]
    if where.get("patient"):
        assert event.patient_id == clinic.patient_id
    if "object_type" in where:
        assert (event.object_type, event.object_id) == (where["object_type"], str(clinic.series_id))
    with db.session_scope(clinic.engine) as session:
        assert audit.verify_chain(session) == [] and anchor.verify_anchor(session) == []


def test_a_refusal_after_writes_in_the_same_transaction_survives_its_rollback(
    clinic: Clinic,
) -> None:
    """The caller's transaction has written a patient and an audit event (on SQLite it holds the
    write lock; on both the new chain head is uncommitted): the denial is written once that
    transaction ends, and the rollback still undoes the caller's own work."""
    start = _newest_id(clinic)
    with pytest.raises(PermissionDenied):
        with db.session_scope(clinic.engine) as session:
            records.create_patient(
                session, CLINICIAN, code="P-ROLLED-BACK", birth_year=1990, sex="male", fitzpatrick=2
            )
            records.add_session(
                session, CONSULT, series_id=clinic.series_id, performed_on=date(2026, 3, 2)
            )
    events = _since(clinic, start)
    assert [(e.actor_role, e.action, e.outcome) for e in events] == [
        ("consult_staff", "visit.record", "denied")
    ]
    with db.session_scope(clinic.engine) as session:
        assert session.scalar(select(Patient.id).where(Patient.code == "P-ROLLED-BACK")) is None
        assert audit.verify_chain(session) == [] and anchor.verify_anchor(session) == []


def test_a_refusal_the_caller_catches_is_recorded_once_beside_its_commit(clinic: Clinic) -> None:
    start = _newest_id(clinic)
    with db.session_scope(clinic.engine) as session:
        records.create_patient(
            session, CLINICIAN, code="P-KEPT", birth_year=1991, sex="female", fitzpatrick=4
        )
        with pytest.raises(PermissionDenied):
            user_admin.list_users(session, CONSULT)
    events = _since(clinic, start)
    assert sorted((e.action, e.outcome) for e in events) == [
        ("patient.create", "success"),
        ("users.manage", "denied"),
    ]
    with db.session_scope(clinic.engine) as session:
        assert session.scalar(select(Patient.id).where(Patient.code == "P-KEPT")) is not None
        assert audit.verify_chain(session) == [] and anchor.verify_anchor(session) == []


def test_a_refusal_in_a_fresh_transaction_is_committed_at_once(clinic: Clinic) -> None:
    start = _newest_id(clinic)
    with db.session_scope(clinic.engine) as session:
        with pytest.raises(PermissionDenied):
            capture.series_choices(session, CONSULT)
        # still inside the caller's transaction: another connection already sees the event
        assert [e.action for e in _since(clinic, start)] == ["series.read"]


def test_every_require_in_the_analysis_layer_passes_its_session() -> None:
    """A service function that calls ``require`` without the session would refuse silently."""
    missing = []
    for path in sorted((PROJECT_ROOT / "analysis").rglob("*.py")):
        if path.name == "access.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "require":
                passed = len(node.args) >= 3 or any(k.arg == "session" for k in node.keywords)
                if not passed:
                    missing.append(f"{path.relative_to(PROJECT_ROOT)}:{node.lineno}")
    assert missing == []
