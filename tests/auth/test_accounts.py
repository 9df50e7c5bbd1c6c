"""Local accounts: hashed passwords, sign-in audited on success and failure, demo accounts."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from analysis.auth import accounts
from analysis.errors import FieldError
from analysis.services import users as user_admin
from analysis.store import db
from analysis.store.access import SYSTEM, Actor, PermissionDenied
from analysis.store.models import AuditEvent, User


def test_demo_accounts_sign_in_with_the_seeding_password(db_url: str) -> None:
    engine = db.make_engine(db_url)
    with db.session_scope(engine) as session:
        users = user_admin.seed_demo_accounts(session, password="a-long-test-password")
        assert {u.role for u in users} == {
            "clinician",
            "medical_director",
            "consult_staff",
            "admin",
        }
        assert user_admin.seed_demo_accounts(session, password="x" * 12) == []  # idempotent
        stored = session.scalar(select(User.password_hash).where(User.email == "admin@demo.candor"))
        assert stored and "a-long-test-password" not in stored and stored.startswith("$argon2id$")
    with db.session_scope(engine) as session:
        actor = accounts.authenticate(
            session, email=" Director@Demo.Candor ", password="a-long-test-password"
        )
        assert actor is not None and actor.role == "medical_director"
        assert (
            accounts.authenticate(session, email="director@demo.candor", password="wrong") is None
        )
        assert accounts.authenticate(session, email="nobody@demo.candor", password="x") is None
    with db.session_scope(engine) as session:
        outcomes = session.scalars(
            select(AuditEvent.outcome)
            .where(AuditEvent.action == "auth.sign_in")
            .order_by(AuditEvent.id)
        ).all()
    assert outcomes == ["success", "failure", "failure"]
    engine.dispose()


def test_only_admins_create_accounts_and_passwords_have_a_floor(db_url: str) -> None:
    engine = db.make_engine(db_url)
    with db.session_scope(engine) as session:
        with pytest.raises(PermissionDenied):
            user_admin.create_user(
                session,
                Actor(None, "c@x", "clinician"),
                email="n@x",
                display_name="N",
                role="clinician",
                password="long-enough-pw",
            )
        with pytest.raises(FieldError) as err:
            user_admin.create_user(
                session, SYSTEM, email="n@x", display_name="N", role="clinician", password="short"
            )
        assert err.value.field == "password"
    engine.dispose()


def test_create_admin_starts_a_real_clinic_that_the_demo_never_overwrites(
    candor_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``python -m analysis create-admin``: the first sign-in of a clinic that does not start from
    the demo; afterwards `make run`'s ``demo --if-empty`` leaves the database alone."""
    from analysis.cli import main
    from analysis.demo.clinic import seed_demo_clinic

    monkeypatch.delenv("CANDOR_ADMIN_PASSWORD", raising=False)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(["create-admin", "boss@clinic.example"]) == 2  # no password, no terminal
    assert "CANDOR_ADMIN_PASSWORD" in capsys.readouterr().err
    monkeypatch.setenv("CANDOR_ADMIN_PASSWORD", "short")
    assert main(["create-admin", "boss@clinic.example"]) == 2
    assert "at least 10 characters" in capsys.readouterr().err
    monkeypatch.setenv("CANDOR_ADMIN_PASSWORD", "a long clinic password")
    assert main(["create-admin", "Boss@Clinic.example", "--name", "Dr Boss"]) == 0
    assert "administrator boss@clinic.example created" in capsys.readouterr().out
    assert main(["create-admin", "boss@clinic.example"]) == 2  # exists already
    with db.session_scope() as s:
        actor = accounts.authenticate(
            s, email="boss@clinic.example", password="a long clinic password"
        )
        assert actor is not None and actor.role == "admin"
        assert s.scalar(select(AuditEvent.action).where(AuditEvent.action == "user.create"))
    report = seed_demo_clinic(photos=False, n_patients=4)
    assert not report.seeded and "account(s) of a real clinic" in report.message
    with db.session_scope() as s:
        assert s.scalar(select(User.email).where(User.email.like("%@demo.candor"))) is None
