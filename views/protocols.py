"""Protocols: the medical director compares treatment protocols on the clinic's own series."""

from __future__ import annotations

from datetime import date
from functools import partial
from typing import Any

import pandas as pd
import streamlit as st

from analysis.services import rating
from analysis.services.analytics import (
    ClinicFrames,
    adjusted_protocol_effect,
    cohorts,
    to_csv_bytes,
)
from analysis.services.common import Actor, PermissionDenied
from analysis.services.insights import audited_bytes
from analysis.services.interop import analyst_tables_download
from analysis.services.safety import LotTrace, trace_lot
from ui import frame, frames_cache, widgets
from ui import insight_charts as charts

PURPOSE = "cohort.read"
#: Up to this many measurements the mixed model is fitted as the page opens (about 1 s).
AUTO_FIT_ROWS = 20_000


def filters(
    actor: Actor, catalogue: ClinicFrames, tables: frozenset[str]
) -> tuple[dict[str, Any], ClinicFrames]:
    """The filter widgets; returns keyword arguments for ``compare_protocols`` and the frames of
    the chosen protocols with ``tables`` (only their series are read, each protocol once per
    session)."""
    names = catalogue.protocols.set_index("protocol_id")["name"].to_dict()
    chosen = st.multiselect(
        "Protocols",
        list(names),
        default=like_for_like(catalogue),
        format_func=widgets.labeller(names),
        placeholder="Choose protocols to compare",
    )
    out: dict[str, Any] = {"protocol_ids": chosen}
    frames = frames_cache.protocol_frames(actor, chosen, purpose=PURPOSE, tables=tables)
    used = frames_cache.protocol_lots(actor, chosen, purpose=PURPOSE)
    with st.expander("Filters: product, lot, operator, dates, baseline severity, photo gate"):
        c1, c2, c3 = st.columns(3)
        products = sorted(used["product"].dropna().unique())
        out["product"] = c1.selectbox("Product", products, index=None, placeholder="Any product")
        lots = sorted(used["lot_number"].dropna().unique())
        out["lot"] = c2.selectbox("Lot", lots, index=None, placeholder="Any lot")
        ops = frames.operators.set_index("operator_id")["display_name"].to_dict()
        used = [int(o) for o in frames.sessions["operator_id"].dropna().unique() if int(o) in ops]
        out["operator_id"] = c3.selectbox(
            "Operator",
            sorted(used, key=ops.get),
            index=None,
            format_func=widgets.labeller(ops),
            placeholder="Any operator",
        )
        starts = pd.to_datetime(frames.series["started_on"])
        first = starts.min().date() if len(starts) else date.today()
        span = st.date_input("Series started between", value=(first, date.today()))
        if isinstance(span, tuple) and len(span) == 2:
            out["date_from"], out["date_to"] = span
        out["baseline_severity"] = _severity_filter(frames, chosen)
        out["gate_passing_only"] = st.toggle(
            "Outcomes only from series whose photos all pass the comparability gate",
            help=cohorts.DEFINITIONS["gate"],
        )
    return out, frames


def like_for_like(catalogue: ClinicFrames, *, most: int = 3) -> list[int]:
    """The comparison first shown: the first protocol and those sharing its primary endpoint (a
    like-for-like comparison, which the severity filter and the model need), at most ``most``;
    the first ``most`` protocols when fewer than two share it."""
    p = catalogue.protocols
    if p.empty:
        return []
    primary = p["primary_endpoint"].iloc[0]
    same = [int(i) for i in p.loc[p["primary_endpoint"] == primary, "protocol_id"]][:most]
    return same if len(same) >= 2 else [int(i) for i in p["protocol_id"]][:most]


def _severity_filter(frames: ClinicFrames, chosen: list[int]) -> tuple[float, float] | None:
    primaries = set(
        frames.protocols.loc[
            frames.protocols["protocol_id"].isin(chosen), "primary_endpoint"
        ].dropna()
    )
    if len(primaries) != 1:
        st.caption("Baseline severity filter: choose protocols that share a primary endpoint.")
        return None
    ep = frames.endpoints.set_index("endpoint_code").loc[primaries.pop()]
    lo = float(ep["scale_min"]) if pd.notna(ep["scale_min"]) else 0.0
    hi = float(ep["scale_max"]) if pd.notna(ep["scale_max"]) else 10.0
    step = 1.0 if ep["kind"] in ("ordinal", "count") else (hi - lo) / 20 or 1.0
    label = charts.with_unit(f"Baseline {ep['name'].lower()}", ep["unit"])
    picked = st.slider(label, lo, hi, (lo, hi), step=step, format="%.0f" if step == 1.0 else "%.1f")
    return None if picked == (lo, hi) else (float(picked[0]), float(picked[1]))


#: The comparison's sections, one tab each; only the open one is computed and drawn.
SECTIONS = ("Outcomes", "Safety", "Photo compliance", "Model", "Export")
ENDPOINT_CHOICE = "insights.protocols.endpoint"  # kept while the Outcomes tab is closed


#: The parts of the comparison each section computes.
SECTION_PARTS: dict[str, tuple[str, ...]] = {
    "Outcomes": ("outcomes",),
    "Safety": ("reactions",),
    "Photo compliance": ("photo_compliance",),
    "Model": ("outcomes",),
    "Export": tuple(cohorts.PARTS),
}


def section_frames(actor: Actor, args: dict[str, Any], parts: tuple[str, ...]) -> ClinicFrames:
    """The chosen protocols' frames with the tables ``parts`` need under these filters."""
    need = cohorts.tables_needed(parts, **args)
    return frames_cache.protocol_frames(actor, args["protocol_ids"], purpose=PURPOSE, tables=need)


def compared(
    actor: Actor, args: dict[str, Any], parts: tuple[str, ...], endpoint: str | None = None
) -> tuple[Any, ClinicFrames]:
    """``compare_protocols`` of these filters for ``parts`` (the outcome part narrowed to
    ``endpoint`` when given), and the frames it used, holding the tables those parts need;
    cached per browser session with the frames: a rerun that does not change the filters
    recomputes nothing."""
    frames = section_frames(actor, args, parts)
    key = f"insights.model.compare.{sorted(parts)!r}.{endpoint!r}." + repr(
        sorted(args.items(), key=lambda kv: kv[0])
    )
    if key not in st.session_state:
        st.session_state[key] = cohorts.compare_protocols(
            frames, **args, parts=parts, endpoint_codes=None if endpoint is None else [endpoint]
        )
    return st.session_state[key], frames


#: The trajectory views: result table, x column, x title.
TRAJECTORIES = (
    ("by_session", "session_number", "Session"),
    ("by_week", "week", "Weeks since start"),
)


def outcome_figures(
    result: cohorts.ProtocolComparison,
    frames: ClinicFrames,
    names: dict[int, str],
    code: str,
    *,
    views: tuple[str, ...] = ("session_number", "week"),
) -> list[tuple[str, Any]]:
    """Trajectories (of ``views``: by session, by week) and the responder shares, of endpoint
    ``code``; the responders figure, when there is one, comes last."""
    ep = frames.endpoints.set_index("endpoint_code").loc[code]
    figs: list[tuple[str, Any]] = []
    for attr, x, x_title in TRAJECTORIES:
        if x not in views:
            continue
        table = getattr(result, attr)
        fig = charts.trajectory_figure(
            table[table["endpoint_code"] == code],
            x=x,
            protocol_names=names,
            endpoint_name=ep["name"],
            unit=charts.unit_text(ep["unit"]),
            x_title=x_title,
            higher_is_better=bool(ep["higher_is_better"]),
        )
        figs.append((f"{ep['name']} by {x_title.lower()}", fig))
    r = result.responders
    if not r.empty and code in set(r["endpoint_code"]):
        d = r[r["endpoint_code"] == code].assign(protocol=lambda x: x["protocol_id"].map(names))
        fig = charts.share_figure(
            d,
            category="protocol",
            prefix="share_",
            category_title="",
            title=f"Responders, {ep['name']} (MCID {d['mcid'].iloc[0]:g} "
            f"{charts.unit_text(ep['unit'])})".replace(" )", ")"),
            colour_by=charts.colours(list(names.values())),
        )
        figs.append(("Responders", fig))
    return figs


def outcomes(
    actor: Actor,
    args: dict[str, Any],
    summary: cohorts.ProtocolComparison,
    frames: ClinicFrames,
    names: dict[int, str],
) -> list[str]:
    """Trajectories (the open tab's only) and responder shares of the chosen endpoint, computed
    for that endpoint only; returns the notes of the comparison."""
    key = "insights.model.endpoints." + repr(sorted(args.items(), key=lambda kv: kv[0]))
    if key not in st.session_state:
        st.session_state[key] = cohorts.outcome_endpoints(frames, summary)
    codes: list[str] = st.session_state[key]
    if not codes:
        st.info("No outcome measurements after baseline for this selection.")
        return []
    eps = frames.endpoints.set_index("endpoint_code")
    kept = st.session_state.get(ENDPOINT_CHOICE)
    code = st.selectbox(
        "Endpoint",
        codes,
        index=codes.index(kept) if kept in codes else 0,
        format_func=lambda c: str(eps.loc[c, "name"]),
    )
    st.session_state[ENDPOINT_CHOICE] = code
    result, frames = compared(actor, args, ("outcomes",), endpoint=code)
    tabs = st.tabs(
        ["By session number", "By weeks since start"], key="protocols.x", on_change="rerun"
    )
    shown = next(x for tab, (_, x, _) in zip(tabs, TRAJECTORIES, strict=True) if tab.open)
    figs = outcome_figures(result, frames, names, code, views=(shown,))  # the open tab's only
    for tab, (attr, x, _title) in zip(tabs, TRAJECTORIES, strict=True):
        if x != shown:
            continue
        tab.plotly_chart(figs[0][1], key=f"traj_{x}")
        table = getattr(result, attr)
        withheld = charts.withheld_points(
            table[table["endpoint_code"] == code], x=x, group="protocol_id", names=names
        )
        if withheld:
            tab.caption("Not shown, too few patients: " + "; ".join(withheld))
    st.caption(result.definitions["trajectory"] + " " + result.definitions["weeks"])
    if len(figs) > 1:
        st.plotly_chart(figs[1][1], key="responders")
        st.caption(result.definitions["responder"])
    return list(result.notes)


def safety_figure(result: cohorts.ProtocolComparison, names: dict[int, str]) -> Any:
    return charts.rates_figure(result.reactions, protocol_names=names)


def compliance_figure(result: cohorts.ProtocolComparison) -> Any:
    return charts.share_figure(
        result.photo_compliance,
        category="operator",
        prefix="share_",
        title="Compliant photo sets",
        category_title="",
    )


def blinded_section(protocol_ids: list[int]) -> None:
    """Responder shares by blinded rating (closed studies on Blinded rating) beside the unblinded,
    clinic-recorded share of the same pairs."""
    table = frame.call(rating.blinded_by_protocol, protocol_ids=protocol_ids)
    st.markdown("**Responders: unblinded and blinded**")
    if table.empty:
        st.caption("No closed blinded rating study covers these protocols yet (Blinded rating).")
        return
    st.dataframe(
        table.rename(
            columns={
                "protocol": "Protocol",
                "study": "Study",
                "endpoint": "Endpoint",
                "pairs": "Pairs",
                "unblinded": "Unblinded (same pairs)",
                "blinded": "Blinded",
                "gap": "Gap, unblinded − blinded (95 % CI)",
            }
        ).drop(columns=["protocol_id"]),
        hide_index=True,
    )
    st.caption(
        "Blinded: the median of the invited raters' masked ratings of gate-passing photo "
        "pairs; a responder improves by at least the endpoint's MCID. Shares with Wilson "
        "95 % intervals; the gap is in scale steps with a bootstrap interval."
    )


def model_section(frames: ClinicFrames, chosen: list[int], names: dict[int, str]) -> None:
    st.subheader("Model-based comparison (mixed model)")
    if len(chosen) < 2:
        st.info("Choose at least two protocols for a model-based comparison.")
        return
    c1, c2, c3 = st.columns(3)
    a = c1.selectbox("Protocol A", chosen, format_func=widgets.labeller(names), index=0)
    b = c2.selectbox(
        "Protocol B", [p for p in chosen if p != a], format_func=widgets.labeller(names)
    )
    codes = frames.protocols.set_index("protocol_id").loc[[a, b], "endpoint_codes"].sum()
    eps = frames.endpoints.set_index("endpoint_code")["name"]
    code = c3.selectbox(
        "Model endpoint",
        [c for c in dict.fromkeys(codes) if c in eps],
        format_func=widgets.labeller(eps),
    )
    if code is None:
        st.info("These protocols have no endpoints to model.")
        return
    key = f"insights.model.{a}.{b}.{code}"  # dropped whenever the frames are reloaded
    if key not in st.session_state:
        series = frames.series.loc[frames.series["protocol_id"].isin([a, b]), "series_id"]
        m = frames.measurements
        rows = int((m["series_id"].isin(series) & (m["endpoint_code"] == code)).sum())
        # a large clinic's fit takes seconds: on request, so the page itself stays fast
        if rows > AUTO_FIT_ROWS and not st.button(
            f"Fit the model ({rows:,} measurements)", icon=":material/functions:"
        ):
            st.caption("The mixed model is fitted on request at this clinic's size.")
            return
        st.session_state[key] = adjusted_protocol_effect(
            frames, endpoint=code, protocol_a=a, protocol_b=b
        )
    m = st.session_state[key]
    if m.converged and m.estimate is not None:
        k1, k2, k3 = st.columns(3)
        better = "higher is better" if m.higher_is_better else "lower is better"
        k1.metric(
            charts.with_unit("B minus A, change", m.unit) + f"; {better}", f"{m.estimate:+.2f}"
        )
        k2.metric("95% CI", f"{m.ci_low:.2f} to {m.ci_high:.2f}")
        k3.metric("Patients / measurements", f"{m.n_patients} / {m.n_observations}")
        if m.warnings:
            st.warning("Fit warnings: " + "; ".join(m.warnings))
    else:
        st.error(
            "The model did not converge or could not be fitted: "
            + ("; ".join(m.warnings) or "no reason given")
            + f" (n={m.n_patients} patients, {m.n_observations} measurements)."
        )
    st.info(m.caveat)
    st.caption(f"Model: {m.formula}.")


def lot_section(actor: Actor, frames: ClinicFrames) -> None:
    st.subheader("Lot traceability")
    recalled = frames.lots[frames.lots["recalled"].astype(bool)]
    if len(recalled):
        st.caption(
            "Recalled lots on file: "
            + ", ".join(f"{r.lot_number} ({r.product})" for r in recalled.itertuples(index=False))
        )
    with st.form("lot_trace"):
        c1, c2 = st.columns(2)
        lot = c1.text_input("Lot number", placeholder="as printed on the label")
        products = sorted(frames.lots["product"].dropna().unique())
        product = c2.selectbox(
            "Product (optional)", products, index=None, placeholder="Any product"
        )
        submitted = st.form_submit_button("Trace lot", icon=":material/search:")
    if submitted:
        if not lot.strip():
            st.error("Enter the lot number to trace.")
            return
        st.session_state["insights.lot_trace"] = frame.call(
            trace_lot, lot_number=lot, product=product
        )
    trace: LotTrace | None = st.session_state.get("insights.lot_trace")
    if trace is None:
        return
    if trace.lots.empty:
        st.warning(
            f"No lot {trace.lot_number!r} on file"
            + (f" for {trace.product}." if trace.product else ".")
        )
        return
    for r in trace.lots[trace.lots["recalled"].astype(bool)].itertuples(index=False):
        st.error(f"Lot {r.lot_number} of {r.product} is RECALLED: {r.recall_note or 'no note'}")
    if trace.expired_at_use:
        st.warning(f"{trace.expired_at_use} treatment(s) used this lot after its expiry date.")
    k1, k2, k3 = st.columns(3)
    k1.metric("Patients", trace.patients)
    k2.metric("Sessions", trace.sessions)
    k3.metric("Reactions recorded", len(trace.reactions))

    def flag(row: pd.Series) -> list[str]:
        bad = any(bool(row.get(c, False)) for c in ("Expired at use", "Recalled", "Red flag"))
        adverse = row.get("Kind") == "adverse"
        colour = "#fde2e1" if bad else ("#fff4d6" if adverse else "")
        return [f"background-color: {colour}" if colour else ""] * len(row)

    def pretty(df: pd.DataFrame) -> pd.DataFrame:
        return df.rename(columns=lambda c: c.replace("_", " ").capitalize())

    number = st.column_config.NumberColumn(format="%g")
    fmt = {
        c: number
        for c in ("Duration days", "Volume ml", "Units", "Baseline", "Last value", "Change")
    }
    st.markdown("**Sessions that used the lot** (expired-at-use and recalled rows highlighted)")
    st.dataframe(
        pretty(trace.exposures).style.apply(flag, axis=1), hide_index=True, column_config=fmt
    )
    st.markdown(
        "**Reactions and adverse events at those sessions** (adverse events amber, red flags red)"
    )
    st.dataframe(
        pretty(trace.reactions).style.apply(flag, axis=1), hide_index=True, column_config=fmt
    )
    st.markdown(
        "**Outcome of each exposed series** (primary endpoint: last change from baseline, "
        "value minus baseline in its units)"
    )
    st.dataframe(pretty(trace.outcomes), hide_index=True, column_config=fmt)
    both = {"exposures": trace.exposures, "reactions": trace.reactions, "outcomes": trace.outcomes}
    cols = st.columns(3)
    for col, (name, df) in zip(cols, both.items(), strict=True):
        col.download_button(
            f"Lot {name} (CSV)",
            file_name=f"lot_{trace.lot_number}_{name}.csv",
            mime="text/csv",
            on_click="ignore",
            icon=":material/table:",
            key=f"dl_lot_{name}",
            data=partial(
                audited_bytes,
                actor,
                make=partial(to_csv_bytes, df),
                action="cohort.export",
                object_type="lot",
                object_id=trace.lot_number,
                details={"table": f"lot_{name}", "rows": int(len(df)), "product": trace.product},
            ),
        )


def downloads(
    actor: Actor,
    result: cohorts.ProtocolComparison,
    names: dict[int, str],
    figs: list[tuple[str, Any]],
) -> None:
    st.subheader("Export")
    st.caption(
        "Each download is recorded in the audit log when you click it. Charts are saved as "
        "one HTML file with the chart library inside, so it opens without internet access."
    )
    ids = "+".join(str(p) for p in result.filters["protocol_ids"])
    tables = {
        "Summary": ("summary", result.summary),
        "Trajectories by session": ("trajectories_by_session", result.by_session),
        "Trajectories by week": ("trajectories_by_week", result.by_week),
        "Responders": ("responders", result.responders),
        "Reaction rates": ("reactions", result.reactions),
        "Photo compliance": ("photo_compliance", result.photo_compliance),
    }
    cols = st.columns(4)
    for i, (label, (name, df)) in enumerate(tables.items()):
        cols[i % 4].download_button(
            f"{label} (CSV)",
            file_name=f"protocols_{name}.csv",
            mime="text/csv",
            on_click="ignore",
            icon=":material/table:",
            key=f"dl_{name}",
            width="stretch",
            data=partial(
                audited_bytes,
                actor,
                make=partial(to_csv_bytes, df),
                action="cohort.export",
                object_type="protocol_comparison",
                object_id=ids,
                details={"table": name, "rows": int(len(df)), "filters": result.filters},
            ),
        )
    notes = [f"Protocols: {', '.join(names.values())}. Filters: {result.filters}."]
    notes += list(result.definitions.values())
    cols[len(tables) % 4].download_button(
        "Charts (HTML)",
        file_name="protocols_charts.html",
        mime="text/html",
        on_click="ignore",
        icon=":material/monitoring:",
        key="dl_charts",
        width="stretch",
        data=partial(
            audited_bytes,
            actor,
            make=partial(charts.charts_html, figs, title="Protocol comparison", notes=notes),
            action="cohort.export",
            object_type="protocol_comparison",
            object_id=ids,
            details={"table": "charts_html", "filters": result.filters},
        ),
    )


def comparison(actor: Actor, catalogue: ClinicFrames) -> None:
    # the open section's tables are read with the filters' own, in one read per protocol
    section = st.session_state.get("protocols.section", SECTIONS[0])
    parts = SECTION_PARTS.get(section, ())
    args, _ = filters(actor, catalogue, cohorts.tables_needed(parts))
    if not args["protocol_ids"]:
        st.info("Choose at least one protocol.")
        return
    try:
        result, frames = compared(actor, args, ())
    except ValueError as exc:
        st.error(f"Cannot compare with these filters: {exc}")
        return
    names = {
        int(p): str(n)
        for p, n in zip(result.summary["protocol_id"], result.summary["protocol"], strict=True)
    }
    st.subheader("Patients and completion")
    st.dataframe(
        result.summary.rename(
            columns={
                "protocol": "Protocol",
                "patients": "Patients",
                "sessions_done": "Sessions done",
                "sessions_planned": "Sessions planned",
                "completion_label": "Completion",
                "dropout_label": "Drop-out",
            }
        )[["Protocol", "Patients", "Sessions done", "Sessions planned", "Completion", "Drop-out"]],
        hide_index=True,
    )
    st.caption(result.definitions["completion"])
    # one section at a time: a closed tab reads and computes nothing
    tabs = dict(
        zip(SECTIONS, st.tabs(SECTIONS, key="protocols.section", on_change="rerun"), strict=True)
    )
    if tabs["Outcomes"].open:
        with tabs["Outcomes"]:
            st.subheader("Outcomes")
            if args["gate_passing_only"]:
                st.caption("Restricted to gate-passing series. " + result.definitions["gate"])
            frames = section_frames(actor, args, ("outcomes",))
            for note in outcomes(actor, args, result, frames, names):
                st.caption(note)
            blinded_section(args["protocol_ids"])
    if tabs["Safety"].open:
        with tabs["Safety"]:
            st.subheader("Reactions and adverse events")
            part, _ = compared(actor, args, ("reactions",))
            st.plotly_chart(safety_figure(part, names), key="rates")
            withheld = charts.withheld_rates(part.reactions, protocol_names=names)
            if withheld:
                st.caption("Not shown, too few patients: " + "; ".join(withheld))
            st.caption(part.definitions["reaction_rate"])
    if tabs["Photo compliance"].open:
        with tabs["Photo compliance"]:
            st.subheader("Photo compliance by operator")
            part, _ = compared(actor, args, ("photo_compliance",))
            if part.photo_compliance.empty:
                st.info("No sessions in this selection.")
            else:
                st.plotly_chart(compliance_figure(part), key="compliance")
            st.caption(part.definitions["photo_compliance"])
    if tabs["Model"].open:
        with tabs["Model"]:
            model_section(section_frames(actor, args, ("outcomes",)), args["protocol_ids"], names)
    if tabs["Export"].open:
        with tabs["Export"]:
            full, frames = compared(actor, args, tuple(cohorts.PARTS))
            figs: list[tuple[str, Any]] = []
            if not full.by_session.empty:
                codes = list(dict.fromkeys(full.by_session["endpoint_code"]))
                kept = st.session_state.get(ENDPOINT_CHOICE)
                code = kept if isinstance(kept, str) and kept in codes else codes[0]
                figs += outcome_figures(full, frames, names, code)
            figs.append(("Reactions per 100 sessions", safety_figure(full, names)))
            if not full.photo_compliance.empty:
                figs.append(("Photo compliance by operator", compliance_figure(full)))
            downloads(actor, full, names, figs)
            analyst_tables(actor, full, args)


def analyst_tables(actor: Actor, result: cohorts.ProtocolComparison, args: dict[str, Any]) -> None:
    """One row per endpoint value, treatment and reaction of the filtered series, for analysts
    (the series the comparison's outcomes use: no second selection on a rerun)."""
    chosen = result.outcome_series
    st.download_button(
        f"Analyst tables of these {len(chosen)} series (CSV + data dictionary, zip)",
        file_name="candor_analyst_tables.zip",
        mime="application/zip",
        on_click="ignore",
        icon=":material/dataset:",
        key="dl_analyst_tables",
        data=partial(analyst_tables_download, actor, series_ids=sorted(chosen), filters=args),
    )


def page() -> None:
    actor = frame.require_page("cohort.read")
    st.title("Protocols")
    st.caption(
        "How the clinic's protocols compare on its own patients. Observational data: "
        "every figure shows its n, and figures from too few patients are withheld."
    )
    catalogue = frames_cache.catalogue(actor, purpose=PURPOSE)
    if catalogue.protocols.empty:
        st.info("No protocols yet. Create a protocol and record some series first.")
        return
    if st.button("Reload data", icon=":material/refresh:"):
        frames_cache.reload(actor, purpose=PURPOSE)
        st.rerun()
    compare_tab, lot_tab = st.tabs(["Compare protocols", "Lot traceability"])
    with compare_tab:
        comparison(actor, catalogue)
    with lot_tab:
        lot_section(actor, catalogue)


try:
    page()
except PermissionDenied as exc:
    st.error(f"Not allowed: {exc}")
