"""Sign-in back-off that parallel guesses cannot race and an outsider cannot make permanent.

Before a password is checked, each attempt *claims* one slot on every key that applies to it, most
specific first:

* ``pair:<email>|<address>`` (limit :data:`PAIR_LIMIT`) when the client address is known, else
  ``account:<email>`` with that same limit;
* ``address:<address>`` (limit :data:`ADDRESS_LIMIT`, all accounts together: password spraying);
* ``account:<email>`` (limit :data:`ACCOUNT_LIMIT`) when the address is known: a ceiling against
  guesses spread over many addresses.

A claim is one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE locked_until <= now RETURNING`` (SQLite
3.35+ and PostgreSQL): it counts the attempt as a failure *before* the password is checked and, on
the claim that reaches the limit, sets ``locked_until`` in the same statement. A locked key returns
no row and the attempt is refused without checking the password, so however many guesses arrive at
once, at most ``limit`` passwords are checked. A correct password clears the account's keys and
gives back the slot it claimed on its address key (:func:`refund_address`): the address key counts
failures, so a clinic whose staff all sign in from one public address (one NAT) is not locked out
by its own busy morning, while a sprayer's one success still leaves their failures counted.

The back-off grows with the failures past the limit (:data:`BASE_BACKOFF_S` more per failure, at most
:data:`MAX_BACKOFF_S`) and expires: a refused attempt does not extend it, and a key with no failure
for :data:`FORGET_AFTER_S` starts again from zero. An outsider guessing from one address locks only
that (account, address) pair, not the clinician signing in from elsewhere; an admin can clear an
account's keys at once (:func:`analysis.services.users.unlock_account`).

The client address is taken from the request header named by ``CANDOR_TRUSTED_PROXY_HEADER``
(e.g. ``X-Forwarded-For``: its last entry, the one your proxy appended) only when that is set;
otherwise the direct peer, unless it is a loopback address (then it is the local proxy, shared by
every user, and the address is treated as unknown).
"""

from __future__ import annotations

import ipaddress
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, CursorResult, Table, case, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from analysis import config
from analysis.store.models import SignInThrottle

T = TypeVar("T")
PAIR_LIMIT = 5
ADDRESS_LIMIT = 20
ACCOUNT_LIMIT = 20
BASE_BACKOFF_S = 30.0
MAX_BACKOFF_S = 15 * 60.0
FORGET_AFTER_S = 60 * 60.0
PROXY_HEADER_ENV = "CANDOR_TRUSTED_PROXY_HEADER"


def trusted_proxy_header() -> str | None:
    name = config.setting(PROXY_HEADER_ENV)
    return name or None


def client_address(headers: Mapping[str, str] | None, peer: str | None) -> str | None:
    """The client's address for the back-off, or None when it cannot be told (see module doc)."""
    header = trusted_proxy_header()
    if header is not None:
        value = None
        for name, raw in (headers or {}).items():
            if name.lower() == header.lower():
                value = raw
        if not value:
            return None
        candidate = value.split(",")[-1].strip()
    else:
        candidate = (peer or "").strip()
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return None
    if header is None and address.is_loopback:
        return None
    return address.compressed


def keys_for(email: str, address: str | None) -> list[tuple[str, int]]:
    """The (key, limit) pairs an attempt claims, most specific first."""
    if address is None:
        return [(f"account:{email}", PAIR_LIMIT)]
    return [
        (f"pair:{email}|{address}", PAIR_LIMIT),
        (f"address:{address}", ADDRESS_LIMIT),
        (f"account:{email}", ACCOUNT_LIMIT),
    ]


def backoff_seconds(failures: int, limit: int) -> float:
    """How long a key is locked after its ``failures``-th failure (0 below the limit)."""
    if failures < limit:
        return 0.0
    return min(MAX_BACKOFF_S, BASE_BACKOFF_S * (failures - limit + 1))


def _insert(dialect: str):  # type: ignore[no-untyped-def]
    return (sqlite.insert if dialect == "sqlite" else postgresql.insert)(SignInThrottle)


def claim_one(conn: Connection, key: str, limit: int, now: float) -> int | None:
    """Count one attempt on ``key``; its new failure count, or None when the key is locked."""
    t = SignInThrottle.__table__
    assert isinstance(t, Table)  # a declarative model's table (typed as FromClause)
    stmt = _insert(conn.dialect.name).values(
        key=key,
        failures=1,
        last_failure_at=now,
        locked_until=now + backoff_seconds(1, limit) if limit <= 1 else 0.0,
    )
    new = case((t.c.last_failure_at < now - FORGET_AFTER_S, 1), else_=t.c.failures + 1)
    growth = BASE_BACKOFF_S * (new - limit + 1)
    lock = case(
        (new < limit, 0.0), (growth > MAX_BACKOFF_S, now + MAX_BACKOFF_S), else_=now + growth
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.c.key],
        set_={"failures": new, "last_failure_at": now, "locked_until": lock},
        where=t.c.locked_until <= now,
    ).returning(t.c.failures)
    row = conn.execute(stmt).first()
    return None if row is None else int(row[0])


def prune(conn: Connection, now: float) -> int:
    """Delete counters that are neither locked nor remembered any more (rows made by guesses at
    unknown emails would otherwise pile up); returns how many."""
    t = SignInThrottle.__table__
    assert isinstance(t, Table)  # a declarative model's table (typed as FromClause)
    return int(
        conn.execute(
            delete(t).where(t.c.locked_until <= now, t.c.last_failure_at < now - FORGET_AFTER_S)
        ).rowcount
        or 0
    )


#: A claim prunes stale counters once in this many attempts (on average).
PRUNE_EVERY = 100


@dataclass(frozen=True)
class Claim:
    allowed: bool
    #: the key that refused the attempt and when it opens again (epoch seconds)
    refused_by: str = ""
    retry_at: float = 0.0


def _side_connection(session: Session) -> tuple[Connection, bool]:
    """A connection for a write committed at once, apart from the caller's transaction; or the
    caller's own connection when, on SQLite, the caller already holds the write lock (a second
    connection would wait for it forever; the lock also makes the caller's write the only one)."""
    from analysis.store.audit import holds_sqlite_write_lock

    if holds_sqlite_write_lock(session):
        return session.connection(), False
    return session.get_bind().connect(), True  # type: ignore[union-attr]


def claim(session: Session, email: str, address: str | None, *, now: float | None = None) -> Claim:
    """Claim a slot on every key of this attempt (committed at once, apart from ``session``'s
    transaction, so parallel attempts see each other); stop at the first locked key."""
    when = time.time() if now is None else now
    conn, own = _side_connection(session)
    try:
        for key, limit in keys_for(email, address):
            if own:
                with conn.begin():
                    got = claim_one(conn, key, limit, when)
            else:
                got = claim_one(conn, key, limit, when)
            if got is None:
                retry = (
                    conn.scalar(
                        select(SignInThrottle.locked_until).where(SignInThrottle.key == key)
                    )
                    or when
                )
                return Claim(False, key, float(retry))
        if own and secrets.randbelow(PRUNE_EVERY) == 0:
            with conn.begin():
                prune(conn, when)
        return Claim(True)
    finally:
        if own:
            conn.close()


def clear_account(session: Session, email: str, *, in_session: bool = False) -> int:
    """Forget the account's failures (correct password, or an admin's unlock); rows removed.
    Address keys are kept: a sprayer's own successful sign-in does not reset their address.
    ``in_session``: delete inside ``session``'s transaction (with the caller's audit event)."""
    t = SignInThrottle.__table__
    assert isinstance(t, Table)  # a declarative model's table (typed as FromClause)
    escaped = email.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    stmt = delete(t).where(
        or_(t.c.key == f"account:{email}", t.c.key.like(f"pair:{escaped}|%", escape="\\"))
    )
    if in_session:
        result = session.execute(stmt)
        assert isinstance(result, CursorResult)  # DML returns a cursor result
        return int(result.rowcount or 0)
    return _run_apart(session, stmt)


def run_apart(session: Session, work: Callable[[Connection], T]) -> T:
    """``work(connection)`` committed at once, apart from ``session``'s transaction, on a
    connection of its own that goes back to the pool before this returns (see
    :func:`_side_connection`)."""
    conn, own = _side_connection(session)
    try:
        if own:
            with conn.begin():
                return work(conn)
        return work(conn)
    finally:
        if own:
            conn.close()


def _run_apart(session: Session, stmt: Any) -> int:
    return run_apart(session, lambda conn: int(conn.execute(stmt).rowcount or 0))


def refund_address(session: Session, address: str | None) -> int:
    """Give back the slot a successful attempt claimed on ``address:<address>`` (one failure
    fewer, and no lock when that leaves the count below the limit); committed at once like the
    claim. Rows changed (0 or 1)."""
    if address is None:
        return 0
    t = SignInThrottle.__table__
    assert isinstance(t, Table)  # a declarative model's table (typed as FromClause)
    stmt = (
        update(t)
        .where(t.c.key == f"address:{address}", t.c.failures > 0)
        .values(  # the right-hand sides read the row as it was
            failures=t.c.failures - 1,
            locked_until=case((t.c.failures - 1 < ADDRESS_LIMIT, 0.0), else_=t.c.locked_until),
        )
    )
    return _run_apart(session, stmt)


def locked_until(
    session: Session, email: str, address: str | None = None, *, now: float | None = None
) -> float | None:
    """When the first locked key of an attempt by ``email`` from ``address`` opens again, or None
    when nothing would refuse it now."""
    when = time.time() if now is None else now
    for key, _limit in keys_for(email, address):
        until = session.scalar(select(SignInThrottle.locked_until).where(SignInThrottle.key == key))
        if until is not None and until > when:
            return float(until)
    return None


def account_locks(session: Session, *, now: float | None = None) -> dict[str, float]:
    """email -> latest ``locked_until`` of its account or pair keys still locked (Users page)."""
    when = time.time() if now is None else now
    out: dict[str, float] = {}
    for key, until in session.execute(
        select(SignInThrottle.key, SignInThrottle.locked_until).where(
            SignInThrottle.locked_until > when
        )
    ):
        kind, _, rest = key.partition(":")
        if kind == "account":
            email = rest
        elif kind == "pair":
            email = rest.rsplit("|", 1)[0]
        else:
            continue
        out[email] = max(out.get(email, 0.0), float(until))
    return out
