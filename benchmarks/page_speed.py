"""Page speed at demo size and at a real clinic's size (issue 11), side by side.

Seeds (or reuses) two clinics with the demo generator, ``--small`` and ``--large`` patients, in
``--dir``/<N>/, then opens each page under Streamlit's AppTest as the medical director (consult
staff for Timelines): the first render, then ``--reruns`` reruns, and prints p50/p95 per page per
size, the growth ratio large/small, and the process's peak RSS. The session's own caches work as
in a browser (a rerun reuses what the page keeps per session).

    .venv/bin/python benchmarks/page_speed.py                  # 64 vs 10,000 patients, SQLite
    .venv/bin/python benchmarks/page_speed.py --large 2000     # quicker
    CANDOR_DATABASE_URL=postgresql+psycopg://... (one size per database: pass --only large)

Seeding 10,000 patients takes a few minutes the first time; later runs reuse the directory.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = (("patients.py", "medical_director"), ("series_review.py", "medical_director"),
         ("protocols.py", "medical_director"), ("timelines.py", "consult_staff"))


def seed(dir_: Path, n: int) -> None:
    if (dir_ / "candor.sqlite3").exists() and "CANDOR_DATABASE_URL" not in os.environ:
        return
    dir_.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "analysis", "demo", "--patients", str(n), "--if-empty"],
                   cwd=ROOT, env={**os.environ, "CANDOR_DATA_DIR": str(dir_)}, check=True)
    print(f"seeded {n} patients in {time.monotonic() - t0:.0f} s")


def time_pages(dir_: Path, reruns: int) -> dict[str, tuple[float, float, float]]:
    """Per page: (first render s, rerun p50 s, rerun p95 s), in a child process per size."""
    code = f"""
import json, os, statistics, sys, time
sys.path.insert(0, {str(ROOT)!r})
from sqlalchemy import select
from streamlit.testing.v1 import AppTest
from analysis.store import db
from analysis.store.access import Actor
from analysis.store.models import User
out = {{}}
for page, role in {PAGES!r}:
    with db.session_scope() as s:
        u = s.scalars(select(User).where(User.role == role)).first()
    at = AppTest.from_file(os.path.join({str(ROOT)!r}, "pages", page), default_timeout=600)
    at.session_state["candor_actor"] = Actor(user_id=u.id, email=u.email, role=role)
    t = time.perf_counter(); at.run(); first = time.perf_counter() - t
    assert not at.exception, at.exception
    times = []
    for _ in range({reruns}):
        t = time.perf_counter(); at.run(); times.append(time.perf_counter() - t)
    times.sort()
    out[page] = (first, statistics.median(times), times[max(0, int(0.95 * len(times)) - 1)])
import resource
out["_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""
    env = {**os.environ, "CANDOR_DATA_DIR": str(dir_)}
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True)
    if res.returncode:
        raise SystemExit(f"timing the pages failed:\n{res.stderr[-3000:]}")
    import json

    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--small", type=int, default=64)
    ap.add_argument("--large", type=int, default=10000)
    ap.add_argument("--reruns", type=int, default=10)
    ap.add_argument("--dir", type=Path, default=ROOT / "benchmarks" / "out" / "page_speed")
    args = ap.parse_args()
    results = {}
    for n in (args.small, args.large):
        d = args.dir / str(n)
        seed(d, n)
        results[n] = time_pages(d, args.reruns)
    s, l = results[args.small], results[args.large]
    print(f"\n{'page':<18} {'first ' + str(args.small):>12} {'p50':>7} {'p95':>7}   "
          f"{'first ' + str(args.large):>12} {'p50':>7} {'p95':>7}   growth p95")
    for page, _role in PAGES:
        a, b = s[page], l[page]
        print(f"{page:<18} {a[0]:>12.2f} {a[1]:>7.2f} {a[2]:>7.2f}   {b[0]:>12.2f} {b[1]:>7.2f} "
              f"{b[2]:>7.2f}   {b[2] / a[2]:>6.1f}x")
    print(f"peak RSS of the page process: {s['_rss_mb']:.0f} MB ({args.small} patients), "
          f"{l['_rss_mb']:.0f} MB ({args.large} patients)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
