"""Photos measured per second by the job queue's workers, and the PostgreSQL bytes per photo
(issue #18, sizing for docs/deployment.md).

1. Starts a private PostgreSQL (tests/support/pg_server.py) and seeds the demo clinic into it
   (``python -m analysis demo --patients N``: real rendered and measured photos, images in a local
   directory). Reports ``pg_total_relation_size`` (table, indexes, TOAST) per row of ``photos``,
   ``audit_events`` and ``jobs`` -> MB per 100k photos on PostgreSQL.
2. Queues ``--photos`` photo-measurement jobs (``analysis.services.jobs.enqueue_photo_measurements``
   as the demo clinician) and drains them with 1, then 2 ``python -m analysis worker --drain``
   processes at once (each measures in its sandboxed analysis child). Beside them, in the same run,
   the naive baseline: the same photos read and measured one after another in this process
   (``analysis.services.capture.measure_bytes``, no queue, no database write of the result).
   Prints photos per second for each and the peak resident memory of a worker (with its child).

Bounded: at most 64 patients and 400 photos; loopback only (a unix-socket PostgreSQL).

    .venv/bin/python benchmarks/worker_throughput.py --patients 16 --photos 60
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.deployment_sizing import rss_mb  # noqa: E402
from tests.support.pg_server import start_postgres  # noqa: E402

PASSWORD = "throughput-password-not-secret"


def _drain(env: dict[str, str], workers: int) -> tuple[float, float]:
    """Seconds for ``workers`` worker processes to drain the queue; peak RSS of one, MB."""
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "analysis", "worker", "--drain", "--id", f"bench-{i}"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in range(workers)
    ]
    peak = [0.0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.3):
            peak[0] = max(peak[0], *(rss_mb(p.pid) for p in procs))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    for p in procs:
        p.wait(timeout=3600)
    elapsed = time.perf_counter() - t0
    stop.set()
    sampler.join()
    return elapsed, peak[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=16)
    parser.add_argument("--photos", type=int, default=60)
    args = parser.parse_args()
    if not 4 <= args.patients <= 64 or not 4 <= args.photos <= 400:
        parser.error("--patients 4..64, --photos 4..400")
    url, stop_pg = start_postgres()
    tmp = Path(tempfile.mkdtemp(prefix="candor-throughput-"))
    try:
        data = tmp / "data"
        data.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CANDOR_")}
        env.update(
            CANDOR_DATA_DIR=str(data),
            CANDOR_DATABASE_URL=url,
            CANDOR_DEMO_PASSWORD=PASSWORD,
            PYTHONPATH=str(ROOT),
        )
        os.environ.update(env)  # this process reads the same clinic (baseline, enqueue)
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "analysis", "demo", "--patients", str(args.patients)],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            timeout=1800,
        )
        print(
            f"demo clinic of {args.patients} patients seeded into PostgreSQL in "
            f"{time.perf_counter() - t0:.0f} s"
        )

        from sqlalchemy import select, text

        from analysis.auth.accounts import actor_for
        from analysis.services import capture
        from analysis.services import jobs as job_service
        from analysis.store import db
        from analysis.store.images import ImageStore
        from analysis.store.models import Photo, User

        engine = db.get_engine(url)
        with db.session_scope(engine) as s:
            user = s.scalars(select(User).where(User.role == "clinician")).first()
            assert user is not None
            clinician = actor_for(user)
            photos = list(s.scalars(select(Photo).order_by(Photo.id).limit(args.photos)))
            photo_ids = [p.id for p in photos]
            sample = [(p.sha256, p.view) for p in photos]
        with db.session_scope(engine) as s:
            job_service.enqueue_photo_measurements(s, clinician, photo_ids=photo_ids)

        def sizes() -> dict[str, tuple[int, int]]:
            out = {}
            with engine.connect() as c:
                for table in ("photos", "audit_events", "jobs"):
                    total = c.execute(text(f"SELECT pg_total_relation_size('{table}')")).scalar()
                    rows = c.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar()
                    out[table] = (int(total or 0), int(rows or 0))
            return out

        store = ImageStore(data / "images")
        t0 = time.perf_counter()
        ok = 0
        for sha, view in sample:
            ok += capture.measure_bytes(store.get(sha), view=view).ok
        inline_s = time.perf_counter() - t0
        runs = []
        for workers in (1, 2):
            if workers == 2:  # the same photos again
                with db.session_scope(engine) as s:
                    job_service.enqueue_photo_measurements(s, clinician, photo_ids=photo_ids)
            elapsed, peak = _drain(env, workers)
            runs.append((workers, elapsed, peak))
        with engine.connect() as c:
            states = dict(c.execute(text("SELECT state, COUNT(*) FROM jobs GROUP BY state")).all())
        figures = sizes()
    finally:
        stop_pg()
        subprocess.run(["rm", "-rf", str(tmp)], check=False)

    n = len(photo_ids)
    print(
        f"\n{n} demo photos (rendered JPEGs, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f}); jobs by state afterwards: {states}\n"
    )
    print(f"{'way':44}{'seconds':>10}{'photos/s':>10}{'peak RSS MB':>13}")
    print(
        f"{'inline, one process, no queue (baseline)':44}{inline_s:>10.1f}{n / inline_s:>10.2f}"
        f"{'-':>13}"
    )
    for workers, elapsed, peak in runs:
        label = f"queue, {workers} worker process{'es' if workers > 1 else ''}"
        print(f"{label:44}{elapsed:>10.1f}{n / elapsed:>10.2f}{peak:>13.0f}")
    print(f"  ({ok} of {n} measured ok inline)")
    print("\nPostgreSQL (pg_total_relation_size: table + indexes + TOAST):")
    photo_bytes = figures["photos"][0] / max(figures["photos"][1], 1)
    for table, (total, rows) in figures.items():
        print(
            f"  {table:14}{rows:>7} rows {total / 1e6:>8.2f} MB  {total / max(rows, 1):>7.0f} B/row"
        )
    print(
        f"  -> photos: {photo_bytes * 1e5 / 1e6:.0f} MB per 100k photos; "
        f"a done measurement job: {figures['jobs'][0] / max(figures['jobs'][1], 1):.0f} B"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
