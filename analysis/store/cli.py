"""Store commands: ``init-db`` (migrate to the newest schema), ``sweep`` (remove orphaned temp
files and unreferenced image blobs), ``verify-audit`` (re-walk the audit hash chain),
``backup DEST [--encrypt]`` and ``restore SRC [--force]`` (verified, signed, optionally encrypted
copies of database + images + audit anchor, see analysis.store.backup), ``keygen FILE`` (a new
256-bit key file)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("init-db", help="create or migrate the database to the newest schema")
    p.set_defaults(func=_init_db)
    p = sub.add_parser(
        "sweep",
        help="remove orphaned temp files and unreferenced image blobs "
        "(in the configured store: a directory or S3)",
    )
    p.add_argument(
        "--min-age-minutes",
        type=float,
        default=0.0,
        help="spare blobs written in the last N minutes: use e.g. 60 while app "
        "replicas are running, so a photo being saved right now is not removed",
    )
    p.set_defaults(func=_sweep)
    p = sub.add_parser("verify-audit", help="check the audit trail's hash chain")
    p.set_defaults(func=_verify_audit)
    p = sub.add_parser(
        "backup",
        help="verified, signed backup of the database, images and audit "
        "anchor into DEST (encrypted when CANDOR_BACKUP_KEY[_FILE] is set)",
    )
    p.add_argument("dest", type=Path, help="a new or empty directory")
    p.add_argument(
        "--encrypt",
        action="store_true",
        help="refuse to write an unencrypted backup (no backup key configured)",
    )
    p.set_defaults(func=_backup)
    p = sub.add_parser("restore", help="verify the backup SRC, then swap it into the data dir")
    p.add_argument("src", type=Path, help="a directory written by `backup`")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace existing clinic data (it is moved aside, not deleted)",
    )
    p.add_argument(
        "--accept-unsigned",
        action="store_true",
        help="restore a backup without a manifest signature (made before signing)",
    )
    p.set_defaults(func=_restore)
    p = sub.add_parser(
        "encrypt",
        help="encrypt a plaintext SQLite clinic at rest with "
        "CANDOR_DB_KEY[_FILE], or rotate to --new-key-file (stop the app first)",
    )
    p.add_argument(
        "--new-key-file",
        type=Path,
        help="rotate: re-encrypt from the configured key (or plaintext) to this key",
    )
    p.set_defaults(func=_encrypt)
    p = sub.add_parser("keygen", help="write a new random 256-bit key (hex) to FILE, mode 0600")
    p.add_argument("file", type=Path)
    p.set_defaults(func=_keygen)


def _init_db(_args: argparse.Namespace) -> int:
    from analysis.store import db

    db.upgrade()
    print(f"database at revision {db.current_revision()}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from analysis.store import db
    from analysis.store.images import default_store
    from analysis.store.models import Photo

    minutes = float(getattr(args, "min_age_minutes", 0.0) or 0.0)
    if minutes < 0:
        print("sweep refused: --min-age-minutes cannot be negative", file=sys.stderr)
        return 1
    try:
        store = default_store()
        with db.session_scope() as session:
            referenced = set(session.scalars(select(Photo.sha256)))
        report = store.sweep(referenced, min_age_s=minutes * 60)
    except (OSError, ValueError) as exc:  # e.g. the object store cannot be reached
        print(f"sweep stopped: {exc}", file=sys.stderr)
        return 1
    print(
        f"removed {report.temp_files_removed} temp files, "
        f"{report.unreferenced_removed} unreferenced blobs from {store.url}"
    )
    return 0


def _verify_audit(_args: argparse.Namespace) -> int:
    from analysis.store import anchor, audit, db

    with db.session_scope() as session:
        problems: list[audit.ChainProblem | anchor.AnchorProblem] = [
            *audit.verify_chain(session),
            *anchor.verify_anchor(session),
        ]
    for problem in problems:
        print(f"event {problem.event_id}: {problem.problem}")
    print("audit chain intact" if not problems else f"{len(problems)} problem(s) found")
    return 0 if not problems else 1


def _backup(args: argparse.Namespace) -> int:
    from analysis.store.backup import BackupError, backup

    try:
        manifest = backup(args.dest, encrypt=args.encrypt)
    except BackupError as exc:
        print(f"backup failed: {exc}", file=sys.stderr)
        return 1
    counts = manifest.row_counts
    print(
        f"backup ({manifest.engine}{', encrypted' if manifest.encrypted else ''}) written to {args.dest} and verified: "
        f"{counts.get('patients', 0)} patients, {counts.get('photos', 0)} photos "
        f"({manifest.blob_count} images, {manifest.blob_bytes / 1e6:.1f} MB), "
        f"{manifest.audit_events} audit events; database sha256 "
        f"{manifest.database_sha256[:16]}…"
    )
    return _chain_warning(manifest)


def _chain_warning(manifest: object) -> int:
    problems = getattr(manifest, "audit_problems", [])
    if not problems:
        print("audit chain intact")
        return 0
    print(
        f"WARNING: the audit chain has {len(problems)} problem(s), copied faithfully: "
        + "; ".join(problems[:5]),
        file=sys.stderr,
    )
    return 2


def _restore(args: argparse.Namespace) -> int:
    from analysis.store.backup import BackupError, BackupRejected, restore

    try:
        manifest = restore(args.src, force=args.force, accept_unsigned=args.accept_unsigned)
    except BackupRejected as exc:  # the backup itself is forged, damaged or undecryptable
        print(f"restore refused, nothing was written: {exc}", file=sys.stderr)
        return 2
    except BackupError as exc:
        print(f"restore refused: {exc}", file=sys.stderr)
        return 1
    print(
        f"restored the backup of {manifest.created_at} from {args.src}: "
        f"{manifest.row_counts.get('patients', 0)} patients, {manifest.blob_count} images, "
        f"{manifest.audit_events} audit events, all verified"
    )
    return _chain_warning(manifest)


def _keygen(args: argparse.Namespace) -> int:
    from analysis.store.crypto import generate_key_file

    try:
        generate_key_file(args.file)
    except FileExistsError:
        print(f"{args.file} already exists; a key file is never overwritten", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"cannot write {args.file}: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"new key written to {args.file} (mode 0600); keep a copy off this server")
    return 0


def _encrypt(args: argparse.Namespace) -> int:
    from analysis import config
    from analysis.store import at_rest, crypto
    from analysis.store.backup import BackupError, sqlite_path
    from analysis.store.db import ENCRYPT_MARKER
    from analysis.store.encrypt import EncryptError, convert

    if not config.database_url().startswith("sqlite"):
        print(
            "encrypt refused: the database is PostgreSQL; encrypt its data directory with disk "
            "encryption (docs/security.md). CANDOR_DB_KEY seals new images; `encrypt` converts "
            "SQLite clinics only",
            file=sys.stderr,
        )
        return 1
    if not config.image_store_is_local():
        print(
            f"encrypt refused: the images are in object storage ({config.image_store_url()}); "
            "`encrypt` converts a local clinic. With CANDOR_DB_KEY set new images are sealed; "
            "use the bucket's server-side encryption for the rest (docs/deployment.md)",
            file=sys.stderr,
        )
        return 1
    try:
        db_file = sqlite_path(config.database_url())
        current = at_rest.master_key()
        new: bytes | None
        if args.new_key_file is not None:
            try:
                text = args.new_key_file.read_text()
            except OSError as exc:
                raise EncryptError(f"cannot read {args.new_key_file}: {exc.strerror}") from exc
            new = crypto.parse_key(text, str(args.new_key_file))
            old = current
        else:
            new, old = current, None
            if new is None:
                raise EncryptError(
                    "set CANDOR_DB_KEY_FILE (make a key with `python -m analysis "
                    "keygen FILE`, kept off the data disk) or CANDOR_DB_KEY first"
                )
            if (
                at_rest.is_plaintext_sqlite(db_file) is False
                and not (db_file.parent / ENCRYPT_MARKER).exists()
            ):
                raise EncryptError(
                    f"{db_file} is already encrypted; to rotate its key, run "
                    "encrypt --new-key-file NEWFILE"
                )
        if old is not None and crypto.key_id(old) == crypto.key_id(new):
            raise EncryptError(
                "the new key is the current key; make a new one with "
                "`python -m analysis keygen FILE`"
            )
        if not (db_file.parent / ENCRYPT_MARKER).exists():  # recorded before, so carried over
            _record_encrypt(config.database_url(), old, new)
        report = convert(db_file, config.image_dir(), old=old, new=new)
    except (EncryptError, BackupError, at_rest.AtRestError, crypto.BadKeyError) as exc:
        print(f"encrypt refused: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"encrypt stopped: {exc}; run it again to finish or start over", file=sys.stderr)
        return 1
    if report.resumed:
        print("finished an interrupted encryption")
    else:
        print(
            f"{'re-encrypted' if old is not None else 'encrypted'} {report.tables} tables "
            f"({report.rows} rows) and {report.blobs} images, verified"
        )
    if args.new_key_file is not None:
        print(
            f"now set CANDOR_DB_KEY_FILE={args.new_key_file} (keep the old key for backups "
            "made before the rotation)"
        )
    print(
        f"the previous files are kept in {report.kept_aside}: delete them once the app works "
        "(before a first encryption they are the plaintext)"
    )
    return 0


def _record_encrypt(url: str, old: bytes | None, new: bytes) -> None:
    """The ``store.encrypt`` audit event, written into the database before it is converted."""
    from analysis.store import audit, crypto, db
    from analysis.store.access import SYSTEM

    engine = db.make_engine(url, db_key=old)
    try:
        with db.session_scope(engine) as session:
            audit.record(
                session,
                SYSTEM,
                "store.encrypt",
                object_type="store",
                details={
                    "from_key_id": crypto.key_id(old) if old is not None else "plaintext",
                    "to_key_id": crypto.key_id(new),
                },
            )
    finally:
        engine.dispose()
