"""Representative before/after pairs read from the record (rules: :mod:`analysis.outcomes.pairs`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session as DbSession

from analysis.outcomes.pairs import MIN_CANDIDATES, Candidate, RepresentativePair, pick_typical
from analysis.store import audit
from analysis.store.access import Actor, require
from analysis.store.models import (
    Consent,
    EndpointDefinition,
    EndpointMeasurement,
    Photo,
    Protocol,
    Series,
    Session,
    utcnow,
)


def _candidates(session: DbSession, protocol: Protocol, view: str) -> list[Candidate]:
    """Eligible series before the consent check (rules 1 and 2 of the module docstring).

    Three statements whatever the number of series (the protocol's photos of ``view`` and its
    primary endpoint values at session 1 and each series' last photographed session, grouped in
    Python), never one per series.
    """
    endpoint = session.scalar(
        select(EndpointDefinition).where(EndpointDefinition.code == protocol.primary_endpoint)
    )
    if endpoint is None:
        return []
    sign = 1.0 if endpoint.higher_is_better else -1.0
    # the database narrows each series to the two sessions a pair can use: session 1 and the
    # last later session with a photo of this view (a clinic's other photo rows never leave it)
    last = (
        select(Session.series_id.label("series_id"), func.max(Session.number).label("number"))
        .join(Photo, Photo.session_id == Session.id)
        .join(Series, Series.id == Session.series_id)
        .where(Series.protocol_id == protocol.id, Photo.view == view, Session.number > 1)
        .group_by(Session.series_id)
        .subquery()
    )
    ends = or_(Session.number == 1, Session.number == last.c.number)
    conn = session.connection()
    photos: dict[int, list[Any]] = {}
    patient_of: dict[int, int] = {}
    for row in conn.execute(
        select(Series.id, Series.patient_id, Session.number, Photo.verdict, Photo.sha256, Photo.id)
        .join(Session, Session.series_id == Series.id)
        .join(Photo, Photo.session_id == Session.id)
        .join(last, last.c.series_id == Series.id)
        .where(Series.protocol_id == protocol.id, Photo.view == view, ends)
        .order_by(Series.id, Session.number, Photo.id)
    ):
        photos.setdefault(row[0], []).append(row)
        patient_of[row[0]] = row[1]
    values: dict[tuple[int, int], float] = {}
    for series_id, number, value in conn.execute(
        select(Session.series_id, Session.number, EndpointMeasurement.value_num)
        .join(Session, Session.id == EndpointMeasurement.session_id)
        .join(Series, Series.id == Session.series_id)
        .join(last, last.c.series_id == Series.id)
        .where(
            Series.protocol_id == protocol.id,
            EndpointMeasurement.endpoint_id == endpoint.id,
            EndpointMeasurement.value_num.is_not(None),
            ends,
        )
        .order_by(EndpointMeasurement.id)
    ):
        assert value is not None  # the query keeps value_num IS NOT NULL
        values[(series_id, number)] = float(value)  # the last recorded value, as dict() kept
    out = []
    for series_id, rows in photos.items():
        base = [p for p in rows if p.number == 1 and p.verdict in ("baseline", "pass")]
        later = [p for p in rows if p.number > 1]
        if not base or not later:
            continue
        last_number = max(p.number for p in later)
        last = [p for p in later if p.number == last_number][-1]
        if last.verdict != "pass":
            continue
        if (series_id, 1) not in values or (series_id, last_number) not in values:
            continue
        improvement = sign * (values[(series_id, last_number)] - values[(series_id, 1)])
        out.append(
            (
                series_id,
                patient_of[series_id],
                base[-1].sha256,
                last.sha256,
                last_number,
                improvement,
            )
        )
    return out


def _consenting(session: DbSession, patient_ids: set[int], scope: str) -> set[int]:
    """The patients among ``patient_ids`` whose ``scope`` consent is active now (one query)."""
    if not patient_ids:
        return set()
    now = utcnow()
    return set(
        session.scalars(
            select(Consent.patient_id).where(
                Consent.scope == scope,
                Consent.given_at <= now,
                or_(Consent.withdrawn_at.is_(None), Consent.withdrawn_at > now),
                Consent.patient_id.in_(sorted(patient_ids)),
            )
        )
    )


def representative_pairs(
    session: DbSession,
    actor: Actor,
    *,
    protocol_id: int,
    view: str,
    min_candidates: int = MIN_CANDIDATES,
) -> list[RepresentativePair]:
    """The median-closest and lower-quartile-closest eligible pairs (see the module docstring).

    Requires ``timeline.read``. Each returned pair is audited (``pairs.show``, with the patient id
    in the audit trail only). Returns ``[]`` when fewer than ``min_candidates`` series qualify.
    """
    require(actor, "timeline.read", session)
    protocol = session.get(Protocol, protocol_id)
    if protocol is None:
        raise ValueError(f"unknown protocol id {protocol_id}")
    candidates = _candidates(session, protocol, view)
    allowed = _consenting(session, {c[1] for c in candidates}, "consult_display")
    pool = [c for c in candidates if c[1] in allowed]
    if len(pool) < max(min_candidates, 3):
        audit.record(
            session,
            actor,
            "pairs.show",
            object_type="protocol",
            object_id=protocol_id,
            details={"view": view, "pool": len(pool), "shown": 0},
        )
        return []
    picks = pick_typical(pool)
    unit = (
        session.scalar(
            select(EndpointDefinition.unit).where(
                EndpointDefinition.code == protocol.primary_endpoint
            )
        )
        or ""
    )
    out = []
    labels = {
        "median": "Typical result (closest to the median)",
        "lower_quartile": "Below-typical result (lower quartile)",
    }
    for role, c in picks:
        label = labels[role]
        audit.record(
            session,
            actor,
            "pairs.show",
            patient_id=c[1],
            object_type="series",
            object_id=c[0],
            details={"view": view, "role": role, "pool": len(pool)},
        )
        out.append(
            RepresentativePair(
                role=role,
                label=label,
                view=view,
                baseline_sha256=c[2],
                followup_sha256=c[3],
                baseline_session=1,
                followup_session=c[4],
                improvement=c[5],
                endpoint_code=str(protocol.primary_endpoint),
                unit=unit,
                pool_size=len(pool),
            )
        )
    return out
