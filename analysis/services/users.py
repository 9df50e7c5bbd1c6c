"""Account management: create accounts, change roles and passwords, deactivate, unlock.

Every function needs ``users.manage`` (admins) and is audited; the last active admin can be neither
demoted nor deactivated. Passwords are hashed by :mod:`analysis.auth.accounts` (Argon2id) and never
written to the audit trail. Sign-in itself is :func:`analysis.auth.accounts.authenticate`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session as DbSession

from analysis.auth.accounts import DEMO_ACCOUNTS, demo_password, hash_password
from analysis.auth.accounts import MIN_PASSWORD_LENGTH as MIN_PASSWORD_LENGTH  # re-exported
from analysis.auth.accounts import normalise_email as normalise_email  # re-exported
from analysis.errors import FieldError
from analysis.store import audit
from analysis.store.access import SYSTEM, Actor, require
from analysis.store.models import ROLES, User


def create_user(
    session: DbSession,
    actor: Actor,
    *,
    email: str,
    display_name: str,
    role: str,
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
    user = User(
        email=email,
        display_name=display_name.strip() or email,
        role=role,
        password_hash=hash_password(password) if password is not None else None,
    )
    session.add(user)
    session.flush()
    audit.record(
        session,
        actor,
        "user.create",
        object_type="user",
        object_id=user.id,
        details={"email": email, "role": role},
    )
    return user


# --- changes to existing accounts --------------------------------------------------------------------------


def _user(session: DbSession, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise FieldError("user_id", f"no account with id {user_id}")
    return user


def _other_active_admins(session: DbSession, user_id: int) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(User)
            .where(User.role == "admin", User.active.is_(True), User.id != user_id)
        )
        or 0
    )


def set_role(session: DbSession, actor: Actor, *, user_id: int, role: str) -> User:
    """Change an account's role (effective on that user's next page load). Audited."""
    require(actor, "users.manage", session)
    if role not in ROLES:
        raise FieldError("role", f"role must be one of {', '.join(ROLES)}")
    user = _user(session, user_id)
    old = user.role
    if (
        old == "admin"
        and role != "admin"
        and user.active
        and not _other_active_admins(session, user.id)
    ):
        raise FieldError("role", "this is the last active admin account; make another admin first")
    user.role = role
    session.flush()
    audit.record(
        session,
        actor,
        "user.role_change",
        object_type="user",
        object_id=user.id,
        details={"email": user.email, "from": old, "to": role},
    )
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
    audit.record(
        session,
        actor,
        "user.deactivate",
        object_type="user",
        object_id=user.id,
        details={"email": user.email, "sessions_ended": ended},
    )
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
    audit.record(
        session,
        actor,
        "user.password_reset",
        object_type="user",
        object_id=user.id,
        details={
            "email": user.email,
            "local_sign_in": password is not None,
            "sessions_ended": ended,
        },
    )
    return user


def reactivate_user(session: DbSession, actor: Actor, *, user_id: int) -> User:
    require(actor, "users.manage", session)
    user = _user(session, user_id)
    user.active = True
    session.flush()
    audit.record(
        session,
        actor,
        "user.reactivate",
        object_type="user",
        object_id=user.id,
        details={"email": user.email},
    )
    return user


def list_users(session: DbSession, actor: Actor) -> list[dict[str, Any]]:
    """Every account (no password hashes), oldest first; ``locked_until`` (UTC) while the sign-in
    back-off refuses the account (from any address), else None."""
    from analysis.auth import throttle

    require(actor, "users.manage", session)
    locks = throttle.account_locks(session)
    return [
        {
            "id": u.id,
            "email": u.email,
            "name": u.display_name,
            "role": u.role,
            "active": u.active,
            "local_password": u.password_hash is not None,
            "locked_until": (
                datetime.fromtimestamp(locks[u.email], UTC) if u.email in locks else None
            ),
            "created_at": u.created_at,
        }
        for u in session.scalars(select(User).order_by(User.id))
    ]


def unlock_account(session: DbSession, actor: Actor, *, user_id: int) -> int:
    """Clear an account's sign-in back-off (every address); returns the counters cleared. Audited.
    Address-wide counters stay (they belong to the address, not the account)."""
    from analysis.auth import throttle

    require(actor, "users.manage", session)
    user = _user(session, user_id)
    cleared = throttle.clear_account(session, user.email, in_session=True)
    audit.record(
        session,
        actor,
        "user.unlock",
        object_type="user",
        object_id=user.id,
        details={"email": user.email, "counters_cleared": cleared},
    )
    return cleared


def seed_demo_accounts(session: DbSession, *, password: str | None = None) -> list[User]:
    """Create the four demo-only accounts (one per role) that do not exist yet."""
    password = password or demo_password()
    created = []
    for email, (name, role) in DEMO_ACCOUNTS.items():
        if session.scalar(select(User.id).where(User.email == email)) is None:
            created.append(
                create_user(
                    session, SYSTEM, email=email, display_name=name, role=role, password=password
                )
            )
    return created
