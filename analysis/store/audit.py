"""The audit trail: one append-only, hash-chained event per access or change.

Each event's ``hash`` is HMAC-SHA-256, under the audit key (:func:`analysis.store.anchor.audit_key`,
which lives neither in the database nor in the data directory), over the previous event's hash and
the event's own canonical JSON (:func:`keyed_digest`); the first event chains from ``GENESIS``.
Someone holding the database but not the key can therefore not re-compute the chain after deleting
or editing an event. Events written before migration 0006 carry ``chain_scheme = 'sha256'`` and
their unkeyed digest (:func:`event_digest`); they verify as such, but only *before* the first keyed
event: an unkeyed event after a keyed one is reported as a downgrade.

``prev_hash`` is unique, so two writers racing for the same chain head cannot both commit (the loser
retries on the new head). On PostgreSQL the head is moreover read under a transaction-scoped
advisory lock (:data:`CHAIN_LOCK`, held until the transaction ends), so writers queue for it
instead of racing: the head a writer reads is the newest committed one and nobody else can take
it before the commit. Without the lock, a replica with 50 users on it (benchmarks/load_replicas.py)
had writers losing the race HEAD_RETRIES times in a row, and their actions refused. On SQLite the
database's single write lock already serialises writers. Database triggers reject UPDATE and
DELETE (migration 0002).
:func:`verify_chain` re-walks the chain and reports edits, deletions, reordering and re-chaining
without the key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from analysis.store import anchor
from analysis.store.access import Actor
from analysis.store.models import AuditEvent, utcnow

log = logging.getLogger(__name__)
GENESIS = "0" * 64
#: Attempts to append when concurrent writers keep taking the chain head (each loss means another
#: event was committed, so the chain as a whole always makes progress).
HEAD_RETRIES = 50
#: PostgreSQL advisory lock key the chain head is taken under ("candor audit chain").
CHAIN_LOCK = 0x63616E646F72_01
OUTCOMES = ("success", "denied", "failure")
#: ``chain_scheme`` values: every event written now, and the unkeyed events of older databases.
KEYED = "hmac-sha256"
UNKEYED = "sha256"


class AuditWriteError(RuntimeError):
    """The audit event could not be written; the audited action must not proceed."""


def _canonical(prev_hash: str, fields: dict[str, Any]) -> bytes:
    return (
        prev_hash + json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    ).encode()


def event_digest(prev_hash: str, fields: dict[str, Any]) -> str:
    """The unkeyed SHA-256 link of events written before migration 0006 (``sha256``)."""
    return hashlib.sha256(_canonical(prev_hash, fields)).hexdigest()


def keyed_digest(key: bytes, prev_hash: str, fields: dict[str, Any]) -> str:
    """The keyed link (``hmac-sha256``): HMAC-SHA-256 under the audit key."""
    return hmac.new(key, _canonical(prev_hash, fields), hashlib.sha256).hexdigest()


def _fields(event: AuditEvent) -> dict[str, Any]:
    occurred: datetime = event.occurred_at
    return {
        "occurred_at": occurred.isoformat(timespec="microseconds"),
        "actor_email": event.actor_email,
        "actor_role": event.actor_role,
        "action": event.action,
        "outcome": event.outcome,
        "patient_id": event.patient_id,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "details": event.details,
    }


def holds_sqlite_write_lock(session: Session) -> bool:
    """True when ``session`` is on SQLite and its transaction has written (pysqlite begins the
    transaction, and takes the database's write lock, at the first INSERT/UPDATE/DELETE): another
    connection's write would then wait for this one to end."""
    bind = session.get_bind()
    if bind.dialect.name != "sqlite" or not session.in_transaction():
        return False
    raw = session.connection().connection.dbapi_connection
    return bool(getattr(raw, "in_transaction", False))


def _lock_chain(session: Session) -> None:
    """Queue for the chain head until this transaction ends (PostgreSQL; see the module notes).
    Taken outside any savepoint, so a retry inside one keeps it."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHAIN_LOCK})


def _head(session: Session) -> str:
    last = session.scalars(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)).first()
    return last or GENESIS


def record(
    session: Session,
    actor: Actor,
    action: str,
    *,
    outcome: str = "success",
    patient_id: int | None = None,
    object_type: str = "",
    object_id: str | int = "",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event inside ``session``'s transaction (flushed, not committed).

    Raises :class:`AuditWriteError` when the event cannot be written; callers must then not show
    or export what they were about to.
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
    fields = dict(
        occurred_at=utcnow(),
        actor_email=actor.email,
        actor_role=actor.role,
        action=action,
        outcome=outcome,
        patient_id=patient_id,
        object_type=object_type,
        object_id=str(object_id),
        details=details or {},
    )
    key = anchor.audit_key()
    _lock_chain(session)
    for attempt in range(HEAD_RETRIES):
        event = AuditEvent(**fields, chain_scheme=KEYED)
        event.prev_hash = _head(session)
        event.hash = keyed_digest(key, event.prev_hash, _fields(event))
        try:
            with session.begin_nested():
                session.add(event)
            anchor.note_head(session, event.id, event.hash)
            return event
        except IntegrityError as exc:
            if "prev_hash" not in str(exc.orig):  # e.g. a trigger refusing the insert
                raise AuditWriteError(f"audit event could not be written: {exc.orig}") from exc
            # another writer took this chain head: back off a little, then chain onto the new one
            time.sleep(random.uniform(0, min(0.05, 0.002 * (attempt + 1))))
        except Exception as exc:  # the database refused the write for another reason
            raise AuditWriteError(f"audit event could not be written: {exc}") from exc
    raise AuditWriteError("audit chain head kept moving; event not written")


def record_many(session: Session, events: list[tuple[Actor, dict[str, Any]]]) -> None:
    """Append many events in one batch (bulk seeding): the same chain :func:`record` builds,
    event by event, with one INSERT per 5,000 events instead of three statements each.

    Each event is ``(actor, fields)`` with the keyword arguments of :func:`record` (``action``
    required; ``outcome``, ``patient_id``, ``object_type``, ``object_id``, ``details`` optional).
    The chain head is read once, so the caller must hold the only writer (a seeding transaction
    on a new database); a racing writer makes the batch fail on ``prev_hash`` uniqueness rather
    than fork the chain.
    """
    if not events:
        return
    _lock_chain(session)
    prev = _head(session)
    key = anchor.audit_key()
    rows: list[dict[str, Any]] = []
    table = AuditEvent.__table__
    for actor, f in events:
        outcome = f.get("outcome", "success")
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
        event = SimpleNamespace(
            occurred_at=utcnow(),
            actor_email=actor.email,
            actor_role=actor.role,
            action=f["action"],
            outcome=outcome,
            patient_id=f.get("patient_id"),
            object_type=f.get("object_type", ""),
            object_id=str(f.get("object_id", "")),
            details=f.get("details") or {},
        )
        digest = keyed_digest(key, prev, _fields(event))  # type: ignore[arg-type]
        rows.append(
            {c: getattr(event, c) for c in _COLUMNS}
            | {"prev_hash": prev, "hash": digest, "chain_scheme": KEYED}
        )
        prev = digest
    for start in range(0, len(rows), 5000):
        session.execute(table.insert(), rows[start : start + 5000])  # type: ignore[attr-defined]
    last_id = session.scalars(select(AuditEvent.id).where(AuditEvent.hash == prev)).one()
    anchor.note_head(session, last_id, prev)  # signed outside the database on commit


_COLUMNS = (
    "occurred_at",
    "actor_email",
    "actor_role",
    "action",
    "outcome",
    "patient_id",
    "object_type",
    "object_id",
    "details",
)


@dataclass(frozen=True)
class ChainProblem:
    event_id: int
    problem: str


@dataclass(frozen=True)
class ChainWalk:
    """What :func:`walk_chain` read: the ``problems`` (empty: intact), how many ``events`` it
    verified, the first and last of them, and the last one's ``hash`` (``None`` when it read none)."""

    problems: list[ChainProblem]
    events: int
    first_id: int | None
    last_id: int | None
    last_hash: str | None


#: The columns :func:`walk_chain` reads, in its row order.
_WALK_COLUMNS = (
    AuditEvent.id,
    *(getattr(AuditEvent, name) for name in _COLUMNS),
    AuditEvent.prev_hash,
    AuditEvent.hash,
    AuditEvent.chain_scheme,
)


def _utc(value: object) -> datetime:
    """A raw ``occurred_at`` as the model returns it: SQLite hands over ISO text, PostgreSQL an
    aware datetime (:class:`~analysis.store.models.UTCDateTime`)."""
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    if not isinstance(when, datetime):
        raise TypeError(f"occurred_at is {type(value).__name__}, not a timestamp")
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def walk_chain(
    session: Session, *, key: bytes | None = None, since_id: int | None = None
) -> ChainWalk:
    """Re-walk the chain in id order from event ``since_id`` (``None``: the first event).

    Detects an edited event (its hash no longer matches its content), a deleted event (the next
    event's ``prev_hash`` points at a hash that is not its predecessor's), reordering, an event
    whose keyed hash fails (edited, or re-chained by someone without the audit key), and an unkeyed
    event after a keyed one (a downgrade to the digest anyone can compute). ``key`` defaults to
    :func:`analysis.store.anchor.audit_key`, read only when a keyed event is met.

    From ``since_id`` on, the first event read must link to the stored hash of the event before
    it, and a keyed predecessor makes an unkeyed event a downgrade, as in a walk from the start;
    events before it are not re-hashed (that is the whole walk's job). The rows are read in one
    statement (one consistent snapshot, while other writers append) straight off the DB-API cursor
    in batches: about 2x faster than loading ORM objects (``benchmarks/audit_speed.py``), the
    same checks.
    """
    problems: list[ChainProblem] = []
    expected_prev = GENESIS
    first_keyed: int | None = None
    stmt = select(*_WALK_COLUMNS).order_by(AuditEvent.id)
    if since_id is not None:
        stmt = stmt.where(AuditEvent.id >= since_id)
        before = session.execute(
            select(AuditEvent.id, AuditEvent.hash, AuditEvent.chain_scheme)
            .where(AuditEvent.id < since_id)
            .order_by(AuditEvent.id.desc())
            .limit(1)
        ).first()
        if before is not None:
            expected_prev = before.hash
            first_keyed = before.id if before.chain_scheme == KEYED else None
    events, first_id, last_id, last_hash = 0, None, None, None
    result = session.connection().execute(stmt)
    try:
        while batch := result.cursor.fetchmany(20_000):
            for row in batch:
                event_id, *values, prev_hash, digest, scheme = row
                event = SimpleNamespace(**dict(zip(_COLUMNS, values, strict=True)))
                event.occurred_at = _utc(event.occurred_at)
                if isinstance(event.details, str):
                    event.details = json.loads(event.details)
                event_fields = _fields(event)  # type: ignore[arg-type]
                if prev_hash != expected_prev:
                    problems.append(
                        ChainProblem(event_id, "chain broken: event missing or reordered before")
                    )
                if scheme == KEYED:
                    if key is None:
                        key = anchor.audit_key()
                    first_keyed = event_id if first_keyed is None else first_keyed
                    if keyed_digest(key, prev_hash, event_fields) != digest:
                        problems.append(
                            ChainProblem(
                                event_id,
                                "keyed hash does not match (edited, or re-chained without the "
                                "audit key)",
                            )
                        )
                elif scheme == UNKEYED:
                    if first_keyed is not None:
                        problems.append(
                            ChainProblem(
                                event_id,
                                f"unkeyed event after keyed event "
                                f"{first_keyed} (chain downgraded to the public "
                                "digest)",
                            )
                        )
                    elif event_digest(prev_hash, event_fields) != digest:
                        problems.append(
                            ChainProblem(event_id, "content does not match its hash (edited)")
                        )
                else:
                    problems.append(ChainProblem(event_id, f"unknown chain scheme {scheme!r}"))
                expected_prev = digest
                events += 1
                first_id = event_id if first_id is None else first_id
                last_id, last_hash = event_id, digest
    finally:
        result.close()
    return ChainWalk(problems, events, first_id, last_id, last_hash)


def verify_chain(session: Session, *, key: bytes | None = None) -> list[ChainProblem]:
    """Re-walk the whole chain (:func:`walk_chain` from the first event); an empty list means
    intact."""
    return walk_chain(session, key=key).problems


_REFUSALS = "candor_refusals"


def record_denial(
    session: Session,
    actor: Actor,
    action: str,
    error: Exception,
    *,
    patient_id: int | None = None,
    object_type: str = "",
    object_id: str | int = "",
    details: dict[str, Any] | None = None,
) -> Exception:
    """Write one ``denied`` event that survives the caller's rollback (the denial is about to be
    raised), in a transaction of its own; return ``error`` for the caller to raise.

    The event is committed at once through a separate session on the same database, unless
    ``session``'s open transaction would block that write (on SQLite it already holds the write
    lock; or it has appended audit events of its own, whose chain head the separate write would
    wait on): then it is written, the same way, as soon as that transaction ends, whether it
    commits or rolls back. The caller's own work is never committed by this.
    """
    fields = dict(
        actor=actor,
        action=action,
        outcome="denied",
        patient_id=patient_id,
        object_type=object_type,
        object_id=object_id,
        details={**(details or {}), "reason": str(error)},
    )
    if holds_sqlite_write_lock(session) or session.info.get(anchor.PENDING_KEY) is not None:
        session.info.setdefault(_REFUSALS, []).append((session.get_bind(), fields))
    else:
        _write_apart(session.get_bind(), fields)
    return error


def _write_apart(bind: Any, fields: dict[str, Any]) -> None:
    fields = dict(fields)
    actor = fields.pop("actor")
    action = fields.pop("action")
    with Session(bind=bind, expire_on_commit=False) as apart:
        record(apart, actor, action, **fields)
        apart.commit()


@sa_event.listens_for(Session, "after_transaction_end")
def _write_deferred_refusals(session: Session, transaction: Any) -> None:
    if transaction.parent is not None or not session.info.get(_REFUSALS):
        return
    pending = session.info.pop(_REFUSALS)
    for bind, fields in pending:
        try:
            _write_apart(bind, fields)
        except Exception as exc:  # the refusal itself was raised already; say it was not logged
            log.error(
                "refused %s by %s could not be audited: %s",
                fields["action"],
                fields["actor"].email,
                exc,
            )
