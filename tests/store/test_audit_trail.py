"""The audit trail: exactly one event per audited action, the log's own reads and exports audited,
filters, CSV export, tamper detection (edit, deletion, reordering) and concurrent writers."""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session as DbSession

from analysis.auth import accounts, sessions
from analysis.services import audit_log, records
from analysis.services import users as user_admin
from analysis.services.photo_access import audited_export, photo_bytes, photo_pair_bytes
from analysis.store import audit, db
from analysis.store.access import SYSTEM, Actor
from analysis.store.audit import AuditWriteError
from analysis.store.models import AuditEvent, User
from tests.support.audit_clinic import PASSWORD, all_events, make_writable, nurse_clinic
from tests.support.photo_clinic import (
    CLINICIAN,
    DIRECTOR,
    Clinic,
    break_audit_inserts,
)

ADMIN = Actor(user_id=None, email="admin@test", role="admin")


@pytest.fixture(scope="module")
def password_hash() -> str:
    return accounts.hash_password(PASSWORD)  # Argon2id is slow by design: hash once


@pytest.fixture
def clinic(db_url: str, tmp_path: Path, password_hash: str) -> Iterator[Clinic]:
    yield from nurse_clinic(db_url, tmp_path, password_hash)


def _nurse_id(session: DbSession) -> int:
    return session.scalars(select(User.id).where(User.email == "nurse@test")).one()


def _sign_out(session: DbSession, _c: Clinic) -> None:
    actor = accounts.authenticate(session, email="nurse@test", password=PASSWORD)
    assert actor is not None
    token = sessions.start(session, actor)
    session.commit()
    before = session.scalars(select(func.count()).select_from(AuditEvent)).one()
    sessions.end(session, token)
    session.flush()
    assert session.scalar(select(func.count()).select_from(AuditEvent)) == before + 1


#: (expected action, expected outcome, expects the patient id, the call as the acting user), run
#: in this order on one clinic (the deactivation comes after the nurse's sign-ins).
ACTIONS: list[tuple[str, str, bool, Callable[[DbSession, Clinic], Any]]] = [
    (
        "photo.view",
        "success",
        True,
        lambda s, c: photo_bytes(s, CLINICIAN, photo_id=c.photo_id, store=c.store),
    ),
    (
        "photo.thumbnail",
        "success",
        True,
        lambda s, c: photo_bytes(s, CLINICIAN, photo_id=c.photo_id, thumbnail=True, store=c.store),
    ),
    (
        "photo.compare",
        "success",
        True,
        lambda s, c: photo_pair_bytes(
            s, DIRECTOR, baseline_id=c.photo_id, follow_up_id=c.photo_id, store=c.store
        ),
    ),
    (
        "report.export",
        "success",
        True,
        lambda s, c: audited_export(
            s,
            CLINICIAN,
            action="report.export",
            patient_id=c.patient_id,
            object_type="series",
            object_id=c.series_id,
            details={"format": "pdf"},
            consent_scope="clinical_record",
        ),
    ),
    (
        "consent.give",
        "success",
        True,
        lambda s, c: records.give_consent(s, CLINICIAN, patient_id=c.patient_id, scope="teaching"),
    ),
    (
        "consent.withdraw",
        "success",
        True,
        lambda s, c: records.withdraw_consent(
            s, CLINICIAN, patient_id=c.patient_id, scope="consult_display"
        ),
    ),
    (
        "auth.sign_in",
        "success",
        False,
        lambda s, c: accounts.authenticate(s, email="nurse@test", password=PASSWORD),
    ),
    (
        "auth.sign_in",
        "failure",
        False,
        lambda s, c: accounts.authenticate(s, email="nurse@test", password="wrong"),
    ),
    (
        "user.role_change",
        "success",
        False,
        lambda s, c: user_admin.set_role(s, ADMIN, user_id=_nurse_id(s), role="medical_director"),
    ),
    (
        "user.deactivate",
        "success",
        False,
        lambda s, c: user_admin.deactivate_user(s, ADMIN, user_id=_nurse_id(s)),
    ),
    ("audit.read", "success", False, lambda s, c: audit_log.query_events(s, DIRECTOR)),
    ("audit.export", "success", False, lambda s, c: audit_log.export_csv(s, ADMIN)),
]


def test_each_audited_action_writes_exactly_one_event(clinic: Clinic) -> None:
    for action, outcome, with_patient, call in ACTIONS:
        before = all_events(clinic.engine)
        started = datetime.now(UTC)
        with db.session_scope(clinic.engine) as session:
            call(session, clinic)
        new = all_events(clinic.engine)[len(before) :]
        assert [(e.action, e.outcome) for e in new] == [(action, outcome)], action
        (event,) = new
        assert event.actor_email and event.actor_role
        assert (
            (event.patient_id == clinic.patient_id) if with_patient else (event.patient_id is None)
        ), action
        assert event.occurred_at.utcoffset() == timedelta(0)
        assert started - timedelta(seconds=1) <= event.occurred_at <= datetime.now(UTC)


def test_sign_out_writes_exactly_one_event(clinic: Clinic) -> None:
    with db.session_scope(clinic.engine) as session:
        _sign_out(session, clinic)
    assert all_events(clinic.engine)[-1].action == "auth.sign_out"


def test_query_filters_and_the_read_is_audited_but_not_returned(clinic: Clinic) -> None:
    with db.session_scope(clinic.engine) as session:
        photo_bytes(session, CLINICIAN, photo_id=clinic.photo_id, store=clinic.store)
        accounts.authenticate(session, email="nurse@test", password="wrong")
    with db.session_scope(clinic.engine) as session:
        everything = audit_log.query_events(session, DIRECTOR)
        assert list(everything["id"]) == sorted(everything["id"], reverse=True)  # newest first
        assert "audit.read" not in set(everything["action"])
        views = audit_log.query_events(session, DIRECTOR, action="photo.view")
        assert list(views["object_id"]) == [str(clinic.photo_id)]
        auth = audit_log.query_events(session, DIRECTOR, action="auth.*", outcome="failure")
        assert list(auth["actor_email"]) == ["nurse@test"]
        mine = audit_log.query_events(session, DIRECTOR, actor_email="CLIN@test")
        assert set(mine["actor_email"]) == {"clin@test"}
        patient = audit_log.query_events(session, DIRECTOR, patient_id=clinic.patient_id)
        assert set(patient["patient_id"]) == {clinic.patient_id}
        future = audit_log.query_events(
            session, DIRECTOR, since=datetime.now(UTC) + timedelta(hours=1)
        )
        assert future.empty
        limited = audit_log.query_events(session, DIRECTOR, limit=2)
        assert len(limited) == 2
        with pytest.raises(ValueError, match="timezone-aware"):
            audit_log.query_events(session, DIRECTOR, since=datetime(2026, 1, 1))
    reads = [e for e in all_events(clinic.engine) if e.action == "audit.read"]
    assert len(reads) == 7 and reads[2].details["filters"] == {
        "action": "auth.*",
        "outcome": "failure",
    }
    assert reads[-1].details["rows"] == 2


def test_csv_export_is_the_log_oldest_first_and_audited(clinic: Clinic) -> None:
    with db.session_scope(clinic.engine) as session:
        data = audit_log.export_csv(session, ADMIN, action="consent.*")
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
    assert [r["action"] for r in rows] == ["consent.give", "consent.give"]
    assert list(rows[0]) == list(audit_log.COLUMNS)
    assert int(rows[0]["id"]) < int(rows[1]["id"])
    assert rows[0]["occurred_at"].endswith("+00:00")
    exports = [e for e in all_events(clinic.engine) if e.action == "audit.export"]
    assert len(exports) == 1 and exports[0].details["rows"] == 2


def test_no_log_read_or_export_when_the_audit_write_fails(clinic: Clinic) -> None:
    break_audit_inserts(clinic.engine)
    got: list[Any] = []
    for call in (audit_log.query_events, audit_log.export_csv):
        with pytest.raises(AuditWriteError):
            with db.session_scope(clinic.engine) as session:
                got.append(call(session, DIRECTOR))
    assert got == []


def _chain(engine: Engine) -> list[audit.ChainProblem]:
    with db.session_scope(engine) as session:
        return audit.verify_chain(session)


def test_verifier_detects_edit_deletion_and_reordering(clinic: Clinic) -> None:
    engine = clinic.engine
    assert _chain(engine) == []
    ids = [e.id for e in all_events(engine)]
    assert len(ids) >= 6
    make_writable(engine)
    with engine.begin() as conn:  # edit: the outcome of a sign-in is rewritten
        conn.execute(
            text("UPDATE audit_events SET outcome = 'denied' WHERE id = :i"), {"i": ids[1]}
        )
    assert [p.event_id for p in _chain(engine)] == [ids[1]]
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE audit_events SET outcome = 'success' WHERE id = :i"), {"i": ids[1]}
        )
    assert _chain(engine) == []  # the original content verifies again
    with engine.begin() as conn:  # deletion in the middle
        conn.execute(text("DELETE FROM audit_events WHERE id = :i"), {"i": ids[3]})
    problems = _chain(engine)
    assert [p.event_id for p in problems] == [ids[4]] and "missing" in problems[0].problem
    with engine.begin() as conn:  # reordering: two later events swap places
        a, b = ids[-2], ids[-1]
        conn.execute(text("UPDATE audit_events SET id = -1 WHERE id = :a"), {"a": a})
        conn.execute(text("UPDATE audit_events SET id = :a WHERE id = :b"), {"a": a, "b": b})
        conn.execute(text("UPDATE audit_events SET id = :b WHERE id = -1"), {"b": b})
    flagged = {p.event_id for p in _chain(engine)}
    assert {ids[4], a, b} <= flagged


def test_concurrent_writers_keep_one_linear_chain(clinic: Clinic) -> None:
    before = len(all_events(clinic.engine))
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(15):
                with db.session_scope(clinic.engine) as session:
                    audit.record(session, SYSTEM, "test.concurrent", object_id=f"{n}-{i}")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert len(all_events(clinic.engine)) == before + 45
    assert _chain(clinic.engine) == []
