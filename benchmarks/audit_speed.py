"""Re-walking the audit hash chain: the walk the Audit log page and ``verify-audit`` use against a
naive walk through ORM objects (the code before it), same checks, same clinic, one run.

    CANDOR_DATA_DIR=benchmarks/out/page_speed/10000 .venv/bin/python benchmarks/audit_speed.py

Without ``CANDOR_DATA_DIR`` it reads the embedded default clinic (``data/``). Prints events, seconds
and events per second for: the naive whole walk, the whole walk, and the page's walk of the newest
:data:`analysis.services.audit_log.RECENT_EVENTS` events. Read-only.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from analysis.services.audit_log import RECENT_EVENTS  # noqa: E402
from analysis.store import anchor, audit, db  # noqa: E402
from analysis.store.models import AuditEvent  # noqa: E402


def naive_walk(session: Session) -> list[audit.ChainProblem]:
    """The chain re-walked through ORM objects, one event at a time (the earlier ``verify_chain``)."""
    problems: list[audit.ChainProblem] = []
    expected, key, first_keyed = audit.GENESIS, None, None
    for event in session.scalars(select(AuditEvent).order_by(AuditEvent.id)):
        if event.prev_hash != expected:
            problems.append(audit.ChainProblem(event.id, "chain broken"))
        if event.chain_scheme == audit.KEYED:
            key = anchor.audit_key() if key is None else key
            first_keyed = event.id if first_keyed is None else first_keyed
            if audit.keyed_digest(key, event.prev_hash, audit._fields(event)) != event.hash:
                problems.append(audit.ChainProblem(event.id, "keyed hash does not match"))
        elif first_keyed is not None:
            problems.append(audit.ChainProblem(event.id, "downgraded"))
        elif audit.event_digest(event.prev_hash, audit._fields(event)) != event.hash:
            problems.append(audit.ChainProblem(event.id, "edited"))
        expected = event.hash
    return problems


def main() -> None:
    with db.session_scope() as session:
        newest = int(session.scalar(select(func.max(AuditEvent.id))) or 0)
    rows = []
    for name, run in (
        ("naive ORM walk, all events", lambda s: (naive_walk(s), None)),
        ("walk_chain, all events", lambda s: (None, audit.walk_chain(s))),
        (
            f"walk_chain, newest {RECENT_EVENTS:,}",
            lambda s: (None, audit.walk_chain(s, since_id=newest - RECENT_EVENTS + 1)),
        ),
    ):
        with db.session_scope() as session:
            t = time.perf_counter()
            naive, walk = run(session)
            took = time.perf_counter() - t
            if walk is None:
                events = int(session.scalar(select(func.count()).select_from(AuditEvent)) or 0)
                problems = len(naive or [])
            else:
                events, problems = walk.events, len(walk.problems)
        rows.append((name, events, took, problems))
    print(f"{'walk':<34}{'events':>10}{'seconds':>10}{'events/s':>12}{'problems':>10}")
    for name, events, took, problems in rows:
        print(f"{name:<34}{events:>10,}{took:>10.2f}{events / took:>12,.0f}{problems:>10}")
    print(f"whole walk: {rows[0][2] / rows[1][2]:.1f}x faster than the naive one")


if __name__ == "__main__":
    main()
