"""Protocol charts: no plotly template on screen (Streamlit's theme styles them, and a template costs
~12 ms and ~6 kB per figure), a readable one in the exported HTML, without changing the shown one."""

from __future__ import annotations

import json

import pandas as pd

from ui import insight_charts as charts


def _figure():
    df = pd.DataFrame(
        {
            "x": [1, 2, 3],
            "median": [1.0, 2.0, 3.0],
            "q1": [0.5, 1.5, 2.5],
            "q3": [1.5, 2.5, 3.5],
            "n": [5, 5, 5],
            "insufficient": [False, False, False],
        }
    )
    return charts.median_iqr_figure(
        df, x="x", x_title="Session", y_title="Change", title="Median change"
    )


def test_figures_carry_no_template_and_exports_get_one() -> None:
    fig = _figure()
    shown = json.loads(fig.to_json())["layout"].get("template", {})
    assert shown == {} or shown.get("layout", {}) == {}, "on screen the figure carries no styling"
    html = charts.charts_html([("Median change", fig)], title="Protocols").decode()
    assert '"template":{"data"' in html.replace(" ", "") and "#E5ECF6" not in html  # plotly_white
    assert json.loads(fig.to_json())["layout"].get("template", {}) == shown  # the copy was styled
