"""The consultation handout PDF, read back with an independent reader (pypdf): one page, the
figures with their n, the plain-language lines, the chart image and the footer."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image
from pypdf import PdfReader

from analysis.outcomes.simulate import ProtocolSpec, simulate_frames
from analysis.outcomes.timelines import ConsultTimeline, consult_timeline, plain_language_summary
from analysis.reports.handout import consult_handout_pdf, timeline_chart_png


def _timeline(n_series: int = 12, sessions: int = 4) -> ConsultTimeline:
    f = simulate_frames(
        [ProtocolSpec("Skin booster", n_series, slope=2.0, sessions=sessions)], seed=4
    )
    return consult_timeline(f, protocol_id=1)


def _text(pdf: bytes) -> tuple[PdfReader, str]:
    reader = PdfReader(io.BytesIO(pdf))
    text = " ".join(p.extract_text() or "" for p in reader.pages)
    return reader, re.sub(r"\s+", " ", text)


def test_handout_is_one_page_with_figures_lines_chart_and_footer() -> None:
    t = _timeline()
    chart = timeline_chart_png(t)
    pdf = consult_handout_pdf(
        t, protocol_name="Skin booster", goal="glow & hydration", chart_png=chart
    )
    reader, text = _text(pdf)
    assert len(reader.pages) == 1
    assert "What to expect: Skin booster" in text and "glow & hydration" in text
    assert "12 patients" in text
    # every session row with its n and its median as printed by the table
    for r in t.by_session[t.by_session["session_number"] > 1].itertuples(index=False):
        assert f"{r.median:.2g}" in text and str(int(r.n)) in text
    for line in plain_language_summary(t):  # the computed sentences, word for word
        assert " ".join(line.split()[:6]) in text
    assert "Individual results vary" in text and "not a clinical trial" in text
    images = reader.pages[0].images
    assert len(images) == 1
    w, h = Image.open(io.BytesIO(chart)).size
    shown = images[0].image
    assert shown is not None and shown.size == (w, h)


def test_handout_draws_its_own_chart_and_stays_one_page_with_many_sessions() -> None:
    t = _timeline(sessions=20)
    pdf = consult_handout_pdf(t, protocol_name="Long course", goal=None)
    reader, text = _text(pdf)
    assert len(reader.pages) == 1
    assert len(reader.pages[0].images) == 1
    assert "Goal:" not in text and " 20 " in f" {text} "  # the session-20 row is there


def test_insufficient_group_prints_the_marker_not_numbers() -> None:
    t = _timeline(n_series=3)
    _, text = _text(consult_handout_pdf(t, protocol_name="New protocol", goal=""))
    assert "not enough data (n=3)" in text and "Not enough patients" in text


def test_unreadable_chart_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="chart_png is not a readable image"):
        consult_handout_pdf(_timeline(), protocol_name="x", goal=None, chart_png=b"not a png")


def test_protocol_and_goal_in_any_european_script_print_as_written() -> None:
    # Helvetica (Latin-1) would drop these; DejaVu Sans draws them and pypdf reads them back
    name = "Mezoterapia skóry głowy (Łódź) · Μεσοθεραπεία · Мезотерапия"
    goal = "gęstsze włosy, méně vypadávání"
    _, text = _text(consult_handout_pdf(_timeline(), protocol_name=name, goal=goal))
    for word in (
        "głowy",
        "Łódź",
        "Μεσοθεραπεία",
        "Мезотерапия",
        "gęstsze",
        "włosy",
        "méně",
        "vypadávání",
    ):
        assert word in text, word
