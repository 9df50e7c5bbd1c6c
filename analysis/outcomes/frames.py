"""The clinic's analytics tables: plain pandas DataFrames in a dataclass, and their pure derivations.

:func:`analysis.services.frames.load_frames` reads every table the outcome functions need into
:class:`ClinicFrames`; this module only shapes frames (no database). The frames carry no patient codes (patients are keyed by ``patient_id`` only); functions that show
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
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace

import numpy as np
import pandas as pd

#: Verdicts that pass the comparability gate. ``warn`` does not pass (stated on every figure).
GATE_PASSING = frozenset({"baseline", "pass"})

FRAME_COLUMNS: dict[str, tuple[str, ...]] = {
    "patients": ("patient_id", "birth_year", "sex", "fitzpatrick"),
    "protocols": (
        "protocol_id",
        "name",
        "modality",
        "target_area",
        "planned_sessions",
        "interval_days",
        "required_views",
        "endpoint_codes",
        "primary_endpoint",
        "expected_course",
    ),
    "endpoints": (
        "endpoint_code",
        "name",
        "kind",
        "unit",
        "higher_is_better",
        "mcid",
        "noise_sd",
        "scale_min",
        "scale_max",
        "neutral",
    ),
    "operators": ("operator_id", "display_name"),
    "series": ("series_id", "patient_id", "protocol_id", "goal", "status", "started_on"),
    "sessions": (
        "session_id",
        "series_id",
        "number",
        "performed_on",
        "operator_id",
        "days_since_start",
    ),
    "lots": ("lot_id", "product", "lot_number", "expiry_on", "recalled"),
    "treatments": (
        "treatment_id",
        "session_id",
        "series_id",
        "lot_id",
        "product",
        "lot_number",
        "expiry_on",
        "recalled",
        "expired_at_use",
        "volume_ml",
        "units",
    ),
    "raw_measurements": ("series_id", "session_id", "endpoint_code", "value"),
    "measurements": (
        "series_id",
        "session_id",
        "session_number",
        "days_since_start",
        "weeks_since_start",
        "endpoint_code",
        "value",
        "baseline",
        "change",
        "improvement",
    ),
    "reactions": (
        "reaction_id",
        "session_id",
        "series_id",
        "kind",
        "term",
        "severity",
        "onset_day",
        "duration_days",
        "resolved",
        "red_flag",
    ),
    "photos": ("photo_id", "session_id", "series_id", "session_number", "view", "verdict"),
    "photo_sets": ("session_id", "series_id", "session_number", "photos", "passing", "views"),
    "confounders": ("confounder_id", "series_id", "kind", "started_on", "ended_on"),
}


#: Per-protocol tables a loader may leave unread (see ``ClinicFrames.loaded``); patients, series and
#: sessions, the spine every other table hangs on, are always there.
OPTIONAL_TABLES = frozenset(
    {"treatments", "measurements", "reactions", "photo_sets", "confounders"}
)


@dataclass(frozen=True)
class ClinicFrames:
    """Every table the outcome functions use, as plain DataFrames (columns: ``FRAME_COLUMNS``).

    Photos are kept as ``photo_sets``, one row per session that has photos: ``photos`` (count),
    ``passing`` (how many pass the gate, :data:`GATE_PASSING`) and ``views`` (the views taken,
    comma-separated, in any order, a view once per photo). The database aggregates them: a clinic's photo rows never reach
    Python here.

    ``loaded`` names the :data:`OPTIONAL_TABLES` that were read: an unread table is empty, which
    is not the same as "none recorded", so a computation that needs a table checks for it
    (:meth:`check_loaded`) rather than reading an empty table as a clinic with no reactions.
    """

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
    photo_sets: pd.DataFrame
    confounders: pd.DataFrame
    loaded: frozenset[str] = field(default=OPTIONAL_TABLES)

    def check_loaded(self, tables: Collection[str], *, for_what: str) -> None:
        """Raise ``ValueError`` naming what is missing when ``tables`` were not all read."""
        missing = sorted(set(tables) - self.loaded)
        if missing:
            raise ValueError(f"{for_what} needs the {', '.join(missing)} table(s), not loaded")


def frame(
    rows: Sequence[Mapping[str, object]] | Sequence[tuple[object, ...]],
    name: str,
) -> pd.DataFrame:
    """A DataFrame with exactly the columns of ``FRAME_COLUMNS[name]`` (empty rows allowed)."""
    return pd.DataFrame(rows, columns=list(FRAME_COLUMNS[name]))


def build_frames(
    *,
    patients: pd.DataFrame,
    protocols: pd.DataFrame,
    endpoints: pd.DataFrame,
    series: pd.DataFrame,
    sessions: pd.DataFrame,
    raw_measurements: pd.DataFrame,
    operators: pd.DataFrame | None = None,
    lots: pd.DataFrame | None = None,
    treatments: pd.DataFrame | None = None,
    reactions: pd.DataFrame | None = None,
    photos: pd.DataFrame | None = None,
    confounders: pd.DataFrame | None = None,
    photo_sets: pd.DataFrame | None = None,
    loaded: Collection[str] = OPTIONAL_TABLES,
) -> ClinicFrames:
    """Assemble :class:`ClinicFrames` from hand-made or loaded tables.

    ``sessions`` needs ``session_id, series_id, number, performed_on`` (``operator_id`` optional);
    ``raw_measurements`` is ``series_id, session_id, endpoint_code, value``. Derived columns
    (``days_since_start``, baseline and change) are computed here, so tests and the database loader
    share one code path. Photos come either row by row (``photos``: ``session_id, view,
    verdict``) or already aggregated per session (``photo_sets``, as :func:`load_frames` reads
    them). ``loaded``: which optional tables were read (all, for hand-made frames).
    """
    sessions = sessions.copy()
    if "operator_id" not in sessions:
        sessions["operator_id"] = None
    starts = series.set_index("series_id")["started_on"]
    performed = pd.to_datetime(sessions["performed_on"])
    started = pd.to_datetime(sessions["series_id"].map(starts))
    sessions["days_since_start"] = (
        (performed - started).dt.days.astype("int64")
        if len(sessions)
        else pd.Series([], dtype="int64")
    )
    sessions = sessions[list(FRAME_COLUMNS["sessions"])]
    measurements = derive_measurements(raw_measurements, sessions=sessions, endpoints=endpoints)
    empty = {name: frame([], name) for name in FRAME_COLUMNS}
    if photo_sets is None:
        photo_sets = aggregate_photo_sets(empty["photos"] if photos is None else photos)
    photo_sets = photo_sets.drop(columns=["series_id", "session_number"], errors="ignore").merge(
        sessions[["session_id", "series_id", "number"]], on="session_id", how="inner"
    )
    photo_sets = photo_sets.rename(columns={"number": "session_number"})
    return ClinicFrames(
        patients=patients,
        protocols=protocols,
        endpoints=endpoints,
        operators=empty["operators"] if operators is None else operators,
        series=series,
        sessions=sessions,
        lots=empty["lots"] if lots is None else lots,
        treatments=empty["treatments"] if treatments is None else treatments,
        measurements=measurements,
        reactions=empty["reactions"] if reactions is None else reactions,
        photo_sets=photo_sets[list(FRAME_COLUMNS["photo_sets"])],
        confounders=empty["confounders"] if confounders is None else confounders,
        loaded=frozenset(loaded),
    )


def aggregate_photo_sets(photos: pd.DataFrame) -> pd.DataFrame:
    """Row-level photos (``session_id, view, verdict``) -> ``session_id, photos, passing, views``;
    the same figures :func:`load_frames` has the database compute."""
    if photos.empty:
        return pd.DataFrame(
            {
                "session_id": pd.Series([], dtype="int64"),
                "photos": pd.Series([], dtype="int64"),
                "passing": pd.Series([], dtype="int64"),
                "views": pd.Series([], dtype=object),
            }
        )
    p = photos.assign(passing=photos["verdict"].isin(GATE_PASSING).astype("int64"))
    g = p.groupby("session_id")
    out = pd.DataFrame(
        {"photos": g.size(), "passing": g["passing"].sum(), "views": g["view"].agg(",".join)}
    )
    return out.reset_index()


def derive_measurements(
    raw: pd.DataFrame, *, sessions: pd.DataFrame, endpoints: pd.DataFrame
) -> pd.DataFrame:
    """Long measurement table with baseline (session 1), ``change`` and ``improvement``.

    See the module docstring for the conventions. Non-numeric values (text endpoints) are dropped.
    """
    if raw.empty:
        return frame([], "measurements")
    raw = raw.dropna(subset=["value"])
    # endpoints as sorted integer codes while the table is shaped (integer keys group, merge
    # and sort several times faster than strings; sorted, so the row order is the same)
    ep, found = pd.factorize(raw["endpoint_code"])  # a categorical factorizes without hashing
    names = np.asarray(found, dtype=object)
    order = np.argsort(names, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    ep = rank[ep]
    codes = pd.Index(names[order], dtype="str")
    r = pd.DataFrame(
        {
            "series_id": raw["series_id"].to_numpy(),
            "session_id": raw["session_id"].to_numpy(),
            "ep": ep,
            "value": raw["value"].to_numpy(dtype=float),
        }
    )
    keys = ["series_id", "session_id", "ep"]
    if r.duplicated(keys).any():  # several values for one visit (sites, raters): their mean
        r = r.groupby(keys, as_index=False, sort=False)["value"].mean()
    m = r.merge(
        sessions[["session_id", "number", "days_since_start"]], on="session_id", how="inner"
    ).rename(columns={"number": "session_number"})
    base = m.loc[m["session_number"] == 1, ["series_id", "ep", "value"]].rename(
        columns={"value": "baseline"}
    )
    m = m.merge(base, on=["series_id", "ep"], how="left")
    info = endpoints.set_index("endpoint_code")
    if "neutral" in endpoints:  # ratings made against baseline: their no-change anchor
        neutral = info["neutral"].astype(float).reindex(codes).to_numpy()[m["ep"].to_numpy()]
        relative = ~np.isnan(neutral)
        if relative.any():
            m.loc[relative, "baseline"] = neutral[relative]
    m["change"] = m["value"] - m["baseline"]
    hib = info["higher_is_better"].astype(bool).reindex(codes)  # an unknown endpoint: +1
    sign = np.where(hib.isna(), 1.0, np.where(hib.fillna(True).astype(bool), 1.0, -1.0))
    m["improvement"] = m["change"] * sign[m["ep"].to_numpy()] + 0.0  # + 0.0: -0.0 -> 0.0
    m["weeks_since_start"] = m["days_since_start"] / 7.0
    m = m.sort_values(["series_id", "ep", "session_number"]).reset_index(drop=True)
    m["endpoint_code"] = codes.take(m["ep"].to_numpy())
    return m[list(FRAME_COLUMNS["measurements"])]


#: Tables every :func:`load_frames` call reads whole, whatever ``protocol_ids`` says.
SHARED_TABLES = ("protocols", "endpoints", "operators", "lots")


def combine_frames(parts: Sequence[ClinicFrames]) -> ClinicFrames:
    """One :class:`ClinicFrames` from loads of disjoint protocol sets (``load_frames(...,
    protocol_ids=...)``): the per-protocol tables are concatenated, the shared small tables are
    taken from the first part. A patient treated under several protocols appears once."""
    if not parts:
        raise ValueError("nothing to combine")
    if len(parts) == 1:
        return parts[0]
    tables: dict[str, pd.DataFrame] = {}
    for name in frame_names():
        if name in SHARED_TABLES:
            tables[name] = getattr(parts[0], name)
            continue
        df = pd.concat([getattr(p, name) for p in parts], ignore_index=True)
        if name == "patients":
            df = df.drop_duplicates("patient_id", ignore_index=True)
        tables[name] = df
    return ClinicFrames(**tables, loaded=frozenset.intersection(*(p.loaded for p in parts)))


#: What keeps a later-read optional table consistent with the spine it joins: rows whose session
#: (or series) the spine holds.
_SPINE_KEY = {
    "treatments": "session_id",
    "measurements": "session_id",
    "reactions": "session_id",
    "photo_sets": "session_id",
    "confounders": "series_id",
}


def with_tables(base: ClinicFrames, more: ClinicFrames, names: Collection[str]) -> ClinicFrames:
    """``base`` with the optional tables ``names`` taken from ``more`` (a later read of the same
    protocols), restricted to the sessions and series ``base`` holds, so a visit recorded between
    the two reads cannot show in one table and be missing from another."""
    names = frozenset(names)
    more.check_loaded(names, for_what="with_tables")
    update: dict[str, pd.DataFrame] = {}
    for name in names:
        key = _SPINE_KEY[name]
        spine = base.sessions if key == "session_id" else base.series
        df = getattr(more, name)
        update[name] = df[df[key].isin(spine[key])].reset_index(drop=True)
    return replace(base, **update, loaded=base.loaded | names)


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
    """The table fields of :class:`ClinicFrames` (not ``loaded``)."""
    return [f.name for f in fields(ClinicFrames) if f.name != "loaded"]
