"""Lot traceability: every patient and session that received a product lot, with what followed.

Reaction and adverse-event *rates* per 100 sessions live in
:func:`analysis.outcomes.cohorts.reaction_rates`; this module answers the recall question
"who got lot X, and what happened to them?" from the database (medical director only, audited).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session as DbSession

from analysis.store import audit
from analysis.store.access import Actor, require
from analysis.store.models import (
    EndpointDefinition,
    EndpointMeasurement,
    Patient,
    ProductLot,
    Protocol,
    Reaction,
    Series,
    Session,
    Treatment,
)


@dataclass(frozen=True)
class LotTrace:
    """Result of :func:`trace_lot`.

    * ``lots``: the matching lots ``lot_id, product, lot_number, expiry_on, recalled,
      recall_note`` (several when no product was given and the number exists for several).
    * ``exposures``: one row per treatment with the lot: ``patient_code, series_id, protocol,
      session_number, performed_on, product, lot_number, expired_at_use, recalled,
      override_reason, volume_ml, units``.
    * ``reactions``: reactions recorded at the exposed sessions: ``patient_code, series_id,
      session_number, kind, term, severity, onset_day, duration_days, resolved, red_flag,
      escalation``.
    * ``outcomes``: per exposed series, its primary endpoint's last change from baseline:
      ``patient_code, series_id, protocol, endpoint_code, baseline, last_session, last_value,
      change`` (``change = value - baseline``, endpoint units; NaN when not measured).
    """

    lot_number: str
    product: str | None
    lots: pd.DataFrame
    exposures: pd.DataFrame
    reactions: pd.DataFrame
    outcomes: pd.DataFrame

    @property
    def patients(self) -> int:
        return int(self.exposures["patient_code"].nunique()) if len(self.exposures) else 0

    @property
    def sessions(self) -> int:
        if not len(self.exposures):
            return 0
        return int(self.exposures[["series_id", "session_number"]].drop_duplicates().shape[0])

    @property
    def expired_at_use(self) -> int:
        return int(self.exposures["expired_at_use"].sum()) if len(self.exposures) else 0

    @property
    def recalled(self) -> bool:
        return bool(self.lots["recalled"].any()) if len(self.lots) else False


def trace_lot(
    session: DbSession, actor: Actor, *, lot_number: str, product: str | None = None
) -> LotTrace:
    """Trace ``lot_number`` (optionally of one ``product``; both matched case-insensitively).

    Requires ``lot.trace``; audited as ``lot.trace`` with the lot and the number of patients.
    An unknown lot gives empty tables (and is audited too), not an error.
    """
    require(actor, "lot.trace", session)
    lot_number = lot_number.strip()
    if not lot_number:
        raise ValueError("enter a lot number to trace")
    q = select(ProductLot).where(func.lower(ProductLot.lot_number) == lot_number.lower())
    if product and product.strip():
        q = q.where(func.lower(ProductLot.product) == product.strip().lower())
    lots = list(session.scalars(q))
    lots_df = pd.DataFrame(
        [(x.id, x.product, x.lot_number, x.expiry_on, x.recalled, x.recall_note) for x in lots],
        columns=["lot_id", "product", "lot_number", "expiry_on", "recalled", "recall_note"],
    )
    lot_ids = [x.id for x in lots]
    rows = (
        session.execute(
            select(Treatment, Session, Series, Patient, Protocol, ProductLot)
            .join(Session, Session.id == Treatment.session_id)
            .join(Series, Series.id == Session.series_id)
            .join(Patient, Patient.id == Series.patient_id)
            .join(Protocol, Protocol.id == Series.protocol_id)
            .join(ProductLot, ProductLot.id == Treatment.lot_id)
            .where(Treatment.lot_id.in_(lot_ids))
            .order_by(Session.performed_on, Session.id)
        ).all()
        if lot_ids
        else []
    )
    exposures = pd.DataFrame(
        [
            (
                pt.code,
                se.id,
                pr.name,
                vi.number,
                vi.performed_on,
                lo.product,
                lo.lot_number,
                tr.expired_at_use,
                lo.recalled,
                tr.override_reason,
                tr.volume_ml,
                tr.units,
            )
            for tr, vi, se, pt, pr, lo in rows
        ],
        columns=[
            "patient_code",
            "series_id",
            "protocol",
            "session_number",
            "performed_on",
            "product",
            "lot_number",
            "expired_at_use",
            "recalled",
            "override_reason",
            "volume_ml",
            "units",
        ],
    )
    session_ids = sorted({vi.id for _, vi, *_ in rows})
    code_of = {vi.id: pt.code for _, vi, _, pt, _, _ in rows}
    reactions = pd.DataFrame(
        [
            (
                code_of[vi.id],
                vi.series_id,
                vi.number,
                r.kind,
                r.term,
                r.severity,
                r.onset_day,
                r.duration_days,
                r.resolved,
                r.red_flag,
                r.escalation,
            )
            for r, vi in session.execute(
                select(Reaction, Session)
                .join(Session, Session.id == Reaction.session_id)
                .where(Reaction.session_id.in_(session_ids))
            ).all()
        ]
        if session_ids
        else [],
        columns=[
            "patient_code",
            "series_id",
            "session_number",
            "kind",
            "term",
            "severity",
            "onset_day",
            "duration_days",
            "resolved",
            "red_flag",
            "escalation",
        ],
    )
    series_seen: dict[int, tuple[str, Series, Protocol]] = {}
    for _, _, se, pt, pr, _ in rows:
        series_seen.setdefault(se.id, (pt.code, se, pr))
    outcomes = pd.DataFrame(
        [_outcome(session, code, se, pr) for code, se, pr in series_seen.values()],
        columns=[
            "patient_code",
            "series_id",
            "protocol",
            "endpoint_code",
            "baseline",
            "last_session",
            "last_value",
            "change",
        ],
    )
    audit.record(
        session,
        actor,
        "lot.trace",
        object_type="lot",
        object_id=lot_number,
        details={
            "lot_number": lot_number,
            "product": product,
            "patients": int(exposures["patient_code"].nunique()),
            "lots": len(lots),
        },
    )
    return LotTrace(
        lot_number=lot_number,
        product=product,
        lots=lots_df,
        exposures=exposures,
        reactions=reactions,
        outcomes=outcomes,
    )


def _outcome(
    session: DbSession, code: str, series: Series, protocol: Protocol
) -> tuple[object, ...]:
    nan = float("nan")
    endpoint = protocol.primary_endpoint
    if not endpoint:
        return (code, series.id, protocol.name, None, nan, None, nan, nan)
    vals = session.execute(
        select(Session.number, EndpointMeasurement.value_num)
        .join(Session, Session.id == EndpointMeasurement.session_id)
        .join(EndpointDefinition, EndpointDefinition.id == EndpointMeasurement.endpoint_id)
        .where(
            Session.series_id == series.id,
            EndpointDefinition.code == endpoint,
            EndpointMeasurement.value_num.is_not(None),
        )
    ).all()
    by_number = pd.DataFrame(vals, columns=["n", "v"]).groupby("n")["v"].mean()
    baseline = float(by_number.get(1, nan))
    later = by_number[by_number.index > 1]
    if later.empty:
        return (code, series.id, protocol.name, endpoint, baseline, None, nan, nan)
    last_n = int(later.index.max())
    last_v = float(later[last_n])
    return (code, series.id, protocol.name, endpoint, baseline, last_n, last_v, last_v - baseline)
