"""Store commands: ``init-db`` (migrate to the newest schema), ``sweep`` (remove orphaned temp
files and unreferenced image blobs), ``verify-audit`` (re-walk the audit hash chain),
``backup DEST`` and ``restore SRC [--force]`` (verified copies of database + images, see
analysis.store.backup)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("init-db", help="create or migrate the database to the newest schema")
    p.set_defaults(func=_init_db)
    p = sub.add_parser("sweep", help="remove orphaned temp files and unreferenced image blobs")
    p.set_defaults(func=_sweep)
    p = sub.add_parser("verify-audit", help="check the audit trail's hash chain")
    p.set_defaults(func=_verify_audit)
    p = sub.add_parser("backup", help="verified backup of the database and images into DEST")
    p.add_argument("dest", type=Path, help="a new or empty directory")
    p.set_defaults(func=_backup)
    p = sub.add_parser("restore", help="verify the backup SRC, then swap it into the data dir")
    p.add_argument("src", type=Path, help="a directory written by `backup`")
    p.add_argument("--force", action="store_true",
                   help="replace existing clinic data (it is moved aside, not deleted)")
    p.set_defaults(func=_restore)


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
    from analysis.store import anchor, audit, db

    with db.session_scope() as session:
        problems = [*audit.verify_chain(session), *anchor.verify_anchor(session)]
    for problem in problems:
        print(f"event {problem.event_id}: {problem.problem}")
    print("audit chain intact" if not problems else f"{len(problems)} problem(s) found")
    return 0 if not problems else 1


def _backup(args: argparse.Namespace) -> int:
    from analysis.store.backup import BackupError, backup

    try:
        manifest = backup(args.dest)
    except BackupError as exc:
        print(f"backup failed: {exc}", file=sys.stderr)
        return 1
    counts = manifest.row_counts
    print(f"backup ({manifest.engine}) written to {args.dest} and verified: "
          f"{counts.get('patients', 0)} patients, {counts.get('photos', 0)} photos "
          f"({manifest.blob_count} images, {manifest.blob_bytes / 1e6:.1f} MB), "
          f"{manifest.audit_events} audit events; database sha256 "
          f"{manifest.database_sha256[:16]}…")
    return _chain_warning(manifest)


def _chain_warning(manifest: object) -> int:
    problems = getattr(manifest, "audit_problems", [])
    if not problems:
        print("audit chain intact")
        return 0
    print(f"WARNING: the audit chain has {len(problems)} problem(s), copied faithfully: "
          + "; ".join(problems[:5]), file=sys.stderr)
    return 2


def _restore(args: argparse.Namespace) -> int:
    from analysis.store.backup import BackupError, restore

    try:
        manifest = restore(args.src, force=args.force)
    except BackupError as exc:
        print(f"restore refused: {exc}", file=sys.stderr)
        return 1
    print(f"restored the backup of {manifest.created_at} from {args.src}: "
          f"{manifest.row_counts.get('patients', 0)} patients, {manifest.blob_count} images, "
          f"{manifest.audit_events} audit events, all verified")
    return _chain_warning(manifest)
