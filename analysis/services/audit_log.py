"""Reading the audit trail: filtered queries, CSV export, chain status (ONC 170.315(d)(2), (d)(3)).

Reading the log is itself an access to protected information, so :func:`query_events` writes one
``audit.read`` event (with the filters and the number of rows returned) and :func:`export_csv`
one ``audit.export`` event, committed before the rows or bytes are returned (fail closed, as in
:mod:`analysis.services.photo_access`). Both need the role's ``audit.read`` / ``audit.export``
permission; a refusal is audited as ``denied``. Times are UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from analysis.store import audit
from analysis.store.access import Actor, PermissionDenied, allowed
from analysis.store.models import AuditEvent

COLUMNS = (
    "id",
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
DEFAULT_LIMIT = 1000
MAX_LIMIT = 100_000


#: The newest events the page's check re-walks when no full check covers them (about 0.3 s).
RECENT_EVENTS = 20_000
#: The action of a full chain check's result (its checkpoint, keyed and chained like any event).
FULL_CHECK = "audit.verify"


@dataclass(frozen=True)
class LastFullCheck:
    """The newest full chain check that found the chain intact: its own event, when, by whom, and
    the last event it covered (id and hash)."""

    event_id: int
    occurred_at: datetime
    actor_email: str
    events: int
    through_id: int
    through_hash: str


@dataclass(frozen=True)
class ChainStatus:
    """``events`` in the log; ``problems`` empty when the events checked verify.

    ``full``: every event was re-walked. Otherwise ``checked`` events from ``checked_from`` on
    were (those after ``last_full``, the newest full check that found the chain intact, or the
    newest :data:`RECENT_EVENTS` when there is none or it is older than that).
    """

    events: int
    problems: list[audit.ChainProblem]
    full: bool = True
    checked: int = 0
    checked_from: int | None = None
    last_full: LastFullCheck | None = None

    @property
    def intact(self) -> bool:
        return not self.problems


def _check(session: Session, actor: Actor, permission: str, filters: dict[str, Any]) -> None:
    if not allowed(actor, permission):
        error = PermissionDenied(
            f"{actor.role.replace('_', ' ')} accounts may not {permission.replace('.', ' ')}"
        )
        raise audit.record_denial(
            session, actor, permission, error, object_type="audit_log", details={"filters": filters}
        )


def _filters(
    action: str | None,
    actor_email: str | None,
    patient_id: int | None,
    outcome: str | None,
    since: datetime | None,
    until: datetime | None,
) -> dict[str, Any]:
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise ValueError(f"{name} must be a timezone-aware (UTC) datetime")
    if outcome is not None and outcome not in audit.OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(audit.OUTCOMES)}")
    if since is not None and until is not None and until < since:
        raise ValueError("'until' is before 'since'")
    given = dict(
        action=action,
        actor_email=actor_email,
        patient_id=patient_id,
        outcome=outcome,
        since=since.isoformat() if since else None,
        until=until.isoformat() if until else None,
    )
    return {k: v for k, v in given.items() if v not in (None, "")}


def _select(
    *,
    action: str | None,
    actor_email: str | None,
    patient_id: int | None,
    outcome: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> Select[Any]:
    query = select(AuditEvent)
    if action:
        # "auth.*" selects a family of actions; anything else is exact
        query = query.where(
            AuditEvent.action.startswith(action[:-1])
            if action.endswith("*")
            else AuditEvent.action == action
        )
    if actor_email:
        query = query.where(func.lower(AuditEvent.actor_email) == actor_email.strip().lower())
    if patient_id is not None:
        query = query.where(AuditEvent.patient_id == patient_id)
    if outcome:
        query = query.where(AuditEvent.outcome == outcome)
    if since is not None:
        query = query.where(AuditEvent.occurred_at >= since)
    if until is not None:
        query = query.where(AuditEvent.occurred_at < until)
    return query.order_by(AuditEvent.id.desc()).limit(max(1, min(limit, MAX_LIMIT)))


def _frame(session: Session, query: Select[Any]) -> pd.DataFrame:
    rows = [{c: getattr(e, c) for c in COLUMNS} for e in session.scalars(query)]
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"], utc=True)
    frame["patient_id"] = frame["patient_id"].astype("Int64")
    return frame


def query_events(
    session: Session,
    actor: Actor,
    *,
    action: str | None = None,
    actor_email: str | None = None,
    patient_id: int | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = DEFAULT_LIMIT,
) -> pd.DataFrame:
    """Matching events, newest first, one row per event (columns :data:`COLUMNS`).

    ``action`` is exact, or a prefix ending in ``*`` (``"auth.*"``); ``since`` is inclusive and
    ``until`` exclusive (aware datetimes, compared in UTC). Writes one ``audit.read`` event
    (committed) after the query and before returning; the returned frame does not include it.
    """
    filters = _filters(action, actor_email, patient_id, outcome, since, until)
    _check(session, actor, "audit.read", filters)
    frame = _frame(
        session,
        _select(
            action=action,
            actor_email=actor_email,
            patient_id=patient_id,
            outcome=outcome,
            since=since,
            until=until,
            limit=limit,
        ),
    )
    audit.record(
        session,
        actor,
        "audit.read",
        object_type="audit_log",
        details={"filters": filters, "rows": len(frame)},
    )
    session.commit()
    return frame


def export_csv(
    session: Session,
    actor: Actor,
    *,
    action: str | None = None,
    actor_email: str | None = None,
    patient_id: int | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = MAX_LIMIT,
) -> bytes:
    """The matching events as UTF-8 CSV (oldest first, ``occurred_at`` in ISO 8601 UTC, ``details``
    as JSON). One ``audit.export`` event is committed before the bytes are returned."""
    import json

    filters = _filters(action, actor_email, patient_id, outcome, since, until)
    _check(session, actor, "audit.export", filters)
    frame = _frame(
        session,
        _select(
            action=action,
            actor_email=actor_email,
            patient_id=patient_id,
            outcome=outcome,
            since=since,
            until=until,
            limit=limit,
        ),
    )
    frame = frame.iloc[::-1]
    frame["occurred_at"] = frame["occurred_at"].map(lambda t: t.isoformat())
    frame["details"] = frame["details"].map(lambda d: json.dumps(d, sort_keys=True))
    data: bytes = frame.to_csv(index=False).encode("utf-8")
    audit.record(
        session,
        actor,
        "audit.export",
        object_type="audit_log",
        details={"filters": filters, "rows": len(frame), "format": "csv"},
    )
    session.commit()
    return data


def last_full_check(session: Session) -> LastFullCheck | None:
    """The newest full chain check that found the chain intact (its :data:`FULL_CHECK` event)."""
    event = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.action == FULL_CHECK, AuditEvent.outcome == "success")
        .order_by(AuditEvent.id.desc())
        .limit(1)
    ).first()
    if event is None:
        return None
    d = event.details
    return LastFullCheck(
        event_id=event.id,
        occurred_at=event.occurred_at,
        actor_email=event.actor_email,
        events=int(d["events"]),
        through_id=int(d["through_id"]),
        through_hash=str(d["through_hash"]),
    )


def chain_status(session: Session, actor: Actor, *, full: bool = False) -> ChainStatus:
    """Re-walk the hash chain (:func:`analysis.store.audit.walk_chain`); needs ``audit.read``.

    ``full``: every event, and the result is recorded as a :data:`FULL_CHECK` event (committed;
    outcome ``failure`` with the number of problems when the chain does not verify). Otherwise
    only the events after the newest full check that found the chain intact, starting *at* the
    last event it covered (which must still carry the hash that check saw), and at most the
    newest :data:`RECENT_EVENTS`: a log of years is not re-hashed on every page view, and an
    edit of an event older than the events checked waits for the next full check (the status
    says which events were checked). A checkpoint cannot be forged without the audit key: it is
    itself a keyed event, re-walked by the next check.
    """
    _check(session, actor, "audit.read", {"verify": "full" if full else "recent"})
    count, oldest, newest = session.execute(
        select(func.count(), func.min(AuditEvent.id), func.max(AuditEvent.id))
    ).one()
    count, oldest, newest = int(count or 0), int(oldest or 0), int(newest or 0)
    if full:
        walk = audit.walk_chain(session)
        intact = not walk.problems
        audit.record(
            session,
            actor,
            FULL_CHECK,
            outcome="success" if intact else "failure",
            object_type="audit_log",
            details={
                "events": walk.events,
                "through_id": walk.last_id,
                "through_hash": walk.last_hash,
                "problems": len(walk.problems),
            },
        )
        session.commit()
        return ChainStatus(
            events=count,
            problems=walk.problems,
            full=True,
            checked=walk.events,
            checked_from=walk.first_id,
            last_full=last_full_check(session),
        )
    last = last_full_check(session)
    start = max(newest - RECENT_EVENTS + 1, 1 if last is None else last.through_id)
    walk = audit.walk_chain(session, since_id=start)
    problems = list(walk.problems)
    failed = session.scalars(  # a later full check that did not verify stays named
        select(AuditEvent)
        .where(
            AuditEvent.action == FULL_CHECK,
            AuditEvent.outcome == "failure",
            AuditEvent.id > (0 if last is None else last.event_id),
        )
        .order_by(AuditEvent.id.desc())
        .limit(1)
    ).first()
    if failed is not None:
        problems.append(
            audit.ChainProblem(
                failed.id,
                f"the full check of {failed.occurred_at:%Y-%m-%d %H:%M} UTC by "
                f"{failed.actor_email} found {failed.details.get('problems', '?')} problem(s); "
                "verify all events to list them",
            )
        )
    if last is not None and start == last.through_id:
        seen = session.scalar(select(AuditEvent.hash).where(AuditEvent.id == last.through_id))
        if seen != last.through_hash:
            problems.insert(
                0,
                audit.ChainProblem(
                    last.through_id,
                    f"not the event the full check of {last.occurred_at:%Y-%m-%d %H:%M} UTC "
                    "verified (deleted or replaced since)",
                ),
            )
    return ChainStatus(
        events=count,
        problems=problems,
        full=start <= oldest,
        checked=walk.events,
        checked_from=walk.first_id,
        last_full=last,
    )
