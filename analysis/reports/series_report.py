"""The series progress report: one PDF with photos (and their comparability), endpoint charts,
treatments, reactions and confounders.

Built with reportlab's platypus; endpoint charts are drawn with matplotlib (Agg) to PNG, so no
browser or kaleido is needed. The caller must record the export first
(:func:`analysis.services.photo_access.audited_export`) and fetch the photos through
:func:`analysis.services.photo_access.photo_bytes`; this module never reads the database.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

import pandas as pd

VERDICT_WORDS = {
    "baseline": "Baseline",
    "pass": "Comparable",
    "warn": "Check before comparing",
    "fail": "NOT COMPARABLE",
}
GATE_NOTE = (
    "Comparability: each follow-up photo was checked against the series baseline of the same view "
    "(pose, distance, framing, lighting, exposure, colour, expression, sharpness). Photos marked "
    "NOT COMPARABLE must not be read as before/after evidence; 'Check before comparing' photos "
    "differ noticeably in how they were taken."
)


def report_photos(
    photos: pd.DataFrame, *, fetch: Callable[[int], bytes | None]
) -> dict[int, bytes]:
    """Bytes of every photo in ``photos`` (column ``photo_id``) that ``fetch`` returns (it must be
    the audited door, e.g. a thumbnail through ``photo_bytes``); refused photos are left out."""
    out: dict[int, bytes] = {}
    for photo_id in photos["photo_id"].astype(int) if len(photos) else []:
        data = fetch(int(photo_id))
        if data is not None:
            out[int(photo_id)] = data
    return out


def endpoint_chart_png(
    measurements: pd.DataFrame,
    *,
    code: str,
    name: str,
    unit: str = "",
    comparisons: pd.DataFrame | None = None,
    dpi: int = 150,
) -> bytes:
    """Value and change from baseline of one endpoint by session, as a PNG (matplotlib, Agg).

    The change panel shows the noise band (``+/- noise_band``, grey), the expected course (dashed)
    and a star at sessions whose comparison with the previous one spans a confounder.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    m = measurements[measurements["endpoint_code"] == code].sort_values("session_number")
    fig = Figure(figsize=(6.4, 3.4), dpi=dpi)
    ax1, ax2 = fig.subplots(1, 2)
    x = m["session_number"].astype(int).to_numpy()
    ax1.plot(x, m["value"].astype(float), "o-", color="#1565c0")
    ax1.set_title(textwrap.fill(f"{name}{f' ({unit})' if unit else ''}", 42), fontsize=8)
    ax1.set_xlabel("Session", fontsize=8)
    band = m["noise_band"].dropna()
    if len(band) and len(x):
        half = float(band.iloc[0])
        ax2.axhspan(-half, half, color="0.85", label=f"noise ±{half:g}")
    ax2.axhline(0, color="0.5", lw=0.8)
    ax2.plot(x, m["change"].astype(float), "o-", color="#2e7d32", label="change")
    if m["change"].isna().all():
        ax2.text(
            0.5,
            0.5,
            "no session-1 value:\nchange not computed",
            transform=ax2.transAxes,
            ha="center",
            va="center",
            fontsize=8,
            color="0.3",
        )
    expected = m.dropna(subset=["expected_change"])
    if len(expected):
        ax2.plot(
            expected["session_number"].astype(int),
            expected["expected_change"].astype(float),
            "--",
            color="0.35",
            label="expected",
        )
    if comparisons is not None and len(comparisons):
        spanning = set(comparisons.loc[comparisons["spans_confounder"], "to_session"].astype(int))
        flagged = m[m["session_number"].astype(int).isin(spanning)]
        if len(flagged):
            ax2.plot(
                flagged["session_number"].astype(int),
                flagged["change"].astype(float),
                "*",
                ms=12,
                color="#ef6c00",
                label="spans a confounder",
            )
    ax2.set_title("Change from baseline", fontsize=9)
    ax2.set_xlabel("Session", fontsize=8)
    ax2.legend(fontsize=6, loc="best")
    for ax in (ax1, ax2):
        ax.tick_params(labelsize=7)
        if len(x):
            ax.set_xticks(sorted(set(x.tolist())))
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


def build_series_report(
    overview: Any, *, photos: Mapping[int, bytes], generated_at: datetime | None = None
) -> bytes:
    """The PDF bytes of the report of one series.

    Parameters
    ----------
    overview : analysis.services.series.SeriesOverview
        The series data (plain DataFrames and dicts).
    photos : mapping of photo id to image bytes
        Photos to print (fetched through the audited door by the caller); missing ids print as
        "not shown".
    """
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import cm
    from reportlab.platypus import (
        Image,
        KeepTogether,
        Paragraph,
        SimpleDocTemplate,
        Spacer,
        Table,
        TableStyle,
    )

    from analysis.reports import fonts

    styles = fonts.stylesheet()
    small = styles["BodyText"].clone("small", fontSize=8, leading=10)
    when = (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    p, pr, s = overview.patient, overview.protocol, overview.series
    story: list[Any] = [
        Paragraph("Series progress report", styles["Title"]),
        Paragraph(
            escape(
                f"Patient {p['code']} · {p.get('age_band', '')} · {p.get('sex', '')} · "
                f"Fitzpatrick {p.get('fitzpatrick', '')}"
            ),
            styles["BodyText"],
        ),
        Paragraph(
            escape(
                f"Protocol: {pr['name']} ({pr.get('modality', '')}, "
                f"{pr.get('target_area', '')}) · started {s['started_on']} · "
                f"{len(overview.sessions)}/{pr.get('planned_sessions', '?')} sessions · "
                f"status {s['status']}"
            ),
            styles["BodyText"],
        ),
        Paragraph(escape(f"Generated {when}. Confidential clinical record."), small),
        Spacer(1, 0.3 * cm),
    ]

    def table(df: pd.DataFrame, columns: list[str], title: str) -> None:
        story.append(Paragraph(title, styles["Heading2"]))
        if df.empty:
            story.append(Paragraph("None recorded.", small))
            return
        cols = [c for c in columns if c in df.columns]
        rows = [[c.replace("_", " ") for c in cols]]
        for r in df[cols].itertuples(index=False):
            rows.append([Paragraph(escape(_cell(v)), small) for v in r])
        t = Table(rows, repeatRows=1)
        t.setStyle(
            TableStyle(
                [
                    ("FONT", (0, 0), (-1, -1), fonts.REGULAR, 7),
                    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e3e7ee")),
                    ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ]
            )
        )
        story.append(t)

    table(overview.sessions, ["number", "performed_on", "days_since_start", "operator"], "Sessions")
    table(
        overview.treatments,
        [
            "session_number",
            "product",
            "lot_number",
            "expiry_on",
            "expired_at_use",
            "volume_ml",
            "units",
            "sites",
            "depth_intent",
        ],
        "Treatments",
    )

    story.append(Paragraph("Photos", styles["Heading2"]))
    story.append(Paragraph(escape(GATE_NOTE), small))
    if overview.photos.empty:
        story.append(Paragraph("No photos.", small))
    for view, group in overview.photos.groupby("view", sort=False):
        block: list[Any] = [Paragraph(escape(str(view).replace("_", " ")), styles["Heading3"])]
        cells, captions = [], []
        for r in group.sort_values("session_number").itertuples():
            data = photos.get(int(r.photo_id))
            cells.append(
                _image(data, Image, width=4.0 * cm)
                if data
                else Paragraph("not shown (no consent or access)", small)
            )
            word = VERDICT_WORDS.get(str(r.verdict), str(r.verdict))
            reason = f" — kept because: {r.override_reason}" if r.override_reason else ""
            captions.append(
                Paragraph(escape(f"Session {int(r.session_number)}: {word}{reason}"), small)
            )
        for start in range(0, len(cells), 4):
            t = Table(
                [cells[start : start + 4], captions[start : start + 4]],
                colWidths=[4.3 * cm] * len(cells[start : start + 4]),
            )
            t.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP")]))
            block.append(t)
            if start == 0:  # the view's name never ends a page alone
                story.append(KeepTogether(block))
                block = []
        story.extend(block)

    story.append(Paragraph("Endpoints", styles["Heading2"]))
    if overview.measurements.empty:
        story.append(Paragraph("No endpoint values recorded.", small))
    else:
        names = dict(
            zip(overview.endpoints["endpoint_code"], overview.endpoints["name"], strict=False)
        )
        units = dict(
            zip(overview.endpoints["endpoint_code"], overview.endpoints["unit"], strict=False)
        )
        for code in dict.fromkeys(overview.measurements["endpoint_code"]):
            png = endpoint_chart_png(
                overview.measurements,
                code=code,
                name=names.get(code, code),
                unit=_cell(units.get(code)),
                comparisons=overview.comparisons,
            )
            story.append(_image(png, Image, width=16 * cm))
        story.append(
            Paragraph(
                "Grey band: ± twice the measurement's repeatability SD (changes "
                "inside it are within measurement noise).",
                small,
            )
        )

    table(
        overview.reactions,
        [
            "session_number",
            "kind",
            "term",
            "severity",
            "onset_day",
            "duration_days",
            "resolved",
            "red_flag",
            "escalation",
        ],
        "Reactions and adverse events",
    )
    table(overview.confounders, ["kind", "started_on", "ended_on", "details"], "Confounders")

    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out,
        pagesize=A4,
        title=f"Candor series report {p['code']}",
        author="Candor",
        leftMargin=1.5 * cm,
        rightMargin=1.5 * cm,
        topMargin=1.5 * cm,
        bottomMargin=1.5 * cm,
    )
    doc.build(story)
    return out.getvalue()


def _image(data: bytes, image_cls: Any, *, width: float) -> Any:
    from PIL import Image as PILImage

    with PILImage.open(io.BytesIO(data)) as im:
        w, h = im.size
    return image_cls(io.BytesIO(data), width=width, height=width * h / w)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v).replace("_", " ") for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value).replace("_", " ")
