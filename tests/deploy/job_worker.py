"""A worker process for the queue tests: ``python -m tests.deploy.job_worker URL LOG [--hang]``.

Runs :func:`analysis.services.jobs.run_worker` on the database ``URL`` with one handler,
``test.append``: it appends ``<job id> <worker id>`` to the file ``LOG`` (``O_APPEND``: one line per
write, however many processes) and sleeps the payload's ``sleep_s``. With ``--hang`` it hangs
instead (until killed), to stand for a worker that dies holding a job. Exits when SIGTERM'd or,
with ``--drain``, when no job is claimable.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from typing import Any

from sqlalchemy import Engine

from analysis.services import jobs
from analysis.store import db


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("log")
    parser.add_argument("--hang", action="store_true")
    parser.add_argument("--drain", action="store_true")
    parser.add_argument("--lease", type=float, default=30.0)
    parser.add_argument("--id", required=True)
    args = parser.parse_args()

    def append(engine: Engine, payload: dict[str, Any]) -> dict[str, Any]:
        if args.hang:
            print("hanging", flush=True)
            while True:
                time.sleep(1)
        fd = os.open(args.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{payload['n']} {args.id}\n".encode())
        finally:
            os.close(fd)
        time.sleep(float(payload.get("sleep_s", 0.0)))
        return {"n": payload["n"], "by": args.id}

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    engine = db.make_engine(args.url)
    print("ready", flush=True)
    stats = jobs.run_worker(
        engine,
        worker_id=args.id,
        handlers={"test.append": append},
        lease_s=args.lease,
        poll_s=0.05,
        drain=args.drain,
        stop=stop,
    )
    print(f"done={stats.done} failed={stats.failed} lost={stats.lost}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
