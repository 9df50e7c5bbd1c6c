"""``python -m analysis worker`` and ``python -m analysis jobs``: the background worker pool.

``worker [--drain] [--lease S] [--poll S] [--id NAME] [--max-jobs N]``
    Claim and run queued jobs (:mod:`analysis.services.jobs`) until stopped (SIGTERM/SIGINT
    finish the job in hand, then exit), or with ``--drain`` until none is left. Run one or more
    per machine; every replica's workers share the database's ``jobs`` table.
``jobs``
    How many jobs are queued, running, done and failed (one JSON line).
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    worker = sub.add_parser(
        "worker", help="run background jobs (photo measurements) from the queue"
    )
    worker.add_argument("--drain", action="store_true", help="exit when no job is left")
    worker.add_argument("--lease", type=float, default=60.0, help="lease seconds (default 60)")
    worker.add_argument("--poll", type=float, default=1.0, help="idle poll seconds (default 1)")
    worker.add_argument("--id", default="", help="worker id in the jobs table (default host:pid)")
    worker.add_argument("--max-jobs", type=int, default=None, help="exit after N jobs")
    worker.set_defaults(func=run_worker)
    jobs = sub.add_parser("jobs", help="count background jobs by state")
    jobs.set_defaults(func=show_jobs)


def run_worker(args: argparse.Namespace) -> int:
    import signal
    import threading

    from analysis.logs import configure_logging
    from analysis.services import jobs
    from analysis.store import db

    configure_logging(text_handler=True)
    stop = threading.Event()

    def _stop(_signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    stats = jobs.run_worker(
        db.get_engine(),
        worker_id=args.id or None,
        lease_s=args.lease,
        poll_s=args.poll,
        drain=args.drain,
        max_jobs=args.max_jobs,
        stop=stop,
    )
    return 0 if stats.lost == 0 else 1


def show_jobs(args: argparse.Namespace) -> int:
    import json

    from analysis.store import db
    from analysis.store import jobs as queue

    print(json.dumps(queue.counts(db.get_engine()), sort_keys=True))
    return 0
