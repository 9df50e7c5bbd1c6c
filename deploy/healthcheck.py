"""Liveness and readiness of one Candor replica, for compose, systemd and load balancers.

    python deploy/healthcheck.py --url http://127.0.0.1:8501          # liveness: Streamlit answers
    python deploy/healthcheck.py --url http://127.0.0.1:8501 --deep   # readiness: and the database
                                                                      # and the image store answer

Liveness is Streamlit's own ``/_stcore/health`` (``ok``). ``--deep`` also opens the configured
database (``CANDOR_DATABASE_URL``) and checks it is at the schema head, and asks the configured
image store (``CANDOR_IMAGE_STORE``, a directory or S3) with one small request. Exit 0 when ready,
1 otherwise, with one line saying what failed; never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def check_http(url: str, timeout_s: float) -> str | None:
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/_stcore/health", timeout=timeout_s) as r:
            body = r.read().strip()
    except (urllib.error.URLError, OSError) as exc:
        return f"streamlit at {url} does not answer: {exc}"
    return None if body == b"ok" else f"streamlit at {url} answered {body[:80]!r}"


def check_database() -> str | None:
    from sqlalchemy.exc import SQLAlchemyError

    from analysis.store import db

    try:
        current = db.current_revision()
        head = db.head_revision()
    except (SQLAlchemyError, OSError) as exc:
        return f"database: {str(exc).splitlines()[0][:200]}"
    if current != head:
        return (
            f"database at revision {current}, code expects {head}: run `python -m analysis init-db`"
        )
    return None


def check_images() -> str | None:
    from analysis.store.images import default_store

    try:
        default_store().check()  # one LIST of one key on S3; the directory exists locally
    except (OSError, ValueError) as exc:
        return f"image store: {exc}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8501")
    parser.add_argument("--deep", action="store_true", help="also check database and image store")
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args(argv)
    checks = [lambda: check_http(args.url, args.timeout)]
    if args.deep:
        checks += [check_database, check_images]
    for check in checks:
        problem = check()
        if problem:
            print(f"not ready: {problem}", file=sys.stderr)
            return 1
    print("ready" if args.deep else "alive")
    return 0


if __name__ == "__main__":
    sys.exit(main())
