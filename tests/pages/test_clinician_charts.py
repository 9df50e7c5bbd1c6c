"""The Series review figures (ui/charts.py) show what the review needs: the noise band, the expected
course, a marker where a comparison spans a confounder, and red flags on the timeline."""

from __future__ import annotations

from datetime import date

import pandas as pd

from ui.charts import endpoint_figure, timeline_figure


def _measurements() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "session_number": [1, 2, 3],
            "endpoint_code": ["score"] * 3,
            "value": [5.0, 4.0, 3.0],
            "baseline": [5.0] * 3,
            "change": [0.0, -1.0, -2.0],
            "improvement": [0.0, 1.0, 2.0],
            "noise_band": [0.8] * 3,
            "within_noise": [True, False, False],
            "expected_change": [float("nan"), -0.5, -1.0],
        }
    )


def test_endpoint_chart_has_noise_band_expected_course_and_confounder_marker() -> None:
    comparisons = pd.DataFrame(
        {
            "from_session": [1, 2],
            "to_session": [2, 3],
            "confounders": [[], ["retinoid"]],
            "spans_confounder": [False, True],
        }
    )
    fig = endpoint_figure(
        _measurements(), code="score", name="Score", unit="", comparisons=comparisons
    )
    names = [t.name for t in fig.data]
    assert names == [
        "Value",
        "Noise band (±0.8)",
        "Change",
        "Expected course",
        "Spans a confounder",
    ]
    band = fig.data[1]
    assert max(band.y) == 0.8 and min(band.y) == -0.8
    star = fig.data[4]
    assert list(star.x) == [3] and list(star.y) == [-2.0] and list(star.text) == ["retinoid"]


def test_endpoint_chart_without_confounders_or_course_draws_only_what_exists() -> None:
    m = _measurements().assign(expected_change=float("nan"), noise_band=float("nan"))
    fig = endpoint_figure(m, code="score", name="Score", unit="pts")
    assert [t.name for t in fig.data] == ["Value", "Change"]


def test_timeline_marks_red_flags_and_confounder_periods() -> None:
    sessions = pd.DataFrame(
        {
            "session_id": [1, 2],
            "number": [1, 2],
            "performed_on": [date(2026, 1, 5), date(2026, 2, 2)],
            "days_since_start": [0, 28],
            "operator": ["", ""],
        }
    )
    treatments = pd.DataFrame({"session_number": [1], "product": ["HA"], "expired_at_use": [True]})
    reactions = pd.DataFrame(
        {
            "session_number": [2],
            "kind": ["adverse"],
            "term": ["blanching"],
            "severity": ["severe"],
            "onset_day": [1],
            "duration_days": [None],
            "resolved": [False],
            "red_flag": [True],
            "escalation": ["called"],
        }
    )
    confounders = pd.DataFrame(
        {
            "kind": ["hair_dye"],
            "started_on": [date(2026, 1, 20)],
            "ended_on": [None],
            "details": [""],
        }
    )
    fig = timeline_figure(sessions, treatments, reactions, confounders)
    by_name = {t.name: t for t in fig.data}
    reaction = by_name["Reaction / AE"]
    assert reaction.marker.symbol == ("x",) and "RED FLAG" in reaction.text[0]
    assert pd.Timestamp(reaction.x[0]) == pd.Timestamp(2026, 2, 3)  # onset day 1
    assert by_name["Treatment"].marker.color == ("#c62828",)  # expired lot in red
    bar = by_name["hair_dye"]
    assert pd.Timestamp(bar.x[0]) == pd.Timestamp(2026, 1, 20)
    assert pd.Timestamp(bar.x[1]) > pd.Timestamp(2026, 2, 2)  # ongoing: drawn past the last visit
