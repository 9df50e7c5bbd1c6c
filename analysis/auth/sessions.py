"""Server-side sign-in sessions with an idle timeout.

Signing in creates a row in ``sign_in_sessions`` and hands the caller a random bearer token
(256 bits, :func:`secrets.token_urlsafe`); only its SHA-256 is stored, so a copy of the database
cannot be replayed as a session. Every script run calls :func:`resume` once: it returns the actor
(with the account's *current* role, so a role change or deactivation takes effect on the next
run) and refreshes ``last_seen_at``, or ends the session when it has been idle longer than
:func:`idle_timeout` (env ``CANDOR_IDLE_TIMEOUT_MIN``, default 15 minutes; HIPAA 164.312(a)(2)(iii)
automatic logoff). :func:`end` (sign-out) sets ``ended_at``; an ended token never validates again.
Sign-out and timeouts each write one audit event.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from analysis import config
from analysis.store import audit
from analysis.store.access import Actor
from analysis.store.models import SignInSession, User, utcnow

DEFAULT_IDLE_TIMEOUT_MIN = 15.0
METHODS = ("password", "oidc")


def idle_timeout() -> timedelta:
    """The idle timeout: ``CANDOR_IDLE_TIMEOUT_MIN`` minutes (default 15), read at call time."""
    raw = config.setting("CANDOR_IDLE_TIMEOUT_MIN")
    if not raw:
        return timedelta(minutes=DEFAULT_IDLE_TIMEOUT_MIN)
    try:
        minutes = float(raw)
    except ValueError:
        raise ValueError(
            f"CANDOR_IDLE_TIMEOUT_MIN must be a number of minutes, got {raw!r}"
        ) from None
    if not 0 < minutes <= 24 * 60:
        raise ValueError(f"CANDOR_IDLE_TIMEOUT_MIN must be between 0 and 1440 minutes, got {raw!r}")
    return timedelta(minutes=minutes)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(
    session: DbSession, actor: Actor, *, method: str = "password", now: datetime | None = None
) -> str:
    """Open a session for an authenticated ``actor``; return the bearer token (not stored)."""
    if actor.user_id is None:
        raise ValueError("only a stored account can hold a sign-in session")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    token = secrets.token_urlsafe(32)
    when = now or utcnow()
    row = SignInSession(
        token_hash=token_hash(token),
        user_id=actor.user_id,
        method=method,
        created_at=when,
        last_seen_at=when,
    )
    session.add(row)
    session.flush()
    return token


def _find(session: DbSession, token: str) -> SignInSession | None:
    if not token:
        return None
    return session.scalar(
        select(SignInSession).where(SignInSession.token_hash == token_hash(token))
    )


def _close(
    session: DbSession, row: SignInSession, user: User | None, reason: str, when: datetime
) -> None:
    row.ended_at = when
    row.end_reason = reason
    session.flush()
    who = Actor(
        user_id=row.user_id,
        email=user.email if user else "(deleted account)",
        role=user.role if user else "clinician",
    )
    action = "auth.sign_out" if reason == "sign_out" else "auth.session_end"
    audit.record(
        session,
        who,
        action,
        object_type="sign_in_session",
        object_id=row.id,
        details={"reason": reason, "method": row.method},
    )


def resume(
    session: DbSession, token: str, *, now: datetime | None = None, timeout: timedelta | None = None
) -> Actor | None:
    """The actor for a live token, refreshing its last-seen time; None when the token is unknown,
    ended, idle for longer than ``timeout`` (the session is then ended and audited) or its account
    is inactive."""
    row = _find(session, token)
    if row is None or row.ended_at is not None:
        return None
    when = now or utcnow()
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        _close(session, row, user, "account_inactive", when)
        return None
    if when - row.last_seen_at > (timeout or idle_timeout()):
        _close(session, row, user, "idle_timeout", when)
        return None
    row.last_seen_at = when
    session.flush()
    return Actor(user_id=user.id, email=user.email, role=user.role)


def is_live(
    session: DbSession, token: str, *, now: datetime | None = None, timeout: timedelta | None = None
) -> bool:
    """True while the token's session would resume; unlike :func:`resume` it neither refreshes
    ``last_seen_at`` nor ends anything (the app's idle watch polls it without keeping it alive)."""
    row = _find(session, token)
    if row is None or row.ended_at is not None:
        return False
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        return False
    return (now or utcnow()) - row.last_seen_at <= (timeout or idle_timeout())


def end(
    session: DbSession, token: str, *, reason: str = "sign_out", now: datetime | None = None
) -> bool:
    """End the session (sign-out); True when a live session was ended. Audited."""
    row = _find(session, token)
    if row is None or row.ended_at is not None:
        return False
    _close(session, row, session.get(User, row.user_id), reason, now or utcnow())
    return True


def end_all_for_user(
    session: DbSession, user_id: int, *, reason: str, now: datetime | None = None
) -> int:
    """End every live session of an account (deactivation); returns how many were ended."""
    rows = session.scalars(
        select(SignInSession).where(
            SignInSession.user_id == user_id, SignInSession.ended_at.is_(None)
        )
    ).all()
    user = session.get(User, user_id)
    for row in rows:
        _close(session, row, user, reason, now or utcnow())
    return len(rows)
