"""Sign-in time for a wrong password: a real account versus an email with no account.

Before issue #12 an unknown email skipped Argon2 and answered in a fraction of the time, so the
response time told which emails have accounts. Now both paths spend one Argon2id verification
(unknown, inactive and password-less accounts against a dummy hash). Each attempt is a full
:func:`analysis.auth.accounts.authenticate` (back-off claim, user lookup, verification, audit
event) on a fresh SQLite database in a temporary directory; the two kinds alternate, and the
account's back-off is cleared before each attempt so the limit never short-cuts a check.

Usage::

    .venv/bin/python -m benchmarks.sign_in_timing [--repeat 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="candor-signin-bench-"))
    os.environ["CANDOR_DATA_DIR"] = str(root / "data")
    os.environ.pop("CANDOR_DATABASE_URL", None)
    os.environ["CANDOR_AUDIT_ANCHOR"] = str(root / "audit.anchor")
    os.environ["CANDOR_AUDIT_KEY_FILE"] = str(root / "audit.key")
    (root / "data").mkdir()

    from analysis.auth import accounts, throttle
    from analysis.services import users as user_admin
    from analysis.store import db
    from analysis.store.access import SYSTEM

    db.upgrade()
    with db.session_scope() as session:
        user_admin.create_user(
            session,
            SYSTEM,
            email="real@bench.test",
            display_name="Real",
            role="clinician",
            password="the-real-password",
        )
    times: dict[str, list[float]] = {"real account": [], "unknown email": []}
    for i in range(args.repeat):
        for label, email in (
            ("real account", "real@bench.test"),
            ("unknown email", f"nobody{i}@bench.test"),
        ):
            with db.session_scope() as session:
                throttle.clear_account(session, email)
            start = time.perf_counter()
            with db.session_scope() as session:
                assert accounts.authenticate(session, email=email, password="wrong-guess") is None
            times[label].append((time.perf_counter() - start) * 1000)
    print(f"wrong password, {args.repeat} attempts each (ms):")
    print(f"{'':16}{'median':>8}{'min':>8}{'max':>8}")
    for label, values in times.items():
        print(f"{label:16}{statistics.median(values):8.1f}{min(values):8.1f}{max(values):8.1f}")
    ratio = statistics.median(times["unknown email"]) / statistics.median(times["real account"])
    print(f"unknown / real median: {ratio:.2f}")
    db.dispose_engines()


if __name__ == "__main__":
    main()
