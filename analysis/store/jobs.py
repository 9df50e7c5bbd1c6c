"""A database-backed job queue that any replica's workers share without double-processing.

The ``jobs`` table (:class:`analysis.store.models.Job`) is the queue. A worker:

1. **claims** the oldest claimable job of the kinds it runs (:func:`claim`): one statement that
   sets ``state='running'``, counts the attempt and writes a lease (``locked_by``, ``locked_until``
   in epoch seconds). On PostgreSQL the row is picked by ``SELECT ... FOR UPDATE SKIP LOCKED``
   inside that ``UPDATE``, so concurrent claimers never wait on nor take the same row; on SQLite
   (one writer at a time) the ``UPDATE ... WHERE id = (SELECT ...) AND <still claimable>
   RETURNING`` is atomic by itself. A job is claimable when ``queued``, or ``running`` with its
   lease run out (its worker died) and attempts left.
2. **renews** the lease while it works (:func:`renew`), so a live worker keeps its job;
3. **finishes** it (:func:`finish` / :func:`fail`), fenced by its lease: the update applies only
   while the job is still ``running`` under this worker's id *and this attempt number*, so a worker
   that lost its lease (paused past it while another took the job over) cannot overwrite the
   newer attempt's outcome.

A handler's exception puts the job back to ``queued`` while attempts remain, else ``failed`` with
the last error. A job whose lease ran out on its last attempt is marked ``failed`` by the next
claim (:func:`expire_abandoned`), with an error saying so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Table, and_, func, insert, or_, select, update
from sqlalchemy.orm import Session

from analysis.store.models import Job, utcnow

#: Seconds a claim holds a job before another worker may take it over (renewed while working).
DEFAULT_LEASE_S = 60.0
DEFAULT_MAX_ATTEMPTS = 3


def _table() -> Table:
    t = Job.__table__
    assert isinstance(t, Table)  # a declarative model's table (typed as FromClause)
    return t


@dataclass(frozen=True)
class Claimed:
    """A job this worker holds: run it, then :func:`finish` or :func:`fail` with ``attempt``."""

    id: int
    kind: str
    payload: dict[str, Any]
    attempt: int
    max_attempts: int


def enqueue(
    bind: Session | Connection,
    kind: str,
    payloads: list[dict[str, Any]],
    *,
    created_by: str = "",
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> list[int]:
    """Queue one job of ``kind`` per payload inside ``bind``'s transaction (not committed: the
    caller commits it with its audit event); their ids in order."""
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    t = _table()
    ids: list[int] = []
    for payload in payloads:
        row = bind.execute(
            insert(t)
            .values(
                kind=kind,
                payload=payload,
                state="queued",
                attempts=0,
                max_attempts=max_attempts,
                error="",
                created_by=created_by,
                created_at=utcnow(),
            )
            .returning(t.c.id)
        ).scalar_one()
        ids.append(int(row))
    return ids


def _claimable(t: Any, now: float) -> Any:
    return and_(
        t.c.attempts < t.c.max_attempts,
        or_(
            t.c.state == "queued",
            and_(t.c.state == "running", t.c.locked_until < now),
        ),
    )


def expire_abandoned(engine: Engine, *, now: float | None = None) -> int:
    """Mark ``failed`` every running job whose lease ran out on its last attempt; how many."""
    now = time.time() if now is None else now
    t = _table()
    with engine.begin() as conn:
        done = conn.execute(
            update(t)
            .where(
                t.c.state == "running",
                t.c.locked_until < now,
                t.c.attempts >= t.c.max_attempts,
            )
            .values(
                state="failed",
                error="the worker stopped (its lease ran out) on the last attempt",
                locked_by=None,
                locked_until=None,
                finished_at=utcnow(),
            )
        )
        return int(done.rowcount or 0)


def claim(
    engine: Engine,
    worker_id: str,
    kinds: tuple[str, ...] | list[str],
    *,
    lease_s: float = DEFAULT_LEASE_S,
    now: float | None = None,
) -> Claimed | None:
    """Take the oldest claimable job of ``kinds`` for ``worker_id``; None when there is none."""
    now = time.time() if now is None else now
    t = _table()
    c = t.alias("candidate")  # its own FROM: not correlated with the UPDATE's table
    pick = select(c.c.id).where(c.c.kind.in_(list(kinds)), _claimable(c, now))
    pick = pick.order_by(c.c.id).limit(1)
    if engine.dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    stmt = (
        update(t)
        .where(t.c.id == pick.scalar_subquery(), _claimable(t, now))
        .values(
            state="running",
            attempts=t.c.attempts + 1,
            locked_by=worker_id,
            locked_until=now + lease_s,
            started_at=utcnow(),
        )
        .returning(t.c.id, t.c.kind, t.c.payload, t.c.attempts, t.c.max_attempts)
    )
    with engine.begin() as conn:
        row = conn.execute(stmt).first()
    if row is None:
        return None
    return Claimed(
        id=int(row.id),
        kind=str(row.kind),
        payload=dict(row.payload or {}),
        attempt=int(row.attempts),
        max_attempts=int(row.max_attempts),
    )


def _held(t: Table, job: Claimed, worker_id: str) -> Any:
    return and_(
        t.c.id == job.id,
        t.c.state == "running",
        t.c.locked_by == worker_id,
        t.c.attempts == job.attempt,
    )


def renew(
    engine: Engine,
    job: Claimed,
    worker_id: str,
    *,
    lease_s: float = DEFAULT_LEASE_S,
    now: float | None = None,
) -> bool:
    """Extend this worker's lease on ``job``; False when it no longer holds it."""
    now = time.time() if now is None else now
    t = _table()
    with engine.begin() as conn:
        done = conn.execute(
            update(t).where(_held(t, job, worker_id)).values(locked_until=now + lease_s)
        )
        return bool(done.rowcount)


def finish(engine: Engine, job: Claimed, worker_id: str, result: dict[str, Any]) -> bool:
    """Record ``job`` done with ``result``; False (nothing written) when the lease was lost."""
    t = _table()
    with engine.begin() as conn:
        done = conn.execute(
            update(t)
            .where(_held(t, job, worker_id))
            .values(
                state="done",
                result=result,
                error="",
                locked_by=None,
                locked_until=None,
                finished_at=utcnow(),
            )
        )
        return bool(done.rowcount)


def fail(
    engine: Engine, job: Claimed, worker_id: str, error: str, *, permanent: bool = False
) -> str | None:
    """Record a failed attempt: back to ``queued`` while attempts remain (and the error is not
    ``permanent``: retrying cannot help), else ``failed``. The new state, or None (nothing
    written) when the lease was lost."""
    t = _table()
    final = permanent or job.attempt >= job.max_attempts
    state = "failed" if final else "queued"
    message = f"attempt {job.attempt} of {job.max_attempts}: {error}"[:4000]
    with engine.begin() as conn:
        done = conn.execute(
            update(t)
            .where(_held(t, job, worker_id))
            .values(
                state=state,
                error=message,
                locked_by=None,
                locked_until=None,
                finished_at=utcnow() if final else None,
            )
        )
        return state if done.rowcount else None


@dataclass(frozen=True)
class JobView:
    id: int
    kind: str
    state: str
    attempts: int
    max_attempts: int
    result: dict[str, Any] | None
    error: str


def jobs_by_id(engine: Engine, ids: list[int]) -> list[JobView]:
    """The jobs ``ids`` as they stand, in id order."""
    if not ids:
        return []
    t = _table()
    with engine.connect() as conn:
        rows = conn.execute(select(t).where(t.c.id.in_(ids)).order_by(t.c.id)).all()
    return [
        JobView(
            id=int(r.id),
            kind=str(r.kind),
            state=str(r.state),
            attempts=int(r.attempts),
            max_attempts=int(r.max_attempts),
            result=r.result,
            error=str(r.error or ""),
        )
        for r in rows
    ]


def counts(engine: Engine, *, kind: str | None = None) -> dict[str, int]:
    """How many jobs are in each state (of ``kind``, or all)."""
    t = _table()
    stmt = select(t.c.state, func.count()).group_by(t.c.state)
    if kind is not None:
        stmt = stmt.where(t.c.kind == kind)
    with engine.connect() as conn:
        return {str(s): int(n) for s, n in conn.execute(stmt).all()}
