"""Plotly figures of one series: the timeline strip and the endpoint charts.

Inputs are the plain DataFrames of :class:`analysis.services.series.SeriesOverview`; nothing here
reads the database. Change from baseline is ``value - baseline`` (session 1) in the endpoint's units;
the grey band is ``+/- 2 * noise_sd`` (changes inside it are indistinguishable from measurement noise).
"""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

ROWS = ["Sessions", "Treatments", "Reactions", "Confounders"]
RED = "#c62828"
AMBER = "#ef6c00"
BLUE = "#1565c0"
GREY = "#757575"


def timeline_figure(
    sessions: pd.DataFrame,
    treatments: pd.DataFrame,
    reactions: pd.DataFrame,
    confounders: pd.DataFrame,
) -> go.Figure:
    """Sessions, treatments, reactions/AEs (by onset day) and confounder periods on one date axis."""
    fig = go.Figure()
    if sessions.empty:
        fig.add_annotation(text="No sessions yet", showarrow=False)
        return fig
    on = {int(r.number): pd.Timestamp(r.performed_on) for r in sessions.itertuples()}
    last = max(on.values())
    fig.add_trace(
        go.Scatter(
            x=list(on.values()),
            y=["Sessions"] * len(on),
            mode="markers+text",
            text=[f"S{n}" for n in on],
            textposition="top center",
            name="Session",
            marker={"size": 14, "color": BLUE, "symbol": "circle"},
            hovertemplate="Session %{text}<br>%{x|%d %b %Y}<extra></extra>",
        )
    )
    if len(treatments):
        tx = (
            treatments.groupby("session_number")
            .agg(
                products=("product", lambda s: ", ".join(sorted(set(map(str, s))))),
                expired=("expired_at_use", "any"),
            )
            .reset_index()
        )
        fig.add_trace(
            go.Scatter(
                x=[on.get(int(n)) for n in tx["session_number"]],
                y=["Treatments"] * len(tx),
                mode="markers",
                name="Treatment",
                text=tx["products"],
                marker={
                    "size": 12,
                    "symbol": "diamond",
                    "color": [RED if e else "#2e7d32" for e in tx["expired"]],
                },
                hovertemplate="%{text}<br>%{x|%d %b %Y}<extra></extra>",
            )
        )
    if len(reactions):
        xs, texts, colours, symbols = [], [], [], []
        for r in reactions.itertuples():
            start = on.get(int(r.session_number))
            if start is None:
                continue
            xs.append(start + timedelta(days=int(r.onset_day or 0)))
            texts.append(
                f"{'RED FLAG · ' if r.red_flag else ''}{r.kind}: "
                f"{str(r.term).replace('_', ' ')} ({r.severity})"
            )
            colours.append(RED if r.red_flag or r.kind == "adverse" else AMBER)
            symbols.append(
                "x" if r.red_flag else ("triangle-up" if r.kind == "adverse" else "circle-open")
            )
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=["Reactions"] * len(xs),
                mode="markers",
                name="Reaction / AE",
                text=texts,
                marker={"size": 12, "color": colours, "symbol": symbols},
                hovertemplate="%{text}<br>%{x|%d %b %Y}<extra></extra>",
            )
        )
    for c in confounders.itertuples():
        start = pd.Timestamp(c.started_on)
        end = (
            pd.Timestamp(c.ended_on)
            if c.ended_on is not None and not pd.isna(c.ended_on)
            else max(last, start) + timedelta(days=7)
        )
        fig.add_annotation(
            x=start,
            y="Confounders",
            text=str(c.kind).replace("_", " "),
            showarrow=False,
            xanchor="left",
            yshift=13,
            font={"size": 11},
        )
        fig.add_trace(
            go.Scatter(
                x=[start, end],
                y=["Confounders", "Confounders"],
                mode="lines",
                line={"width": 10, "color": "rgba(117,117,117,0.55)"},
                name=str(c.kind),
                showlegend=False,
                hovertemplate=f"{str(c.kind).replace('_', ' ')}"
                f"{'' if c.ended_on is not None else ' (ongoing)'}"
                "<extra></extra>",
            )
        )
    fig.update_yaxes(categoryorder="array", categoryarray=list(reversed(ROWS)), type="category")
    fig.update_traces(cliponaxis=False)
    fig.update_layout(
        height=280,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        legend={"orientation": "h", "y": -0.25},
        hovermode="closest",
    )
    return fig


def endpoint_figure(
    measurements: pd.DataFrame,
    *,
    code: str,
    name: str,
    unit: str,
    comparisons: pd.DataFrame | None = None,
) -> go.Figure:
    """Value (top) and change from baseline (bottom) by session for one endpoint.

    The bottom panel shows the noise band (grey, ``+/- noise_band``), the protocol's expected course
    (dashed) and a marker at every session whose comparison with the previous session spans a
    confounder.
    """
    m = measurements[measurements["endpoint_code"] == code].sort_values("session_number")
    # a rating made against the baseline (GAIS...) has no session-1 value: its change is the rating
    # relative to its "no change" anchor (analysis.services.series)
    rated = not m.empty and not (m["session_number"] == 1).any() and m["baseline"].notna().any()
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        subplot_titles=(
            f"{name}{f' ({unit})' if unit else ''}",
            "Rated change (from the scale's 'no change')"
            if rated
            else "Change from baseline (session 1)",
        ),
    )
    if m.empty:
        fig.add_annotation(text="No values recorded", showarrow=False)
        return fig
    x = m["session_number"].astype(int).tolist()
    fig.add_trace(
        go.Scatter(x=x, y=m["value"], mode="lines+markers", name="Value", line={"color": BLUE}),
        row=1,
        col=1,
    )
    band = m["noise_band"].dropna()
    if len(band):
        half = float(band.iloc[0])
        fig.add_trace(
            go.Scatter(
                x=[min(x) - 0.3, max(x) + 0.3, max(x) + 0.3, min(x) - 0.3],
                y=[half, half, -half, -half],
                fill="toself",
                mode="lines",
                line={"width": 0},
                fillcolor="rgba(117,117,117,0.18)",
                name=f"Noise band (±{half:g})",
                hoverinfo="skip",
            ),
            row=2,
            col=1,
        )
    fig.add_trace(
        go.Scatter(
            x=x, y=m["change"], mode="lines+markers", name="Change", line={"color": "#2e7d32"}
        ),
        row=2,
        col=1,
    )
    expected = m.dropna(subset=["expected_change"])
    if len(expected):
        fig.add_trace(
            go.Scatter(
                x=expected["session_number"].astype(int),
                y=expected["expected_change"],
                mode="lines+markers",
                name="Expected course",
                line={"dash": "dash", "color": GREY},
            ),
            row=2,
            col=1,
        )
    if comparisons is not None and len(comparisons):
        spanning = comparisons[comparisons["spans_confounder"]]
        flagged = m[m["session_number"].isin(spanning["to_session"])]
        if len(flagged):
            kinds = {
                int(r.to_session): ", ".join(map(str, r.confounders)) for r in spanning.itertuples()
            }
            fig.add_trace(
                go.Scatter(
                    x=flagged["session_number"].astype(int),
                    y=flagged["change"],
                    mode="markers",
                    name="Spans a confounder",
                    marker={"symbol": "star", "size": 15, "color": AMBER},
                    text=[kinds.get(int(n), "") for n in flagged["session_number"]],
                    hovertemplate="Since previous session: %{text}<extra></extra>",
                ),
                row=2,
                col=1,
            )
    fig.update_xaxes(title_text="Session", dtick=1, row=2, col=1)
    fig.update_layout(
        height=420,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        legend={"orientation": "h", "y": -0.18},
    )
    return fig


def as_date(value: object) -> date | None:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    day: date = pd.Timestamp(value).date()
    return day


SITE_COLOURS = ("#1565c0", "#6a1b9a", "#00838f", "#5d4037", "#ad1457", "#283593")


def density_figure(
    densities: pd.DataFrame,
    manual: pd.DataFrame,
    *,
    rel_error: float,
    manual_name: str = "Hair density (manual)",
) -> go.Figure:
    """Hair density by session: the automated count's density per site with its stated error band
    (``auto_density × (1 ± rel_error)``, shaded), the density recorded after the clinician's
    confirmation or correction (open diamonds, where it differs), and the manually entered density
    endpoint (black) beside them. Inputs: :class:`analysis.services.trichoscopy.TrichoscopyReview`.
    """
    fig = go.Figure()
    d = densities.dropna(subset=["auto_density"]).sort_values(["site", "session_number"])
    for i, (site, g) in enumerate(d.groupby("site", sort=False)):
        colour = SITE_COLOURS[i % len(SITE_COLOURS)]
        label = str(site) or "no site label"
        x = g["session_number"].astype(int).tolist()
        fig.add_trace(
            go.Scatter(
                x=x + x[::-1],
                y=g["band_high"].tolist() + g["band_low"].tolist()[::-1],
                fill="toself",
                mode="lines",
                line={"width": 0},
                fillcolor="rgba(21,101,192,0.15)",
                name=f"{label}: stated count error ±{100 * rel_error:.1f} %",
                hoverinfo="skip",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=g["auto_density"].tolist(),
                mode="lines+markers",
                name=f"{label}: automated",
                line={"color": colour},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": (g["band_high"] - g["auto_density"]).tolist(),
                    "arrayminus": (g["auto_density"] - g["band_low"]).tolist(),
                    "color": colour,
                    "thickness": 1,
                },
                customdata=g[["photo_id", "auto_count"]].to_numpy(),
                hovertemplate="photo %{customdata[0]}: %{customdata[1]} follicles, "
                "%{y:.0f} hairs/cm²<extra></extra>",
            )
        )
        fixed = g[
            g["recorded_density"].notna()
            & ((g["recorded_density"] - g["auto_density"]).abs() > 1e-9)
        ]
        if len(fixed):
            fig.add_trace(
                go.Scatter(
                    x=fixed["session_number"].astype(int),
                    y=fixed["recorded_density"],
                    mode="markers",
                    name=f"{label}: corrected count",
                    marker={"symbol": "diamond-open", "size": 12, "color": colour},
                )
            )
    if len(manual):
        fig.add_trace(
            go.Scatter(
                x=manual["session_number"].astype(int),
                y=manual["value"],
                mode="lines+markers",
                name=manual_name,
                line={"color": "#212121", "dash": "dot"},
                marker={"symbol": "square"},
            )
        )
    if d.empty and manual.empty:
        fig.add_annotation(text="No density recorded yet", showarrow=False)
    fig.update_xaxes(title_text="Session", dtick=1)
    fig.update_yaxes(title_text="hairs/cm²")
    fig.update_layout(
        height=380,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        legend={"orientation": "h", "y": -0.25},
        title={"text": "Hair density: automated count (with its stated error) and manual"},
    )
    return fig
