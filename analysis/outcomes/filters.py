"""Choosing series for a figure: protocol, product/lot, operator, dates, baseline severity, age,
goal, and the photo comparability gate.

Definitions (quoted on the pages)
---------------------------------
* A photo **passes the gate** when its verdict is ``baseline`` or ``pass`` (``warn`` and ``fail``
  do not pass).
* A **photo set** is the photos of one session. It is **compliant** when every view the protocol
  requires was taken and every photo in it passes the gate.
* A series is **gate-passing** when it has photos after session 1 and every one of its photos
  passes the gate.
* **Age** is the calendar year of the series start minus the birth year; bands are decades
  (``"30-39"``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import pandas as pd

from analysis.outcomes.frames import GATE_PASSING, ClinicFrames

PHOTO_SET_DEFINITION = (
    "A photo set (the photos of one session) is compliant when every view the protocol requires "
    "was taken and every photo passed the comparability gate (verdict baseline or pass; warn and "
    "fail do not count)."
)
GATE_SERIES_DEFINITION = (
    "Gate-passing series: photos were taken after session 1 and every photo of the series passed "
    "the comparability gate (verdict baseline or pass)."
)


def age_band(age_years: int) -> str:
    """Decade band of an age in years: 34 -> ``"30-39"``."""
    if age_years < 0:
        raise ValueError("age cannot be negative")
    low = (int(age_years) // 10) * 10
    return f"{low}-{low + 9}"


def series_with_ages(frames: ClinicFrames) -> pd.DataFrame:
    """``series`` joined with the patient columns plus ``age_years`` and ``age_band``."""
    s = frames.series.merge(frames.patients, on="patient_id", how="left")
    # vectorised (a clinic's series at once); the same figures as age_band() per row
    years = pd.to_datetime(s["started_on"]).dt.year.astype("int64")
    s["age_years"] = years - s["birth_year"].astype("int64")
    if (s["age_years"] < 0).any():
        raise ValueError("age cannot be negative")
    low = (s["age_years"] // 10) * 10
    s["age_band"] = low.astype(str) + "-" + (low + 9).astype(str)
    return s


def set_compliant(photos: Iterable[tuple[str, str]], *, required_views: Iterable[str]) -> bool:
    """Whether one session's ``(view, verdict)`` pairs form a compliant photo set.

    With no required views, any non-empty set whose photos all pass the gate is compliant.
    """
    photos = list(photos)
    views = {v for v, _ in photos}
    need = set(required_views)
    complete = need <= views if need else bool(views)
    return bool(photos) and complete and all(verdict in GATE_PASSING for _, verdict in photos)


def photo_sets(frames: ClinicFrames) -> pd.DataFrame:
    """One row per session: ``session_id, series_id, operator_id, photos, compliant``."""
    sessions = frames.sessions.merge(frames.series[["series_id", "protocol_id"]], on="series_id")
    sets = sessions.merge(
        frames.photo_sets[["session_id", "photos", "passing", "views"]], on="session_id", how="left"
    )
    n = sets["photos"].fillna(0).astype("int64")
    views = "," + sets["views"].astype("string").fillna("") + ","
    complete = pd.Series(n > 0, index=sets.index)  # no required views: any photo
    required = frames.protocols.set_index("protocol_id")["required_views"].to_dict()
    for pid, need in required.items():
        rows = sets["protocol_id"] == pid
        for view in need or []:
            complete &= ~rows | views.str.contains(f",{view},", regex=False)
    compliant = (n > 0) & (sets["passing"].fillna(0).astype("int64") == n) & complete
    return pd.DataFrame(
        {
            "session_id": sets["session_id"],
            "series_id": sets["series_id"],
            "operator_id": sets["operator_id"],
            "photos": n,
            "compliant": compliant.astype(bool),
        }
    )


def gate_passing_series(frames: ClinicFrames) -> set[int]:
    """Series ids meeting :data:`GATE_SERIES_DEFINITION`."""
    p = frames.photo_sets
    if p.empty:
        return set()
    per = p.assign(later=p["session_number"] > 1, passing=p["passing"] == p["photos"])
    agg = per.groupby("series_id").agg(later=("later", "any"), passing=("passing", "all"))
    return {int(sid) for sid in agg.index[agg["later"] & agg["passing"]]}


def baseline_of_primary(frames: ClinicFrames) -> pd.Series:
    """Series id -> baseline value of its protocol's primary endpoint (NaN when missing)."""
    primary = frames.protocols.set_index("protocol_id")["primary_endpoint"]
    s = frames.series[["series_id", "protocol_id"]].copy()
    s["endpoint_code"] = s["protocol_id"].map(primary)
    m = frames.measurements[frames.measurements["session_number"] == 1]
    s = s.merge(
        m[["series_id", "endpoint_code", "value"]], on=["series_id", "endpoint_code"], how="left"
    )
    return s.set_index("series_id")["value"].astype(float)


def select_series(
    frames: ClinicFrames,
    *,
    protocol_ids: Iterable[int] | None = None,
    product: str | None = None,
    lot: str | None = None,
    operator_id: int | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    baseline_severity: tuple[float, float] | None = None,
    gate_passing_only: bool = False,
    goal: str | None = None,
    age_band: str | None = None,
) -> set[int]:
    """Series ids matching every given filter.

    * ``product`` / ``lot``: at least one treatment of the series used it (case-insensitive).
    * ``operator_id``: at least one session of the series was performed by that user.
    * ``date_from`` / ``date_to``: the series started within the range (inclusive).
    * ``baseline_severity``: ``(low, high)`` inclusive range of the baseline value of the
      protocol's primary endpoint, in that endpoint's units.
    * ``gate_passing_only``: :data:`GATE_SERIES_DEFINITION`.
    * ``goal``: case-insensitive substring of the series' goal.
    * ``age_band``: e.g. ``"40-49"`` (see :func:`age_band`).
    """
    s = series_with_ages(frames)
    keep = pd.Series(True, index=s.index)
    if protocol_ids is not None:
        keep &= s["protocol_id"].isin(list(protocol_ids))
    t = frames.treatments
    if product:
        ids = set(t.loc[t["product"].str.casefold() == product.casefold(), "series_id"])
        keep &= s["series_id"].isin(ids)
    if lot:
        ids = set(t.loc[t["lot_number"].str.casefold() == lot.casefold(), "series_id"])
        keep &= s["series_id"].isin(ids)
    if operator_id is not None:
        ids = set(frames.sessions.loc[frames.sessions["operator_id"] == operator_id, "series_id"])
        keep &= s["series_id"].isin(ids)
    started = pd.to_datetime(s["started_on"])
    if date_from is not None:
        keep &= started >= pd.Timestamp(date_from)
    if date_to is not None:
        keep &= started <= pd.Timestamp(date_to)
    if baseline_severity is not None:
        low, high = baseline_severity
        if low > high:
            raise ValueError("baseline_severity: the low end is above the high end")
        base = s["series_id"].map(baseline_of_primary(frames))
        keep &= base.between(low, high)
    if gate_passing_only:
        keep &= s["series_id"].isin(gate_passing_series(frames))
    if goal:
        keep &= s["goal"].fillna("").str.casefold().str.contains(goal.casefold(), regex=False)
    if age_band:
        keep &= s["age_band"] == age_band
    return {int(x) for x in s.loc[keep, "series_id"]}
