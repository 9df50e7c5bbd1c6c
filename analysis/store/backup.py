"""Verified backup and restore of an embedded (SQLite) clinic: database + image store.

A backup is a directory::

    DEST/candor.sqlite3    consistent copy via SQLite's online backup API (safe while the app runs)
    DEST/images/ab/ab...   every blob a photo row references, re-hashed as it is copied
    DEST/manifest.json     written last: counts, SHA-256 of the database file, blob names,
                           audit-chain length, head hash and verification result

A backup is *verified* before it is reported done, and again before a restore swaps it in:
``PRAGMA integrity_check`` is ``ok``, the database file hashes to the manifest, every referenced
blob is present and re-hashes to its name, and the audit hash chain re-walks to the manifest's
result. A broken audit chain does not stop a backup (in an incident a faithful copy matters
most): the manifest records the problems and the command warns. A directory without
``manifest.json`` is an incomplete backup and is refused.

Both write one audit event as the system actor: ``store.backup`` into the live database just
before the copy (so the backup contains it) and ``store.restore`` into the restored database.

Restore refuses a data directory that already holds clinic data unless ``force`` is given; the
replaced database and images are then moved aside (``.pre-restore-<UTC time>/``), never deleted.
PostgreSQL URLs are handled by :mod:`analysis.store.backup_pg` (``pg_dump`` of one exported
snapshot, same manifest and checks; restores go into an empty database only).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from analysis.store.images import ImageStore, _fsync_dir

DB_NAME = "candor.sqlite3"
IMAGES = "images"
MANIFEST = "manifest.json"
FORMAT = 1
POSTGRES_HINT = (
    "this database is PostgreSQL, not a SQLite file; `python -m analysis backup` handles it "
    "with pg_dump (analysis.store.backup_pg), or use pg_dump yourself and copy the image "
    "directory ({images}) alongside"
)


class BackupError(RuntimeError):
    """The backup or restore cannot proceed; the message says why and what to do."""


@dataclass(frozen=True)
class Manifest:
    created_at: str
    database_sha256: str
    alembic_revision: str | None
    row_counts: dict[str, int]
    blob_count: int
    blob_bytes: int
    blobs: list[str]
    audit_events: int
    audit_head: str
    audit_chain_intact: bool
    format: int = FORMAT
    problems: list[str] = field(default_factory=list)  # the copy is not faithful: never written
    audit_problems: list[str] = field(default_factory=list)  # faithfully copied, reported
    engine: str = "sqlite"


def sqlite_path(url: str) -> Path:
    """The database file of a SQLite URL; :class:`BackupError` with the pg_dump hint otherwise."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        from analysis import config

        raise BackupError(POSTGRES_HINT.format(images=config.image_dir()))
    if not parsed.database or parsed.database == ":memory:":
        raise BackupError("an in-memory database cannot be backed up")
    return Path(parsed.database).resolve()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _online_copy(source: Path, dest: Path) -> None:
    """Copy a live SQLite database page by page (``sqlite3.Connection.backup``), then fsync."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    try:
        dst = sqlite3.connect(dest)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")  # a self-contained file, no -wal beside it
        finally:
            dst.close()
    finally:
        src.close()
    with dest.open("rb") as handle:
        os.fsync(handle.fileno())


def _readonly_session(path: Path) -> tuple[Any, Session]:
    engine = create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    return engine, Session(engine)


def inspect_database(db_file: Path, image_root: Path) -> Manifest:
    """Check a database file and its image store; the result lists any problems found."""
    from analysis.store import audit
    from analysis.store.models import AuditEvent, Base, Photo

    problems: list[str] = []
    con = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)
    try:
        check = [row[0] for row in con.execute("PRAGMA integrity_check")]
        if check != ["ok"]:
            problems.append(f"integrity_check: {'; '.join(check[:5])}")
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        counts = {t: int(con.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0])
                  for t in sorted(Base.metadata.tables) if t in tables}
        revision = None
        if "alembic_version" in tables:
            row = con.execute("SELECT version_num FROM alembic_version").fetchone()
            revision = row[0] if row else None
    finally:
        con.close()
    engine, session = _readonly_session(db_file)
    try:
        referenced = sorted(set(session.scalars(select(Photo.sha256))))
        chain = audit.verify_chain(session)
        head = session.scalars(select(AuditEvent.hash).order_by(AuditEvent.id.desc())).first()
    finally:
        session.close()
        engine.dispose()
    audit_problems = [f"audit event {p.event_id}: {p.problem}" for p in chain]
    store = ImageStore(image_root)
    total = 0
    for name in referenced:
        if not store.verify(name):
            problems.append(f"image {name[:12]}… is missing or does not re-hash")
        else:
            total += store.path_for(name).stat().st_size
    return Manifest(
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        database_sha256=_sha256_file(db_file), alembic_revision=revision, row_counts=counts,
        blob_count=len(referenced), blob_bytes=total, blobs=referenced,
        audit_events=counts.get("audit_events", 0), audit_head=head or audit.GENESIS,
        audit_chain_intact=not chain, problems=problems, audit_problems=audit_problems,
    )


def _write_manifest(dest: Path, manifest: Manifest) -> None:
    tmp = dest / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(asdict(manifest), indent=2, sort_keys=True))
    with tmp.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, dest / MANIFEST)
    _fsync_dir(dest)


def read_manifest(src: Path) -> Manifest:
    path = Path(src) / MANIFEST
    if not path.is_file():
        raise BackupError(f"{src} has no {MANIFEST}: not a Candor backup, or an incomplete one")
    try:
        data = json.loads(path.read_text())
        return Manifest(**data)
    except (ValueError, TypeError) as exc:
        raise BackupError(f"{path} is unreadable: {exc}") from exc


def verify_backup(src: Path) -> Manifest:
    """Re-check a backup against its manifest; :class:`BackupError` listing every problem."""
    src = Path(src)
    recorded = read_manifest(src)
    if recorded.engine == "postgresql":
        from analysis.store.backup_pg import verify_postgres_backup

        verify_postgres_backup(src, recorded)
        return recorded
    db_file = src / DB_NAME
    if not db_file.is_file():
        raise BackupError(f"{src} has no {DB_NAME}")
    found = inspect_database(db_file, src / IMAGES)
    problems = list(found.problems)
    if found.database_sha256 != recorded.database_sha256:
        problems.append("the database file does not match the manifest's SHA-256")
    if found.row_counts != recorded.row_counts:
        problems.append("row counts differ from the manifest")
    if found.blobs != recorded.blobs:
        problems.append("the referenced images differ from the manifest")
    if found.audit_head != recorded.audit_head:
        problems.append("the audit chain head differs from the manifest")
    if found.audit_problems != recorded.audit_problems:
        problems += [p for p in found.audit_problems if p not in recorded.audit_problems] or [
            "the audit chain check differs from the manifest"]
    if problems:
        raise BackupError(f"backup {src} failed verification: " + "; ".join(problems))
    return recorded


def backup(dest: Path, *, url: str | None = None, image_root: Path | None = None) -> Manifest:
    """Back up the clinic at ``url`` (default: the configured database) into the new or empty
    directory ``dest``, then verify the copy. Returns the manifest."""
    from analysis import config

    url = url or config.database_url()
    image_root = Path(image_root or config.image_dir())
    dest = Path(dest)
    postgres = make_url(url).get_backend_name() == "postgresql"
    source = None if postgres else sqlite_path(url)
    if source is not None and not source.is_file():
        raise BackupError(f"there is no database at {source}")
    if dest.exists() and any(dest.iterdir()):
        raise BackupError(f"{dest} is not empty; back up into a new directory")
    dest.mkdir(parents=True, exist_ok=True)
    _audit_system(url, "store.backup", {"dest": str(dest.resolve())})
    if source is None:
        from analysis.store.backup_pg import backup_postgres

        return backup_postgres(dest, url=url, image_root=image_root)  # type: ignore[no-any-return]
    _online_copy(source, dest / DB_NAME)
    engine, session = _readonly_session(dest / DB_NAME)
    try:
        from analysis.store.models import Photo

        referenced = sorted(set(session.scalars(select(Photo.sha256))))
    finally:
        session.close()
        engine.dispose()
    src_store, dst_store = ImageStore(image_root), ImageStore(dest / IMAGES)
    for name in referenced:
        try:
            data = src_store.get(name, verify=True)
        except OSError as exc:  # missing or corrupt in the live store: say so, stop
            raise BackupError(f"cannot back up: {exc}") from exc
        dst_store.put(data)
    manifest = inspect_database(dest / DB_NAME, dest / IMAGES)
    if manifest.problems:
        raise BackupError("the backup copy failed verification: " + "; ".join(manifest.problems))
    _write_manifest(dest, manifest)
    return manifest


def _has_clinic_data(db_file: Path, image_root: Path) -> bool:
    if image_root.is_dir() and ImageStore(image_root).names():
        return True
    if not db_file.is_file() or db_file.stat().st_size == 0:
        return False
    con = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        return any(con.execute(f'SELECT 1 FROM "{t}" LIMIT 1').fetchone()
                   for t in ("patients", "users", "audit_events") if t in tables)
    finally:
        con.close()


def restore(src: Path, *, url: str | None = None, image_root: Path | None = None,
            force: bool = False) -> Manifest:
    """Restore the backup ``src`` into the configured data directory (or ``url``/``image_root``).

    Verifies ``src``, stages a copy next to the target, verifies the staged copy, then swaps it in.
    Refuses when the target already holds clinic data unless ``force``; replaced files are moved
    to ``.pre-restore-<time>/`` beside the database. Close the app before restoring.
    """
    from analysis import config
    from analysis.store import db

    manifest = verify_backup(Path(src))
    url = url or config.database_url()
    image_root = Path(image_root or config.image_dir())
    kind = "postgresql" if make_url(url).get_backend_name() == "postgresql" else "sqlite"
    if kind != manifest.engine:
        raise BackupError(f"{src} is a {manifest.engine} backup but the configured database is "
                          f"{kind}; restore it into a {manifest.engine} database")
    if kind == "postgresql":
        from analysis.store.backup_pg import restore_postgres

        restore_postgres(Path(src), manifest, url=url, image_root=image_root)
        _audit_system(url, "store.restore", {"source": str(Path(src).resolve()),
                                            "backup_created_at": manifest.created_at,
                                            "audit_head": manifest.audit_head, "forced": False})
        return manifest
    target = sqlite_path(url)
    if _has_clinic_data(target, image_root) and not force:
        raise BackupError(f"{target.parent} already holds clinic data; restoring would replace it. "
                          "Back it up first, then restore with --force.")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    staging = target.parent / f".restore-{stamp}"
    staging.mkdir(parents=True)
    try:
        _online_copy(Path(src) / DB_NAME, staging / DB_NAME)
        staged_store = ImageStore(staging / IMAGES)
        source_store = ImageStore(Path(src) / IMAGES)
        for name in manifest.blobs:
            staged_store.put(source_store.get(name, verify=True))
        staged = inspect_database(staging / DB_NAME, staging / IMAGES)
        if (staged.problems or staged.audit_head != manifest.audit_head
                or staged.audit_problems != manifest.audit_problems):
            raise BackupError("the staged copy failed verification: " + "; ".join(staged.problems))
        db.dispose_engines()
        aside = target.parent / f".pre-restore-{stamp}"
        for path in (target, Path(f"{target}-wal"), Path(f"{target}-shm"), image_root):
            if path.exists():
                aside.mkdir(exist_ok=True)
                os.replace(path, aside / path.name)
        os.replace(staging / IMAGES, image_root)
        os.replace(staging / DB_NAME, target)
        _fsync_dir(target.parent)
        if image_root.parent != target.parent:
            _fsync_dir(image_root.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _audit_system(url, "store.restore",
                  {"source": str(Path(src).resolve()), "backup_created_at": manifest.created_at,
                   "audit_head": manifest.audit_head, "forced": force})
    return manifest


def _audit_system(url: str, action: str, details: dict[str, Any]) -> None:
    from analysis.store import audit, db
    from analysis.store.access import SYSTEM

    from sqlalchemy.exc import SQLAlchemyError

    engine = db.make_engine(url)
    try:
        with db.session_scope(engine) as session:
            audit.record(session, SYSTEM, action, object_type="store", details=details)
    except (SQLAlchemyError, audit.AuditWriteError) as exc:
        raise BackupError(f"cannot record {action} in the audit log: {exc}") from exc
    finally:
        engine.dispose()
