"""Read the clinic database into :class:`~analysis.outcomes.frames.ClinicFrames` (no patient codes).

The one place analytics read the database. Rows come straight off the DB-API cursor through
SQLAlchemy (so the query-count tests see every statement); the frames are then shaped by the pure
:func:`~analysis.outcomes.frames.build_frames`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import date
from typing import Any

import pandas as pd
from sqlalchemy import Boolean, Date, Float, Integer, Select, String, case, func, select
from sqlalchemy.orm import Session as DbSession

from analysis.outcomes.frames import (
    FRAME_COLUMNS,
    GATE_PASSING,
    OPTIONAL_TABLES,
    ClinicFrames,
    build_frames,
    frame,
)
from analysis.store import audit
from analysis.store.access import Actor, require
from analysis.store.models import (
    Confounder,
    EndpointDefinition,
    EndpointMeasurement,
    Patient,
    Photo,
    ProductLot,
    Protocol,
    Reaction,
    Series,
    Session,
    Treatment,
    User,
)


def _date(v: object) -> object:
    return date.fromisoformat(v) if isinstance(v, str) else v


def _bool(v: object) -> object:
    return None if v is None else bool(v)


#: How a raw DB-API value becomes what the ORM would have returned, per column type. SQLite hands
#: dates over as ISO strings and booleans as 0/1; PostgreSQL's driver returns them typed already
#: (the converters leave typed values alone). Any other column type is refused by :func:`_table`.
_CONVERT: tuple[tuple[type, Callable[[object], object] | None], ...] = (
    (Boolean, _bool),
    (Date, _date),
    (Integer, None),
    (Float, None),
    (String, None),
)


def _table(
    session: DbSession, stmt: Select[*tuple[Any, ...]], columns: Sequence[str]
) -> pd.DataFrame:
    """Rows of a Core ``select`` as a DataFrame, read straight from the DB-API cursor.

    The statement still goes through SQLAlchemy (bound parameters, events: the query-count tests
    see it), but the rows skip SQLAlchemy's per-value result processing: for a clinic's hundreds of
    thousands of rows that processing cost more than the query. Converted column-wise instead.
    """
    converters: list[Callable[[object], object] | None] = []
    for col in stmt.selected_columns:
        kind = next((k for k in _CONVERT if isinstance(col.type, k[0])), None)
        if kind is None:
            raise TypeError(f"{col} ({col.type!r}) has no raw-row converter")
        converters.append(kind[1])
    result = session.connection().execute(stmt)
    try:
        rows = result.cursor.fetchall()
    finally:
        result.close()
    df = (
        pd.DataFrame.from_records(rows, columns=list(columns), nrows=len(rows))
        if rows
        else pd.DataFrame(columns=list(columns))
    )
    for name, convert in zip(columns, converters, strict=True):
        if convert is None or not len(df):
            continue
        if convert is _bool:  # vectorised: 0/1 (SQLite) or bool (PostgreSQL), None kept
            known = df[name].notna()
            df[name] = (
                df[name].astype(bool)
                if known.all()
                else df[name].astype(bool).astype(object).where(known, None)
            )
        else:
            df[name] = [convert(v) for v in df[name].tolist()]
    return df


def photo_sets_statement() -> Select[*tuple[Any, ...]]:
    """Per session with photos: ``session_id``, photo count, how many pass the gate, the views
    (comma-separated, any order). Answered from ``ix_photos_session_verdict_view`` alone."""
    passing = func.sum(case((Photo.verdict.in_(sorted(GATE_PASSING)), 1), else_=0))
    return (
        select(
            Photo.session_id,
            func.count(),
            passing.cast(Integer),
            func.aggregate_strings(Photo.view, ",").cast(String),
        )
        .join(Session, Session.id == Photo.session_id)
        .group_by(Photo.session_id)
    )


def load_frames(
    session: DbSession,
    actor: Actor,
    *,
    purpose: str = "cohort.read",
    protocol_ids: Sequence[int] | None = None,
    tables: Collection[str] | None = None,
) -> ClinicFrames:
    """Read the clinic database into :class:`ClinicFrames` (no patient codes).

    Parameters
    ----------
    purpose
        The permission the caller works under: ``"cohort.read"`` (protocol comparison, medical
        director) or ``"timeline.read"`` (consult timelines). Checked, then audited as
        ``"frames.load"`` with the purpose.
    protocol_ids
        Read only the series of these protocols (and their patients, sessions, values, photos,
        reactions, treatments, confounders); the small tables (protocols, endpoints, operators,
        lots) are always whole. ``None`` reads the whole clinic.
    tables
        Which of :data:`OPTIONAL_TABLES` to read (the others come back empty, with their
        columns): a view that shows no reactions need not read a clinic's reactions. ``None``
        reads them all.
    """
    if purpose not in ("cohort.read", "timeline.read"):
        raise ValueError(f"purpose must be cohort.read or timeline.read, got {purpose!r}")
    want = OPTIONAL_TABLES if tables is None else frozenset(tables)
    if not want <= OPTIONAL_TABLES:
        raise ValueError(f"unknown table(s) {sorted(want - OPTIONAL_TABLES)}")
    require(actor, purpose, session)
    wanted = None if protocol_ids is None else sorted({int(p) for p in protocol_ids})

    def rows(stmt: object) -> list[tuple[object, ...]]:
        # small tables with JSON columns: Core rows (the ORM types them)
        return [tuple(r) for r in session.connection().execute(stmt).all()]  # type: ignore[call-overload]

    def of_series(stmt: Select[*tuple[Any, ...]], series_id: Any) -> Select[*tuple[Any, ...]]:
        if wanted is None:
            return stmt
        chosen = select(Series.id).where(Series.protocol_id.in_(wanted))
        return stmt.where(series_id.in_(chosen))

    protocols = frame(
        rows(
            select(
                Protocol.id,
                Protocol.name,
                Protocol.modality,
                Protocol.target_area,
                Protocol.planned_sessions,
                Protocol.interval_days,
                Protocol.required_views,
                Protocol.endpoint_codes,
                Protocol.primary_endpoint,
                Protocol.expected_course,
            )
        ),
        "protocols",
    )
    endpoints = frame(
        rows(
            select(
                EndpointDefinition.code,
                EndpointDefinition.name,
                EndpointDefinition.kind,
                EndpointDefinition.unit,
                EndpointDefinition.higher_is_better,
                EndpointDefinition.mcid,
                EndpointDefinition.noise_sd,
                EndpointDefinition.scale_min,
                EndpointDefinition.scale_max,
                EndpointDefinition.neutral,
            )
        ),
        "endpoints",
    )
    operators = frame(rows(select(User.id, User.display_name)), "operators")
    lots = frame(
        rows(
            select(
                ProductLot.id,
                ProductLot.product,
                ProductLot.lot_number,
                ProductLot.expiry_on,
                ProductLot.recalled,
            )
        ),
        "lots",
    )
    patient_stmt = select(Patient.id, Patient.birth_year, Patient.sex, Patient.fitzpatrick)
    if wanted is not None:
        patient_stmt = patient_stmt.where(
            Patient.id.in_(select(Series.patient_id).where(Series.protocol_id.in_(wanted)))
        )
    patients = _table(session, patient_stmt, FRAME_COLUMNS["patients"])
    series_stmt = select(
        Series.id,
        Series.patient_id,
        Series.protocol_id,
        Series.goal,
        Series.status,
        Series.started_on,
    )
    if wanted is not None:
        series_stmt = series_stmt.where(Series.protocol_id.in_(wanted))
    series = _table(session, series_stmt, FRAME_COLUMNS["series"])
    sessions = _table(
        session,
        of_series(
            select(
                Session.id,
                Session.series_id,
                Session.number,
                Session.performed_on,
                Session.operator_id,
            ),
            Session.series_id,
        ),
        ["session_id", "series_id", "number", "performed_on", "operator_id"],
    )
    treatments = frame([], "treatments")
    if "treatments" in want:
        treatments = _table(
            session,
            of_series(
                select(
                    Treatment.id,
                    Treatment.session_id,
                    Session.series_id,
                    Treatment.lot_id,
                    Treatment.expired_at_use,
                    Treatment.volume_ml,
                    Treatment.units,
                ).join(Session, Session.id == Treatment.session_id),
                Session.series_id,
            ),
            [
                "treatment_id",
                "session_id",
                "series_id",
                "lot_id",
                "expired_at_use",
                "volume_ml",
                "units",
            ],
        )
        # lot columns joined here from the small lots table, not repeated per row by the database
        treatments = treatments.merge(lots, on="lot_id", how="left")
        treatments = treatments[list(FRAME_COLUMNS["treatments"])]
    raw = frame([], "raw_measurements")
    if "measurements" in want:
        # endpoint ids, not codes, per value (an int per row is cheaper than a string); codes mapped
        # from the small endpoint table
        codes = dict(
            session.connection()
            .execute(select(EndpointDefinition.id, EndpointDefinition.code))
            .all()
        )
        # session, endpoint id, value per row, answered from the covering index alone; the
        # series comes from the sessions already read (no join, one column fewer per value)
        values = select(
            EndpointMeasurement.session_id,
            EndpointMeasurement.endpoint_id,
            EndpointMeasurement.value_num,
        )
        if wanted is not None:
            values = values.where(
                EndpointMeasurement.session_id.in_(
                    select(Session.id).where(
                        Session.series_id.in_(
                            select(Series.id).where(Series.protocol_id.in_(wanted))
                        )
                    )
                )
            )
        raw = _table(session, values, ["session_id", "endpoint_code", "value"])
        raw.insert(
            0, "series_id", raw["session_id"].map(sessions.set_index("session_id")["series_id"])
        )
        # ids -> codes as a categorical (no string per row; build_frames factorizes it free)
        known = sorted(codes, key=codes.__getitem__)  # ids in their codes' order
        at = pd.Index(known).get_indexer(raw["endpoint_code"].to_numpy())
        if (at < 0).any():
            raise ValueError("endpoint values refer to an endpoint id with no definition")
        raw["endpoint_code"] = pd.Categorical.from_codes(at, categories=[codes[i] for i in known])
    reactions = frame([], "reactions")
    if "reactions" in want:
        reactions = _table(
            session,
            of_series(
                select(
                    Reaction.id,
                    Reaction.session_id,
                    Session.series_id,
                    Reaction.kind,
                    Reaction.term,
                    Reaction.severity,
                    Reaction.onset_day,
                    Reaction.duration_days,
                    Reaction.resolved,
                    Reaction.red_flag,
                ).join(Session, Session.id == Reaction.session_id),
                Session.series_id,
            ),
            FRAME_COLUMNS["reactions"],
        )
    photo_sets = pd.DataFrame(columns=["session_id", "photos", "passing", "views"])
    if "photo_sets" in want:
        photo_sets = _table(
            session,
            of_series(photo_sets_statement(), Session.series_id),
            ["session_id", "photos", "passing", "views"],
        )
    confounders = frame([], "confounders")
    if "confounders" in want:
        confounders = _table(
            session,
            of_series(
                select(
                    Confounder.id,
                    Confounder.series_id,
                    Confounder.kind,
                    Confounder.started_on,
                    Confounder.ended_on,
                ),
                Confounder.series_id,
            ),
            FRAME_COLUMNS["confounders"],
        )
    audit.record(
        session,
        actor,
        "frames.load",
        details={
            "purpose": purpose,
            "series": int(len(series)),
            **({} if wanted is None else {"protocol_ids": wanted}),
            **({} if tables is None else {"tables": sorted(want)}),
        },
    )
    return build_frames(
        patients=patients,
        protocols=protocols,
        endpoints=endpoints,
        operators=operators,
        series=series,
        sessions=sessions,
        raw_measurements=raw,
        lots=lots,
        treatments=treatments,
        reactions=reactions,
        photo_sets=photo_sets,
        confounders=confounders,
        loaded=want,
    )


def lots_used(
    session: DbSession, actor: Actor, *, purpose: str, protocol_ids: Sequence[int]
) -> pd.DataFrame:
    """``lot_id, product, lot_number`` of the lots any treatment of these protocols' series used
    (what a filter offers), answered by the database without reading the treatments."""
    if purpose not in ("cohort.read", "timeline.read"):
        raise ValueError(f"purpose must be cohort.read or timeline.read, got {purpose!r}")
    require(actor, purpose, session)
    used = (
        select(Treatment.lot_id)
        .join(Session, Session.id == Treatment.session_id)
        .join(Series, Series.id == Session.series_id)
        .where(Series.protocol_id.in_(sorted({int(p) for p in protocol_ids})))
    )
    stmt = (
        select(ProductLot.id, ProductLot.product, ProductLot.lot_number)
        .where(ProductLot.id.in_(used))
        .order_by(ProductLot.product, ProductLot.lot_number)
    )
    return _table(session, stmt, ["lot_id", "product", "lot_number"])


#: The tables whose newest row marks a change of what the analytics pages show (a visit, its
#: values, photos, reactions and treatments, a new series, patient, confounder or endpoint).
_REVISION_TABLES = (
    Session,
    EndpointMeasurement,
    Photo,
    Reaction,
    Treatment,
    Series,
    Patient,
    Confounder,
    Protocol,
    EndpointDefinition,
)


def record_revision(session: DbSession, actor: Actor, *, purpose: str) -> tuple[int, ...]:
    """The newest row id of each table the analytics read, in one statement of index look-ups:
    it changes whenever a visit (or any new record those pages show) is written, so a page's
    cached frames can be dropped then instead of waiting for their time-out. Edits of existing
    rows do not change it (the pages' Reload button and the time-out cover those)."""
    if purpose not in ("cohort.read", "timeline.read"):
        raise ValueError(f"purpose must be cohort.read or timeline.read, got {purpose!r}")
    require(actor, purpose, session)
    newest = [select(func.max(model.id)).scalar_subquery() for model in _REVISION_TABLES]
    row = session.connection().execute(select(*newest)).one()
    return tuple(int(v or 0) for v in row)
