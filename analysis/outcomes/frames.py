"""The one place analytics read the clinic database: plain pandas DataFrames in a dataclass.

:func:`load_frames` reads every table the outcome functions need into :class:`ClinicFrames`. The
frames carry no patient codes (patients are keyed by ``patient_id`` only); functions that show
codes (the patient list, one series, lot tracing) read the database themselves with their own
permission check.

Conventions of the ``measurements`` frame (long: one row per series x session x endpoint)
------------------------------------------------------------------------------------------
* ``value``: the numeric endpoint value in the endpoint's units; several values recorded for the
  same series, session and endpoint (sites, raters) are averaged.
* ``baseline``: the value at session 1 of the same series (NaN when session 1 has none; such series
  have no change and are left out of outcome figures). For a rating made against the baseline
  (the endpoint's ``neutral`` is set: GAIS, global photographic score, satisfaction) it is that
  "no change" anchor at every session, so its change is the rated change.
* ``change = value - baseline`` in the endpoint's units (raw sign).
* ``improvement = change`` when ``higher_is_better`` else ``-change``: positive always means better.
* ``days_since_start``: days from the series' ``started_on`` to the session date.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, fields

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

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

#: Verdicts that pass the comparability gate. ``warn`` does not pass (stated on every figure).
GATE_PASSING = frozenset({"baseline", "pass"})

FRAME_COLUMNS: dict[str, tuple[str, ...]] = {
    "patients": ("patient_id", "birth_year", "sex", "fitzpatrick"),
    "protocols": ("protocol_id", "name", "modality", "target_area", "planned_sessions",
                  "interval_days", "required_views", "endpoint_codes", "primary_endpoint",
                  "expected_course"),
    "endpoints": ("endpoint_code", "name", "kind", "unit", "higher_is_better", "mcid", "noise_sd",
                  "scale_min", "scale_max", "neutral"),
    "operators": ("operator_id", "display_name"),
    "series": ("series_id", "patient_id", "protocol_id", "goal", "status", "started_on"),
    "sessions": ("session_id", "series_id", "number", "performed_on", "operator_id",
                 "days_since_start"),
    "lots": ("lot_id", "product", "lot_number", "expiry_on", "recalled"),
    "treatments": ("treatment_id", "session_id", "series_id", "lot_id", "product", "lot_number",
                   "expiry_on", "recalled", "expired_at_use", "volume_ml", "units"),
    "raw_measurements": ("series_id", "session_id", "endpoint_code", "value"),
    "measurements": ("series_id", "session_id", "session_number", "days_since_start",
                     "weeks_since_start", "endpoint_code", "value", "baseline", "change",
                     "improvement"),
    "reactions": ("reaction_id", "session_id", "series_id", "kind", "term", "severity",
                  "onset_day", "duration_days", "resolved", "red_flag"),
    "photos": ("photo_id", "session_id", "series_id", "session_number", "view", "verdict",
               "sha256"),
    "confounders": ("confounder_id", "series_id", "kind", "started_on", "ended_on"),
}


@dataclass(frozen=True)
class ClinicFrames:
    """Every table the outcome functions use, as plain DataFrames (columns: ``FRAME_COLUMNS``)."""

    patients: pd.DataFrame
    protocols: pd.DataFrame
    endpoints: pd.DataFrame
    operators: pd.DataFrame
    series: pd.DataFrame
    sessions: pd.DataFrame
    lots: pd.DataFrame
    treatments: pd.DataFrame
    measurements: pd.DataFrame
    reactions: pd.DataFrame
    photos: pd.DataFrame
    confounders: pd.DataFrame


def frame(rows: list[dict[str, object]] | list[tuple[object, ...]], name: str) -> pd.DataFrame:
    """A DataFrame with exactly the columns of ``FRAME_COLUMNS[name]`` (empty rows allowed)."""
    return pd.DataFrame(rows, columns=list(FRAME_COLUMNS[name]))


def build_frames(
    *, patients: pd.DataFrame, protocols: pd.DataFrame, endpoints: pd.DataFrame,
    series: pd.DataFrame, sessions: pd.DataFrame, raw_measurements: pd.DataFrame,
    operators: pd.DataFrame | None = None, lots: pd.DataFrame | None = None,
    treatments: pd.DataFrame | None = None, reactions: pd.DataFrame | None = None,
    photos: pd.DataFrame | None = None, confounders: pd.DataFrame | None = None,
) -> ClinicFrames:
    """Assemble :class:`ClinicFrames` from hand-made or loaded tables.

    ``sessions`` needs ``session_id, series_id, number, performed_on`` (``operator_id`` optional);
    ``raw_measurements`` is ``series_id, session_id, endpoint_code, value``. Derived columns
    (``days_since_start``, baseline and change) are computed here, so tests and the database loader
    share one code path.
    """
    sessions = sessions.copy()
    if "operator_id" not in sessions:
        sessions["operator_id"] = None
    starts = series.set_index("series_id")["started_on"]
    performed = pd.to_datetime(sessions["performed_on"])
    started = pd.to_datetime(sessions["series_id"].map(starts))
    sessions["days_since_start"] = (performed - started).dt.days.astype("int64") if len(sessions) \
        else pd.Series([], dtype="int64")
    sessions = sessions[list(FRAME_COLUMNS["sessions"])]
    measurements = derive_measurements(raw_measurements, sessions=sessions, endpoints=endpoints)
    empty = {name: frame([], name) for name in FRAME_COLUMNS}
    photos = empty["photos"] if photos is None else photos
    if len(photos) and "session_number" not in photos:
        photos = photos.merge(sessions[["session_id", "number"]], on="session_id", how="left")
        photos = photos.rename(columns={"number": "session_number"})
    return ClinicFrames(
        patients=patients, protocols=protocols, endpoints=endpoints,
        operators=empty["operators"] if operators is None else operators,
        series=series, sessions=sessions,
        lots=empty["lots"] if lots is None else lots,
        treatments=empty["treatments"] if treatments is None else treatments,
        measurements=measurements,
        reactions=empty["reactions"] if reactions is None else reactions,
        photos=photos,
        confounders=empty["confounders"] if confounders is None else confounders,
    )


def derive_measurements(raw: pd.DataFrame, *, sessions: pd.DataFrame, endpoints: pd.DataFrame
                        ) -> pd.DataFrame:
    """Long measurement table with baseline (session 1), ``change`` and ``improvement``.

    See the module docstring for the conventions. Non-numeric values (text endpoints) are dropped.
    """
    if raw.empty:
        return frame([], "measurements")
    raw = raw.dropna(subset=["value"])
    per_visit = (raw.groupby(["series_id", "session_id", "endpoint_code"], as_index=False)["value"]
                 .mean())
    m = per_visit.merge(sessions[["session_id", "number", "days_since_start"]], on="session_id",
                        how="inner").rename(columns={"number": "session_number"})
    base = (m[m["session_number"] == 1][["series_id", "endpoint_code", "value"]]
            .rename(columns={"value": "baseline"}))
    m = m.merge(base, on=["series_id", "endpoint_code"], how="left")
    if "neutral" in endpoints:  # ratings made against baseline: their no-change anchor
        neutral = endpoints.set_index("endpoint_code")["neutral"].astype(float).dropna()
        relative = m["endpoint_code"].isin(neutral.index)
        if relative.any():
            m.loc[relative, "baseline"] = m.loc[relative, "endpoint_code"].map(neutral).astype(float)
    m["change"] = m["value"] - m["baseline"]
    hib = endpoints.set_index("endpoint_code")["higher_is_better"].astype(bool)
    sign = m["endpoint_code"].map(hib.map({True: 1.0, False: -1.0})).fillna(1.0)
    m["improvement"] = m["change"] * sign + 0.0  # + 0.0 turns -0.0 into 0.0
    m["weeks_since_start"] = m["days_since_start"] / 7.0
    m = m.sort_values(["series_id", "endpoint_code", "session_number"]).reset_index(drop=True)
    return m[list(FRAME_COLUMNS["measurements"])]


def load_frames(session: DbSession, actor: Actor, *, purpose: str = "cohort.read") -> ClinicFrames:
    """Read the clinic database into :class:`ClinicFrames` (no patient codes).

    Parameters
    ----------
    purpose
        The permission the caller works under: ``"cohort.read"`` (protocol comparison, medical
        director) or ``"timeline.read"`` (consult timelines). Checked, then audited as
        ``"frames.load"`` with the purpose.
    """
    if purpose not in ("cohort.read", "timeline.read"):
        raise ValueError(f"purpose must be cohort.read or timeline.read, got {purpose!r}")
    require(actor, purpose, session)

    def rows(stmt: object) -> list[tuple[object, ...]]:
        # Core rows (no ORM loading step): a whole clinic's tables are read as plain tuples
        return [tuple(r) for r in session.connection().execute(stmt).all()]  # type: ignore[call-overload]

    patients = frame(rows(select(Patient.id, Patient.birth_year, Patient.sex, Patient.fitzpatrick)),
                     "patients")
    protocols = frame(rows(select(
        Protocol.id, Protocol.name, Protocol.modality, Protocol.target_area,
        Protocol.planned_sessions, Protocol.interval_days, Protocol.required_views,
        Protocol.endpoint_codes, Protocol.primary_endpoint, Protocol.expected_course)), "protocols")
    endpoints = frame(rows(select(
        EndpointDefinition.code, EndpointDefinition.name, EndpointDefinition.kind,
        EndpointDefinition.unit, EndpointDefinition.higher_is_better, EndpointDefinition.mcid,
        EndpointDefinition.noise_sd, EndpointDefinition.scale_min, EndpointDefinition.scale_max,
        EndpointDefinition.neutral)),
        "endpoints")
    operators = frame(rows(select(User.id, User.display_name)), "operators")
    series = frame(rows(select(Series.id, Series.patient_id, Series.protocol_id, Series.goal,
                               Series.status, Series.started_on)), "series")
    sessions = pd.DataFrame(rows(select(Session.id, Session.series_id, Session.number,
                                        Session.performed_on, Session.operator_id)),
                            columns=["session_id", "series_id", "number", "performed_on",
                                     "operator_id"])
    lots = frame(rows(select(ProductLot.id, ProductLot.product, ProductLot.lot_number,
                             ProductLot.expiry_on, ProductLot.recalled)), "lots")
    treatments = frame(rows(
        select(Treatment.id, Treatment.session_id, Session.series_id, Treatment.lot_id,
               ProductLot.product, ProductLot.lot_number, ProductLot.expiry_on,
               ProductLot.recalled, Treatment.expired_at_use, Treatment.volume_ml,
               Treatment.units)
        .join(Session, Session.id == Treatment.session_id)
        .join(ProductLot, ProductLot.id == Treatment.lot_id)), "treatments")
    raw = frame(rows(
        select(Session.series_id, EndpointMeasurement.session_id, EndpointDefinition.code,
               EndpointMeasurement.value_num)
        .join(Session, Session.id == EndpointMeasurement.session_id)
        .join(EndpointDefinition, EndpointDefinition.id == EndpointMeasurement.endpoint_id)),
        "raw_measurements")
    reactions = frame(rows(
        select(Reaction.id, Reaction.session_id, Session.series_id, Reaction.kind, Reaction.term,
               Reaction.severity, Reaction.onset_day, Reaction.duration_days, Reaction.resolved,
               Reaction.red_flag).join(Session, Session.id == Reaction.session_id)), "reactions")
    photos = frame(rows(
        select(Photo.id, Photo.session_id, Session.series_id, Session.number, Photo.view,
               Photo.verdict, Photo.sha256).join(Session, Session.id == Photo.session_id)),
        "photos")
    confounders = frame(rows(select(Confounder.id, Confounder.series_id, Confounder.kind,
                                    Confounder.started_on, Confounder.ended_on)), "confounders")
    audit.record(session, actor, "frames.load", details={"purpose": purpose,
                                                         "series": int(len(series))})
    return build_frames(patients=patients, protocols=protocols, endpoints=endpoints,
                        operators=operators, series=series, sessions=sessions,
                        raw_measurements=raw, lots=lots, treatments=treatments,
                        reactions=reactions, photos=photos, confounders=confounders)


def to_csv_bytes(df: pd.DataFrame) -> bytes:
    """UTF-8 CSV (with header, without the index) of ``df``, ready for a download button.

    Cells that a spreadsheet would run as a formula (starting with ``= + - @``) are prefixed with
    a single quote (CSV injection guard); numbers are written unchanged.
    """
    safe = df.copy()
    for col in safe.columns:
        if safe[col].dtype == object or pd.api.types.is_string_dtype(safe[col]):
            safe[col] = safe[col].map(_defuse)
    buf = io.StringIO()
    safe.to_csv(buf, index=False)
    return buf.getvalue().encode("utf-8")


def _defuse(cell: object) -> object:
    if isinstance(cell, str) and cell[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + cell
    return cell


def frame_names() -> list[str]:
    return [f.name for f in fields(ClinicFrames)]
