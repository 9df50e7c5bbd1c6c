"""Figure builders for the Insights pages (Protocols, Timelines): DataFrames in, figures out.

Plotly figures for the screen (the handout's PNG is drawn by ``analysis.reports.handout``).
Builders take the tables of :mod:`analysis.outcomes` as they are (column names documented there)
and never compute a statistic themselves: every number drawn is one the analysis layer returned,
with its n.
Points flagged ``insufficient`` are not drawn; :func:`withheld_points` lists them for a caption.

Export: :func:`charts_html` writes one self-contained HTML file with plotly.js embedded once
(``include_plotlyjs=True``, about 4.7 MB), because the clinic server may have no internet access
and a CDN-loading file would open blank there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

#: Colour-blind-safe qualitative palette (Okabe-Ito), one colour per protocol in selection order.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")
SEVERITY_ORDER = ("any", "mild", "moderate", "severe")
#: No plotly template on screen: Streamlit's own theme styles the chart in the browser, and a
#: template costs ~12 ms per figure to build and ~6 kB per figure to send. Exports that leave
#: Streamlit (:func:`charts_html`) get ``EXPORT_TEMPLATE`` when they are made.
_BLANK = dict(template="none")
EXPORT_TEMPLATE = "plotly_white"
_LAYOUT = dict(
    template="none",
    margin=dict(l=60, r=20, t=60, b=50),
    height=380,
    legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
)


def _rgba(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def unit_text(unit: object) -> str:
    """A unit for display: ``""`` for a missing unit (None, NaN, or the ``"nan"`` a missing value
    becomes when stringified)."""
    if unit is None or (isinstance(unit, float) and unit != unit):
        return ""
    text = str(unit).strip()
    return "" if text.lower() in ("nan", "none") else text


def with_unit(text: str, unit: object) -> str:
    """``"text (unit)"``, or ``text`` alone when there is no unit."""
    u = unit_text(unit)
    return f"{text} ({u})" if u else text


def colours(names: Sequence[str]) -> dict[str, str]:
    """Stable colour per name, in the given order."""
    return {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}


def withheld_points(
    df: pd.DataFrame, *, x: str, group: str | None = None, names: Mapping[Any, str] | None = None
) -> list[str]:
    """Points not drawn because they are ``insufficient``, one phrase per group:
    ``"A: session number 3, 4 (n=2 to 3)"``."""
    if df.empty or "insufficient" not in df:
        return []
    bad = df[df["insufficient"].astype(bool)]
    if bad.empty:
        return []
    groups = [(None, bad)] if group is None else list(bad.groupby(group, sort=False))
    out = []
    for key, g in groups:
        who = "" if key is None else f"{(names or {}).get(key, key)}: "
        lo, hi = int(g["n"].min()), int(g["n"].max())
        n = f"n={lo}" if lo == hi else f"n={lo} to {hi}"
        xs = ", ".join(str(v) for v in g[x])
        out.append(f"{who}{x.replace('_', ' ')} {xs} ({n})")
    return out


def withheld_rates(df: pd.DataFrame, *, protocol_names: Mapping[int, str]) -> list[str]:
    """Protocols whose reaction rates are withheld (too few patients), with their n."""
    out = []
    for pid, g in df.groupby("protocol_id", sort=False):
        if g["rate_insufficient"].astype(bool).all():
            pats, sess = int(g["patients"].max()), int(g["sessions"].max())
            out.append(
                f"{protocol_names[pid]} ({pats} patient{'s' * (pats != 1)}, "
                f"{sess} session{'s' * (sess != 1)})"
            )
    return out


def trajectory_figure(
    df: pd.DataFrame,
    *,
    x: str,
    protocol_names: Mapping[int, str],
    endpoint_name: str,
    unit: str,
    higher_is_better: bool,
    x_title: str,
) -> go.Figure:
    """Mean change from baseline with its 95% CI band, one line per protocol.

    ``df`` is ``ProtocolComparison.by_session`` or ``.by_week`` for one endpoint (columns
    ``protocol_id, <x>, value, ci_low, ci_high, n, insufficient``). Each drawn point is labelled
    with its n; insufficient points are left out (see :func:`withheld_points`).
    """
    names = [protocol_names[p] for p in dict.fromkeys(df["protocol_id"])] if len(df) else []
    palette = colours(list(protocol_names.values()))
    fig = go.Figure(layout=_BLANK)
    for pid, g in df.groupby("protocol_id", sort=False):
        g = g[~g["insufficient"].astype(bool)].sort_values(x)
        if g.empty:
            continue
        name, colour = protocol_names[pid], palette[protocol_names[pid]]
        band = g.dropna(subset=["ci_low", "ci_high"])
        if len(band):
            fig.add_trace(
                go.Scatter(
                    x=list(band[x]) + list(band[x])[::-1],
                    y=list(band["ci_high"]) + list(band["ci_low"])[::-1],
                    mode="lines",
                    fill="toself",
                    fillcolor=_rgba(colour, 0.15),
                    line=dict(width=0),
                    hoverinfo="skip",
                    showlegend=False,
                    legendgroup=name,
                    name=f"{name} 95% CI",
                )
            )
        fig.add_trace(
            go.Scatter(
                x=g[x],
                y=g["value"],
                mode="lines+markers+text",
                name=name,
                legendgroup=name,
                line=dict(color=colour, width=2),
                marker=dict(size=7),
                text=[f"n={n}" for n in g["n"]],
                textposition="top center",
                textfont=dict(size=10, color=colour),
                customdata=g[["ci_low", "ci_high", "n"]].to_numpy(),
                hovertemplate=(
                    f"{name}<br>{x_title} %{{x}}<br>mean change %{{y:.2f}} {unit}"
                    "<br>95% CI %{customdata[0]:.2f} to %{customdata[1]:.2f}"
                    "<br>n=%{customdata[2]}<extra></extra>"
                ),
            )
        )
    fig.add_hline(y=0, line=dict(color="#888", width=1, dash="dot"))
    better = "higher is better" if higher_is_better else "lower is better"
    fig.update_layout(
        **_LAYOUT,
        title=dict(text=f"{endpoint_name}: change from baseline ({better})"),
        xaxis_title=x_title,
        yaxis_title=f"Change from baseline ({unit})" if unit else "Change from baseline",
    )
    fig.update_xaxes(dtick=1 if x == "session_number" else None)
    if not names:
        _empty_note(fig, "No protocol has enough patients for this figure")
    return fig


def _empty_note(fig: go.Figure, text: str) -> None:
    fig.add_annotation(
        text=text,
        showarrow=False,
        xref="paper",
        yref="paper",
        x=0.5,
        y=0.5,
        font=dict(size=14, color="#666"),
    )


def rates_figure(df: pd.DataFrame, *, protocol_names: Mapping[int, str]) -> go.Figure:
    """Reactions per 100 sessions by severity, expected reactions and adverse events side by side.

    ``df`` is ``ProtocolComparison.reactions`` (``protocol_id, kind, severity, events, sessions,
    rate_value, rate_ci_low, rate_ci_high, rate_n, rate_insufficient``). Each protocol's n
    (sessions) is in its legend entry; insufficient protocols get no bars and say so there.
    """
    palette = colours(list(protocol_names.values()))
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("Expected reactions", "Adverse events"),
        shared_yaxes=True,
        horizontal_spacing=0.06,
        figure=go.Figure(layout=_BLANK),
    )
    for col, kind in enumerate(("expected", "adverse"), start=1):
        for pid, g in df[df["kind"] == kind].groupby("protocol_id", sort=False):
            g = g.set_index("severity").reindex(list(SEVERITY_ORDER)).reset_index()
            ok = ~g["rate_insufficient"].astype(bool)
            name = protocol_names[pid]
            n = int(g["sessions"].max())
            legend = (
                f"{name} (n={n} sessions)" if ok.any() else f"{name}: {g['rate_label'].iloc[0]}"
            )
            fig.add_trace(
                go.Bar(
                    x=g.loc[ok, "severity"],
                    y=g.loc[ok, "rate_value"],
                    name=legend,
                    legendgroup=name,
                    showlegend=col == 1,
                    marker_color=palette[name],
                    error_y=dict(
                        type="data",
                        symmetric=False,
                        color="#333",
                        array=(g.loc[ok, "rate_ci_high"] - g.loc[ok, "rate_value"]),
                        arrayminus=(g.loc[ok, "rate_value"] - g.loc[ok, "rate_ci_low"]),
                    ),
                    customdata=g.loc[ok, ["events", "rate_ci_low", "rate_ci_high"]].to_numpy(),
                    hovertemplate=(
                        f"{name}<br>%{{x}}: %{{y:.1f}} per 100 sessions (95% CI "
                        "%{customdata[1]:.1f} to %{customdata[2]:.1f})"
                        f"<br>%{{customdata[0]}} events in {n} sessions<extra></extra>"
                    ),
                ),
                row=1,
                col=col,
            )
    fig.update_layout(
        **{**_LAYOUT, "height": 420, "legend": dict(orientation="h", yanchor="top", y=-0.14, x=0)},
        barmode="group",
        title=dict(text="Reactions per 100 sessions (95% CI)"),
    )
    fig.update_yaxes(title_text="per 100 sessions", rangemode="tozero", row=1, col=1)
    return fig


def share_figure(
    df: pd.DataFrame,
    *,
    category: str,
    prefix: str,
    title: str,
    category_title: str,
    colour_by: Mapping[str, str] | None = None,
) -> go.Figure:
    """Horizontal bars of a share (0..1) with its Wilson CI; the figure with its CI and n is
    written in a column to the right of the plot (so no label collides with an error bar).

    ``df`` has ``<category>`` plus ``<prefix>value, <prefix>ci_low, <prefix>ci_high, <prefix>n,
    <prefix>insufficient, <prefix>label`` (as :func:`analysis.outcomes.cohorts.est_columns`
    writes them). Insufficient rows get no bar, only their marker text.
    """
    d = df.reset_index(drop=True)
    ok = ~d[f"{prefix}insufficient"].astype(bool)
    value = (d[f"{prefix}value"].where(ok, 0.0) * 100).astype(float)
    cats = d[category].astype(str)
    fig = go.Figure(
        layout=_BLANK,
        data=go.Bar(
            y=cats,
            x=value,
            orientation="h",
            marker_color=[(colour_by or {}).get(str(c), PALETTE[0]) for c in d[category]],
            error_x=dict(
                type="data",
                symmetric=False,
                color="#333",  # NaN: no whisker drawn
                array=((d[f"{prefix}ci_high"] - d[f"{prefix}value"]) * 100).where(ok),
                arrayminus=((d[f"{prefix}value"] - d[f"{prefix}ci_low"]) * 100).where(ok),
            ),
            customdata=d[f"{prefix}label"],
            hovertemplate="%{y}: %{customdata}<extra></extra>",
        ),
    )
    for cat, label in zip(cats, d[f"{prefix}label"], strict=True):
        fig.add_annotation(
            x=1.01,
            xref="paper",
            xanchor="left",
            y=cat,
            yref="y",
            text=label,
            showarrow=False,
            font=dict(size=12, color="#333"),
            align="left",
        )
    fig.update_layout(
        **{**_LAYOUT, "height": 130 + 44 * max(len(d), 1), "margin": dict(l=60, r=330, t=60, b=50)},
        title=dict(text=title),
        xaxis=dict(range=[0, 100], title="% (95% CI)", tickvals=[0, 25, 50, 75, 100]),
        yaxis=dict(title=category_title, autorange="reversed"),
        showlegend=False,
    )
    return fig


def median_iqr_figure(
    df: pd.DataFrame,
    *,
    x: str,
    x_title: str,
    y_title: str,
    title: str,
    mcid: float | None = None,
    unit: str = "",
    colour: str = PALETTE[0],
) -> go.Figure:
    """Median with its interquartile band (consult timeline), each point labelled with its n.

    ``df`` has ``<x>, median, q1, q3, n, insufficient``; insufficient points are not drawn.
    ``mcid`` (same units as the values) draws the "noticeable change" line.
    """
    g = df[~df["insufficient"].astype(bool)].sort_values(x)
    fig = go.Figure(layout=_BLANK)
    if len(g):
        fig.add_trace(
            go.Scatter(
                x=list(g[x]) + list(g[x])[::-1],
                y=list(g["q3"]) + list(g["q1"])[::-1],
                mode="lines",
                fill="toself",
                fillcolor=_rgba(colour, 0.18),
                line=dict(width=0),
                hoverinfo="skip",
                name="middle half of patients (IQR)",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=g[x],
                y=g["median"],
                mode="lines+markers+text",
                name="typical patient (median)",
                line=dict(color=colour, width=3),
                marker=dict(size=8),
                text=[f"n={n}" for n in g["n"]],
                textposition="top center",
                customdata=g[["q1", "q3", "n"]].to_numpy(),
                hovertemplate=(
                    f"{x_title} %{{x}}<br>median %{{y:.1f}}<br>IQR %{{customdata[0]:.1f}}"
                    " to %{customdata[1]:.1f}<br>n=%{customdata[2]}<extra></extra>"
                ),
            )
        )
    else:
        _empty_note(fig, "Not enough patients to show this")
    if mcid is not None:
        fig.add_hline(
            y=mcid,
            line=dict(color="#D55E00", width=1, dash="dash"),
            annotation_text=f"noticeable change ({mcid:g} {unit})".replace(" )", ")"),
            annotation_position="top left",
        )
    fig.add_hline(y=0, line=dict(color="#888", width=1, dash="dot"))
    fig.update_layout(**_LAYOUT, title=dict(text=title), xaxis_title=x_title, yaxis_title=y_title)
    if x == "session_number":
        fig.update_xaxes(dtick=1)
    return fig


def charts_html(
    figures: Sequence[tuple[str, go.Figure]], *, title: str, notes: Sequence[str] = ()
) -> bytes:
    """One self-contained HTML file (plotly.js embedded once; opens offline) with every figure."""
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_esc(title)}</title>"
        "</head><body style='font-family:sans-serif;max-width:1100px;margin:auto'>",
        f"<h1>{_esc(title)}</h1>",
    ]
    parts += [f"<p>{_esc(n)}</p>" for n in notes]
    for i, (heading, fig) in enumerate(figures):
        parts.append(f"<h2>{_esc(heading)}</h2>")
        styled = go.Figure(fig).update_layout(
            template=EXPORT_TEMPLATE
        )  # a copy: the shown one stays
        parts.append(styled.to_html(full_html=False, include_plotlyjs=(i == 0)))
    parts.append("</body></html>")
    return "\n".join(parts).encode("utf-8")


def _esc(text: str) -> str:
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("'", "&#39;")
        .replace('"', "&quot;")
    )
