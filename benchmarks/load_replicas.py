"""Concurrent signed-in users over 1 and 2 replicas behind the shipped nginx config (issue #18 part 4).

One private PostgreSQL (tests/support/pg_server.py) holds the small seeded clinic
(tests/support/clinician_clinic.py); its images are in a directory shared by the replicas (the
object store is not what this measures). For each replica count (1, then 2) it starts that many
``streamlit run app.py`` replicas and Debian's nginx with ``deploy/nginx/candor.conf`` (only
addresses and paths changed, tests/support/nginx_proxy.py), then ``--users`` Chromium browser
contexts (one Chromium, Playwright's async API), each a separate user with its own cookie, so
nginx spreads them over the replicas by its sticky hash. Every user, at once:

1. opens the app through the proxy and signs in through the form (clinician or medical director,
   alternately);
2. ``--rounds`` times, clicks through the pages a clinician works in: Patients, Series review,
   Timelines (each click timed until the page's heading is there and Streamlit's script run has
   finished).

It prints, for 1 and 2 replicas side by side: users, page loads, errors (a timeout, a failed
sign-in or a Streamlit exception box on a page), page time median / p95 / max, sign-in p95,
wall time, and the replicas' peak resident memory (each ``streamlit`` process and its children,
sampled every 0.5 s from /proc). Browsing only: capturing photos and recording visits are not
driven (the photo worker would dominate a 2-core machine).

Loopback only, bounded: at most 50 users, 10 rounds, and ``--deadline`` seconds per replica count.
A real browser per user is heavy: on a 2-core machine shared with other work, measure a count the
machine holds and say so (see docs/deployment.md for what was run).

    .venv/bin/python benchmarks/load_replicas.py --users 8 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.deployment_sizing import rss_mb  # noqa: E402
from tests.e2e.helpers import (  # noqa: E402
    APP_IDLE,
    CHROMIUM,
    CHROMIUM_ARGS,
    E2E_PASSWORD,
    serve_app,
)
from tests.support.nginx_proxy import nginx_prefix, serve_nginx  # noqa: E402
from tests.support.pg_server import start_postgres  # noqa: E402

PAGES = ("Patients", "Series review", "Timelines")
ACCOUNTS = ("clinician@demo.candor", "director@demo.candor")
SEED = (
    "from pathlib import Path; from tests.support.clinician_clinic import seed_clinician_clinic; "
    "seed_clinician_clinic(Path({data!r}))"
)


@dataclass
class Run:
    replicas: int
    users: int
    page_s: list[float] = field(default_factory=list)
    sign_in_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    peak_rss_mb: float = 0.0
    per_replica_peak_mb: list[float] = field(default_factory=list)
    users_per_replica: list[int] = field(default_factory=list)


def p95(values: list[float]) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


async def _user(browser: Any, base: str, n: int, rounds: int, run: Run, timeout_ms: float) -> None:
    context = await browser.new_context(
        ignore_https_errors=True, viewport={"width": 1280, "height": 1000}
    )
    context.set_default_timeout(timeout_ms)
    page = await context.new_page()
    try:
        started = time.perf_counter()
        await page.goto(base)
        await page.get_by_role("textbox", name="Email").fill(ACCOUNTS[n % len(ACCOUNTS)])
        await page.get_by_role("textbox", name="Password").fill(E2E_PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_role("button", name="Sign out").wait_for()
        run.sign_in_s.append(time.perf_counter() - started)
        for _ in range(rounds):
            for title in PAGES:
                t0 = time.perf_counter()
                await (
                    page.get_by_test_id("stSidebarNav")
                    .get_by_role("link", name=title, exact=True)
                    .click()
                )
                await page.get_by_role("heading", name=title).first.wait_for()
                await page.locator(APP_IDLE).wait_for()
                run.page_s.append(time.perf_counter() - t0)
                if await page.get_by_test_id("stException").count():
                    run.errors.append(f"user {n}: exception shown on {title}")
    except Exception as exc:  # a timeout or a broken page: counted, the others go on
        run.errors.append(f"user {n}: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
    finally:
        await context.close()


async def _drive(
    base: str, users: int, rounds: int, run: Run, deadline_s: float, ramp_s: float
) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:

            async def staggered(n: int) -> None:
                await asyncio.sleep(ramp_s * n)  # a ramp, not one thundering instant
                await _user(browser, base, n, rounds, run, timeout_ms=120_000)

            tasks = [asyncio.create_task(staggered(n)) for n in range(users)]
            done, pending = await asyncio.wait(tasks, timeout=deadline_s)
            for task in pending:
                task.cancel()
                run.errors.append("a user did not finish before the deadline")
        finally:
            await browser.close()


def _sample(pids: list[int], peaks: list[float], total: list[float], stop: threading.Event) -> None:
    while not stop.wait(0.5):
        now = [rss_mb(p) for p in pids]
        for i, value in enumerate(now):
            peaks[i] = max(peaks[i], value)
        total[0] = max(total[0], sum(now))


def _replica_pids(ports: list[int]) -> list[int]:
    out = []
    for port in ports:
        found = subprocess.run(
            ["pgrep", "-f", "--", f"server.port {port}"], capture_output=True, text=True
        ).stdout.split()
        out.append(int(found[0]))
    return out


def measure(
    env: dict[str, str],
    work: Path,
    replicas: int,
    users: int,
    rounds: int,
    deadline_s: float,
    ramp_s: float,
) -> Run:
    run = Run(replicas=replicas, users=users)
    with ExitStack() as stack:
        urls = [
            stack.enter_context(serve_app(env, work / f"replica-{replicas}-{i}.log"))
            for i in range(replicas)
        ]
        ports = [int(u.rsplit(":", 1)[1]) for u in urls]
        upstream = ports if replicas == 2 else [ports[0], ports[0]]  # 2nd line dropped below
        prefix = nginx_prefix(work / f"nginx-{replicas}", upstream)
        # the test helper's nginx.conf allows 256 connections; a browser loading Streamlit opens
        # ~30 upstream connections at once over one HTTP/2 connection, so give it what a
        # production nginx.conf needs (docs/deployment.md)
        prefix.conf.write_text(
            prefix.conf.read_text().replace("worker_connections 256", "worker_connections 4096")
        )
        if replicas == 1:  # one server line: nginx never marks a group's only server down
            upstream_conf = prefix.conf.parent / "conf.d" / "upstream.conf"
            lines = upstream_conf.read_text().splitlines(keepends=True)
            servers = [i for i, line in enumerate(lines) if line.strip().startswith("server ")]
            del lines[servers[1]]
            upstream_conf.write_text("".join(lines))
        proxy = stack.enter_context(serve_nginx(prefix))
        base = f"https://127.0.0.1:{proxy.https}"
        pids = _replica_pids(ports)
        peaks, total = [0.0] * len(pids), [0.0]
        stop = threading.Event()
        sampler = threading.Thread(target=_sample, args=(pids, peaks, total, stop), daemon=True)
        sampler.start()
        t0 = time.perf_counter()
        asyncio.run(_drive(base, users, rounds, run, deadline_s, ramp_s))
        run.wall_s = time.perf_counter() - t0
        stop.set()
        sampler.join()
        run.peak_rss_mb, run.per_replica_peak_mb = total[0], peaks
        streams = [
            str(line.get("upstream", ""))
            for line in proxy.log_lines()
            if str(line.get("path", "")).endswith("/_stcore/stream")
        ]  # one websocket per browser session (logged when it closes)
        run.users_per_replica = [
            sum(1 for u in streams if u.endswith(f":{port}")) for port in ports
        ]
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--deadline", type=float, default=900.0, help="seconds per replica count")
    parser.add_argument("--ramp", type=float, default=1.0, help="seconds between users' starts")
    parser.add_argument("--keep", type=Path, default=None, help="keep the servers' logs here")
    args = parser.parse_args()
    if not 1 <= args.users <= 50 or not 1 <= args.rounds <= 10:
        parser.error("--users must be 1..50 and --rounds 1..10")
    if not CHROMIUM.is_file():
        print(f"{CHROMIUM} is not installed; nothing measured")
        return 1
    url, stop_pg = start_postgres()
    try:
        with tempfile.TemporaryDirectory(prefix="candor-load-") as tmp:
            work = Path(tmp)
            data = work / "data"
            data.mkdir()
            env = {k: v for k, v in os.environ.items() if not k.startswith("CANDOR_")}
            env.update(
                CANDOR_DATA_DIR=str(data),
                CANDOR_DATABASE_URL=url,
                CANDOR_DEMO_PASSWORD=E2E_PASSWORD,
                CANDOR_TRUSTED_PROXY_HEADER="X-Forwarded-For",
                PYTHONPATH=str(ROOT),
            )
            subprocess.run(
                [sys.executable, "-c", SEED.format(data=str(data))],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
                timeout=300,
            )
            runs = [
                measure(env, work, n, args.users, args.rounds, args.deadline, args.ramp)
                for n in (1, 2)
            ]
            if args.keep is not None:  # the replicas' and nginx's logs, for a look afterwards
                args.keep.mkdir(parents=True, exist_ok=True)
                for log in work.rglob("*.log"):
                    (args.keep / f"{log.parent.name}-{log.name}").write_bytes(log.read_bytes())
    finally:
        stop_pg()
    load = os.getloadavg()
    print(
        f"\n{args.users} concurrent users x {args.rounds} rounds of {len(PAGES)} pages, "
        f"PostgreSQL, nginx (shipped config), Chromium contexts; {os.cpu_count()} cores, "
        f"load average after: {load[0]:.1f}\n"
    )
    rows = [
        ("replicas", lambda r: f"{r.replicas}"),
        ("users", lambda r: f"{r.users}"),
        ("page loads", lambda r: f"{len(r.page_s)}"),
        ("errors", lambda r: f"{len(r.errors)}"),
        ("page median s", lambda r: f"{statistics.median(r.page_s):.2f}" if r.page_s else "-"),
        ("page p95 s", lambda r: f"{p95(r.page_s):.2f}"),
        ("page max s", lambda r: f"{max(r.page_s):.2f}" if r.page_s else "-"),
        ("sign-in p95 s", lambda r: f"{p95(r.sign_in_s):.2f}"),
        ("wall s", lambda r: f"{r.wall_s:.1f}"),
        ("peak RSS MB, all", lambda r: f"{r.peak_rss_mb:.0f}"),
        (
            "peak RSS MB, each",
            lambda r: " / ".join(f"{m:.0f}" for m in r.per_replica_peak_mb),
        ),
        (
            "sessions per replica",
            lambda r: " / ".join(str(n) for n in r.users_per_replica),
        ),
    ]
    print(
        f"{'':22}"
        + "".join(f"{'1 replica' if r.replicas == 1 else '2 replicas':>16}" for r in runs)
    )
    for name, cell in rows:
        print(f"{name:22}" + "".join(f"{cell(r):>16}" for r in runs))
    for r in runs:
        for e in r.errors[:10]:
            print(f"  [{r.replicas} replica(s)] {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
