"""Store commands: ``init-db`` (migrate to the newest schema), ``sweep`` (remove orphaned temp
files and unreferenced image blobs), ``verify-audit`` (re-walk the audit hash chain)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("init-db", help="create or migrate the database to the newest schema")
    p.set_defaults(func=_init_db)
    p = sub.add_parser("sweep", help="remove orphaned temp files and unreferenced image blobs")
    p.set_defaults(func=_sweep)
    p = sub.add_parser("verify-audit", help="check the audit trail's hash chain")
    p.set_defaults(func=_verify_audit)


def _init_db(_args: argparse.Namespace) -> int:
    from analysis.store import db

    db.upgrade()
    print(f"database at revision {db.current_revision()}")
    return 0


def _sweep(_args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from analysis.store import db
    from analysis.store.images import default_store
    from analysis.store.models import Photo

    with db.session_scope() as session:
        referenced = set(session.scalars(select(Photo.sha256)))
    report = default_store().sweep(referenced)
    print(f"removed {report.temp_files_removed} temp files, "
          f"{report.unreferenced_removed} unreferenced blobs")
    return 0


def _verify_audit(_args: argparse.Namespace) -> int:
    from analysis.store import audit, db

    with db.session_scope() as session:
        problems = audit.verify_chain(session)
    for problem in problems:
        print(f"event {problem.event_id}: {problem.problem}")
    print("audit chain intact" if not problems else f"{len(problems)} problem(s) found")
    return 0 if not problems else 1
