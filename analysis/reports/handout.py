"""The one-page consultation handout: what patients like this one experienced with a protocol.

Built with reportlab's platypus on A4. Everything is placed in one ``KeepInFrame(mode="shrink")``
so the handout is always exactly one page (long tables are scaled down, never spilled). The chart
is a PNG: the page's own (``chart_png``) or :func:`timeline_chart_png` (matplotlib, Agg). Text uses
DejaVu Sans (:mod:`analysis.reports.fonts`: Latin, Greek, Cyrillic); user text is XML-escaped.
This module never reads the database: the caller audits the export.
"""

from __future__ import annotations

import io
import math
from datetime import UTC, datetime
from xml.sax.saxutils import escape

from analysis.outcomes.timelines import ConsultTimeline, plain_language_summary


def _fmt(x: float) -> str:
    return f"{x:.2g}" if abs(x) < 10 else f"{x:.0f}"


def timeline_chart_png(timeline: ConsultTimeline, *, dpi: int = 150) -> bytes:
    """Median improvement by session with the IQR band and the MCID line, as PNG bytes.

    Sessions below the minimum n are left out of the chart (they are listed as insufficient in the
    handout's table).
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    t = timeline
    d = t.by_session[~t.by_session["insufficient"].astype(bool)]
    fig = Figure(figsize=(6.0, 2.6), dpi=dpi)
    ax = fig.subplots()
    if len(d):
        x = d["session_number"].astype(int).to_numpy()
        ax.fill_between(
            x,
            d["q1"].astype(float),
            d["q3"].astype(float),
            color="#9ecae1",
            alpha=0.6,
            label="middle half of patients",
        )
        ax.plot(x, d["median"].astype(float), marker="o", color="#08519c", label="typical (median)")
        ax.set_xticks(x)
        ax.set_xticklabels(
            [f"{xi}\nn={int(n)}" for xi, n in zip(x, d["n"], strict=True)], fontsize=7
        )
    else:
        ax.text(
            0.5,
            0.5,
            "Not enough patients yet to draw a course",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
    if t.mcid is not None:
        ax.axhline(
            t.mcid,
            color="#d94801",
            linestyle="--",
            linewidth=1,
            label=f"noticeable change ({_fmt(t.mcid)} {t.unit})".replace(" )", ")"),
        )
    ax.axhline(0, color="#999999", linewidth=0.8)
    ax.set_xlabel("Session (n = patients measured)")
    ax.set_ylabel(f"Improvement ({t.unit})" if t.unit else "Improvement")
    ax.legend(fontsize=7, loc="upper left", frameon=False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _figures_table(t: ConsultTimeline) -> list[list[str]]:
    unit = f" {t.unit}" if t.unit else ""
    rows = [
        [
            "Session",
            "Patients measured",
            f"Typical improvement ({t.unit + '; ' if t.unit else ''}middle half)",
            f"Improved by at least {_fmt(t.mcid)}{unit}" if t.mcid is not None else "-",
        ]
    ]
    for r in t.by_session[t.by_session["session_number"] > 1].itertuples(index=False):
        typical = (
            f"not enough data (n={int(r.n)})"
            if r.insufficient
            else f"{_fmt(r.median)} ({_fmt(r.q1)} to {_fmt(r.q3)})"
        )
        share = (
            "not enough data"
            if r.share_mcid_insufficient or math.isnan(r.share_mcid_value)
            else f"{r.share_mcid_value:.0%} ({r.share_mcid_ci_low:.0%} to "
            f"{r.share_mcid_ci_high:.0%})"
        )
        rows.append([str(int(r.session_number)), str(int(r.n)), typical, share])
    return rows


def consult_handout_pdf(
    timeline: ConsultTimeline,
    *,
    protocol_name: str,
    goal: str | None,
    chart_png: bytes | None = None,
    generated_at: datetime | None = None,
) -> bytes:
    """A one-page A4 PDF: chart, figures with n, plain-language lines and a sourcing footer.

    Parameters
    ----------
    timeline
        From :func:`analysis.outcomes.timelines.consult_timeline`.
    protocol_name, goal
        Printed in the title (``goal`` may be None or empty).
    chart_png
        PNG bytes of the chart; drawn with :func:`timeline_chart_png` when None.
    generated_at
        Timestamp printed in the footer (default: now, UTC).
    """
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.lib.utils import ImageReader
    from reportlab.platypus import (
        Image,
        KeepInFrame,
        Paragraph,
        SimpleDocTemplate,
        Spacer,
        Table,
        TableStyle,
    )

    from analysis.reports import fonts

    t = timeline
    png = chart_png if chart_png is not None else timeline_chart_png(t)
    try:
        iw, ih = ImageReader(io.BytesIO(png)).getSize()
    except Exception as exc:  # reportlab raises several types for undecodable images
        raise ValueError(f"chart_png is not a readable image: {exc}") from exc
    styles = fonts.stylesheet()
    body = ParagraphStyle("body", parent=styles["BodyText"], fontSize=9.5, leading=12.5)
    small = ParagraphStyle(
        "small", parent=body, fontSize=7.5, leading=9.5, textColor=colors.HexColor("#444444")
    )
    when = (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d")
    width = A4[0] - 36 * mm
    story: list[object] = [
        Paragraph(f"What to expect: {escape(protocol_name)}", styles["Title"]),
    ]
    if goal and goal.strip():
        story.append(Paragraph(f"Goal: {escape(goal.strip())}", body))
    story.append(
        Paragraph(
            f"Based on {t.n_patients} patients treated at this clinic; measured by "
            f"{escape(t.endpoint_name.lower())}"
            + (f" ({escape(t.unit)})" if t.unit else "")
            + ", change since the first session.",
            body,
        )
    )
    story.append(Spacer(1, 3 * mm))
    img_w = width
    story.append(Image(io.BytesIO(png), width=img_w, height=img_w * ih / iw))
    story.append(Spacer(1, 3 * mm))
    table = Table(_figures_table(t), repeatRows=1, hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), fonts.REGULAR, 8.5),
                ("FONT", (0, 0), (-1, 0), fonts.BOLD, 8.5),
                ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#bbbbbb")),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eef3f8")),
            ]
        )
    )
    story.append(table)
    reached = t.responders.label(percent=True, digits=0)
    extra = [
        f"Reached a noticeable change by their last visit: {reached}.",
        f"Sessions per finished course: {t.sessions_done.label(digits=0)}.",
    ]
    story += [Paragraph(escape(x), small) for x in extra]
    story.append(Spacer(1, 3 * mm))
    story.append(Paragraph("<b>In plain words</b>", body))
    story += [Paragraph("&bull; " + escape(line), body) for line in plain_language_summary(t)]
    story.append(Spacer(1, 4 * mm))
    story.append(
        Paragraph(
            f"Source: Candor clinic records, {t.n_patients} patients ({t.n_series} treatment courses) "
            f"with {escape(protocol_name)}, generated {when}. Observational data from this clinic, "
            "not a clinical trial. Figures from fewer than "
            f"{t.min_n} patients are not shown. Individual results vary: this is not a promise of "
            "your result.",
            small,
        )
    )
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=15 * mm,
        bottomMargin=15 * mm,
        title=f"What to expect: {protocol_name}",
        author="Candor",
    )
    doc.build([KeepInFrame(doc.width, doc.height, story, mode="shrink")])
    return buf.getvalue()
