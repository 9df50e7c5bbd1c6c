"""Concurrent signed-in users over 1 and 2 replicas behind the shipped nginx config (issue #18 part 4).

One private PostgreSQL (tests/support/pg_server.py) holds the small seeded clinic
(tests/support/clinician_clinic.py); its images are in a directory shared by the replicas (the
object store is not what this measures). For each replica count (1, then 2) it starts that many
``streamlit run app.py`` replicas and Debian's nginx with ``deploy/nginx/candor.conf`` (only
addresses and paths changed, tests/support/nginx_proxy.py), then ``--users`` users at once, each
its own browser session with its own cookies, so nginx spreads them over the replicas by its
sticky hash.

Users (``--client protocol``, the default) speak Streamlit's websocket protocol the way the
browser's frontend does (tests/support/streamlit_ws.py: XSRF cookie, ``rerun_script`` with widget
values, uploads by ``file_urls_request`` + HTTP PUT), so 50 of them fit beside two replicas on a
2-core machine; nothing is rendered, so a time here is the server's: from the click's message
leaving the client to the end of the script run it caused, through TLS and nginx. Every user:

1. opens the app and signs in through the form with its own clinician account (all from the
   proxy's one address, as a clinic behind one NAT);
2. ``--rounds`` times, with a think time of ``--think`` seconds (uniform 0.5-1.5x, seeded) between
   steps: opens Patients, Series review and Timelines; on Capture photos finds patient P-0001,
   uploads a ``--photo-px`` square JPEG of its own (scikit-image's astronaut, one corner pixel
   block marking user and round so no two uploads are the same file), waits for the photo checks
   and saves the photo into the series' latest session; on Record visit fills the Confounders
   form and saves it.

Each save is checked by what the page says back ("Saved …", "Confounder saved …"); an error is a
timeout, a closed websocket, a Streamlit exception on a page, a missing heading or a missing
confirmation. ``--client browser`` keeps the older driver: Chromium contexts (one Chromium,
Playwright's async API) clicking the three browsing pages only, which a 2-core machine holds at
about 8 users.

It prints, for 1 and 2 replicas side by side: page loads, errors, page time median / p95 / max
(all pages, then each), the capture and record steps' p95, sign-in p95, wall time, the replicas'
peak resident memory (each ``streamlit`` process and its children, photo workers included,
sampled every 0.5 s from /proc; a sum of RSS, so pages shared after fork count twice) and the
most photo-analysis children alive at once (``CANDOR_PHOTO_WORKERS`` caps those running jobs,
the warm standby comes on top; ``--photo-workers`` sets it), the photos and confounders the
database gained, and sessions per replica (from nginx's log).

Loopback only, bounded: at most 50 users, 10 rounds, and ``--deadline`` seconds per replica count.

    .venv/bin/python benchmarks/load_replicas.py --users 50 --rounds 2
    .venv/bin/python benchmarks/load_replicas.py --replicas 1 --photo-workers 64   # uncapped
    .venv/bin/python benchmarks/load_replicas.py --client browser --users 8 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import resource
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
from tests.support.streamlit_ws import ProtocolError, ScriptRun, StreamlitSession  # noqa: E402

PAGES = ("Patients", "Series review", "Timelines")
ACCOUNTS = ("clinician@demo.candor", "director@demo.candor")  # the browser driver alternates
MAX_USERS = 50


def clinician(n: int) -> str:
    """User ``n``'s own clinician account (seeded): one person, one account, as in a clinic."""
    return f"clinician{n:02d}@load.candor"


PATIENT = "P-0001"  # the seeded patient with photo consent and a frontal baseline
UPLOADER = "Photos (JPEG, PNG or HEIC)"
STEPS = ("upload to verdict", "save photo", "save confounder")
SEED = (
    "from pathlib import Path; from tests.support.clinician_clinic import seed_clinician_clinic; "
    "seed_clinician_clinic(Path({data!r})); "
    "from analysis.auth.accounts import hash_password; from analysis.store import db; "
    "from analysis.store.models import User; h = hash_password({password!r}); "
    "s = db.session_scope().__enter__(); "
    "s.add_all([User(email=e, display_name=e, role='clinician', password_hash=h) for e in {emails!r}]); "
    "s.commit()"
)
COUNTS = (
    "import json; from sqlalchemy import func, select; from analysis.store import db; "
    "from analysis.store.models import Confounder, Photo; "
    "s = db.session_scope().__enter__(); "
    "print(json.dumps([s.scalar(select(func.count()).select_from(m)) for m in (Photo, Confounder)]))"
)


@dataclass
class Run:
    replicas: int
    users: int
    page_s: list[float] = field(default_factory=list)
    page_by_title: dict[str, list[float]] = field(default_factory=dict)  # protocol client only
    sign_in_s: list[float] = field(default_factory=list)
    step_s: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STEPS})
    errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    peak_rss_mb: float = 0.0
    per_replica_peak_mb: list[float] = field(default_factory=list)
    per_replica_peak_children: list[int] = field(default_factory=list)  # photo children at once
    users_per_replica: list[int] = field(default_factory=list)
    written: tuple[int, int] = (0, 0)  # photos, confounders the database gained
    client_cpu_s: float = 0.0


def p95(values: list[float]) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


# ---- users speaking Streamlit's protocol (the default) -------------------------------------------


def photos(users: int, rounds: int, px: int) -> dict[tuple[int, int], bytes]:
    """One distinct JPEG per user and round: the astronaut at ``px`` square, its top-left 4x4
    block set to the (user, round) number (invisible to the checks, a different file to the
    store)."""
    from PIL import Image

    from tests.support.clinician_clinic import astronaut_jpeg

    base = Image.open(io.BytesIO(astronaut_jpeg(size=px))).convert("RGB")
    out = {}
    for n in range(users):
        for r in range(rounds):
            image = base.copy()
            k = n * rounds + r
            image.paste((k % 256, (k // 256) % 256, 7), (0, 0, 4, 4))
            buf = io.BytesIO()
            image.save(buf, format="JPEG", quality=90)
            out[(n, r)] = buf.getvalue()
    return out


class Think:
    """Seeded pauses between a user's steps (uniform 0.5-1.5 x ``mean_s``)."""

    def __init__(self, mean_s: float, seed: int) -> None:
        self.mean_s, self.rng = mean_s, random.Random(seed)

    async def __call__(self) -> None:
        if self.mean_s > 0:
            await asyncio.sleep(self.mean_s * self.rng.uniform(0.5, 1.5))


def _check_page(n: int, title: str, run: ScriptRun) -> str | None:
    if run.exceptions():
        return f"user {n}: exception on {title}: {run.exceptions()[0][:160]}"
    if title not in run.texts("heading"):
        return f"user {n}: {title} shows no heading {title!r}"
    return None


async def _protocol_user(
    base: str,
    n: int,
    rounds: int,
    run: Run,
    uploads: dict[tuple[int, int], bytes],
    think: Think,
    timeout_s: float,
) -> None:
    s = StreamlitSession(base, timeout_s=timeout_s)
    step = "opening the app"
    try:
        started = time.perf_counter()
        await s.open()
        step = "signing in"
        signed = await s.set(
            s.text("Email", clinician(n)), s.text("Password", E2E_PASSWORD), s.click("Sign in")
        )
        if not any(b.label == "Sign out" for b in signed.widgets("button")):
            raise ProtocolError(f"not signed in: {signed.texts('alert')[:1]}")
        run.sign_in_s.append(time.perf_counter() - started)
        for r in range(rounds):
            for title in (*PAGES, "Capture photos"):
                await think()
                step = f"opening {title}"
                page = await s.navigate(title)
                run.page_s.append(page.seconds)
                run.page_by_title.setdefault(title, []).append(page.seconds)
                if problem := _check_page(n, title, page):
                    run.errors.append(problem)
            step = "finding the patient"
            await s.set(s.text("Find a patient", PATIENT))
            await think()
            step = "uploading a photo"
            t0 = time.perf_counter()
            checked = await s.upload(UPLOADER, f"user{n}-round{r}.jpg", uploads[(n, r)])
            run.step_s["upload to verdict"].append(time.perf_counter() - t0)
            if "Analysed 1 photo(s)" not in checked.texts("progress"):
                raise ProtocolError(f"no verdict: {checked.texts('alert')[:1]}")
            await think()
            step = "saving the photo"
            saved = await s.set(s.click("Save photo"))
            run.step_s["save photo"].append(saved.seconds)
            if not saved.has_text(f"Saved user{n}-round{r}.jpg", kind="alert"):
                raise ProtocolError(f"photo not saved: {saved.texts('alert')[:2]}")
            await think()
            step = "opening Record visit"
            page = await s.navigate("Record visit")
            run.page_s.append(page.seconds)
            run.page_by_title.setdefault("Record visit", []).append(page.seconds)
            if problem := _check_page(n, "Record visit", page):
                run.errors.append(problem)
            await think()
            step = "saving a confounder"
            recorded = await s.set(
                s.choose("Confounder", "makeup at photo"),
                s.text("Details", f"load test, user {n}, round {r}"),
                s.click("Save confounder"),
            )
            run.step_s["save confounder"].append(recorded.seconds)
            if not recorded.has_text("Confounder saved", kind="alert"):
                raise ProtocolError(f"confounder not saved: {recorded.texts('alert')[:2]}")
    except Exception as exc:  # a timeout, a closed socket, a broken page: counted, the others go on
        text = str(exc).splitlines()[0][:160] if str(exc) else ""
        run.errors.append(f"user {n}, {step}: {type(exc).__name__}: {text}")
    finally:
        await s.close()


async def _drive_protocol(
    base: str,
    users: int,
    rounds: int,
    run: Run,
    deadline_s: float,
    ramp_s: float,
    think_s: float,
    uploads: dict[tuple[int, int], bytes],
) -> None:
    async def staggered(n: int) -> None:
        await asyncio.sleep(ramp_s * n)  # a ramp, not one thundering instant
        await _protocol_user(base, n, rounds, run, uploads, Think(think_s, n), timeout_s=180)

    await _gather_with_deadline([staggered(n) for n in range(users)], run, deadline_s)


async def _gather_with_deadline(coros: list[Any], run: Run, deadline_s: float) -> None:
    tasks = [asyncio.create_task(c) for c in coros]
    _, pending = await asyncio.wait(tasks, timeout=deadline_s)
    for task in pending:
        task.cancel()
        run.errors.append("a user did not finish before the deadline")
    if pending:
        await asyncio.wait(pending)


# ---- users in Chromium (--client browser: browsing only) -----------------------------------------


async def _browser_user(
    browser: Any, base: str, n: int, rounds: int, run: Run, timeout_ms: float
) -> None:
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


async def _drive_browser(
    base: str, users: int, rounds: int, run: Run, deadline_s: float, ramp_s: float
) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:

            async def staggered(n: int) -> None:
                await asyncio.sleep(ramp_s * n)
                await _browser_user(browser, base, n, rounds, run, timeout_ms=120_000)

            await _gather_with_deadline([staggered(n) for n in range(users)], run, deadline_s)
        finally:
            await browser.close()


# ---- servers, memory, the table ------------------------------------------------------------------


def photo_children(pid: int) -> int:
    """Photo-analysis children of the app process ``pid`` alive now, warm standby included.

    They are forked by multiprocessing's fork server (a child of the app) and share its command
    line, so they are the descendants whose command line names the fork server, less the server.
    """
    found, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            if b"multiprocessing.forkserver" in Path(f"/proc/{p}/cmdline").read_bytes():
                found += 1
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return max(0, found - 1)


def _sample(
    pids: list[int],
    peaks: list[float],
    children: list[int],
    total: list[float],
    stop: threading.Event,
) -> None:
    while not stop.wait(0.5):
        now = [rss_mb(p) for p in pids]
        for i, value in enumerate(now):
            peaks[i] = max(peaks[i], value)
            children[i] = max(children[i], photo_children(pids[i]))
        total[0] = max(total[0], sum(now))


def _replica_pids(ports: list[int]) -> list[int]:
    out = []
    for port in ports:
        found = subprocess.run(
            ["pgrep", "-f", "--", f"server.port {port}"], capture_output=True, text=True
        ).stdout.split()
        out.append(int(found[0]))
    return out


def _counts(env: dict[str, str]) -> tuple[int, int]:
    done = subprocess.run(
        [sys.executable, "-c", COUNTS],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    photos_n, confounders_n = json.loads(done.stdout)
    return int(photos_n), int(confounders_n)


def measure(env: dict[str, str], work: Path, replicas: int, args: argparse.Namespace) -> Run:
    run = Run(replicas=replicas, users=args.users)
    uploads = photos(args.users, args.rounds, args.photo_px) if args.client == "protocol" else {}
    before = _counts(env)
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
        peaks, children, total = [0.0] * len(pids), [0] * len(pids), [0.0]
        stop = threading.Event()
        sampler = threading.Thread(
            target=_sample, args=(pids, peaks, children, total, stop), daemon=True
        )
        sampler.start()
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        if args.client == "protocol":
            drive = _drive_protocol(
                base,
                args.users,
                args.rounds,
                run,
                args.deadline,
                args.ramp,
                args.think,
                uploads,
            )
        else:
            drive = _drive_browser(base, args.users, args.rounds, run, args.deadline, args.ramp)
        asyncio.run(drive)
        run.wall_s = time.perf_counter() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        run.client_cpu_s = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
        stop.set()
        sampler.join()
        run.peak_rss_mb, run.per_replica_peak_mb = total[0], peaks
        run.per_replica_peak_children = children
        streams = [
            str(line.get("upstream", ""))
            for line in proxy.log_lines()
            if str(line.get("path", "")).endswith("/_stcore/stream")
        ]  # one websocket per browser session (logged when it closes)
        run.users_per_replica = [
            sum(1 for u in streams if u.endswith(f":{port}")) for port in ports
        ]
    after = _counts(env)
    run.written = (after[0] - before[0], after[1] - before[1])
    return run


def _table(runs: list[Run], client: str) -> None:
    def median(values: list[float]) -> str:
        return f"{statistics.median(values):.2f}" if values else "-"

    rows: list[tuple[str, Any]] = [
        ("users", lambda r: f"{r.users}"),
        ("page loads", lambda r: f"{len(r.page_s)}"),
        ("errors", lambda r: f"{len(r.errors)}"),
        ("page median s", lambda r: median(r.page_s)),
        ("page p95 s", lambda r: f"{p95(r.page_s):.2f}"),
        ("page max s", lambda r: f"{max(r.page_s):.2f}" if r.page_s else "-"),
    ]
    if client == "protocol":
        for title in (*PAGES, "Capture photos", "Record visit"):
            rows.append(
                (
                    f"  {title} med/p95 s",
                    lambda r, t=title: f"{median(r.page_by_title.get(t, []))} / "
                    f"{p95(r.page_by_title.get(t, [])):.2f}",
                )
            )
        for name in STEPS:
            rows.append((f"{name} p95 s", lambda r, name=name: f"{p95(r.step_s[name]):.2f}"))
            rows.append((f"{name} median s", lambda r, name=name: median(r.step_s[name])))
        rows.append(("photos / confounders", lambda r: f"{r.written[0]} / {r.written[1]}"))
    rows += [
        ("sign-in p95 s", lambda r: f"{p95(r.sign_in_s):.2f}"),
        ("wall s", lambda r: f"{r.wall_s:.1f}"),
        ("peak RSS MB, all", lambda r: f"{r.peak_rss_mb:.0f}"),
        ("peak RSS MB, each", lambda r: " / ".join(f"{m:.0f}" for m in r.per_replica_peak_mb)),
        (
            "peak photo children, each",
            lambda r: " / ".join(str(n) for n in r.per_replica_peak_children),
        ),
        ("sessions per replica", lambda r: " / ".join(str(n) for n in r.users_per_replica)),
        ("client CPU s", lambda r: f"{r.client_cpu_s:.1f}"),
    ]
    print(
        f"{'':28}"
        + "".join(f"{'1 replica' if r.replicas == 1 else '2 replicas':>16}" for r in runs)
    )
    for name, cell in rows:
        print(f"{name:28}" + "".join(f"{cell(r):>16}" for r in runs))
    for r in runs:
        for e in r.errors[:10]:
            print(f"  [{r.replicas} replica(s)] {e}")
        if len(r.errors) > 10:
            print(f"  [{r.replicas} replica(s)] ... and {len(r.errors) - 10} more")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client", choices=("protocol", "browser"), default="protocol")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--think", type=float, default=2.0, help="mean seconds between steps")
    parser.add_argument("--photo-px", type=int, default=3024, help="side of the uploaded JPEGs")
    parser.add_argument("--deadline", type=float, default=900.0, help="seconds per replica count")
    parser.add_argument("--ramp", type=float, default=0.2, help="seconds between users' starts")
    parser.add_argument("--replicas", default="1,2", help="replica counts to measure, in order")
    parser.add_argument(
        "--photo-workers",
        type=int,
        default=None,
        help="CANDOR_PHOTO_WORKERS of each replica (default: the app's, its CPU count); "
        "a large number measures the uncapped worker",
    )
    parser.add_argument("--keep", type=Path, default=None, help="keep the servers' logs here")
    args = parser.parse_args()
    if not 1 <= args.users <= MAX_USERS or not 1 <= args.rounds <= 10:
        parser.error("--users must be 1..50 and --rounds 1..10")
    counts = [int(c) for c in args.replicas.split(",")]
    if not counts or any(c not in (1, 2) for c in counts):
        parser.error("--replicas is a list of 1 and 2")
    if args.client == "browser" and not CHROMIUM.is_file():
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
            if args.photo_workers is not None:
                env["CANDOR_PHOTO_WORKERS"] = str(args.photo_workers)
            subprocess.run(
                [
                    sys.executable,
                    "-c",
                    SEED.format(
                        data=str(data),
                        password=E2E_PASSWORD,
                        emails=[clinician(n) for n in range(MAX_USERS)],
                    ),
                ],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
                timeout=300,
            )
            runs = [measure(env, work, n, args) for n in counts]
            if args.keep is not None:  # the replicas' and nginx's logs, for a look afterwards
                args.keep.mkdir(parents=True, exist_ok=True)
                for log in work.rglob("*.log"):
                    (args.keep / f"{log.parent.name}-{log.name}").write_bytes(log.read_bytes())
    finally:
        stop_pg()
    load = os.getloadavg()
    what = (
        f"{len(PAGES) + 2} pages, an upload saved and a confounder recorded, think "
        f"{args.think:.1f} s, {args.photo_px} px JPEGs; protocol clients"
        if args.client == "protocol"
        else f"{len(PAGES)} pages; Chromium contexts"
    )
    print(
        f"\n{args.users} concurrent users x {args.rounds} rounds of {what}; PostgreSQL, nginx "
        f"(shipped config); {os.cpu_count()} cores, load average after: {load[0]:.1f}; "
        f"photo workers per replica: {args.photo_workers or 'the CPU count (default)'}\n"
    )
    _table(runs, args.client)
    return 0


if __name__ == "__main__":
    sys.exit(main())
