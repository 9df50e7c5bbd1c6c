"""AppTest: the sign-in gate (server-side session, wrong password, sign-out, idle timeout), the
Audit log page (filters, chain status, audited CSV export) and the Users page."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from streamlit.testing.v1 import AppTest

from analysis.auth import accounts
from analysis.services import users as user_admin
from analysis.store import audit, db
from analysis.store.access import SYSTEM, Actor
from analysis.store.models import AuditEvent, SignInSession, User
from tests.conftest import PROJECT_ROOT
from ui.frame import ACTOR_KEY

PASSWORD = "app-test-password"
TIMEOUT_S = 60


@pytest.fixture
def clinic_dir(candor_env: Path) -> Iterator[Path]:
    """A data dir with a migrated database and two accounts (admin, clinician)."""
    db.upgrade()
    with db.session_scope() as session:
        for email, role in (("admin@demo.candor", "admin"), ("clinician@demo.candor", "clinician")):
            user_admin.create_user(
                session, SYSTEM, email=email, display_name=role, role=role, password=PASSWORD
            )
    yield candor_env
    db.dispose_engines()


def _events(action: str) -> list[AuditEvent]:
    with db.session_scope() as session:
        return list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
            )
        )


def _run_router(at: AppTest) -> AppTest:
    """Run ``app.py`` again as a browser rerun would. AppTest (Streamlit 1.67) re-runs only the page
    a multipage run finished on, skipping the router and so the sign-in gate; a browser always
    runs the router first. Clearing the remembered page restores that."""
    at._finished_page_script_hash = ""
    return at.run(timeout=TIMEOUT_S)


def _sign_in(at: AppTest, email: str, password: str) -> AppTest:
    inputs = {t.label: t for t in at.text_input}
    inputs["Email"].input(email)
    inputs["Password"].input(password)
    at.button[0].click()
    return at.run(timeout=TIMEOUT_S)


def test_wrong_password_shows_the_error_and_signs_nobody_in(clinic_dir: Path) -> None:
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=TIMEOUT_S).run()
    assert not at.exception
    assert [b.label for b in at.button] == ["Sign in"]
    _sign_in(at, "admin@demo.candor", "not-the-password")
    assert not at.exception
    assert any("not right" in e.value for e in at.error)
    assert ACTOR_KEY not in at.session_state
    assert [e.outcome for e in _events("auth.sign_in")] == ["failure"]


def test_sign_in_opens_a_server_session_and_sign_out_ends_it(clinic_dir: Path) -> None:
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=TIMEOUT_S).run()
    _sign_in(at, "Admin@Demo.Candor", PASSWORD)
    assert not at.exception
    assert at.session_state[ACTOR_KEY].role == "admin"
    assert [t.value for t in at.title] == ["Audit log"]  # the admin's first page
    with db.session_scope() as session:
        row = session.scalars(select(SignInSession)).one()
        assert row.ended_at is None and row.method == "password"
    at.sidebar.button[0].click()  # "Sign out"
    _run_router(at)
    assert not at.exception
    assert [b.label for b in at.button] == ["Sign in"]
    with db.session_scope() as session:
        assert session.scalar(select(SignInSession.end_reason)) == "sign_out"
    assert [e.outcome for e in _events("auth.sign_out")] == ["success"]


def test_an_idle_session_is_signed_out_on_the_next_run(clinic_dir: Path) -> None:
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=TIMEOUT_S).run()
    _sign_in(at, "clinician@demo.candor", PASSWORD)
    assert at.session_state[ACTOR_KEY].role == "clinician"
    _run_router(at)  # an active session is resumed by the gate on every run
    assert "Sign in" not in [b.label for b in at.button] and not at.exception
    with db.session_scope() as session:  # sixteen minutes pass without a request
        last = session.scalars(select(SignInSession.last_seen_at)).one()
        session.execute(update(SignInSession).values(last_seen_at=last - timedelta(minutes=16)))
    _run_router(at)
    assert not at.exception
    assert [b.label for b in at.button] == ["Sign in"]
    assert any("without activity" in i.value for i in at.info)
    assert [e.details["reason"] for e in _events("auth.session_end")] == ["idle_timeout"]


def _page(name: str, actor: Actor) -> AppTest:
    at = AppTest.from_file(str(PROJECT_ROOT / "views" / name), default_timeout=TIMEOUT_S)
    at.session_state[ACTOR_KEY] = actor
    return at.run()


def test_audit_log_page_filters_verifies_and_exports_with_audit(clinic_dir: Path) -> None:
    with db.session_scope() as session:
        admin = accounts.actor_for(session.scalars(select(User).where(User.role == "admin")).one())
        accounts.authenticate(session, email="clinician@demo.candor", password="wrong-one")
    at = _page("audit_log.py", admin)
    assert not at.exception
    assert [t.value for t in at.title] == ["Audit log"]
    assert any("Hash chain intact" in s.value for s in at.success)
    shown = at.dataframe[0].value
    assert set(shown["action"]) >= {"user.create", "auth.sign_in"}
    assert len(_events("audit.read")) == 1  # reading the log is itself audited...
    at.run()
    assert len(_events("audit.read")) == 1  # ...once per query, not per rerun

    at.text_input[0].input("auth.*")
    at.selectbox[0].select("failure")
    next(b for b in at.button if b.label == "Apply filters").click().run()
    assert not at.exception
    shown = at.dataframe[0].value
    assert list(shown["action"]) == ["auth.sign_in"] and list(shown["outcome"]) == ["failure"]
    assert _events("audit.read")[-1].details["filters"] == {
        "action": "auth.*",
        "outcome": "failure",
    } | {
        k: v
        for k, v in _events("audit.read")[-1].details["filters"].items()
        if k in ("since", "until")
    }

    export = next(b for b in at.button if b.label == "Prepare CSV export")
    export.click().run()
    assert not at.exception
    (event,) = _events("audit.export")
    assert event.details["rows"] == 1 and event.actor_email == "admin@demo.candor"


def test_audit_log_page_shows_a_broken_chain(clinic_dir: Path) -> None:
    with db.get_engine().begin() as conn:  # someone with file access edits an event
        conn.exec_driver_sql("DROP TRIGGER audit_events_no_update")
        conn.exec_driver_sql("UPDATE audit_events SET actor_email = 'x@y' WHERE id = 1")
    at = _page("audit_log.py", Actor(user_id=None, email="md@test", role="medical_director"))
    assert not at.exception
    assert any("altered" in e.value for e in at.error)


def test_full_check_on_request_is_recorded_and_later_views_check_only_what_came_since(
    clinic_dir: Path,
) -> None:
    """Opening the page re-walks the newest events only; "Verify all" re-walks every event and
    records the result, from which the next views check on; an edit of an event after that
    checkpoint is named by the next view, an edit before it by the next full check."""
    with db.session_scope() as session:
        admin = accounts.actor_for(session.scalars(select(User).where(User.role == "admin")).one())
    at = _page("audit_log.py", admin)
    assert not at.exception
    (shown,) = [s.value for s in at.success]
    assert "no full check yet" in shown or "all " in shown
    next(b for b in at.button if b.label.startswith("Verify all")).click().run()
    assert not at.exception
    (check,) = _events("audit.verify")
    assert check.outcome == "success" and check.actor_email == "admin@demo.candor"
    assert check.details["events"] == check.details["through_id"] == check.id - 1
    with db.session_scope() as session:
        accounts.authenticate(session, email="clinician@demo.candor", password="wrong-again")
    at = _page("audit_log.py", admin)  # a new browser session
    (shown,) = [s.value for s in at.success]
    assert "the last full check" in shown and "admin@demo.candor" in shown
    assert f"from event {check.details['through_id']}" in shown

    with db.get_engine().begin() as conn:  # someone with file access edits events
        conn.exec_driver_sql("DROP TRIGGER audit_events_no_update")
        conn.exec_driver_sql("UPDATE audit_events SET actor_email = 'x@y' WHERE id = 2")
    at = _page("audit_log.py", admin)
    assert not at.error, "an edit before the checkpoint waits for the next full check"
    next(b for b in at.button if b.label.startswith("Verify all")).click().run()
    assert any("altered" in e.value for e in at.error)
    assert [e.outcome for e in _events("audit.verify")] == ["success", "failure"]
    at = _page("audit_log.py", admin)
    assert any("altered" in e.value for e in at.error), "a failed full check stays named"
    assert "found 1 problem(s)" in at.dataframe[0].value["problem"].iloc[-1]
    with db.get_engine().begin() as conn:
        newest = conn.exec_driver_sql("SELECT max(id) FROM audit_events").scalar_one()
        conn.exec_driver_sql(f"UPDATE audit_events SET object_id = 'x' WHERE id = {newest}")
    at = _page("audit_log.py", admin)
    assert any("altered" in e.value for e in at.error), "an edit after it is named on opening"


def test_pages_refuse_roles_without_the_permission(clinic_dir: Path) -> None:
    clinician = Actor(user_id=None, email="c@test", role="clinician")
    for name in ("audit_log.py", "users.py"):
        at = _page(name, clinician)
        assert not at.exception
        assert any("cannot open this page" in e.value for e in at.error)
    assert [e.outcome for e in _events("audit.read")] == []


def test_users_page_creates_accounts_and_changes_roles(clinic_dir: Path) -> None:
    with db.session_scope() as session:
        admin = accounts.actor_for(session.scalars(select(User).where(User.role == "admin")).one())
    at = _page("users.py", admin)
    assert not at.exception and [t.value for t in at.title] == ["Users"]
    form = {t.label: t for t in at.text_input}
    form["Email"].input("new.nurse@clinic.example")
    form["Name"].input("New Nurse")
    form["Initial password"].input("long-enough-password")
    next(b for b in at.button if b.label == "Create account").click().run()
    assert not at.exception
    assert any("Account created" in s.value for s in at.success)
    with db.session_scope() as session:
        user = session.scalar(select(User).where(User.email == "new.nurse@clinic.example"))
        assert user is not None and user.role == "clinician"
    at.selectbox[0].select(user.id).run()
    at.selectbox[1].select("consult_staff").run()
    next(b for b in at.button if b.label == "Save role").click().run()
    assert not at.exception
    with db.session_scope() as session:
        assert session.get_one(User, user.id).role == "consult_staff"
    (change,) = _events("user.role_change")
    assert change.details == {
        "email": "new.nurse@clinic.example",
        "from": "clinician",
        "to": "consult_staff",
    }
    assert at.selectbox[0].value == user.id  # still the account just changed
    form = {t.label: t for t in at.text_input}
    form["New password"].input("another-long-password")
    next(b for b in at.button if b.label == "Reset password").click().run()
    assert not at.exception
    assert any("Password of new.nurse@clinic.example reset" in s.value for s in at.success)
    assert [e.details["email"] for e in _events("user.password_reset")] == [
        "new.nurse@clinic.example"
    ]
    with db.session_scope() as session:
        assert (
            accounts.authenticate(
                session, email="new.nurse@clinic.example", password="another-long-password"
            )
            is not None
        )
        assert audit.verify_chain(session) == []


def test_oidc_gate_maps_the_provider_identity_to_a_local_account(
    clinic_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CANDOR_AUTH", "oidc")
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=TIMEOUT_S)
    at.user = {"is_logged_in": False}
    at.run()
    assert not at.exception
    assert [b.label for b in at.button] == ["Sign in with your clinic account"]
    assert not at.text_input  # no password form in OIDC mode

    stranger = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=TIMEOUT_S)
    stranger.user = {"is_logged_in": True, "email": "someone@elsewhere.example"}
    stranger.run()
    assert not stranger.exception and ACTOR_KEY not in stranger.session_state
    assert any("no active Candor account" in e.value for e in stranger.error)

    known = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=TIMEOUT_S)
    known.user = {"is_logged_in": True, "email": "Clinician@Demo.Candor"}
    known.run()
    assert not known.exception
    assert known.session_state[ACTOR_KEY].role == "clinician"
    with db.session_scope() as session:
        assert session.scalar(select(SignInSession.method)) == "oidc"
    assert [(e.outcome, e.details["method"]) for e in _events("auth.sign_in")] == [
        ("failure", "oidc"),
        ("success", "oidc"),
    ]


def test_audit_log_days_are_the_clinics_days(clinic_dir: Path, monkeypatch) -> None:
    """With the clinic in UTC-10 (no daylight saving), the query's bounds start at local midnight."""
    monkeypatch.setenv("CANDOR_TIMEZONE", "Pacific/Honolulu")
    with db.session_scope() as session:
        admin = accounts.actor_for(session.scalar(select(User).where(User.role == "admin")))
    at = _page("audit_log.py", admin)
    assert not at.exception
    assert any("Pacific/Honolulu" in c.value for c in at.caption)
    since = _events("audit.read")[-1].details["filters"]["since"]
    assert since.endswith("T10:00:00+00:00"), since  # 00:00 in Honolulu is 10:00 UTC
