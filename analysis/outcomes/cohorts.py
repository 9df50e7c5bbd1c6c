"""Protocol comparison for the medical director: completion, outcome trajectories, responders,
reaction rates and photo compliance, each with its n and 95% CI.

Every figure built from fewer than ``min_n`` patients is replaced by the marker
``"insufficient data (n=3)"`` (``label`` column; the numeric columns are NaN). Outcome trajectories
are the mean **change** from the session-1 baseline (``value - baseline``, the endpoint's units, raw
sign; ``higher_is_better`` says which way is better) with Student-t 95% CIs.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats as sps

from analysis.outcomes.endpoints import RESPONDER_DEFINITION, endpoint_info, responders
from analysis.outcomes.filters import (
    GATE_SERIES_DEFINITION,
    PHOTO_SET_DEFINITION,
    photo_sets,
    select_series,
)
from analysis.outcomes.frames import ClinicFrames
from analysis.outcomes.stats import MIN_N, Estimate, proportion, rate_per_100

DEFINITIONS = {
    "responder": RESPONDER_DEFINITION,
    "completion": (
        "Completion: completed series / (completed + dropped-out series); active and "
        "paused series are not counted. Drop-out is the complement."
    ),
    "trajectory": (
        "Mean change from the session-1 baseline (value minus baseline, in the "
        "endpoint's units; for a rating made against the baseline, such as GAIS, the "
        "rating minus its 'no change' anchor) with a Student-t 95% CI; n = series "
        "measured at that point."
    ),
    "weeks": (
        "Weeks since the series started, rounded to the nearest multiple of the bin "
        "(default 4 weeks)."
    ),
    "reaction_rate": (
        "Reactions per 100 sessions with an exact Poisson 95% CI; n = sessions. "
        "Expected reactions and adverse events are counted separately by severity."
    ),
    "photo_compliance": PHOTO_SET_DEFINITION,
    "gate": GATE_SERIES_DEFINITION,
    "min_n": "Figures from fewer than the minimum number of patients are not shown.",
}


#: The parts of a comparison besides its summary (``parts=`` of :func:`compare_protocols`), each
#: with the per-protocol tables it reads beyond the series and sessions.
PARTS: dict[str, frozenset[str]] = {
    "outcomes": frozenset({"measurements"}),
    "reactions": frozenset({"reactions"}),
    "photo_compliance": frozenset({"photo_sets"}),
}


def tables_needed(
    parts: Collection[str],
    *,
    product: str | None = None,
    lot: str | None = None,
    baseline_severity: object = None,
    gate_passing_only: bool = False,
    **_other_filters: object,
) -> frozenset[str]:
    """The per-protocol tables (:data:`~analysis.outcomes.frames.OPTIONAL_TABLES`)
    :func:`compare_protocols` reads for ``parts`` under these filters; it refuses frames that
    lack one (an unread table is not an empty clinic)."""
    need: set[str] = set()
    for part in parts:
        need |= PARTS[part]
    if product is not None or lot is not None:
        need.add("treatments")
    if baseline_severity is not None:
        need.add("measurements")
    if gate_passing_only:
        need.add("photo_sets")
    return frozenset(need)


def est_columns(est: Estimate, *, prefix: str = "", percent: bool = False) -> dict[str, Any]:
    """Flatten an :class:`Estimate` into ``value, ci_low, ci_high, n, insufficient, label``."""
    nan = np.nan
    return {
        f"{prefix}value": nan if est.value is None else est.value,
        f"{prefix}ci_low": nan if est.low is None else est.low,
        f"{prefix}ci_high": nan if est.high is None else est.high,
        f"{prefix}n": est.n,
        f"{prefix}insufficient": est.insufficient,
        f"{prefix}label": est.label(percent=percent),
    }


@dataclass(frozen=True)
class ProtocolComparison:
    """Result of :func:`compare_protocols` (all tables are plain DataFrames, one row per figure).

    * ``summary``: per protocol ``protocol_id, protocol, series, patients, sessions_done,
      sessions_planned`` and ``completion_*`` / ``dropout_*`` estimate columns.
    * ``by_session`` / ``by_week``: ``protocol_id, endpoint_code, session_number`` (or ``week``),
      ``n_patients`` and ``value`` (mean change), ``ci_low, ci_high, n, insufficient, label``.
    * ``responders``: per protocol x endpoint with an MCID: ``responders`` count and share columns.
    * ``reactions``: per protocol x kind x severity (``"any"`` included): ``events, sessions``,
      ``patients`` and rate-per-100 columns.
    * ``photo_compliance``: per operator: ``photo_sets, compliant`` and share columns.
    * ``outcome_series``: ids of the series the outcome figures use (the filters, and the gate
      when ``gate_passing_only``).
    * ``parts``: which of :data:`PARTS` were computed; the tables of the others are empty.
    """

    summary: pd.DataFrame
    by_session: pd.DataFrame
    by_week: pd.DataFrame
    responders: pd.DataFrame
    reactions: pd.DataFrame
    photo_compliance: pd.DataFrame
    definitions: dict[str, str]
    filters: dict[str, Any]
    min_n: int
    notes: list[str] = field(default_factory=list)
    outcome_series: frozenset[int] = frozenset()
    parts: frozenset[str] = frozenset(PARTS)


def _patients(frames: ClinicFrames, series_ids: Iterable[int]) -> int:
    s = frames.series
    return int(s.loc[s["series_id"].isin(list(series_ids)), "patient_id"].nunique())


def trajectory(
    frames: ClinicFrames,
    series_ids: set[int],
    *,
    endpoint_code: str,
    by: str,
    week_bin: int = 4,
    min_n: int = MIN_N,
) -> pd.DataFrame:
    """Mean change from baseline of ``endpoint_code`` by ``"session_number"`` or ``"week"``."""
    m = frames.measurements
    m = m[
        (m["endpoint_code"] == endpoint_code)
        & m["series_id"].isin(series_ids)
        & m["change"].notna()
    ]
    return _trajectory(
        m,
        frames.series.set_index("series_id")["patient_id"],
        endpoint_code=endpoint_code,
        by=by,
        week_bin=week_bin,
        min_n=min_n,
    )


def _trajectory(
    m: pd.DataFrame,
    patient_of: pd.Series,
    *,
    endpoint_code: str,
    by: str,
    week_bin: int,
    min_n: int,
) -> pd.DataFrame:
    """:func:`trajectory` of measurements already narrowed to one endpoint, the chosen series and
    a known change (``patient_of``: series id -> patient id)."""
    if by == "week":
        if week_bin < 1:
            raise ValueError("week_bin must be at least 1 week")
        m = m.assign(week=(np.round(m["weeks_since_start"] / week_bin) * week_bin).astype(int))
        # one value per series per bin: its last session in the bin
        m = m.sort_values("session_number").groupby(["series_id", "week"], as_index=False).tail(1)
    elif by != "session_number":
        raise ValueError("by must be 'session_number' or 'week'")
    rows = []
    m = m.assign(patient_id=m["series_id"].map(patient_of))
    g = m.groupby(by)
    # one pass for every point: the same figures as mean_estimate() per group (Student-t CI)
    agg = pd.DataFrame(
        {
            "n": g["change"].count(),
            "mean": g["change"].mean(),
            "sd": g["change"].std(ddof=1),
            "n_patients": g["patient_id"].nunique(),
        }
    )
    t = sps.t.ppf(0.975, (agg["n"] - 1).clip(lower=1))
    half = t * agg["sd"] / np.sqrt(agg["n"])
    for key, r, h in zip(agg.index, agg.itertuples(index=False), half, strict=True):
        n, n_pat = int(r.n), int(r.n_patients)
        if n < max(min_n, 1) or n_pat < min_n:
            est = Estimate(None, None, None, n=n, insufficient=True)
        elif n < 2:
            est = Estimate(float(r.mean), None, None, n=n)
        else:
            est = Estimate(float(r.mean), float(r.mean - h), float(r.mean + h), n=n)
        rows.append(
            {"endpoint_code": endpoint_code, by: int(key), "n_patients": n_pat, **est_columns(est)}
        )
    cols = [
        "endpoint_code",
        by,
        "n_patients",
        "value",
        "ci_low",
        "ci_high",
        "n",
        "insufficient",
        "label",
    ]
    return pd.DataFrame(rows, columns=cols)


def reaction_rates(
    frames: ClinicFrames, series_ids: set[int], *, min_n: int = MIN_N
) -> pd.DataFrame:
    """Reactions per 100 sessions by kind x severity (plus ``"any"``) over ``series_ids``."""
    sessions = frames.sessions[frames.sessions["series_id"].isin(series_ids)]
    n_sessions = int(len(sessions))
    patients = _patients(frames, sessions["series_id"].unique())
    r = frames.reactions[frames.reactions["session_id"].isin(set(sessions["session_id"]))]
    rows = []
    for kind in ("expected", "adverse"):
        rk = r[r["kind"] == kind]
        for severity in ("any", "mild", "moderate", "severe"):
            events = rk if severity == "any" else rk[rk["severity"] == severity]
            est = rate_per_100(int(len(events)), n_sessions, patients=patients, min_n=min_n)
            rows.append(
                {
                    "kind": kind,
                    "severity": severity,
                    "events": int(len(events)),
                    "sessions": n_sessions,
                    "patients": patients,
                    **est_columns(est, prefix="rate_"),
                }
            )
    return pd.DataFrame(rows)


def photo_compliance(
    frames: ClinicFrames, series_ids: set[int], *, min_n: int = MIN_N
) -> pd.DataFrame:
    """Share of compliant photo sets per operator (see :data:`PHOTO_SET_DEFINITION`).

    ``n`` is photo sets (sessions); the minimum-n rule counts the operator's patients.
    """
    sets = photo_sets(frames)
    sets = sets[sets["series_id"].isin(series_ids)]
    names = frames.operators.set_index("operator_id")["display_name"].to_dict()
    pid = frames.series.set_index("series_id")["patient_id"]
    rows = []
    for op, g in sets.groupby(sets["operator_id"].fillna(-1)):
        op_id = None if op == -1 else int(op)
        n_pat = int(g["series_id"].map(pid).nunique())
        est = proportion(int(g["compliant"].sum()), int(len(g)), min_n=0)
        if n_pat < min_n:
            est = Estimate(None, None, None, n=int(len(g)), insufficient=True, unit="photo sets")
        rows.append(
            {
                "operator_id": op_id,
                "operator": names.get(op_id, "not recorded") if op_id else "not recorded",
                "photo_sets": int(len(g)),
                "compliant": int(g["compliant"].sum()),
                "patients": n_pat,
                **est_columns(est, prefix="share_", percent=True),
            }
        )
    cols = [
        "operator_id",
        "operator",
        "photo_sets",
        "compliant",
        "patients",
        "share_value",
        "share_ci_low",
        "share_ci_high",
        "share_n",
        "share_insufficient",
        "share_label",
    ]
    return pd.DataFrame(rows, columns=cols)


def outcome_endpoints(frames: ClinicFrames, comparison: ProtocolComparison) -> list[str]:
    """The endpoints the comparison's outcome part has figures for (a value after a known
    baseline in one of its outcome series), in the protocols' own order; the same list as the
    distinct ``endpoint_code`` of ``compare_protocols(...).by_session``, without computing them."""
    frames.check_loaded({"measurements"}, for_what="outcome_endpoints")
    m = frames.measurements
    m = m[m["series_id"].isin(comparison.outcome_series) & m["change"].notna()]
    protocol_of = frames.series.set_index("series_id")["protocol_id"]
    pairs = (
        pd.DataFrame({"p": m["series_id"].map(protocol_of), "c": m["endpoint_code"]})
        .drop_duplicates()
        .itertuples(index=False, name=None)
    )
    measured = set(pairs)
    known = set(frames.endpoints["endpoint_code"])
    protos = frames.protocols.set_index("protocol_id")
    order = [
        code
        for pid in comparison.filters["protocol_ids"]
        for code in (protos.loc[pid, "endpoint_codes"] or [])
        if (pid, code) in measured and code in known
    ]
    return list(dict.fromkeys(order))


def compare_protocols(
    frames: ClinicFrames,
    *,
    protocol_ids: Iterable[int],
    product: str | None = None,
    lot: str | None = None,
    operator_id: int | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    baseline_severity: tuple[float, float] | None = None,
    gate_passing_only: bool = False,
    min_n: int = MIN_N,
    week_bin: int = 4,
    parts: Collection[str] = tuple(PARTS),
    endpoint_codes: Collection[str] | None = None,
) -> ProtocolComparison:
    """Compare protocols on the series matching the filters (see
    :func:`analysis.outcomes.filters.select_series`).

    ``gate_passing_only`` restricts the **outcome** figures (trajectories, responders) to
    gate-passing series; completion, reactions and photo compliance use every selected series.
    ``parts`` chooses which of :data:`PARTS` to compute besides the summary (a page showing one
    section computes only that one; :func:`tables_needed` says what the frames must hold), and
    ``endpoint_codes`` narrows the outcome part to those endpoints (``None``: every endpoint of
    the chosen protocols; :func:`outcome_endpoints` lists those with figures).
    """
    parts = frozenset(parts)
    if not parts <= set(PARTS):
        raise ValueError(f"unknown part(s) {sorted(parts - set(PARTS))}")
    frames.check_loaded(
        tables_needed(
            parts,
            product=product,
            lot=lot,
            baseline_severity=baseline_severity,
            gate_passing_only=gate_passing_only,
        ),
        for_what="compare_protocols",
    )
    protocol_ids = [int(p) for p in protocol_ids]
    if not protocol_ids:
        raise ValueError("choose at least one protocol to compare")
    known = set(frames.protocols["protocol_id"])
    unknown = [p for p in protocol_ids if p not in known]
    if unknown:
        raise ValueError(f"unknown protocol id(s): {unknown}")
    chosen = select_series(
        frames,
        protocol_ids=protocol_ids,
        product=product,
        lot=lot,
        operator_id=operator_id,
        date_from=date_from,
        date_to=date_to,
        baseline_severity=baseline_severity,
    )
    outcome_ids = chosen
    if gate_passing_only:
        outcome_ids = chosen & select_series(frames, gate_passing_only=True)
    protos = frames.protocols.set_index("protocol_id")
    series = frames.series[frames.series["series_id"].isin(chosen)]
    done = frames.sessions.groupby("series_id").size()
    patient_of = frames.series.set_index("series_id")["patient_id"]
    known_codes = set(frames.endpoints["endpoint_code"])
    # the outcome values, narrowed once (to the endpoints asked for first: the cheap cut):
    # per protocol and endpoint below only slices of this
    m_out = frames.measurements
    if "outcomes" not in parts:
        m_out = m_out.iloc[0:0]
    elif endpoint_codes is not None:
        m_out = m_out[m_out["endpoint_code"].isin(list(endpoint_codes))]
    m_out = m_out[m_out["series_id"].isin(outcome_ids)]
    m_out = m_out.merge(frames.series[["series_id", "protocol_id"]], on="series_id")
    by_protocol_code = dict(list(m_out.groupby(["protocol_id", "endpoint_code"])))
    empty_m = m_out.iloc[0:0]
    summary: list[dict[str, Any]] = []
    by_session: list[pd.DataFrame] = []
    by_week: list[pd.DataFrame] = []
    resp: list[dict[str, Any]] = []
    reactions: list[pd.DataFrame] = []
    notes: list[str] = []
    for pid in protocol_ids:
        proto = protos.loc[pid]
        s = series[series["protocol_id"] == pid]
        ids = set(int(x) for x in s["series_id"])
        out_ids = ids & outcome_ids
        completed = int((s["status"] == "completed").sum())
        dropped = int((s["status"] == "dropped_out").sum())
        n_pat = int(s["patient_id"].nunique())
        finished = completed + dropped
        comp = (
            proportion(completed, finished, min_n=min_n)
            if n_pat >= min_n
            else Estimate(None, None, None, n=finished, insufficient=True)
        )
        drop = (
            proportion(dropped, finished, min_n=min_n)
            if n_pat >= min_n
            else Estimate(None, None, None, n=finished, insufficient=True)
        )
        summary.append(
            {
                "protocol_id": pid,
                "protocol": proto["name"],
                "series": len(ids),
                "patients": n_pat,
                "sessions_done": int(done.reindex(list(ids)).fillna(0).sum()),
                "sessions_planned": int(len(ids) * int(proto["planned_sessions"])),
                "completed": completed,
                "dropped_out": dropped,
                **est_columns(comp, prefix="completion_", percent=True),
                **est_columns(drop, prefix="dropout_", percent=True),
            }
        )
        for code in (proto["endpoint_codes"] or []) if "outcomes" in parts else []:
            if endpoint_codes is not None and code not in endpoint_codes:
                continue
            if code not in known_codes:
                notes.append(f"{proto['name']}: endpoint {code!r} has no definition; skipped")
                continue
            info = endpoint_info(frames.endpoints, code)
            measured = by_protocol_code.get((pid, code), empty_m)
            measured = measured[measured["series_id"].isin(out_ids)]
            if len(measured) and measured["baseline"].isna().all():
                notes.append(
                    f"{proto['name']}: endpoint {code!r} has no session-1 (baseline) "
                    "values, so no change from baseline (it may be rated relative to "
                    "baseline already)"
                )
            for by, bucket in (("session_number", by_session), ("week", by_week)):
                t = _trajectory(
                    measured[measured["change"].notna()],
                    patient_of,
                    endpoint_code=code,
                    by=by,
                    week_bin=week_bin,
                    min_n=min_n,
                )
                if not t.empty:
                    t.insert(0, "protocol_id", pid)
                    t["higher_is_better"] = info.higher_is_better
                    bucket.append(t)
            if info.mcid is not None and info.mcid > 0:
                r = responders(measured, endpoint_code=code, mcid=info.mcid)
                pats = _patients(frames, r["series_id"])
                est = proportion(int(r["responder"].sum()), int(len(r)), min_n=0)
                if pats < min_n:
                    est = Estimate(None, None, None, n=int(len(r)), insufficient=True)
                resp.append(
                    {
                        "protocol_id": pid,
                        "endpoint_code": code,
                        "mcid": info.mcid,
                        "unit": info.unit,
                        "responders": None if est.insufficient else int(r["responder"].sum()),
                        "patients": pats,
                        **est_columns(est, prefix="share_", percent=True),
                    }
                )
            else:
                notes.append(f"{proto['name']}: endpoint {code!r} has no MCID; no responder share")
        if "reactions" in parts:
            rr = reaction_rates(frames, ids, min_n=min_n)
            rr.insert(0, "protocol_id", pid)
            reactions.append(rr)
    compliance_df = (
        photo_compliance(frames, chosen, min_n=min_n)
        if "photo_compliance" in parts
        else photo_compliance(replace(frames, sessions=frames.sessions.iloc[0:0]), set())
    )  # not asked for: the empty table with its columns, nothing computed

    def cat(parts: list[pd.DataFrame], by: str) -> pd.DataFrame:
        if parts:
            return pd.concat(parts, ignore_index=True)
        return pd.DataFrame(
            columns=[
                "protocol_id",
                "endpoint_code",
                by,
                "n_patients",
                "value",
                "ci_low",
                "ci_high",
                "n",
                "insufficient",
                "label",
                "higher_is_better",
            ]
        )

    filters = {
        "protocol_ids": protocol_ids,
        "product": product,
        "lot": lot,
        "operator_id": operator_id,
        "date_from": date_from,
        "date_to": date_to,
        "baseline_severity": baseline_severity,
        "gate_passing_only": gate_passing_only,
    }
    return ProtocolComparison(
        summary=pd.DataFrame(summary),
        by_session=cat(by_session, "session_number"),
        by_week=cat(by_week, "week"),
        responders=pd.DataFrame(resp),
        reactions=pd.concat(reactions, ignore_index=True) if reactions else pd.DataFrame(),
        photo_compliance=compliance_df,
        definitions=dict(DEFINITIONS),
        filters=filters,
        min_n=min_n,
        notes=notes,
        outcome_series=frozenset(int(i) for i in outcome_ids),
        parts=parts,
    )
