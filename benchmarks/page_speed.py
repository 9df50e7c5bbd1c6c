"""Page speed at demo size and at a real clinic's size (issue 11), side by side.

Seeds (or reuses) two clinics with the demo generator, ``--small`` and ``--large`` patients, in
``--dir``/<N>/ (SQLite) or, with ``--postgres``, in a private PostgreSQL server kept in
``--dir``/pg/ (one database per size; images in ``--dir``/<N>-pg/). Then, per size, in one child
process that plays the server:

1. **warm-up**: every page is rendered once in its own session (the imports and the database's
   file cache are warm, as in a server that has been up for a while);
2. **first render**: a *new* session (nothing cached in it) opens each page as the medical
   director (consult staff for Timelines), then ``--reruns`` reruns of the same session;
3. **loader**: the analytics loader ``load_frames`` against a naive reading of the same tables
   through ORM objects, in the same process.

It prints p50/p95 per page per size, the growth ratio large/small, the peak RSS of the process, and
the two loaders side by side.

    .venv/bin/python benchmarks/page_speed.py                  # 64 vs 10,000 patients, SQLite
    .venv/bin/python benchmarks/page_speed.py --postgres       # the same on PostgreSQL
    .venv/bin/python benchmarks/page_speed.py --large 2000     # quicker

Seeding 10,000 patients takes a few minutes the first time; later runs reuse what was seeded.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = (
    ("patients.py", "medical_director"),
    ("series_review.py", "medical_director"),
    ("protocols.py", "medical_director"),
    ("timelines.py", "consult_staff"),
)

CHILD = r"""
import json, os, resource, statistics, sys, time
sys.path.insert(0, ROOT)
from sqlalchemy import select
from streamlit.testing.v1 import AppTest
from analysis.store import db
from analysis.store.access import Actor
from analysis.store.models import User

db.upgrade()  # a clinic seeded by an older revision gets the current indexes


def open_page(page, role):
    with db.session_scope() as s:
        u = s.scalars(select(User).where(User.role == role)).first()
    at = AppTest.from_file(os.path.join(ROOT, "views", page), default_timeout=600)
    at.session_state["candor_actor"] = Actor(user_id=u.id, email=u.email, role=role)
    return at


for page, role in PAGES:  # warm-up, in sessions of their own
    open_page(page, role).run()
out = {}
for page, role in PAGES:
    at = open_page(page, role)
    t = time.perf_counter(); at.run(); first = time.perf_counter() - t
    assert not at.exception, at.exception
    times = []
    for _ in range(RERUNS):
        t = time.perf_counter(); at.run(); times.append(time.perf_counter() - t)
    times.sort()
    out[page] = (first, statistics.median(times), times[max(0, int(0.95 * len(times)) - 1)])

out["_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the pages' peak
from analysis.services.frames import load_frames
from analysis.store import models as m
with db.session_scope() as s:
    u = s.scalars(select(User).where(User.role == "medical_director")).first()
    actor = Actor(user_id=u.id, email=u.email, role="medical_director")
    t = time.perf_counter(); f = load_frames(s, actor); out["_load_frames"] = time.perf_counter() - t
    t = time.perf_counter()  # naive: every row of the same tables as ORM objects
    for model in (m.Patient, m.Series, m.Session, m.Treatment, m.EndpointMeasurement, m.Reaction,
                  m.Photo, m.Confounder):
        s.scalars(select(model)).all()
    out["_naive_orm"] = time.perf_counter() - t
print(json.dumps(out))
"""


def seed(env: dict[str, str], n: int, *, marker: Path) -> None:
    if marker.exists():
        return
    t0 = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "analysis", "demo", "--patients", str(n), "--if-empty"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    marker.write_text(f"{n} patients\n")
    print(f"clinic of {n} patients ready in {time.monotonic() - t0:.0f} s", flush=True)


def time_pages(env: dict[str, str], reruns: int) -> dict[str, list[float]]:
    code = f"ROOT = {str(ROOT)!r}\nPAGES = {PAGES!r}\nRERUNS = {reruns}\n" + CHILD
    res = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if res.returncode:
        raise SystemExit(f"timing the pages failed:\n{res.stderr[-3000:]}")
    timings: dict[str, list[float]] = json.loads(res.stdout.strip().splitlines()[-1])
    return timings  # page -> [first, p50, p95] seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--small", type=int, default=64)
    ap.add_argument("--large", type=int, default=10000)
    ap.add_argument("--reruns", type=int, default=10)
    ap.add_argument(
        "--postgres",
        action="store_true",
        help="seed and time on a private PostgreSQL server instead of SQLite",
    )
    ap.add_argument("--dir", type=Path, default=ROOT / "benchmarks" / "out" / "page_speed")
    args = ap.parse_args()
    stop = None
    if args.postgres:
        sys.path.insert(0, str(ROOT))
        from tests.support.pg_server import clinic_databases

        urls, stop = clinic_databases(str(args.dir / "pg"), (args.small, args.large))
    results: dict[int, dict[str, list[float]]] = {}
    try:
        for n in (args.small, args.large):
            d = args.dir / (f"{n}-pg" if args.postgres else str(n))
            d.mkdir(parents=True, exist_ok=True)
            env = {**os.environ, "CANDOR_DATA_DIR": str(d)}
            if args.postgres:
                env["CANDOR_DATABASE_URL"] = urls[n]
            seed(env, n, marker=d / "seeded.txt")
            results[n] = time_pages(env, args.reruns)
    finally:
        if stop is not None:
            stop()
    s, big = results[args.small], results[args.large]
    print(
        f"\n{'PostgreSQL' if args.postgres else 'SQLite'}; seconds; first = a new session's "
        "first render in a warm server"
    )
    print(
        f"{'page':<18} {'first ' + str(args.small):>12} {'p50':>7} {'p95':>7}   "
        f"{'first ' + str(args.large):>12} {'p50':>7} {'p95':>7}   growth first / p95"
    )
    for page, _role in PAGES:
        a, b = s[page], big[page]
        print(
            f"{page:<18} {a[0]:>12.2f} {a[1]:>7.2f} {a[2]:>7.2f}   {b[0]:>12.2f} {b[1]:>7.2f} "
            f"{b[2]:>7.2f}   {b[0] / a[0]:>5.1f}x / {b[2] / a[2]:.1f}x"
        )
    for n, r in ((args.small, s), (args.large, big)):
        print(
            f"{n} patients: load_frames {r['_load_frames']:.2f} s vs naive ORM read of the "
            f"same tables {r['_naive_orm']:.2f} s; peak RSS of the server process (pages) "
            f"{r['_rss_mb']:.0f} MB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
