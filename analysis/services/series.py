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
from itertools import pairwise
from typing import Any

import pandas as pd
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import joinedload, selectinload

from analysis.outcomes.endpoints import expected_change
from analysis.outcomes.filters import PHOTO_SET_DEFINITION, age_band, set_compliant
from analysis.outcomes.frames import derive_measurements
from analysis.services.common import SERIES_STATUS_LABELS
from analysis.store import audit, blinding, db
from analysis.store.access import Actor, require
from analysis.store.models import (
    EndpointDefinition,
    EndpointMeasurement,
    Patient,
    Photo,
    Protocol,
    Series,
    Session,
    Treatment,
    User,
)

PATIENT_LIST_COLUMNS = (
    "series_id",
    "patient_id",
    "patient_code",
    "birth_year",
    "age_band",
    "sex",
    "fitzpatrick",
    "protocol",
    "status",
    "started_on",
    "sessions_done",
    "sessions_planned",
    "last_visit_on",
    "photo_sets_compliant",
    "photo_compliance",
)


def list_patients(
    session: DbSession, actor: Actor, *, search: str = "", limit: int | None = None, offset: int = 0
) -> pd.DataFrame:
    """One row per series (``PATIENT_LIST_COLUMNS``), newest start first, searched and paged in SQL.

    ``search`` matches the patient code, protocol name or series status, as stored or as shown
    (case-insensitive substring). ``limit``/``offset`` page the rows (None: all). ``age_band`` is the decade of age
    at the series start; ``photo_compliance`` is the share of sessions whose photo set is
    compliant (:data:`PHOTO_SET_DEFINITION`), NaN before any session. ``df.attrs`` holds
    ``total_series`` and ``total_patients`` of the whole search, not only the page.

    A fixed number of statements whatever the clinic's size (held by a test): the page of series,
    the totals, and one query each for the page's sessions and photos. Requires ``patient.read``;
    writes one ``patient.list`` audit event.
    """
    require(actor, "patient.read", session)
    match = db.matches_text(search, Patient.code, Protocol.name, Series.status)
    # "dropped out" finds the series stored as dropped_out: the words a person reads match too
    said = [
        code
        for code, label in SERIES_STATUS_LABELS.items()
        if search.strip() and search.strip().casefold() in label.casefold()
    ]
    if match is not None and said:
        match = or_(match, Series.status.in_(said))
    where = [] if match is None else [match]
    base = (
        select(Series.id)
        .join(Patient, Patient.id == Series.patient_id)
        .join(Protocol, Protocol.id == Series.protocol_id)
        .where(*where)
    )
    total_series, total_patients = session.execute(
        select(func.count(), func.count(func.distinct(Series.patient_id)))
        .select_from(Series)
        .where(Series.id.in_(base))
    ).one()
    stmt = (
        select(
            Series.id,
            Patient.id,
            Patient.code,
            Patient.birth_year,
            Patient.sex,
            Patient.fitzpatrick,
            Protocol.name,
            Series.status,
            Series.started_on,
            Protocol.planned_sessions,
            Protocol.required_views,
        )
        .join(Patient, Patient.id == Series.patient_id)
        .join(Protocol, Protocol.id == Series.protocol_id)
        .where(*where)
        .order_by(Series.started_on.desc(), Series.id.desc())
        .offset(offset)
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    rows = session.execute(stmt).all()
    ids = [r[0] for r in rows]
    visits: dict[int, list[tuple[int, date]]] = {}
    by_session: dict[int, list[tuple[str, str]]] = {}
    if ids:
        page = select(Series.id).where(Series.id.in_(ids)) if limit is not None else base
        for series_id, sid, performed_on in session.execute(
            select(Session.series_id, Session.id, Session.performed_on).where(
                Session.series_id.in_(page)
            )
        ):
            visits.setdefault(series_id, []).append((sid, performed_on))
        for sid, view, verdict in session.execute(
            select(Photo.session_id, Photo.view, Photo.verdict)
            .join(Session, Session.id == Photo.session_id)
            .where(Session.series_id.in_(page))
        ):
            by_session.setdefault(sid, []).append((view, verdict))
    out = []
    for (
        series_id,
        patient_id,
        code,
        birth_year,
        sex,
        fitz,
        protocol_name,
        status,
        started_on,
        planned,
        required,
    ) in rows:
        mine = visits.get(series_id, [])
        compliant = sum(
            set_compliant(by_session.get(v, []), required_views=required or []) for v, _ in mine
        )
        out.append(
            (
                series_id,
                patient_id,
                code,
                birth_year,
                age_band(started_on.year - birth_year),
                sex,
                fitz,
                protocol_name,
                status,
                started_on,
                len(mine),
                planned,
                max((d for _, d in mine), default=None),
                compliant,
                compliant / len(mine) if mine else float("nan"),
            )
        )
    df = pd.DataFrame(out, columns=list(PATIENT_LIST_COLUMNS))
    df.attrs.update(total_series=int(total_series), total_patients=int(total_patients))
    audit.record(
        session,
        actor,
        "patient.list",
        details={"search": search[:64], "rows": len(df), "offset": offset},
    )
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
    require(actor, "series.read", session)
    blinding.require_not_blinded(session, actor, series_id=series_id, action="series.view")
    visits_of = selectinload(Series.sessions)
    series = session.get(
        Series,
        series_id,
        options=[  # a fixed number of statements per series
            joinedload(Series.patient),
            joinedload(Series.protocol),
            selectinload(Series.confounders),
            visits_of.selectinload(Session.treatments).joinedload(Treatment.lot),
            visits_of.selectinload(Session.reactions),
            visits_of.selectinload(Session.photos),
            visits_of.selectinload(Session.measurements).joinedload(EndpointMeasurement.endpoint),
        ],
    )
    if series is None:
        raise LookupError(f"no series with id {series_id}")
    patient, protocol = series.patient, series.protocol
    visits = list(series.sessions)
    names = dict(session.execute(select(User.id, User.display_name)).all())
    sessions = pd.DataFrame(
        [
            (
                v.id,
                v.number,
                v.performed_on,
                (v.performed_on - series.started_on).days,
                names.get(v.operator_id, "") if v.operator_id else "",
            )
            for v in visits
        ],
        columns=["session_id", "number", "performed_on", "days_since_start", "operator"],
    )
    treatments = pd.DataFrame(
        [
            (
                v.number,
                t.lot.product,
                t.lot.lot_number,
                t.lot.expiry_on,
                t.expired_at_use,
                t.lot.recalled,
                t.override_reason,
                t.volume_ml,
                t.units,
                t.preparation,
                list(t.sites),
                t.depth_intent,
            )
            for v in visits
            for t in v.treatments
        ],
        columns=[
            "session_number",
            "product",
            "lot_number",
            "expiry_on",
            "expired_at_use",
            "recalled",
            "override_reason",
            "volume_ml",
            "units",
            "preparation",
            "sites",
            "depth_intent",
        ],
    )
    reactions = pd.DataFrame(
        [
            (
                v.number,
                r.kind,
                r.term,
                r.severity,
                r.onset_day,
                r.duration_days,
                r.resolved,
                r.red_flag,
                r.escalation,
            )
            for v in visits
            for r in v.reactions
        ],
        columns=[
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
    confounders = pd.DataFrame(
        [
            (c.kind, c.started_on, c.ended_on, c.details)
            for c in sorted(series.confounders, key=lambda c: c.started_on)
        ],
        columns=["kind", "started_on", "ended_on", "details"],
    )
    photos = pd.DataFrame(
        [
            (p.id, v.number, p.view, p.verdict, p.sha256, p.override_reason)
            for v in visits
            for p in v.photos
        ],
        columns=["photo_id", "session_number", "view", "verdict", "sha256", "override_reason"],
    )
    views = list(dict.fromkeys(list(protocol.required_views or []) + list(photos["view"])))
    grid = pd.DataFrame(
        "",
        index=pd.Index(views, name="view"),
        columns=pd.Index([v.number for v in visits], name="session_number"),
    )
    for p in photos.itertuples(index=False):
        cell = grid.at[p.view, p.session_number]
        grid.at[p.view, p.session_number] = f"{cell}, {p.verdict}" if cell else p.verdict
    measurements, endpoints, notes = _measurements(session, series.id, visits, protocol, sessions)
    comparisons = pd.DataFrame(
        [
            (
                a.number,
                b.number,
                a.performed_on,
                b.performed_on,
                [
                    c.kind
                    for c in series.confounders
                    if spans(c.started_on, c.ended_on, from_on=a.performed_on, to_on=b.performed_on)
                ],
            )
            for a, b in pairwise(visits)
        ],
        columns=["from_session", "to_session", "from_on", "to_on", "confounders"],
    )
    comparisons["spans_confounder"] = comparisons["confounders"].map(bool)
    audit.record(
        session,
        actor,
        "series.view",
        patient_id=patient.id,
        object_type="series",
        object_id=series.id,
    )
    return SeriesOverview(
        series={
            "series_id": series.id,
            "status": series.status,
            "goal": series.goal,
            "started_on": series.started_on,
        },
        patient={
            "patient_id": patient.id,
            "code": patient.code,
            "birth_year": patient.birth_year,
            "age_band": age_band(series.started_on.year - patient.birth_year),
            "sex": patient.sex,
            "fitzpatrick": patient.fitzpatrick,
        },
        protocol={
            "protocol_id": protocol.id,
            "name": protocol.name,
            "modality": protocol.modality,
            "target_area": protocol.target_area,
            "planned_sessions": protocol.planned_sessions,
            "interval_days": protocol.interval_days,
            "required_views": list(protocol.required_views or []),
            "endpoint_codes": list(protocol.endpoint_codes or []),
            "primary_endpoint": protocol.primary_endpoint,
            "photo_set_definition": PHOTO_SET_DEFINITION,
        },
        sessions=sessions,
        treatments=treatments,
        reactions=reactions,
        confounders=confounders,
        photos=photos,
        photo_grid=grid,
        measurements=measurements,
        endpoints=endpoints,
        comparisons=comparisons,
        red_flags=int(reactions["red_flag"].sum()) if len(reactions) else 0,
        notes=notes,
    )


def _measurements(
    session: DbSession,
    series_id: int,
    visits: list[Session],
    protocol: Protocol,
    sessions: pd.DataFrame,
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Baseline, change and improvement as the cohort figures compute them
    (:func:`analysis.outcomes.frames.derive_measurements`), plus the noise band and expected course."""
    raw = pd.DataFrame(
        [
            (series_id, m.session_id, m.endpoint.code, m.value_num)
            for v in visits
            for m in v.measurements
            if m.value_num is not None
        ],
        columns=["series_id", "session_id", "endpoint_code", "value"],
    )
    codes = list(dict.fromkeys(list(protocol.endpoint_codes or []) + list(raw["endpoint_code"])))
    defs = {
        d.code: d
        for d in session.scalars(
            select(EndpointDefinition).where(EndpointDefinition.code.in_(codes))
        )
    }
    endpoints = pd.DataFrame(
        [
            (d.code, d.name, d.kind, d.unit, d.higher_is_better, d.mcid, d.noise_sd, d.neutral)
            for d in defs.values()
        ],
        columns=[
            "endpoint_code",
            "name",
            "kind",
            "unit",
            "higher_is_better",
            "mcid",
            "noise_sd",
            "neutral",
        ],
    )
    cols = [
        "session_number",
        "endpoint_code",
        "value",
        "baseline",
        "change",
        "improvement",
        "noise_band",
        "within_noise",
        "expected_change",
    ]
    notes: list[str] = []
    if raw.empty:
        return pd.DataFrame(columns=cols), endpoints.drop(columns="neutral"), notes
    m = derive_measurements(raw, sessions=sessions, endpoints=endpoints)

    def noise_band(code: str) -> float:
        sd = defs[code].noise_sd if code in defs else None
        return 2.0 * sd if sd is not None else float("nan")

    m["noise_band"] = m["endpoint_code"].map(noise_band)
    m["within_noise"] = m["change"].abs() <= m["noise_band"]
    course = {c: expected_change(protocol.expected_course, endpoint_code=c) for c in codes}
    m["expected_change"] = [
        course.get(c, {}).get(int(k), float("nan"))
        for c, k in zip(m["endpoint_code"], m["session_number"], strict=True)
    ]
    for code, baseline in m.groupby("endpoint_code", sort=False)["baseline"]:
        if baseline.isna().all():
            notes.append(f"{code}: no baseline (session 1) value, so no change from baseline")
    return (
        m[cols].sort_values(["endpoint_code", "session_number"]).reset_index(drop=True),
        endpoints.drop(columns="neutral"),
        notes,
    )
