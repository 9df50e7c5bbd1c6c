"""Shared test support (moved from test_audit_trail.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, select, text

from analysis.store import db
from analysis.store.models import AuditEvent, User
from tests.support.photo_clinic import (
    Clinic,
    make_clinic,
)

PASSWORD = "trail-test-password"


def all_events(engine: Engine) -> list[AuditEvent]:
    with db.session_scope(engine) as session:
        return list(session.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def make_writable(engine: Engine) -> None:
    """What an attacker with direct database access does first: drop the append-only triggers."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text("DROP TRIGGER audit_events_no_update"))
            conn.execute(text("DROP TRIGGER audit_events_no_delete"))
        else:
            conn.execute(text("DROP TRIGGER audit_events_append_only ON audit_events"))


def nurse_clinic(db_url: str, tmp_path: Path, password_hash: str) -> Iterator[Clinic]:
    """A clinic (:func:`make_clinic`) with a nurse account that has a password; disposed after."""
    c = make_clinic(db_url, tmp_path / "images", scopes=("clinical_record", "consult_display"))
    with db.session_scope(c.engine) as session:
        session.add(
            User(
                email="nurse@test",
                display_name="Nurse",
                role="clinician",
                password_hash=password_hash,
            )
        )
    yield c
    c.engine.dispose()
