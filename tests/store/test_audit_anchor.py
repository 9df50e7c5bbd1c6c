"""The signed anchor outside the database: the two tamperings the bare hash chain misses —
truncating the newest events, and deleting a middle event then re-chaining later hashes with
the project's own digest — are both detected and named, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, text

from analysis import config
from analysis.auth import accounts
from analysis.store import anchor, audit, db
from analysis.store.models import AuditEvent
from tests.support.audit_clinic import PASSWORD, all_events, make_writable, nurse_clinic
from tests.support.photo_clinic import Clinic


@pytest.fixture(scope="module")
def password_hash() -> str:
    return accounts.hash_password(PASSWORD)  # Argon2id is slow by design: hash once


@pytest.fixture
def clinic(db_url: str, tmp_path: Path, password_hash: str) -> Iterator[Clinic]:
    yield from nurse_clinic(db_url, tmp_path, password_hash)


def _anchor_problems(clinic: Clinic) -> list[anchor.AnchorProblem]:
    with db.session_scope(clinic.engine) as session:
        return anchor.verify_anchor(session)


def test_every_commit_is_anchored_outside_the_data_dir(clinic: Clinic) -> None:
    events = all_events(clinic.engine)
    lines = anchor.read_anchors()
    assert lines and lines[-1][:2] == (events[-1].id, events[-1].hash)
    path = config.audit_anchor_path()
    assert config.data_dir() not in path.parents
    assert _anchor_problems(clinic) == []


def test_truncating_the_newest_events_is_named(clinic: Clinic) -> None:
    ids = [e.id for e in all_events(clinic.engine)]
    make_writable(clinic.engine)
    with clinic.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE id > :i"), {"i": ids[-4]})
    with db.session_scope(clinic.engine) as session:
        assert audit.verify_chain(session) == []  # the bare chain cannot see it
    problems = _anchor_problems(clinic)
    assert any("truncated" in p.problem for p in problems)


def test_rechaining_after_a_middle_deletion_is_named(clinic: Clinic) -> None:
    """Even re-chained with the audit key itself (so the chain verifies), the anchor names it."""
    ids = [e.id for e in all_events(clinic.engine)]
    make_writable(clinic.engine)
    with clinic.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE id = :i"), {"i": ids[2]})
    key = anchor.audit_key()  # the worst case: the attacker holds the audit key too
    with db.session_scope(clinic.engine) as session:  # re-chain with the project's own digest
        prev = audit.GENESIS
        for event in session.scalars(select(AuditEvent).order_by(AuditEvent.id)):
            event.prev_hash = "x" * 64  # keep prev_hash unique while rewriting
            session.flush()
            event.prev_hash = prev
            event.hash = audit.keyed_digest(key, prev, audit._fields(event))
            session.flush()
            prev = event.hash
        session.info.pop("candor_audit_head", None)
    with db.session_scope(clinic.engine) as session:
        assert audit.verify_chain(session) == []
    problems = _anchor_problems(clinic)
    assert any("re-chained" in p.problem or "deleted" in p.problem for p in problems)


def test_a_forged_anchor_line_is_named(clinic: Clinic) -> None:
    path = config.audit_anchor_path()
    with path.open("a") as handle:
        handle.write(json.dumps({"id": 1, "hash": "0" * 64, "mac": "f" * 64}) + "\n")
    assert any("forged" in p.problem for p in _anchor_problems(clinic))


def test_key_file_is_created_private(tmp_path: Path) -> None:
    key = anchor.audit_key()
    assert len(key) == 32 and anchor.audit_key() == key
    assert (config.audit_key_path().stat().st_mode & 0o777) == 0o600


def test_verify_audit_command_exits_nonzero_naming_truncation(
    candor_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from analysis.cli import main
    from analysis.store.access import SYSTEM

    assert main(["init-db"]) == 0
    for n in range(5):
        with db.session_scope() as session:
            audit.record(session, SYSTEM, "probe", details={"n": n})
    assert main(["verify-audit"]) == 0
    import sqlite3

    conn = sqlite3.connect(candor_env / "candor.sqlite3")
    conn.execute("DROP TRIGGER audit_events_no_delete")
    conn.execute("DELETE FROM audit_events WHERE id > (SELECT MAX(id) - 3 FROM audit_events)")
    conn.commit()
    conn.close()
    capsys.readouterr()
    assert main(["verify-audit"]) == 1
    out = capsys.readouterr().out
    assert "truncated" in out


def test_bulk_seeded_clinic_is_anchored_and_verifies(candor_env: Path) -> None:
    """The bulk demo writer appends its audit events through audit.record_many: the chain verifies
    and the anchor names its newest event, so a truncation of a seeded clinic is caught too."""
    from sqlalchemy import delete, func, select, text

    from analysis.demo.clinic import seed_demo_clinic
    from analysis.store import anchor, audit, db
    from analysis.store.models import AuditEvent

    assert seed_demo_clinic(n_patients=6, photos=False, progress=lambda _l: None).seeded
    with db.session_scope() as s:
        assert audit.verify_chain(s) == []
        assert anchor.verify_anchor(s) == []
        newest = s.scalars(select(func.max(AuditEvent.id))).one()
    engine = db.get_engine()
    with engine.begin() as conn:  # an attacker with the file drops the triggers and truncates
        for name in (
            conn.execute(text("SELECT name FROM sqlite_master WHERE type='trigger'"))
            .scalars()
            .all()
        ):
            conn.execute(text(f'DROP TRIGGER "{name}"'))
        conn.execute(delete(AuditEvent).where(AuditEvent.id > newest - 3))
    with db.session_scope() as s:
        assert audit.verify_chain(s) == []  # the chain alone cannot see it
        assert any("truncated" in str(p) for p in anchor.verify_anchor(s))
