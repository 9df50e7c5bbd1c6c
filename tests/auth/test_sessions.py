"""Server-side sign-in sessions: idle timeout, sign-out, deactivation, lockout (both databases)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select

from analysis.auth import accounts, sessions
from analysis.errors import FieldError
from analysis.services import users as user_admin
from analysis.store import db
from analysis.store.access import SYSTEM, Actor, PermissionDenied
from analysis.store.models import AuditEvent, SignInSession, User, utcnow

PASSWORD = "a-long-test-password"


@pytest.fixture(scope="module")
def password_hash() -> str:
    return accounts.hash_password(PASSWORD)  # Argon2id is slow by design: hash once per module


@pytest.fixture
def engine(db_url: str, password_hash: str) -> Iterator[Engine]:
    """The four demo accounts (one per role), all with ``PASSWORD``."""
    engine = db.make_engine(db_url)
    with db.session_scope(engine) as session:
        for email, (name, role) in accounts.DEMO_ACCOUNTS.items():
            session.add(
                User(email=email, display_name=name, role=role, password_hash=password_hash)
            )
    yield engine
    engine.dispose()


def _sign_in(engine: Engine, email: str = "clinician@demo.candor") -> tuple[Actor, str]:
    with db.session_scope(engine) as session:
        actor = accounts.authenticate(session, email=email, password=PASSWORD)
        assert actor is not None
        return actor, sessions.start(session, actor)


def _actions(engine: Engine) -> list[tuple[str, str]]:
    with db.session_scope(engine) as session:
        return [
            (e.action, e.outcome)
            for e in session.scalars(
                select(AuditEvent)
                .where(AuditEvent.action.startswith("auth."))
                .order_by(AuditEvent.id)
            )
        ]


def test_only_the_token_hash_is_stored_and_the_token_resumes(engine: Engine) -> None:
    actor, token = _sign_in(engine)
    with db.session_scope(engine) as session:
        row = session.scalars(select(SignInSession)).one()
        assert row.token_hash == sessions.token_hash(token) and token not in row.token_hash
        assert row.ended_at is None and row.method == "password"
        assert sessions.resume(session, token) == actor
        assert sessions.resume(session, token + "x") is None
        assert sessions.resume(session, "") is None


def test_idle_timeout_ends_the_session_and_is_audited(engine: Engine) -> None:
    _, token = _sign_in(engine)
    start = utcnow()
    with db.session_scope(engine) as session:  # activity 14 min later keeps it alive...
        assert sessions.resume(session, token, now=start + timedelta(minutes=14)) is not None
    with db.session_scope(engine) as session:  # ...and restarts the 15-minute clock
        assert sessions.resume(session, token, now=start + timedelta(minutes=28)) is not None
    with db.session_scope(engine) as session:
        assert sessions.resume(session, token, now=start + timedelta(minutes=44)) is None
    with db.session_scope(engine) as session:
        row = session.scalars(select(SignInSession)).one()
        assert row.ended_at is not None and row.end_reason == "idle_timeout"
        assert sessions.resume(session, token, now=start + timedelta(minutes=45)) is None
    assert _actions(engine)[-1] == ("auth.session_end", "success")


def test_idle_timeout_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, engine: Engine
) -> None:
    monkeypatch.delenv("CANDOR_IDLE_TIMEOUT_MIN", raising=False)
    assert sessions.idle_timeout() == timedelta(minutes=15)
    monkeypatch.setenv("CANDOR_IDLE_TIMEOUT_MIN", "2")
    assert sessions.idle_timeout() == timedelta(minutes=2)
    _, token = _sign_in(engine)
    with db.session_scope(engine) as session:
        assert sessions.resume(session, token, now=utcnow() + timedelta(minutes=3)) is None
    monkeypatch.setenv("CANDOR_IDLE_TIMEOUT_MIN", "soon")
    with pytest.raises(ValueError, match="number of minutes"):
        sessions.idle_timeout()


def test_sign_out_ends_the_server_session_and_is_audited(engine: Engine) -> None:
    _, token = _sign_in(engine)
    with db.session_scope(engine) as session:
        assert sessions.end(session, token) is True
    with db.session_scope(engine) as session:
        assert sessions.resume(session, token) is None
        assert sessions.end(session, token) is False  # ending twice is a no-op, not audited twice
        row = session.scalars(select(SignInSession)).one()
        assert row.end_reason == "sign_out" and row.ended_at is not None
    assert _actions(engine) == [("auth.sign_in", "success"), ("auth.sign_out", "success")]


def test_deactivation_ends_live_sessions_and_role_changes_apply_on_the_next_run(
    engine: Engine,
) -> None:
    actor, token = _sign_in(engine)
    uid = actor.user_id
    assert uid is not None
    with db.session_scope(engine) as session:
        user_admin.set_role(session, SYSTEM, user_id=uid, role="consult_staff")
    with db.session_scope(engine) as session:
        resumed = sessions.resume(session, token)
        assert resumed is not None and resumed.role == "consult_staff"
        user_admin.deactivate_user(session, SYSTEM, user_id=uid)
    with db.session_scope(engine) as session:
        assert sessions.resume(session, token) is None
        assert session.scalar(select(SignInSession.end_reason)) == "account_deactivated"
        assert accounts.authenticate(session, email=actor.email, password=PASSWORD) is None


def test_repeated_failures_lock_the_address_even_for_the_right_password(engine: Engine) -> None:
    email = "director@demo.candor"
    with db.session_scope(engine) as session:
        for _ in range(accounts.MAX_FAILED_SIGN_INS):
            assert accounts.authenticate(session, email=email, password="guess") is None
        assert accounts.is_locked(session, email=email)
        assert accounts.authenticate(session, email=email, password=PASSWORD) is None
        # another address is unaffected
        assert accounts.authenticate(session, email="admin@demo.candor", password=PASSWORD)
    with db.session_scope(engine) as session:
        reasons = [
            e.details.get("reason", "")
            for e in session.scalars(
                select(AuditEvent).where(AuditEvent.actor_email == email).order_by(AuditEvent.id)
            )
        ]
    assert len(reasons) == accounts.MAX_FAILED_SIGN_INS + 1
    assert reasons[-1].startswith("locked")


def test_oidc_identity_maps_to_an_active_local_account(engine: Engine) -> None:
    with db.session_scope(engine) as session:
        actor = accounts.authenticate_oidc(session, email="Consult@Demo.Candor")
        assert actor is not None and actor.role == "consult_staff"
        token = sessions.start(session, actor, method="oidc")
        assert accounts.authenticate_oidc(session, email="stranger@elsewhere.org") is None
        assert accounts.authenticate_oidc(session, email=None) is None
    with db.session_scope(engine) as session:
        assert sessions.resume(session, token) == actor
        methods = [
            (e.outcome, e.details["method"])
            for e in session.scalars(
                select(AuditEvent)
                .where(AuditEvent.action == "auth.sign_in")
                .order_by(AuditEvent.id)
            )
        ]
    assert methods == [("success", "oidc"), ("failure", "oidc"), ("failure", "oidc")]


def test_polling_liveness_does_not_keep_a_session_alive(engine: Engine) -> None:
    _, token = _sign_in(engine)
    start = utcnow()
    with db.session_scope(engine) as session:
        for minute in (5, 10, 14):  # the idle watch polls; nobody touches the app
            assert sessions.is_live(session, token, now=start + timedelta(minutes=minute))
        assert not sessions.is_live(session, token, now=start + timedelta(minutes=16))
        assert sessions.resume(session, token, now=start + timedelta(minutes=16)) is None
    with db.session_scope(engine) as session:
        assert not sessions.is_live(session, token)


def test_password_reset_ends_sessions_and_only_the_new_password_works(engine: Engine) -> None:
    actor, token = _sign_in(engine)
    uid = actor.user_id
    assert uid is not None
    with db.session_scope(engine) as session:
        with pytest.raises(FieldError):
            user_admin.set_password(session, SYSTEM, user_id=uid, password="short")
        with pytest.raises(PermissionDenied):
            user_admin.set_password(session, actor, user_id=uid, password="x" * 12)
        user_admin.set_password(session, SYSTEM, user_id=uid, password="brand-new-secret")
    with db.session_scope(engine) as session:
        assert sessions.resume(session, token) is None
        assert accounts.authenticate(session, email=actor.email, password=PASSWORD) is None
        assert accounts.authenticate(session, email=actor.email, password="brand-new-secret")
        (event,) = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "user.password_reset")
        ).all()
    assert "brand-new-secret" not in str(event.details) and event.details["sessions_ended"] == 1
