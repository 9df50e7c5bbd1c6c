"""Consult timelines: what a new patient can expect from a protocol, from this clinic's patients.

Figures use the protocol's primary endpoint as **improvement** from the session-1 baseline (signed
so positive is better, the endpoint's units). Medians and IQRs (25th-75th percentile, linear
interpolation) rather than means: small, skewed groups. Every figure carries its n; fewer than
``min_n`` patients gives the insufficient marker. :func:`plain_language_summary` turns the numbers
into conservative sentences: shares of good news are rounded *down* to tenths, shares of bad news
rounded *up*.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analysis.outcomes.cohorts import est_columns
from analysis.outcomes.endpoints import RESPONDER_DEFINITION, endpoint_info, responders
from analysis.outcomes.filters import select_series
from analysis.outcomes.frames import ClinicFrames
from analysis.outcomes.stats import MIN_N, Estimate, Quartiles, proportion, quartiles


@dataclass(frozen=True)
class ConsultTimeline:
    """Result of :func:`consult_timeline`.

    * ``by_session``: ``session_number, n, median, q1, q3, insufficient`` (improvement) and
      ``share_mcid_*`` columns (share improved by at least the MCID at that session, Wilson CI).
    * ``by_week``: ``week, n, median, q1, q3, insufficient`` (weeks since start, rounded to the
      nearest ``week_bin``).
    * ``responders`` / ``non_responders``: share at the last measured session
      (:data:`~analysis.outcomes.endpoints.RESPONDER_DEFINITION`).
    * ``sessions_done``: median and IQR of sessions in finished (completed or dropped-out) series.
    * ``reactions``: per expected-reaction term: ``patients_with, patients, share_patients,
      sessions_with, sessions, share_sessions, median_duration_days, durations_n, insufficient``.
    """

    protocol_id: int
    protocol_name: str
    planned_sessions: int
    endpoint_code: str
    endpoint_name: str
    unit: str
    mcid: float | None
    n_series: int
    n_patients: int
    by_session: pd.DataFrame
    by_week: pd.DataFrame
    responders: Estimate
    non_responders: Estimate
    sessions_done: Quartiles
    reactions: pd.DataFrame
    min_n: int
    filters: dict[str, Any]
    definitions: dict[str, str] = field(default_factory=dict)

    @property
    def insufficient(self) -> bool:
        return self.n_patients < self.min_n


def consult_timeline(
    frames: ClinicFrames,
    *,
    protocol_id: int,
    goal: str | None = None,
    baseline_severity: tuple[float, float] | None = None,
    age_band: str | None = None,
    min_n: int = MIN_N,
    week_bin: int = 4,
) -> ConsultTimeline:
    """Typical course of ``protocol_id`` for patients like the one in the room.

    ``goal`` (substring of the series goal), ``baseline_severity`` (inclusive range of the primary
    endpoint's baseline, its units) and ``age_band`` (e.g. ``"40-49"``) narrow the group.

    Raises
    ------
    ValueError
        Unknown protocol, or a protocol without a primary endpoint.
    """
    protos = frames.protocols.set_index("protocol_id")
    if protocol_id not in protos.index:
        raise ValueError(f"unknown protocol id {protocol_id}")
    proto = protos.loc[protocol_id]
    code = proto["primary_endpoint"]
    if not code:
        raise ValueError(f"protocol {proto['name']!r} has no primary endpoint to describe")
    info = endpoint_info(frames.endpoints, code)
    ids = select_series(
        frames,
        protocol_ids=[protocol_id],
        goal=goal,
        baseline_severity=baseline_severity,
        age_band=age_band,
    )
    s = frames.series[frames.series["series_id"].isin(ids)]
    n_patients = int(s["patient_id"].nunique())
    m = frames.measurements
    m = m[(m["endpoint_code"] == code) & m["series_id"].isin(ids) & m["improvement"].notna()]
    by_session = _by_session(m, mcid=info.mcid, min_n=min_n)
    mw = m.assign(week=(np.round(m["weeks_since_start"] / week_bin) * week_bin).astype(int))
    mw = mw.sort_values("session_number").groupby(["series_id", "week"]).tail(1)
    by_week = pd.DataFrame(
        [
            {"week": int(w), **_quart_cols(quartiles(g["improvement"], min_n=min_n))}
            for w, g in mw.groupby("week")
        ],
        columns=["week", "n", "median", "q1", "q3", "insufficient"],
    )
    if info.mcid is not None and info.mcid > 0:
        r = responders(m, endpoint_code=code, mcid=info.mcid)
        k, n = int(r["responder"].sum()), int(len(r))
        resp, nonresp = proportion(k, n, min_n=min_n), proportion(n - k, n, min_n=min_n)
    else:
        resp = nonresp = Estimate(None, None, None, n=0, insufficient=True)
    finished = s[s["status"].isin(["completed", "dropped_out"])]
    counts = frames.sessions.groupby("series_id").size()
    sessions_done = quartiles([counts.get(i, 0) for i in finished["series_id"]], min_n=min_n)
    return ConsultTimeline(
        protocol_id=int(protocol_id),
        protocol_name=str(proto["name"]),
        planned_sessions=int(proto["planned_sessions"]),
        endpoint_code=code,
        endpoint_name=info.name,
        unit=info.unit,
        mcid=info.mcid,
        n_series=len(ids),
        n_patients=n_patients,
        by_session=by_session,
        by_week=by_week,
        responders=resp,
        non_responders=nonresp,
        sessions_done=sessions_done,
        reactions=expected_reactions(frames, ids, min_n=min_n),
        min_n=min_n,
        filters={"goal": goal, "baseline_severity": baseline_severity, "age_band": age_band},
        definitions={
            "responder": RESPONDER_DEFINITION,
            "improvement": "Change from the first-session value, positive = better, in "
            f"{info.unit or 'the endpoint units'}.",
            "sessions_done": "Sessions in completed or dropped-out courses.",
        },
    )


def _quart_cols(q: Quartiles) -> dict[str, Any]:
    nan = math.nan
    return {
        "n": q.n,
        "median": nan if q.median is None else q.median,
        "q1": nan if q.q1 is None else q.q1,
        "q3": nan if q.q3 is None else q.q3,
        "insufficient": q.insufficient,
    }


def _by_session(m: pd.DataFrame, *, mcid: float | None, min_n: int) -> pd.DataFrame:
    rows = []
    for k, g in m.groupby("session_number"):
        q = quartiles(g["improvement"], min_n=min_n)
        row: dict[str, Any] = {"session_number": int(k), **_quart_cols(q)}
        if mcid is not None and mcid > 0 and k > 1:
            est = proportion(int((g["improvement"] >= mcid).sum()), int(len(g)), min_n=min_n)
        else:
            est = Estimate(None, None, None, n=int(len(g)), insufficient=True)
        row.update(est_columns(est, prefix="share_mcid_", percent=True))
        rows.append(row)
    cols = [
        "session_number",
        "n",
        "median",
        "q1",
        "q3",
        "insufficient",
        "share_mcid_value",
        "share_mcid_ci_low",
        "share_mcid_ci_high",
        "share_mcid_n",
        "share_mcid_insufficient",
        "share_mcid_label",
    ]
    return pd.DataFrame(rows, columns=cols)


def expected_reactions(
    frames: ClinicFrames, series_ids: set[int], *, min_n: int = MIN_N
) -> pd.DataFrame:
    """How often each expected reaction occurred (per patient and per session) and how long it
    lasted (median ``duration_days`` over the episodes with a recorded duration)."""
    sessions = frames.sessions[frames.sessions["series_id"].isin(series_ids)]
    n_sessions = int(len(sessions))
    pid = frames.series.set_index("series_id")["patient_id"]
    n_patients = int(sessions["series_id"].map(pid).nunique())
    r = frames.reactions
    r = r[(r["kind"] == "expected") & r["session_id"].isin(set(sessions["session_id"]))]
    rows = []
    for term, g in r.groupby("term"):
        with_pat = int(g["series_id"].map(pid).nunique())
        with_ses = int(g["session_id"].nunique())
        durations = g["duration_days"].astype(float).dropna()
        enough = n_patients >= min_n
        rows.append(
            {
                "term": term,
                "patients_with": with_pat,
                "patients": n_patients,
                "share_patients": with_pat / n_patients if enough else math.nan,
                "sessions_with": with_ses,
                "sessions": n_sessions,
                "share_sessions": with_ses / n_sessions if enough else math.nan,
                "median_duration_days": float(durations.median())
                if enough and len(durations)
                else math.nan,
                "durations_n": int(len(durations)),
                "insufficient": not enough,
            }
        )
    cols = [
        "term",
        "patients_with",
        "patients",
        "share_patients",
        "sessions_with",
        "sessions",
        "share_sessions",
        "median_duration_days",
        "durations_n",
        "insufficient",
    ]
    return (
        pd.DataFrame(rows, columns=cols)
        .sort_values("share_sessions", ascending=False)
        .reset_index(drop=True)
    )


# --- plain language --------------------------------------------------------------------------


def _in_ten_down(share: float) -> int:
    return int(math.floor(share * 10 + 1e-9))


def _in_ten_up(share: float) -> int:
    return int(math.ceil(share * 10 - 1e-9))


def _quantifier(tenths: int) -> str:
    """Words for a share already rounded to tenths, so words and number never disagree."""
    if tenths >= 9:
        return "Nearly all patients"
    if tenths >= 7:
        return "Most patients"
    if tenths == 6:
        return "More than half of patients"
    if tenths == 5:
        return "About half of patients"
    if tenths >= 3:
        return "Fewer than half of patients"
    return "A minority of patients"


def _days(median_days: float) -> str:
    """Typical duration, rounded up to whole days (longer is the conservative reading)."""
    if median_days < 0.5:
        return ", usually gone the same day"
    d = int(math.ceil(median_days - 1e-9))
    return f", usually lasting about {d} day{'s' if d != 1 else ''}"


def _ten(k: int) -> str:
    return "fewer than 1 in 10" if k == 0 else f"{k} in 10"


def _lower_first(name: str) -> str:
    """ "Hair density" -> "hair density"; acronyms ("GAIS ...") are left alone."""
    return name[:1].lower() + name[1:] if name[1:2].islower() else name


def _num(x: float) -> str:
    return f"{x:.2g}" if abs(x) < 10 else f"{x:.0f}"


def plain_language_summary(timeline: ConsultTimeline) -> list[str]:
    """Sentences for a consultation, computed from ``timeline`` (no number is hard-coded).

    Conservative by construction: shares of patients who improved are rounded down to tenths,
    shares who did not are rounded up, every sentence names how many patients it rests on, and a
    group below the minimum n gets one sentence saying there is not enough data.
    """
    t = timeline
    unit = f" {t.unit}" if t.unit else ""
    closing = (
        f"These figures describe {t.n_patients} patients treated with {t.protocol_name} at "
        "this clinic; they are not from a clinical trial, and individual results vary."
    )
    if t.insufficient:
        return [
            f"Not enough patients have had {t.protocol_name} here yet to describe a typical "
            f"course (n={t.n_patients}; at least {t.min_n} needed).",
            closing,
        ]
    lines: list[str] = []
    ok = t.by_session[
        (~t.by_session["share_mcid_insufficient"].astype(bool))
        & (t.by_session["session_number"] > 1)
    ]
    within_plan = ok[ok["session_number"] <= t.planned_sessions]
    pick = within_plan if len(within_plan) else ok
    if len(pick) and t.mcid is not None:
        row = pick.iloc[-1]
        tenths = _in_ten_down(float(row["share_mcid_value"]))
        lines.append(
            f"{_quantifier(tenths)} ({_ten(tenths)}) had improved by at least "
            f"{_num(t.mcid)}{unit} in {_lower_first(t.endpoint_name)} by session "
            f"{int(row['session_number'])} (based on {int(row['share_mcid_n'])} patients "
            "measured then)."
        )
        med = t.by_session[t.by_session["session_number"] == row["session_number"]].iloc[0]
        if not bool(med["insufficient"]):
            lines.append(
                f"At that session the typical (median) improvement was {_num(med['median'])}"
                f"{unit}; the middle half of patients were between {_num(med['q1'])} and "
                f"{_num(med['q3'])}{unit}."
            )
    if not t.non_responders.insufficient and t.non_responders.value is not None:
        k = _in_ten_up(t.non_responders.value)
        if k > 0:
            lines.append(
                f"About {k} in 10 saw little or no change (less than {_num(t.mcid or 0)}{unit}) "
                f"by their last visit (n={t.non_responders.n})."
            )
        else:
            lines.append(
                f"Few patients saw little or no change by their last visit "
                f"(n={t.non_responders.n})."
            )
    sd = t.sessions_done
    if not sd.insufficient and sd.median is not None:
        lines.append(
            f"Courses typically lasted {sd.median:.0f} sessions (middle half: {sd.q1:.0f} to "
            f"{sd.q3:.0f}; planned: {t.planned_sessions}; n={sd.n} finished courses)."
        )
    for r in t.reactions.itertuples(index=False):
        if r.insufficient or not r.share_sessions > 0:
            continue
        k = _in_ten_up(float(r.share_sessions))
        how_long = "" if math.isnan(r.median_duration_days) else _days(r.median_duration_days)
        lines.append(
            f"{str(r.term).replace('_', ' ').capitalize()} followed up to about {k} in "
            f"10 sessions{how_long} ({r.sessions_with} of {r.sessions} sessions)."
        )
    lines.append(closing)
    return lines
