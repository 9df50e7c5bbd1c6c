"""Local accounts for the embedded default deployment.

Passwords are hashed with Argon2id (argon2-cffi's ``PasswordHasher`` defaults). Sign-in attempts,
successful or not, each write one audit event; repeated failures are backed off per account and
per client address (:mod:`analysis.auth.throttle`: atomic, growing, expiring; an admin can
:func:`unlock_account`), and unknown emails cost the same Argon2 time as known ones. Production deployments
can use OIDC instead (Streamlit's ``st.login``; see docs/security.md), in which case these accounts
only carry roles (:func:`authenticate_oidc` maps the verified email to its account).

Account management (:func:`create_user`, :func:`set_role`, :func:`set_password`,
:func:`deactivate_user`, :func:`reactivate_user`, :func:`list_users`, :func:`unlock_account`) needs ``users.manage`` and is audited; the last active
admin can be neither demoted nor deactivated.
"""

from __future__ import annotations

import functools
import os
import secrets
import time
from datetime import datetime, timezone
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select
from sqlalchemy.orm import Session as DbSession

from analysis.store import audit
from analysis.store.access import Actor, require
from analysis.store.models import ROLES, User
from analysis.store.records import FieldError

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


def create_user(
    session: DbSession, actor: Actor, *, email: str, display_name: str, role: str,
    password: str | None,
) -> User:
    """Create an account (``password`` None: no local sign-in, e.g. OIDC-only or an operator)."""
    require(actor, "users.manage", session)
    email = normalise_email(email)
    if "@" not in email or email.startswith("@") or email.endswith("@"):
        raise FieldError("email", "enter a valid email address")
    if role not in ROLES:
        raise FieldError("role", f"role must be one of {', '.join(ROLES)}")
    if session.scalar(select(User.id).where(func.lower(User.email) == email)) is not None:
        raise FieldError("email", f"an account for {email} already exists")
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        raise FieldError("password", f"passwords need at least {MIN_PASSWORD_LENGTH} characters")
    user = User(email=email, display_name=display_name.strip() or email, role=role,
                password_hash=hash_password(password) if password is not None else None)
    session.add(user)
    session.flush()
    audit.record(session, actor, "user.create", object_type="user", object_id=user.id,
                 details={"email": email, "role": role})
    return user


@functools.lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """An Argon2id hash of a random secret, made with the same parameters as real ones: checking a
    password against it costs what checking a real account does."""
    return _hasher.hash(secrets.token_hex(16))


def _check_password(user: User | None, password: str) -> bool:
    """Verify ``password``, spending one Argon2 verification whatever the account: unknown emails,
    inactive accounts and accounts without a local password are checked against a dummy hash, so
    the time taken does not tell which emails have accounts."""
    usable = user is not None and user.active and bool(user.password_hash)
    ok = verify_password(user.password_hash if usable else _dummy_hash(), password)  # type: ignore[union-attr]
    return ok and usable


def _retry_text(seconds: float) -> str:
    seconds = max(1, int(seconds + 0.999))
    return f"{seconds} s" if seconds < 120 else f"{(seconds + 59) // 60} min"


def authenticate(session: DbSession, *, email: str, password: str,
                 address: str | None = None, now: float | None = None) -> Actor | None:
    """The actor for valid credentials of an active account, else None. Audits either way.

    Each attempt first claims a slot in the back-off (:func:`analysis.auth.throttle.claim`, one
    atomic statement per key, for the account and, when known, the client ``address``); while a
    key is locked the attempt is refused without checking the password (audited, reason
    ``locked: ...``). A correct password clears the account's back-off.
    """
    from analysis.auth import throttle

    email = normalise_email(email)
    key_email = email or "(empty)"
    slot = throttle.claim(session, key_email, address, now=now)
    user = session.scalar(select(User).where(func.lower(User.email) == email))
    who = Actor(user_id=user.id if user else None, email=key_email,
                role=user.role if user else "clinician")
    ok = slot.allowed and _check_password(user, password)
    details: dict[str, Any] = {"method": "password"}
    if address is not None:
        details["address"] = address
    if ok:
        throttle.clear_account(session, key_email)
    elif not slot.allowed:
        wait = slot.retry_at - (time.time() if now is None else now)
        details["reason"] = (f"locked: too many failed sign-ins "
                             f"({slot.refused_by.partition(':')[0]}), retry in {_retry_text(wait)}")
    else:
        details["reason"] = "bad credentials or inactive account"
    audit.record(session, who, "auth.sign_in", outcome="success" if ok else "failure",
                 object_type="user", object_id=user.id if user else "", details=details)
    return actor_for(user) if ok and user is not None else None


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
    who = Actor(user_id=user.id if user else None, email=email or "(empty)",
                role=user.role if user else "clinician")
    audit.record(session, who, "auth.sign_in", outcome="success" if ok else "failure",
                 object_type="user", object_id=user.id if user else "",
                 details={"method": "oidc"} if ok else
                 {"method": "oidc", "reason": "no active Candor account for this identity"})
    return actor_for(user) if ok and user is not None else None


# --- account management --------------------------------------------------------------------------


def _user(session: DbSession, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise FieldError("user_id", f"no account with id {user_id}")
    return user


def _other_active_admins(session: DbSession, user_id: int) -> int:
    return int(session.scalar(select(func.count()).select_from(User).where(
        User.role == "admin", User.active.is_(True), User.id != user_id)) or 0)


def set_role(session: DbSession, actor: Actor, *, user_id: int, role: str) -> User:
    """Change an account's role (effective on that user's next page load). Audited."""
    require(actor, "users.manage", session)
    if role not in ROLES:
        raise FieldError("role", f"role must be one of {', '.join(ROLES)}")
    user = _user(session, user_id)
    old = user.role
    if old == "admin" and role != "admin" and user.active and not _other_active_admins(session,
                                                                                       user.id):
        raise FieldError("role", "this is the last active admin account; make another admin first")
    user.role = role
    session.flush()
    audit.record(session, actor, "user.role_change", object_type="user", object_id=user.id,
                 details={"email": user.email, "from": old, "to": role})
    return user


def deactivate_user(session: DbSession, actor: Actor, *, user_id: int) -> User:
    """Deactivate an account (no sign-in; its live sessions end at once). Audited."""
    from analysis.auth import sessions

    require(actor, "users.manage", session)
    user = _user(session, user_id)
    if actor.user_id is not None and actor.user_id == user.id:
        raise FieldError("user_id", "you cannot deactivate your own account")
    if user.role == "admin" and user.active and not _other_active_admins(session, user.id):
        raise FieldError("user_id", "this is the last active admin account")
    user.active = False
    session.flush()
    ended = sessions.end_all_for_user(session, user.id, reason="account_deactivated")
    audit.record(session, actor, "user.deactivate", object_type="user", object_id=user.id,
                 details={"email": user.email, "sessions_ended": ended})
    return user


def set_password(session: DbSession, actor: Actor, *, user_id: int, password: str | None) -> User:
    """Set (or, with None, remove) an account's local password; its live sessions end. Audited
    (the event never contains the password)."""
    from analysis.auth import sessions

    require(actor, "users.manage", session)
    user = _user(session, user_id)
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        raise FieldError("password", f"passwords need at least {MIN_PASSWORD_LENGTH} characters")
    user.password_hash = hash_password(password) if password is not None else None
    session.flush()
    ended = sessions.end_all_for_user(session, user.id, reason="password_reset")
    audit.record(session, actor, "user.password_reset", object_type="user", object_id=user.id,
                 details={"email": user.email, "local_sign_in": password is not None,
                          "sessions_ended": ended})
    return user


def reactivate_user(session: DbSession, actor: Actor, *, user_id: int) -> User:
    require(actor, "users.manage", session)
    user = _user(session, user_id)
    user.active = True
    session.flush()
    audit.record(session, actor, "user.reactivate", object_type="user", object_id=user.id,
                 details={"email": user.email})
    return user


def list_users(session: DbSession, actor: Actor) -> list[dict[str, Any]]:
    """Every account (no password hashes), oldest first; ``locked_until`` (UTC) while the sign-in
    back-off refuses the account (from any address), else None."""
    from analysis.auth import throttle

    require(actor, "users.manage", session)
    locks = throttle.account_locks(session)
    return [
        {"id": u.id, "email": u.email, "name": u.display_name, "role": u.role,
         "active": u.active, "local_password": u.password_hash is not None,
         "locked_until": (datetime.fromtimestamp(locks[u.email], timezone.utc)
                          if u.email in locks else None),
         "created_at": u.created_at}
        for u in session.scalars(select(User).order_by(User.id))
    ]


def unlock_account(session: DbSession, actor: Actor, *, user_id: int) -> int:
    """Clear an account's sign-in back-off (every address); returns the counters cleared. Audited.
    Address-wide counters stay (they belong to the address, not the account)."""
    from analysis.auth import throttle

    require(actor, "users.manage", session)
    user = _user(session, user_id)
    cleared = throttle.clear_account(session, user.email, in_session=True)
    audit.record(session, actor, "user.unlock", object_type="user", object_id=user.id,
                 details={"email": user.email, "counters_cleared": cleared})
    return cleared


def demo_password() -> str:
    return os.environ.get("CANDOR_DEMO_PASSWORD") or DEMO_PASSWORD_DEFAULT


def seed_demo_accounts(session: DbSession, *, password: str | None = None) -> list[User]:
    """Create the four demo-only accounts (one per role) that do not exist yet."""
    from analysis.store.access import SYSTEM

    password = password or demo_password()
    created = []
    for email, (name, role) in DEMO_ACCOUNTS.items():
        if session.scalar(select(User.id).where(User.email == email)) is None:
            created.append(create_user(session, SYSTEM, email=email, display_name=name, role=role,
                                       password=password))
    return created
