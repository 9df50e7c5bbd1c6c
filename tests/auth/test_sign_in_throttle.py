"""Sign-in that cannot be raced or used to lock a clinician out (issue #12), on SQLite and
PostgreSQL: 40 parallel wrong passwords check at most the limit; unknown emails spend the same
Argon2 verification as known ones; the back-off is per account and per client address, grows and
expires; an admin can unlock; every refused sign-in is audited."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from streamlit.testing.v1 import AppTest

from analysis.auth import accounts, throttle
from analysis.services import users as user_admin
from analysis.store import db
from analysis.store.access import SYSTEM, Actor, PermissionDenied
from analysis.store.models import AuditEvent, SignInThrottle, User

PASSWORD = "a-long-test-password"
T0 = 1_800_000_000.0  # a fixed clock for the back-off arithmetic


@pytest.fixture(scope="module")
def password_hash() -> str:
    return accounts.hash_password(PASSWORD)


@pytest.fixture
def engine(db_url: str, password_hash: str) -> Iterator[Engine]:
    engine = db.make_engine(db_url)
    with db.session_scope(engine) as session:
        for email, role in (
            ("clinician@test", "clinician"),
            ("admin@test", "admin"),
            ("other@test", "clinician"),
        ):
            session.add(
                User(email=email, display_name=email, role=role, password_hash=password_hash)
            )
        session.add(
            User(
                email="gone@test",
                display_name="gone",
                role="clinician",
                password_hash=password_hash,
                active=False,
            )
        )
        session.add(
            User(email="oidc@test", display_name="oidc", role="clinician", password_hash=None)
        )
    yield engine
    engine.dispose()


class Verifications:
    """Counts calls of the real Argon2 verifier (still doing the real work), by hash."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []
        self._lock = threading.Lock()
        real = accounts._hasher
        outer = self

        class Counting:
            def __getattr__(self, name: str) -> object:
                return getattr(real, name)

            def verify(self, hash_: str, password: str) -> bool:
                with outer._lock:
                    outer.calls.append(hash_)
                return real.verify(hash_, password)

        monkeypatch.setattr(accounts, "_hasher", Counting())


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> Verifications:
    return Verifications(monkeypatch)


def _try(
    engine: Engine,
    email: str,
    password: str,
    *,
    address: str | None = None,
    now: float | None = None,
) -> Actor | None:
    with db.session_scope(engine) as session:
        return accounts.authenticate(
            session, email=email, password=password, address=address, now=now
        )


def _sign_ins(engine: Engine, email: str) -> list[AuditEvent]:
    with db.session_scope(engine) as session:
        return list(
            session.scalars(
                select(AuditEvent)
                .where(AuditEvent.action == "auth.sign_in", AuditEvent.actor_email == email)
                .order_by(AuditEvent.id)
            )
        )


def test_forty_parallel_wrong_passwords_check_at_most_the_limit(
    engine: Engine, verifications: Verifications, password_hash: str
) -> None:
    barrier = threading.Barrier(40)
    errors: list[BaseException] = []

    def guess(n: int) -> None:
        try:
            barrier.wait(timeout=60)
            assert _try(engine, "clinician@test", f"guess-{n}") is None
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert errors == []
    assert verifications.calls.count(password_hash) == accounts.MAX_FAILED_SIGN_INS
    events = _sign_ins(engine, "clinician@test")
    assert len(events) == 40 and {e.outcome for e in events} == {"failure"}
    refused = [e for e in events if e.details["reason"].startswith("locked")]
    assert len(refused) == 40 - accounts.MAX_FAILED_SIGN_INS
    # the right password is refused too while the back-off holds, without being checked
    before = len(verifications.calls)
    assert _try(engine, "clinician@test", PASSWORD) is None
    assert len(verifications.calls) == before


def test_unknown_inactive_and_passwordless_emails_spend_one_verification_too(
    engine: Engine, verifications: Verifications, password_hash: str
) -> None:
    for email in ("clinician@test", "nobody@test", "gone@test", "oidc@test"):
        before = len(verifications.calls)
        assert _try(engine, email, "wrong-password") is None
        assert len(verifications.calls) == before + 1, email
    real, unknown, inactive, passwordless = verifications.calls
    assert real == password_hash
    # the others are checked against a dummy Argon2id hash made with the same parameters
    assert unknown == inactive == passwordless != password_hash
    assert unknown.split("$")[:4] == password_hash.split("$")[:4]
    assert _try(engine, "gone@test", PASSWORD) is None  # the right password of an inactive one


def test_the_back_off_grows_and_expires(engine: Engine, verifications: Verifications) -> None:
    limit = accounts.MAX_FAILED_SIGN_INS
    for i in range(limit):
        assert _try(engine, "clinician@test", "wrong", now=T0 + i) is None
    t = T0 + limit - 1  # the limit-th failure: locked for BASE_BACKOFF_S
    calls = len(verifications.calls)
    assert _try(engine, "clinician@test", PASSWORD, now=t + throttle.BASE_BACKOFF_S - 1) is None
    assert len(verifications.calls) == calls  # refused unchecked; the refusal does not extend it
    assert _try(engine, "clinician@test", "wrong", now=t + throttle.BASE_BACKOFF_S + 1) is None
    assert len(verifications.calls) == calls + 1
    t2 = t + throttle.BASE_BACKOFF_S + 1  # one more failure: twice as long now
    assert (
        _try(engine, "clinician@test", PASSWORD, now=t2 + 2 * throttle.BASE_BACKOFF_S - 1) is None
    )
    assert (
        _try(engine, "clinician@test", PASSWORD, now=t2 + 2 * throttle.BASE_BACKOFF_S + 1)
        is not None
    )  # and the right password clears the account
    with db.session_scope(engine) as session:
        assert (
            session.scalar(
                select(SignInThrottle).where(SignInThrottle.key == "account:clinician@test")
            )
            is None
        )
    reasons = [e.details.get("reason", "") for e in _sign_ins(engine, "clinician@test")]
    assert [r.startswith("locked") for r in reasons] == [False] * limit + [True, False, True, False]
    assert "retry in" in reasons[limit]


def test_the_back_off_is_capped_and_forgotten(engine: Engine) -> None:
    assert throttle.backoff_seconds(4, 5) == 0
    assert throttle.backoff_seconds(5, 5) == throttle.BASE_BACKOFF_S
    assert throttle.backoff_seconds(10_000, 5) == throttle.MAX_BACKOFF_S
    t = T0
    for _ in range(accounts.MAX_FAILED_SIGN_INS):
        _try(engine, "other@test", "wrong", now=t)
    with db.session_scope(engine) as session:
        assert accounts.is_locked(session, email="other@test")  # real clock: T0 is in the future
    later = t + throttle.FORGET_AFTER_S + 1  # an hour with no failure: counting starts again
    assert _try(engine, "other@test", "wrong", now=later) is None
    with db.session_scope(engine) as session:
        row = session.get_one(SignInThrottle, "account:other@test")
        assert row.failures == 1 and row.locked_until == 0


def test_an_outsider_guessing_from_one_address_does_not_lock_out_the_clinician(
    engine: Engine,
) -> None:
    outsider, clinic = "203.0.113.9", "198.51.100.7"
    for _ in range(12):
        assert _try(engine, "clinician@test", "wrong", address=outsider) is None
    with db.session_scope(engine) as session:
        assert accounts.is_locked(session, email="clinician@test", address=outsider)
        assert not accounts.is_locked(session, email="clinician@test", address=clinic)
    assert _try(engine, "clinician@test", PASSWORD, address=clinic) is not None
    reasons = [e.details.get("reason", "") for e in _sign_ins(engine, "clinician@test")]
    assert sum(r.startswith("locked") for r in reasons) == 12 - accounts.MAX_FAILED_SIGN_INS
    assert _sign_ins(engine, "clinician@test")[-1].details["address"] == clinic


def test_password_spraying_from_one_address_is_backed_off(
    engine: Engine, verifications: Verifications
) -> None:
    sprayer = "192.0.2.66"
    for n in range(throttle.ADDRESS_LIMIT):
        assert _try(engine, f"guess{n}@test", "Winter2026!", address=sprayer) is None
    calls = len(verifications.calls)
    assert _try(engine, "clinician@test", "Winter2026!", address=sprayer) is None
    assert len(verifications.calls) == calls
    assert "(address)" in _sign_ins(engine, "clinician@test")[-1].details["reason"]
    assert _try(engine, "clinician@test", PASSWORD, address="192.0.2.67") is not None


def test_an_admin_unlocks_the_account(engine: Engine) -> None:
    for _ in range(accounts.MAX_FAILED_SIGN_INS):
        _try(engine, "clinician@test", "wrong")
        _try(engine, "clinician@test", "wrong", address="203.0.113.9")
    with db.session_scope(engine) as session:
        admin = accounts.actor_for(
            session.scalars(select(User).where(User.email == "admin@test")).one()
        )
        clinician_id = session.scalars(select(User.id).where(User.email == "clinician@test")).one()
        listed = {u["email"]: u["locked_until"] for u in user_admin.list_users(session, admin)}
        assert listed["clinician@test"] is not None and listed["other@test"] is None
    nurse = Actor(user_id=None, email="n@test", role="clinician")
    with pytest.raises(PermissionDenied):
        with db.session_scope(engine) as session:
            user_admin.unlock_account(session, nurse, user_id=clinician_id)
    assert _try(engine, "clinician@test", PASSWORD) is None
    with db.session_scope(engine) as session:
        assert user_admin.unlock_account(session, admin, user_id=clinician_id) == 2
    assert _try(engine, "clinician@test", PASSWORD) is not None
    assert _try(engine, "clinician@test", PASSWORD, address="203.0.113.9") is not None
    with db.session_scope(engine) as session:
        (event,) = session.scalars(select(AuditEvent).where(AuditEvent.action == "user.unlock"))
        assert event.actor_email == "admin@test" and event.details == {
            "email": "clinician@test",
            "counters_cleared": 2,
        }


def test_client_address_comes_from_the_proxy_header_only_when_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    headers = {"X-Forwarded-For": "10.9.9.9, 198.51.100.7", "Host": "candor"}
    monkeypatch.delenv(throttle.PROXY_HEADER_ENV, raising=False)
    assert throttle.client_address(headers, "203.0.113.5") == "203.0.113.5"  # header ignored
    assert throttle.client_address(headers, "127.0.0.1") is None  # the local proxy: unknown
    assert throttle.client_address(headers, None) is None
    monkeypatch.setenv(throttle.PROXY_HEADER_ENV, "x-forwarded-for")
    assert throttle.client_address(headers, "127.0.0.1") == "198.51.100.7"  # the proxy's entry
    assert throttle.client_address({"X-Forwarded-For": "not-an-address"}, "127.0.0.1") is None
    assert throttle.client_address({}, "203.0.113.5") is None
    assert throttle.client_address({"X-Forwarded-For": "2001:DB8::1"}, None) == "2001:db8::1"


def test_users_page_shows_the_back_off_and_unlocks(candor_env: Path) -> None:
    from tests.conftest import PROJECT_ROOT
    from ui.frame import ACTOR_KEY

    db.upgrade()
    with db.session_scope() as session:
        admin = user_admin.create_user(
            session,
            SYSTEM,
            email="admin@test",
            display_name="Admin",
            role="admin",
            password=PASSWORD,
        )
        user_admin.create_user(
            session,
            SYSTEM,
            email="clinician@test",
            display_name="C",
            role="clinician",
            password=PASSWORD,
        )
        admin_actor = accounts.actor_for(admin)
    for _ in range(accounts.MAX_FAILED_SIGN_INS):
        _try(db.get_engine(), "clinician@test", "wrong")
    at = AppTest.from_file(str(PROJECT_ROOT / "views" / "users.py"), default_timeout=60)
    at.session_state[ACTOR_KEY] = admin_actor
    at.run()
    assert not at.exception
    with db.session_scope() as session:
        clinician_id = session.scalar(select(User.id).where(User.email == "clinician@test"))
    at.selectbox[0].select(clinician_id).run()
    assert any("backed off until" in c.value for c in at.caption)
    next(b for b in at.button if b.label == "Unlock sign-in").click().run()
    assert not at.exception
    assert any("can sign in again now" in s.value for s in at.success)
    assert _try(db.get_engine(), "clinician@test", PASSWORD) is not None
    db.dispose_engines()


def test_stale_counters_are_pruned_but_locked_ones_kept(engine: Engine) -> None:
    _try(engine, "nobody-old@test", "wrong", now=T0)
    for _ in range(accounts.MAX_FAILED_SIGN_INS):
        _try(engine, "nobody-locked@test", "wrong", now=T0 + throttle.FORGET_AFTER_S)
    later = T0 + throttle.FORGET_AFTER_S + 1
    with engine.begin() as conn:
        assert throttle.prune(conn, later) == 1
    with db.session_scope(engine) as session:
        keys = set(session.scalars(select(SignInThrottle.key)))
    assert keys == {"account:nobody-locked@test"}


def test_a_clinic_signing_in_from_one_address_is_not_locked_out(engine: Engine) -> None:
    """Staff behind one public address (a clinic's NAT) sign in many times a morning: correct
    passwords give their address slot back, so more successes than the address limit pass (the
    load benchmark's 50 users from one proxy address were refused after 20 before)."""
    clinic = "198.51.100.20"
    emails = [f"staff{n}@test" for n in range(throttle.ADDRESS_LIMIT + 10)]
    with db.session_scope(engine) as session:
        password_hash = session.scalars(
            select(User.password_hash).where(User.email == "clinician@test")
        ).one()
        for email in emails:
            session.add(
                User(email=email, display_name=email, role="clinician", password_hash=password_hash)
            )
    for email in emails:
        assert _try(engine, email, PASSWORD, address=clinic, now=T0) is not None, email
    with db.session_scope(engine) as session:
        row = session.get(SignInThrottle, f"address:{clinic}")
        assert row is None or row.failures == 0


def test_a_sprayers_own_success_does_not_wipe_their_failures(engine: Engine) -> None:
    """The refund is one slot, not a reset: failures before and after a success from the same
    address still add up to the lock."""
    sprayer = "192.0.2.77"
    for n in range(throttle.ADDRESS_LIMIT - 1):
        assert _try(engine, f"guess{n}@test", "Spring2026!", address=sprayer, now=T0) is None
    assert _try(engine, "other@test", PASSWORD, address=sprayer, now=T0) is not None
    assert _try(engine, "guess-last@test", "Spring2026!", address=sprayer, now=T0) is None
    with db.session_scope(engine) as session:
        row = session.get(SignInThrottle, f"address:{sprayer}")
        assert row is not None and row.failures == throttle.ADDRESS_LIMIT
        assert row.locked_until > T0
    assert _try(engine, "clinician@test", PASSWORD, address=sprayer, now=T0) is None  # locked


def test_simultaneous_sign_ins_never_wait_for_a_second_pooled_connection(
    db_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As many correct sign-ins at once as the pool has connections: each used to hold its
    session's connection through the password check and then wait for a second one for the
    back-off, so all of them waited for each other until the pool timed out (24 of 50 users in
    benchmarks/load_replicas.py). Made deterministic: a pool of 2, and the two password checks
    held at a barrier until both are in them."""
    from sqlalchemy import create_engine

    small = create_engine(
        db_url,
        pool_size=2,
        max_overflow=0,
        pool_timeout=3,
        **({"connect_args": {"check_same_thread": False}} if db_url.startswith("sqlite") else {}),
    )
    both_checking = threading.Barrier(2, timeout=30)
    real = accounts.verify_password

    def verify(password_hash: str | None, password: str) -> bool:
        both_checking.wait()
        return real(password_hash, password)

    monkeypatch.setattr(accounts, "verify_password", verify)
    results: dict[str, object] = {}

    def sign_in(email: str) -> None:
        try:
            with db.session_scope(small) as session:
                results[email] = accounts.authenticate(
                    session, email=email, password=PASSWORD, address="198.51.100.30", now=T0
                )
        except Exception as exc:
            results[email] = exc

    threads = [
        threading.Thread(target=sign_in, args=(e,)) for e in ("clinician@test", "other@test")
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    small.dispose()
    assert all(isinstance(r, Actor) for r in results.values()) and len(results) == 2, results
