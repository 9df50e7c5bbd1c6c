"""The patient list and one series' review data (read from the database, permission-checked and
audited: clinicians and the medical director only).

Change from baseline, the noise band and responder status follow
:mod:`analysis.outcomes.frames` / :mod:`analysis.outcomes.endpoints`: ``change = value - baseline``
(session 1) in the endpoint's units; a change within ``+/- 2 * noise_sd`` of zero is
indistinguishable from measurement noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from analysis.outcomes.endpoints import expected_change
from analysis.outcomes.filters import PHOTO_SET_DEFINITION, age_band, set_compliant
from analysis.outcomes.frames import derive_measurements
from analysis.store import audit
from analysis.store.access import Actor, require
from analysis.store.models import (
    EndpointDefinition,
    Patient,
    Photo,
    Protocol,
    Series,
    Session,
    User,
)

PATIENT_LIST_COLUMNS = (
    "series_id", "patient_id", "patient_code", "birth_year", "age_band", "sex", "fitzpatrick",
    "protocol", "status", "started_on", "sessions_done", "sessions_planned", "last_visit_on",
    "photo_sets_compliant", "photo_compliance",
)


def list_patients(session: DbSession, actor: Actor, *, search: str = "") -> pd.DataFrame:
    """One row per series (``PATIENT_LIST_COLUMNS``), newest start first.

    ``search`` matches the patient code, protocol name or series status (case-insensitive
    substring). ``age_band`` is the decade of age at the series start; ``photo_compliance`` is the
    share of sessions whose photo set is compliant (:data:`PHOTO_SET_DEFINITION`), NaN before any
    session. Requires ``patient.read``; writes one ``patient.list`` audit event.
    """
    require(actor, "patient.read")
    rows = session.execute(
        select(Series, Patient, Protocol).join(Patient, Patient.id == Series.patient_id)
        .join(Protocol, Protocol.id == Series.protocol_id)).all()
    needle = search.strip().casefold()
    photo_rows = session.execute(
        select(Photo.session_id, Photo.view, Photo.verdict)).all()
    by_session: dict[int, list[tuple[str, str]]] = {}
    for sid, view, verdict in photo_rows:
        by_session.setdefault(sid, []).append((view, verdict))
    out = []
    for series, patient, protocol in rows:
        if needle and not any(needle in x.casefold() for x in
                              (patient.code, protocol.name, series.status)):
            continue
        visits = list(series.sessions)
        compliant = sum(set_compliant(by_session.get(v.id, []),
                                      required_views=protocol.required_views or [])
                        for v in visits)
        out.append((series.id, patient.id, patient.code, patient.birth_year,
                    age_band(series.started_on.year - patient.birth_year), patient.sex,
                    patient.fitzpatrick, protocol.name, series.status, series.started_on,
                    len(visits), protocol.planned_sessions,
                    max((v.performed_on for v in visits), default=None), compliant,
                    compliant / len(visits) if visits else float("nan")))
    df = pd.DataFrame(out, columns=list(PATIENT_LIST_COLUMNS))
    df = df.sort_values(["started_on", "series_id"], ascending=False).reset_index(drop=True)
    audit.record(session, actor, "patient.list", details={"search": search[:64], "rows": len(df)})
    return df


@dataclass(frozen=True)
class SeriesOverview:
    """Everything the series review page shows (issue 4). Tables are plain DataFrames.

    * ``sessions``: ``session_id, number, performed_on, days_since_start, operator``.
    * ``treatments``: ``session_number, product, lot_number, expiry_on, expired_at_use,
      recalled, override_reason, volume_ml, units, preparation, sites, depth_intent``.
    * ``reactions``: ``session_number, kind, term, severity, onset_day, duration_days,
      resolved, red_flag, escalation``.
    * ``confounders``: ``kind, started_on, ended_on, details`` (``ended_on`` None = ongoing).
    * ``photos``: ``photo_id, session_number, view, verdict, sha256, override_reason``;
      ``photo_grid``: view x session number -> verdict ("" = no photo).
    * ``measurements``: ``session_number, endpoint_code, value, baseline, change, improvement,
      noise_band, within_noise, expected_change`` (``noise_band = 2 * noise_sd``, units of the
      endpoint; ``within_noise`` when ``|change| <= noise_band``).
    * ``endpoints``: definitions of the endpoints measured or required.
    * ``comparisons``: consecutive sessions ``from_session, to_session, from_on, to_on,
      confounders, spans_confounder`` (a confounder active at any time between the two dates).
    """

    series: dict[str, Any]
    patient: dict[str, Any]
    protocol: dict[str, Any]
    sessions: pd.DataFrame
    treatments: pd.DataFrame
    reactions: pd.DataFrame
    confounders: pd.DataFrame
    photos: pd.DataFrame
    photo_grid: pd.DataFrame
    measurements: pd.DataFrame
    endpoints: pd.DataFrame
    comparisons: pd.DataFrame
    red_flags: int = 0
    notes: list[str] = field(default_factory=list)


def spans(started_on: date, ended_on: date | None, *, from_on: date, to_on: date) -> bool:
    """Whether a confounder period (``ended_on`` None = ongoing) overlaps ``[from_on, to_on]``."""
    return started_on <= to_on and (ended_on is None or ended_on >= from_on)


def series_overview(session: DbSession, actor: Actor, series_id: int) -> SeriesOverview:
    """Review data of one series. Requires ``series.read``; audited as ``series.view``.

    Raises
    ------
    LookupError
        When there is no series ``series_id``.
    """
    require(actor, "series.read")
    series = session.get(Series, series_id)
    if series is None:
        raise LookupError(f"no series with id {series_id}")
    patient, protocol = series.patient, series.protocol
    visits = list(series.sessions)
    names = dict(session.execute(select(User.id, User.display_name)).all())
    sessions = pd.DataFrame(
        [(v.id, v.number, v.performed_on, (v.performed_on - series.started_on).days,
          names.get(v.operator_id, "") if v.operator_id else "") for v in visits],
        columns=["session_id", "number", "performed_on", "days_since_start", "operator"])
    treatments = pd.DataFrame(
        [(v.number, t.lot.product, t.lot.lot_number, t.lot.expiry_on, t.expired_at_use,
          t.lot.recalled, t.override_reason, t.volume_ml, t.units, t.preparation, list(t.sites),
          t.depth_intent) for v in visits for t in v.treatments],
        columns=["session_number", "product", "lot_number", "expiry_on", "expired_at_use",
                 "recalled", "override_reason", "volume_ml", "units", "preparation", "sites",
                 "depth_intent"])
    reactions = pd.DataFrame(
        [(v.number, r.kind, r.term, r.severity, r.onset_day, r.duration_days, r.resolved,
          r.red_flag, r.escalation) for v in visits for r in v.reactions],
        columns=["session_number", "kind", "term", "severity", "onset_day", "duration_days",
                 "resolved", "red_flag", "escalation"])
    confounders = pd.DataFrame(
        [(c.kind, c.started_on, c.ended_on, c.details) for c in
         sorted(series.confounders, key=lambda c: c.started_on)],
        columns=["kind", "started_on", "ended_on", "details"])
    photos = pd.DataFrame(
        [(p.id, v.number, p.view, p.verdict, p.sha256, p.override_reason)
         for v in visits for p in v.photos],
        columns=["photo_id", "session_number", "view", "verdict", "sha256", "override_reason"])
    views = list(dict.fromkeys(list(protocol.required_views or []) + list(photos["view"])))
    grid = pd.DataFrame("", index=pd.Index(views, name="view"),
                        columns=pd.Index([v.number for v in visits], name="session_number"))
    for p in photos.itertuples(index=False):
        cell = grid.at[p.view, p.session_number]
        grid.at[p.view, p.session_number] = f"{cell}, {p.verdict}" if cell else p.verdict
    measurements, endpoints, notes = _measurements(session, series.id, visits, protocol,
                                                   sessions)
    comparisons = pd.DataFrame(
        [(a.number, b.number, a.performed_on, b.performed_on,
          [c.kind for c in series.confounders
           if spans(c.started_on, c.ended_on, from_on=a.performed_on, to_on=b.performed_on)])
         for a, b in zip(visits, visits[1:])],
        columns=["from_session", "to_session", "from_on", "to_on", "confounders"])
    comparisons["spans_confounder"] = comparisons["confounders"].map(bool)
    audit.record(session, actor, "series.view", patient_id=patient.id, object_type="series",
                 object_id=series.id)
    return SeriesOverview(
        series={"series_id": series.id, "status": series.status, "goal": series.goal,
                "started_on": series.started_on},
        patient={"patient_id": patient.id, "code": patient.code, "birth_year": patient.birth_year,
                 "age_band": age_band(series.started_on.year - patient.birth_year),
                 "sex": patient.sex, "fitzpatrick": patient.fitzpatrick},
        protocol={"protocol_id": protocol.id, "name": protocol.name,
                  "modality": protocol.modality, "target_area": protocol.target_area,
                  "planned_sessions": protocol.planned_sessions,
                  "interval_days": protocol.interval_days,
                  "required_views": list(protocol.required_views or []),
                  "endpoint_codes": list(protocol.endpoint_codes or []),
                  "primary_endpoint": protocol.primary_endpoint,
                  "photo_set_definition": PHOTO_SET_DEFINITION},
        sessions=sessions, treatments=treatments, reactions=reactions, confounders=confounders,
        photos=photos, photo_grid=grid, measurements=measurements, endpoints=endpoints,
        comparisons=comparisons, red_flags=int(reactions["red_flag"].sum()) if len(reactions)
        else 0, notes=notes)


def _measurements(session: DbSession, series_id: int, visits: list[Session], protocol: Protocol,
                  sessions: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Baseline, change and improvement as the cohort figures compute them
    (:func:`analysis.outcomes.frames.derive_measurements`), plus the noise band and expected course."""
    raw = pd.DataFrame(
        [(series_id, m.session_id, m.endpoint.code, m.value_num)
         for v in visits for m in v.measurements if m.value_num is not None],
        columns=["series_id", "session_id", "endpoint_code", "value"])
    codes = list(dict.fromkeys(list(protocol.endpoint_codes or []) + list(raw["endpoint_code"])))
    defs = {d.code: d for d in session.scalars(
        select(EndpointDefinition).where(EndpointDefinition.code.in_(codes)))}
    endpoints = pd.DataFrame(
        [(d.code, d.name, d.kind, d.unit, d.higher_is_better, d.mcid, d.noise_sd, d.neutral)
         for d in defs.values()],
        columns=["endpoint_code", "name", "kind", "unit", "higher_is_better", "mcid", "noise_sd",
                 "neutral"])
    cols = ["session_number", "endpoint_code", "value", "baseline", "change", "improvement",
            "noise_band", "within_noise", "expected_change"]
    notes: list[str] = []
    if raw.empty:
        return pd.DataFrame(columns=cols), endpoints.drop(columns="neutral"), notes
    m = derive_measurements(raw, sessions=sessions, endpoints=endpoints)
    m["noise_band"] = m["endpoint_code"].map(
        lambda c: 2.0 * defs[c].noise_sd if c in defs and defs[c].noise_sd is not None
        else float("nan"))
    m["within_noise"] = m["change"].abs() <= m["noise_band"]
    course = {c: expected_change(protocol.expected_course, endpoint_code=c) for c in codes}
    m["expected_change"] = [course.get(c, {}).get(int(k), float("nan"))
                            for c, k in zip(m["endpoint_code"], m["session_number"], strict=True)]
    for code, baseline in m.groupby("endpoint_code", sort=False)["baseline"]:
        if baseline.isna().all():
            notes.append(f"{code}: no baseline (session 1) value, so no change from baseline")
    return m[cols].sort_values(["endpoint_code", "session_number"]).reset_index(drop=True), \
        endpoints.drop(columns="neutral"), notes
