"""Warm the browser's chart library while the signed-in user is on a page without charts.

Streamlit loads each element's code the first time a page shows that element; the chart library
(plotly.js, about 4.7 MB of JavaScript) is by far the largest, and the first page with a chart
(Series review, Protocols, Timelines) paid for fetching and compiling it on the click, about a
second on this machine. :func:`chart_library` asks the browser to import that same module when it
is idle (``requestIdleCallback``), once per browser tab, so the click that opens a chart page
finds it in the module map. Nothing is sent to the server and no patient data is involved.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import streamlit as st


@cache
def _chart_chunk() -> str | None:
    """The file name of Streamlit's chart module in this installation (it carries a build hash)."""
    found = sorted((Path(st.__file__).parent / "static" / "static" / "js").glob("PlotlyChart.*.js"))
    return found[0].name if found else None


def script(chunk: str) -> str:
    """The inline script: resolve ``chunk`` beside the app's own main module and import it when
    the browser is idle; a failed import is left for Streamlit's own loader to retry."""
    return f"""<script>
(() => {{
  if (window.__candorChartsWarm) return;
  window.__candorChartsWarm = true;
  const main = [...document.scripts].map(s => s.src)
    .find(src => /\\/static\\/js\\/index\\.[^/]*\\.js/.test(src));
  if (!main) return;
  const url = main.replace(/index\\.[^/]*\\.js.*$/, {chunk!r});
  const idle = window.requestIdleCallback || (f => setTimeout(f, 300));
  idle(() => import(url).catch(() => {{ window.__candorChartsWarm = false; }}), {{timeout: 2000}});
}})();
</script>"""


def chart_library() -> None:
    """Emit the prefetch (an empty element; the script runs once per browser tab)."""
    chunk = _chart_chunk()
    if chunk is not None:
        st.html(script(chunk), unsafe_allow_javascript=True)
