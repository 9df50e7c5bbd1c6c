"""Timelines: what a prospective patient can expect from a protocol, from this clinic's patients.

Shown to prospective patients by consult staff: nothing here identifies a patient (frames carry no
codes, photo pairs carry no identifiers, free-text goals are listed only when common).
"""

from __future__ import annotations

import time
from functools import partial
from typing import TypedDict

import pandas as pd
import streamlit as st

from analysis.services.analytics import (
    ClinicFrames,
    ConsultTimeline,
    RepresentativePair,
    consult_handout_pdf,
    consult_timeline,
    plain_language_summary,
    series_with_ages,
    timeline_chart_png,
    to_csv_bytes,
)
from analysis.services.common import MIN_N, Actor, PermissionDenied
from analysis.services.insights import audited_bytes, pair_photos
from analysis.services.pairs import representative_pairs
from analysis.services.photo_access import PhotoNotFound
from ui import frame, frames_cache
from ui import insight_charts as charts

FRAMES_TTL_S = frames_cache.FRAMES_TTL_S
PURPOSE = "timeline.read"
PHOTO_WIDTH_PX = 320  # before and after at the same size, whatever the stored resolution


def headline(label: str) -> str:
    """The figure of a label without its CI (kept whole when it is the insufficient marker)."""
    return label if label.startswith("insufficient") else label.split(" (")[0]


class TimelineArgs(TypedDict):
    """The keyword arguments of :func:`consult_timeline` the choice widgets set."""

    protocol_id: int
    goal: str | None
    age_band: str | None
    baseline_severity: tuple[float, float] | None


#: What a timeline reads beyond the protocol's series and sessions.
TIMELINE_TABLES = frozenset({"measurements", "reactions"})


def choices(actor: Actor, catalogue: ClinicFrames) -> tuple[TimelineArgs, ClinicFrames]:
    """The choice widgets; returns the timeline's keyword arguments and the chosen protocol's
    frames (only that protocol's series are read)."""
    ids = catalogue.protocols.set_index("name")["protocol_id"].to_dict()  # names are unique
    c1, c2, c3 = st.columns([2, 2, 1])
    protocol_id = ids[c1.selectbox("Protocol", list(ids))]
    frames = frames_cache.protocol_frames(
        actor, [int(protocol_id)], purpose=PURPOSE, tables=TIMELINE_TABLES
    )
    s = series_with_ages(frames)
    s = s[s["protocol_id"] == protocol_id]
    goals = s["goal"].fillna("").str.strip().str.lower()
    common = sorted(g for g, n in goals.value_counts().items() if g and n >= MIN_N)
    goal = c2.selectbox(
        "Goal",
        common,
        index=None,
        placeholder="Any goal",
        help=f"Goals shared by at least {MIN_N} patients of this protocol.",
    )
    bands = sorted(s["age_band"].unique())
    age = c3.selectbox("Age", bands, index=None, placeholder="Any age")
    proto = frames.protocols.set_index("protocol_id").loc[protocol_id]
    severity = None
    eps = frames.endpoints.set_index("endpoint_code")
    if proto["primary_endpoint"] in eps.index:
        ep = eps.loc[proto["primary_endpoint"]]
        lo = float(ep["scale_min"]) if pd.notna(ep["scale_min"]) else 0.0
        hi = float(ep["scale_max"]) if pd.notna(ep["scale_max"]) else 10.0
        step = 1.0 if ep["kind"] in ("ordinal", "count") else (hi - lo) / 20 or 1.0
        picked = st.slider(
            charts.with_unit(f"Starting {ep['name'].lower()}", ep["unit"]),
            lo,
            hi,
            (lo, hi),
            step=step,
            format="%.0f" if step == 1.0 else "%.1f",
        )
        severity = None if picked == (lo, hi) else (float(picked[0]), float(picked[1]))
    return {
        "protocol_id": int(protocol_id),
        "goal": goal,
        "age_band": age,
        "baseline_severity": severity,
    }, frames


def figures(t: ConsultTimeline) -> None:
    unit = charts.unit_text(t.unit)
    y_title = charts.with_unit("Improvement", unit)
    tabs = st.tabs(["By session", "By weeks since start"], key="timelines.x", on_change="rerun")
    for tab, df, x, x_title in (
        (tabs[0], t.by_session, "session_number", "Session"),
        (tabs[1], t.by_week, "week", "Weeks since start"),
    ):
        if not tab.open:  # only the tab on screen draws its chart
            continue
        tab.plotly_chart(
            charts.median_iqr_figure(
                df,
                x=x,
                x_title=x_title,
                y_title=y_title,
                title=f"{t.endpoint_name}: improvement since the first session",
                mcid=t.mcid,
                unit=unit,
            ),
            key=f"tl_{x}",
        )
        withheld = charts.withheld_points(df, x=x)
        if withheld:
            tab.caption("Not shown, too few patients: " + "; ".join(withheld))
    st.caption(t.definitions.get("improvement", ""))
    shares = t.by_session[t.by_session["session_number"] > 1].assign(
        session=lambda d: [f"Session {k}" for k in d["session_number"]]
    )
    if len(shares) and t.mcid is not None:
        st.plotly_chart(
            charts.share_figure(
                shares,
                category="session",
                prefix="share_mcid_",
                category_title="",
                title=f"Improved by at least {t.mcid:g} {unit} (a noticeable change)".replace(
                    "  ", " "
                ),
            ),
            key="tl_share",
        )


def reactions_table(t: ConsultTimeline) -> None:
    st.subheader("Expected reactions", anchor=False)
    if t.reactions.empty:
        st.caption("No expected reactions were recorded for this group.")
        return
    r = t.reactions

    def pct(v: float, k: int, n: int, bad: bool) -> str:
        return f"not enough data (n={n})" if bad else f"{v:.0%} ({k} of {n})"

    st.dataframe(
        pd.DataFrame(
            {
                "Reaction": r["term"].str.replace("_", " ").str.capitalize(),
                "Sessions followed by it": [
                    pct(v, k, n, b)
                    for v, k, n, b in zip(
                        r["share_sessions"],
                        r["sessions_with"],
                        r["sessions"],
                        r["insufficient"],
                        strict=True,
                    )
                ],
                "Patients who had it": [
                    pct(v, k, n, b)
                    for v, k, n, b in zip(
                        r["share_patients"],
                        r["patients_with"],
                        r["patients"],
                        r["insufficient"],
                        strict=True,
                    )
                ],
                "Typical duration": [
                    "not recorded" if pd.isna(d) else f"{d:g} days (n={n})"
                    for d, n in zip(r["median_duration_days"], r["durations_n"], strict=True)
                ],
            }
        ),
        hide_index=True,
    )


def photo_pairs(protocol_id: int, frames: ClinicFrames) -> None:
    st.subheader("Typical results in photos", anchor=False)
    views = frames.protocols.set_index("protocol_id").loc[protocol_id, "required_views"] or []
    if not views:
        st.caption("This protocol has no standard photo views.")
        return
    view = st.selectbox("View", views, format_func=lambda v: v.replace("_", " ").capitalize())
    # derived from the record like the frames: dropped with them when a visit is recorded
    key = f"{frames_cache.DERIVED_PREFIX}pairs.{protocol_id}.{view}"
    cached = st.session_state.get(key)
    if cached is None or time.monotonic() - cached[0] > FRAMES_TTL_S:
        cached = (
            time.monotonic(),
            frame.call(representative_pairs, protocol_id=protocol_id, view=view),
        )
        st.session_state[key] = cached
    pairs: list[RepresentativePair] = cached[1]
    if not pairs:
        st.info(
            "Not enough consented, comparable photo series for this protocol and view to "
            "pick typical examples (we never show a best case)."
        )
        return
    st.caption(
        "Chosen by the numbers, not by eye: the patient closest to the median result and "
        "one closest to the lower quartile, among patients who agreed to have their photos "
        "shown in consultations and whose photos passed the comparability check."
    )
    for pair in pairs:
        try:
            before, after = frame.call(pair_photos, pair=pair)
        except (PermissionDenied, PhotoNotFound) as exc:
            st.warning(f"{pair.label}: photo not available ({exc}).")
            continue
        with st.container(border=True):
            st.markdown(
                f"**{pair.label}**: improvement {pair.improvement:g} {charts.unit_text(pair.unit)}"
            )
            c1, c2 = st.columns(2)
            c1.image(before, caption="Before (first session)", width=PHOTO_WIDTH_PX)
            c2.image(
                after, caption=f"After (session {pair.followup_session})", width=PHOTO_WIDTH_PX
            )


def handout(actor: Actor, t: ConsultTimeline, goal: str | None) -> None:
    """The one-page PDF, built (chart PNG by matplotlib) and audited only when clicked."""
    st.download_button(
        "Handout (PDF)",
        file_name=f"timeline_{t.protocol_name.replace(' ', '_')}.pdf",
        mime="application/pdf",
        on_click="ignore",
        icon=":material/picture_as_pdf:",
        type="primary",
        key="dl_handout",
        data=partial(
            audited_bytes,
            actor,
            make=lambda: consult_handout_pdf(
                t, protocol_name=t.protocol_name, goal=goal, chart_png=timeline_chart_png(t)
            ),
            action="timeline.export",
            object_type="consult_timeline",
            object_id=t.protocol_id,
            details={"format": "pdf", "filters": t.filters},
        ),
    )


def page() -> None:
    actor = frame.require_page("timeline.read")
    st.title("Timelines")
    st.caption(
        "What patients like this one experienced with a protocol at this clinic: typical "
        "results, how long they took, and the usual reactions. No patient is identifiable."
    )
    catalogue = frames_cache.catalogue(actor, purpose=PURPOSE)
    if catalogue.protocols.empty:
        st.info("No protocols yet.")
        return
    args, frames = choices(actor, catalogue)
    try:
        t = consult_timeline(frames, **args)
    except ValueError as exc:
        st.error(f"No timeline for this protocol: {exc}")
        return
    lines = plain_language_summary(t)
    with st.container(border=True):
        st.subheader("What to expect", anchor=False)
        st.markdown("\n".join(f"- {line}" for line in lines))
    if t.insufficient:
        narrowed = any(v is not None for k, v in args.items() if k != "protocol_id")
        st.warning(
            f"Only {t.n_patients} patients match (at least {t.min_n} needed)"
            + (
                "; widen the choices above."
                if narrowed
                else ": this protocol has too few patients at this clinic so far."
            )
        )
        return
    k1, k2, k3, k4 = st.columns(4)
    k1.metric("Patients", t.n_patients)
    k2.metric(
        f"Improved noticeably (n={t.responders.n})",
        headline(t.responders.label(percent=True, digits=0)),
        help=t.responders.label(percent=True) + ". " + t.definitions.get("responder", ""),
    )
    k3.metric(
        f"Little or no change (n={t.non_responders.n})",
        headline(t.non_responders.label(percent=True, digits=0)),
        help=t.non_responders.label(percent=True),
    )
    k4.metric(
        f"Sessions, typical (n={t.sessions_done.n})",
        headline(t.sessions_done.label(digits=0)),
        help=t.sessions_done.label() + ". " + t.definitions.get("sessions_done", ""),
    )
    figures(t)
    reactions_table(t)
    photo_pairs(args["protocol_id"], frames)
    st.subheader("Take-home", anchor=False)
    c1, c2 = st.columns(2)
    with c1:
        handout(actor, t, args["goal"])
    c2.download_button(
        "Timeline figures (CSV)",
        file_name="timeline.csv",
        mime="text/csv",
        on_click="ignore",
        icon=":material/table:",
        key="dl_timeline_csv",
        data=partial(
            audited_bytes,
            actor,
            make=partial(to_csv_bytes, t.by_session),
            action="timeline.export",
            object_type="consult_timeline",
            object_id=t.protocol_id,
            details={"format": "csv", "filters": t.filters},
        ),
    )


try:
    page()
except PermissionDenied as exc:
    st.error(f"Not allowed: {exc}")
