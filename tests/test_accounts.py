"""Local accounts: hashed passwords, sign-in audited on success and failure, demo accounts."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from analysis.auth import accounts
from analysis.store import db
from analysis.store.access import SYSTEM, Actor, PermissionDenied
from analysis.store.models import AuditEvent, User
from analysis.store.records import FieldError


def test_demo_accounts_sign_in_with_the_seeding_password(db_url: str) -> None:
    engine = db.make_engine(db_url)
    with db.session_scope(engine) as session:
        users = accounts.seed_demo_accounts(session, password="a-long-test-password")
        assert {u.role for u in users} == {"clinician", "medical_director", "consult_staff", "admin"}
        assert accounts.seed_demo_accounts(session, password="x" * 12) == []  # idempotent
        stored = session.scalar(select(User.password_hash).where(User.email == "admin@demo.candor"))
        assert stored and "a-long-test-password" not in stored and stored.startswith("$argon2id$")
    with db.session_scope(engine) as session:
        actor = accounts.authenticate(session, email=" Director@Demo.Candor ",
                                      password="a-long-test-password")
        assert actor is not None and actor.role == "medical_director"
        assert accounts.authenticate(session, email="director@demo.candor", password="wrong") is None
        assert accounts.authenticate(session, email="nobody@demo.candor", password="x") is None
    with db.session_scope(engine) as session:
        outcomes = session.scalars(
            select(AuditEvent.outcome).where(AuditEvent.action == "auth.sign_in")
            .order_by(AuditEvent.id)
        ).all()
    assert outcomes == ["success", "failure", "failure"]
    engine.dispose()


def test_only_admins_create_accounts_and_passwords_have_a_floor(db_url: str) -> None:
    engine = db.make_engine(db_url)
    with db.session_scope(engine) as session:
        with pytest.raises(PermissionDenied):
            accounts.create_user(session, Actor(None, "c@x", "clinician"), email="n@x",
                                 display_name="N", role="clinician", password="long-enough-pw")
        with pytest.raises(FieldError) as err:
            accounts.create_user(session, SYSTEM, email="n@x", display_name="N",
                                 role="clinician", password="short")
        assert err.value.field == "password"
    engine.dispose()
