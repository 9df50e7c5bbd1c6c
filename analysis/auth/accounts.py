"""Local accounts for the embedded default deployment.

Passwords are hashed with Argon2id (argon2-cffi's ``PasswordHasher`` defaults). Sign-in attempts,
successful or not, each write one audit event; repeated failures are backed off per account and
per client address (:mod:`analysis.auth.throttle`: atomic, growing, expiring; an admin can
:func:`unlock_account`), and unknown emails cost the same Argon2 time as known ones. Production deployments
can use OIDC instead (Streamlit's ``st.login``; see docs/security.md), in which case these accounts
only carry roles (:func:`authenticate_oidc` maps the verified email to its account).

Account management (creating accounts, roles, passwords, deactivation, unlocking) is in
:mod:`analysis.services.users`: it needs ``users.manage`` and is audited.
"""

from __future__ import annotations

import functools
import secrets
import time
from typing import Any, Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select
from sqlalchemy.orm import Session as DbSession

from analysis import config
from analysis.store import audit
from analysis.store.access import Actor
from analysis.store.models import User

#: Demo-only default, used when CANDOR_DEMO_PASSWORD is unset at seeding time. Never for real use.
DEMO_PASSWORD_DEFAULT = "candor-demo"
DEMO_ACCOUNTS: dict[str, tuple[str, str]] = {
    "clinician@demo.candor": ("Dr Demo Clinician", "clinician"),
    "director@demo.candor": ("Dr Demo Director", "medical_director"),
    "consult@demo.candor": ("Demo Consult Staff", "consult_staff"),
    "admin@demo.candor": ("Demo Admin", "admin"),
}
MIN_PASSWORD_LENGTH = 10
#: Failed sign-ins for one account (from one address) before the back-off engages.
MAX_FAILED_SIGN_INS = 5  # = analysis.auth.throttle.PAIR_LIMIT

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def normalise_email(email: str) -> str:
    return email.strip().lower()


def actor_for(user: User) -> Actor:
    return Actor(user_id=user.id, email=user.email, role=user.role)


@functools.lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """An Argon2id hash of a random secret, made with the same parameters as real ones: checking a
    password against it costs what checking a real account does."""
    return _hasher.hash(secrets.token_hex(16))


class _Account(Protocol):
    """What sign-in reads of a user (a ``User`` or a row of its columns)."""

    id: int
    email: str
    role: str
    active: bool
    password_hash: str | None


def _check_password(user: _Account | None, password: str) -> bool:
    """Verify ``password``, spending one Argon2 verification whatever the account: unknown emails,
    inactive accounts and accounts without a local password are checked against a dummy hash, so
    the time taken does not tell which emails have accounts."""
    usable = user is not None and user.active and bool(user.password_hash)
    ok = verify_password(user.password_hash if usable else _dummy_hash(), password)  # type: ignore[union-attr]
    return ok and usable


def _retry_text(seconds: float) -> str:
    seconds = max(1, int(seconds + 0.999))
    return f"{seconds} s" if seconds < 120 else f"{(seconds + 59) // 60} min"


def authenticate(
    session: DbSession,
    *,
    email: str,
    password: str,
    address: str | None = None,
    now: float | None = None,
) -> Actor | None:
    """The actor for valid credentials of an active account, else None. Audits either way.

    Each attempt first claims a slot in the back-off (:func:`analysis.auth.throttle.claim`, one
    atomic statement per key, for the account and, when known, the client ``address``); while a
    key is locked the attempt is refused without checking the password (audited, reason
    ``locked: ...``). A correct password clears the account's back-off and hands back its slot
    on the address key.
    """
    from analysis.auth import throttle

    email = normalise_email(email)
    key_email = email or "(empty)"
    slot = throttle.claim(session, key_email, address, now=now)
    # The account is read, and the back-off cleared, on the throttle's own connection, returned
    # to the pool before ``session`` takes one for the audit event: a sign-in never holds one
    # connection while it waits for another (as many sign-ins at once as the pool has
    # connections deadlocked it: 24 of 50 users timed out so in benchmarks/load_replicas.py).
    user = throttle.run_apart(
        session,
        lambda conn: conn.execute(
            select(User.id, User.email, User.role, User.active, User.password_hash).where(
                func.lower(User.email) == email
            )
        ).first(),
    )
    who = Actor(
        user_id=user.id if user else None, email=key_email, role=user.role if user else "clinician"
    )
    ok = slot.allowed and _check_password(user, password)
    details: dict[str, Any] = {"method": "password"}
    if address is not None:
        details["address"] = address
    if ok:
        throttle.clear_account(session, key_email)
        throttle.refund_address(session, address)
    elif not slot.allowed:
        wait = slot.retry_at - (time.time() if now is None else now)
        details["reason"] = (
            f"locked: too many failed sign-ins "
            f"({slot.refused_by.partition(':')[0]}), retry in {_retry_text(wait)}"
        )
    else:
        details["reason"] = "bad credentials or inactive account"
    audit.record(
        session,
        who,
        "auth.sign_in",
        outcome="success" if ok else "failure",
        object_type="user",
        object_id=user.id if user else "",
        details=details,
    )
    return Actor(user_id=user.id, email=user.email, role=user.role) if ok and user else None


def is_locked(session: DbSession, *, email: str, address: str | None = None) -> bool:
    """True while a sign-in by ``email`` (from ``address``) would be refused by the back-off."""
    from analysis.auth import throttle

    return throttle.locked_until(session, normalise_email(email) or "(empty)", address) is not None


def authenticate_oidc(session: DbSession, *, email: str | None) -> Actor | None:
    """Map an identity provider's verified email to an active local account (which carries the
    role); None when there is none. Audits either way (``auth.sign_in``, method ``oidc``)."""
    email = normalise_email(email or "")
    user = session.scalar(select(User).where(func.lower(User.email) == email)) if email else None
    ok = user is not None and user.active
    who = Actor(
        user_id=user.id if user else None,
        email=email or "(empty)",
        role=user.role if user else "clinician",
    )
    audit.record(
        session,
        who,
        "auth.sign_in",
        outcome="success" if ok else "failure",
        object_type="user",
        object_id=user.id if user else "",
        details={"method": "oidc"}
        if ok
        else {"method": "oidc", "reason": "no active Candor account for this identity"},
    )
    return Actor(user_id=user.id, email=user.email, role=user.role) if ok and user else None


def auth_mode() -> str:
    """``password`` (local accounts, the default) or ``oidc`` (``CANDOR_AUTH=oidc``)."""
    return "oidc" if config.setting("CANDOR_AUTH").lower() == "oidc" else "password"


def demo_password() -> str:
    return config.setting("CANDOR_DEMO_PASSWORD") or DEMO_PASSWORD_DEFAULT
