"""The four main pages in a real browser (Debian's Chromium) at demo size and at clinic size.

Serves ``streamlit run app.py`` over each clinic that ``benchmarks/page_speed.py`` seeded
(``--dir``/<N>/, SQLite; ``--postgres`` for the PostgreSQL ones), signs in as the medical director,
and for each page clicks its link in the sidebar and waits for the page's content: the last
section it draws, every chart on screen painted (its SVG drawn), every image on screen loaded, no
loading skeleton left and the run finished. It prints the seconds from the click to that point, ``--repeat`` times per page (each
time in a fresh browser session, so nothing the session cached helps), median and max, small
clinic beside large. Protocols opens on its Outcomes section; opening each other section (a tab
click: that section is read and drawn then) is timed too, as ``Protocols > <section>``.

    .venv/bin/python benchmarks/browser_speed.py             # after page_speed.py seeded them
    .venv/bin/python benchmarks/browser_speed.py --postgres
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.helpers import CHROMIUM, CHROMIUM_ARGS, serve_app, sign_in  # noqa: E402

#: Page link -> what shows its content is there: a text of the last part the page draws, or
#: ``"chart"`` for its first chart.
PAGES = (
    ("Patients", "patient(s),"),
    ("Series review", "chart"),
    ("Protocols", "unblinded and blinded"),
    ("Timelines", "Take-home"),
)
#: Protocols' other sections: tab -> the heading it draws.
SECTIONS = (
    ("Safety", "Reactions and adverse events"),
    ("Photo compliance", "Photo compliance by operator"),
    ("Export", "Export"),
)
SHOTS = ROOT / "benchmarks" / "out" / "browser_speed"


def _content_shown(page: object, marker: str) -> None:
    if marker == "chart":
        page.get_by_test_id("stPlotlyChart").first.wait_for(timeout=120_000)  # type: ignore[attr-defined]
    else:
        page.get_by_text(marker, exact=False).first.wait_for(timeout=120_000)  # type: ignore[attr-defined]
    page.get_by_test_id("stStatusWidget").wait_for(state="hidden", timeout=120_000)  # type: ignore[attr-defined]
    page.wait_for_function(  # type: ignore[attr-defined]
        """() => {
            const shown = sel => [...document.querySelectorAll(sel)]
                .filter(e => e.getClientRects().length && e.checkVisibility());
            return !document.querySelector('[data-testid="stSkeleton"]')
                && shown('.js-plotly-plot').every(p => p.querySelector('.main-svg'))
                && shown('[data-testid="stImage"] img').every(i => i.complete && i.naturalWidth);
        }""",
        timeout=120_000,
    )


def time_clinic(
    env: dict[str, str], *, repeat: int, password: str, label: str
) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    out: dict[str, list[float]] = {name: [] for name, _ in PAGES}
    out.update({f"Protocols > {tab}": [] for tab, _ in SECTIONS})
    SHOTS.mkdir(parents=True, exist_ok=True)
    with serve_app(env, SHOTS / f"streamlit-{label}.log") as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for i in range(repeat + 1):  # the first round warms the server and is not counted
                context = browser.new_context(viewport={"width": 1400, "height": 2400})
                page = context.new_page()
                sign_in(page, url, "director@demo.candor", password=password, timeout_ms=120_000)
                _content_shown(page, "Sign out")
                for name, marker in PAGES:
                    t = time.perf_counter()
                    page.get_by_test_id("stSidebarNav").get_by_role("link", name=name).click()
                    _content_shown(page, marker)
                    if i:
                        out[name].append(time.perf_counter() - t)
                    if i == repeat:
                        page.screenshot(path=SHOTS / f"{label}-{name.replace(' ', '_')}.png")
                    if name != "Protocols":
                        continue
                    for tab, heading in SECTIONS:
                        t = time.perf_counter()
                        page.get_by_role("tab", name=tab, exact=True).click()
                        page.get_by_role("heading", name=heading).wait_for(timeout=120_000)
                        _content_shown(page, heading)
                        if i:
                            out[f"Protocols > {tab}"].append(time.perf_counter() - t)
                    page.get_by_role("tab", name="Outcomes", exact=True).click()
                    _content_shown(page, "unblinded and blinded")
                context.close()
        finally:
            browser.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--small", type=int, default=64)
    ap.add_argument("--large", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--postgres", action="store_true")
    ap.add_argument("--dir", type=Path, default=ROOT / "benchmarks" / "out" / "page_speed")
    args = ap.parse_args()
    password = os.environ.get("CANDOR_DEMO_PASSWORD", "candor-demo")
    stop = None
    urls: dict[int, str] = {}
    if args.postgres:
        from tests.support.pg_server import clinic_databases

        urls, stop = clinic_databases(str(args.dir / "pg"), (args.small, args.large))
    results = {}
    try:
        for n in (args.small, args.large):
            d = args.dir / (f"{n}-pg" if args.postgres else str(n))
            if not (d / "seeded.txt").exists():
                raise SystemExit(f"{d} has no seeded clinic: run benchmarks/page_speed.py first")
            env = {k: v for k, v in os.environ.items() if not k.startswith("CANDOR_")}
            env.update(CANDOR_DATA_DIR=str(d), PYTHONPATH=str(ROOT))
            if args.postgres:
                env["CANDOR_DATABASE_URL"] = urls[n]
            subprocess.run(
                [sys.executable, "-m", "analysis", "init-db"], cwd=ROOT, env=env, check=True
            )  # a clinic seeded by an older revision: migrate first
            results[n] = time_clinic(
                env,
                repeat=args.repeat,
                password=password,
                label=f"{n}{'-pg' if args.postgres else ''}",
            )
    finally:
        if stop is not None:
            stop()
    print(
        f"\nChromium, {'PostgreSQL' if args.postgres else 'SQLite'}; seconds from the click to "
        f"the page's content, {args.repeat} fresh sessions each (median / max)"
    )
    print(f"{'page':<28} {args.small:>14} {args.large:>14}")
    for name in results[args.small]:
        a, b = results[args.small][name], results[args.large][name]
        print(
            f"{name:<28} {statistics.median(a):>6.2f} / {max(a):<5.2f} "
            f"{statistics.median(b):>6.2f} / {max(b):<5.2f}"
        )
    print(f"screenshots: {SHOTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
