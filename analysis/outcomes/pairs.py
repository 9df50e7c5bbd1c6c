"""Representative before/after photo pairs for consultations: typical, never the best case.

Eligible series (all checked at query time):

1. the series follows the protocol and has a photo of ``view`` at session 1 with verdict
   ``baseline`` or ``pass``, and its **last** photo of ``view`` (highest session number after 1)
   has verdict ``pass`` (a warn/fail last photo excludes the series; earlier photos are not used
   instead, which would cherry-pick);
2. the primary endpoint was measured at that last session, so its improvement is known;
3. the patient consents to ``consult_display`` *now* (:func:`analysis.store.records.consent_scopes`
   read fresh on every call; a withdrawal excludes the patient immediately).

Among eligible series the pair closest to the median improvement and the one closest to the lower
quartile are returned (ties go to the smaller improvement); the best result is never picked and
the lower-quartile pick never shows more than the median pick. Fewer than ``min_candidates``
(never below 3) eligible series returns no pairs: with a small pool "typical" means nothing and
the one shown would be someone's best result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from analysis.store import audit, records
from analysis.store.access import Actor, require
from analysis.store.models import (
    EndpointDefinition,
    EndpointMeasurement,
    Photo,
    Protocol,
    Series,
    Session,
)

MIN_CANDIDATES = 5
#: (series_id, patient_id, baseline sha256, follow-up sha256, follow-up session, improvement)
Candidate = tuple[int, int, str, str, int, float]


@dataclass(frozen=True)
class RepresentativePair:
    """A baseline/follow-up photo pair; carries no patient code or identifier.

    ``improvement`` is the primary endpoint's change from baseline at ``followup_session``, signed
    so that positive is better, in ``unit``.
    """

    role: str  # "median" or "lower_quartile"
    label: str
    view: str
    baseline_sha256: str
    followup_sha256: str
    baseline_session: int
    followup_session: int
    improvement: float
    endpoint_code: str
    unit: str
    pool_size: int


def _candidates(session: DbSession, protocol: Protocol, view: str) -> list[Candidate]:
    """Eligible series before the consent check (rules 1 and 2 of the module docstring)."""
    endpoint = session.scalar(select(EndpointDefinition)
                              .where(EndpointDefinition.code == protocol.primary_endpoint))
    if endpoint is None:
        return []
    sign = 1.0 if endpoint.higher_is_better else -1.0
    out = []
    for series in session.scalars(select(Series).where(Series.protocol_id == protocol.id)):
        photos = session.execute(
            select(Session.number, Photo.verdict, Photo.sha256, Photo.id)
            .join(Session, Session.id == Photo.session_id)
            .where(Session.series_id == series.id, Photo.view == view)
            .order_by(Session.number, Photo.id)).all()
        base = [p for p in photos if p.number == 1 and p.verdict in ("baseline", "pass")]
        later = [p for p in photos if p.number > 1]
        if not base or not later:
            continue
        last_number = max(p.number for p in later)
        last = [p for p in later if p.number == last_number][-1]
        if last.verdict != "pass":
            continue
        values = dict(session.execute(
            select(Session.number, EndpointMeasurement.value_num)
            .join(Session, Session.id == EndpointMeasurement.session_id)
            .where(Session.series_id == series.id, Session.number.in_([1, last_number]),
                   EndpointMeasurement.endpoint_id == endpoint.id,
                   EndpointMeasurement.value_num.is_not(None))).all())
        if 1 not in values or last_number not in values:
            continue
        improvement = sign * (float(values[last_number]) - float(values[1]))
        out.append((series.id, series.patient_id, base[-1].sha256, last.sha256, last_number,
                    improvement))
    return out


def _closest(choices: list[Candidate], target: float) -> Candidate | None:
    return min(choices, key=lambda c: (abs(c[5] - target), c[5])) if choices else None


def pick_typical(pool: list[Candidate]) -> list[tuple[str, Candidate]]:
    """``[("median", c), ("lower_quartile", c)]`` from ``pool`` (at least 3 candidates).

    The best result (largest improvement) is never picked, and the lower-quartile pick never
    shows more improvement than the median pick; ties go to the smaller improvement.
    """
    values = np.array([c[5] for c in pool])
    best = float(values.max())
    choices = [c for c in pool if c[5] < best] or list(pool)  # all equal: nothing is "best"
    median_pick = _closest(choices, float(np.median(values)))
    assert median_pick is not None
    lower = [c for c in choices if c[0] != median_pick[0] and c[5] <= median_pick[5]]
    lq_pick = _closest(lower, float(np.percentile(values, 25)))
    out = [("median", median_pick)]
    if lq_pick is not None:
        out.append(("lower_quartile", lq_pick))
    return out


def representative_pairs(session: DbSession, actor: Actor, *, protocol_id: int, view: str,
                         min_candidates: int = MIN_CANDIDATES) -> list[RepresentativePair]:
    """The median-closest and lower-quartile-closest eligible pairs (see the module docstring).

    Requires ``timeline.read``. Each returned pair is audited (``pairs.show``, with the patient id
    in the audit trail only). Returns ``[]`` when fewer than ``min_candidates`` series qualify.
    """
    require(actor, "timeline.read")
    protocol = session.get(Protocol, protocol_id)
    if protocol is None:
        raise ValueError(f"unknown protocol id {protocol_id}")
    pool = [c for c in _candidates(session, protocol, view)
            if "consult_display" in records.consent_scopes(session, c[1])]
    if len(pool) < max(min_candidates, 3):
        audit.record(session, actor, "pairs.show", object_type="protocol", object_id=protocol_id,
                     details={"view": view, "pool": len(pool), "shown": 0})
        return []
    picks = pick_typical(pool)
    unit = session.scalar(select(EndpointDefinition.unit)
                          .where(EndpointDefinition.code == protocol.primary_endpoint)) or ""
    out = []
    labels = {"median": "Typical result (closest to the median)",
              "lower_quartile": "Below-typical result (lower quartile)"}
    for role, c in picks:
        label = labels[role]
        audit.record(session, actor, "pairs.show", patient_id=c[1], object_type="series",
                     object_id=c[0], details={"view": view, "role": role, "pool": len(pool)})
        out.append(RepresentativePair(role=role, label=label, view=view, baseline_sha256=c[2],
                                      followup_sha256=c[3], baseline_session=1,
                                      followup_session=c[4], improvement=c[5],
                                      endpoint_code=str(protocol.primary_endpoint), unit=unit,
                                      pool_size=len(pool)))
    return out
