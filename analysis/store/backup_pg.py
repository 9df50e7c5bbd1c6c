"""PostgreSQL backup and restore with ``pg_dump`` / ``pg_restore``, verified like the SQLite path.

The dump and its manifest describe the same instant: a REPEATABLE READ transaction exports its
snapshot (``pg_export_snapshot()``), ``pg_dump --snapshot`` dumps exactly that snapshot, and the
manifest's row counts, referenced images and audit-chain check are computed inside the same
transaction. The dump is checked with ``pg_restore --list``; a restore goes into an *empty*
database only (create it with ``createdb``), then the restored rows, audit chain and images are
checked against the manifest. The password, if any, is passed in ``PGPASSWORD``, never on the
command line.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from analysis.store.images import ImageStore

DUMP_NAME = "candor.pgdump"
TIMEOUT_S = 3600


def pg_tool(name: str) -> str:
    """Path of ``pg_dump`` / ``pg_restore``: on PATH, else the newest Debian-packaged one."""
    from analysis.store.backup import BackupError

    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        raise BackupError(f"{name} is not installed (Debian/Ubuntu package postgresql-client)")
    return found


def connection_args(url: str) -> tuple[list[str], dict[str, str]]:
    """libpq command-line options and environment for a SQLAlchemy PostgreSQL URL."""
    parsed = make_url(url)
    query = {k: (v[0] if isinstance(v, tuple) else v) for k, v in parsed.query.items()}
    host = parsed.host or query.get("host")
    port = parsed.port or query.get("port")
    args = ["--dbname", parsed.database or "postgres"]
    if host:
        args += ["--host", str(host)]
    if port:
        args += ["--port", str(port)]
    if parsed.username:
        args += ["--username", parsed.username]
    env = {**os.environ}
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    return args, env


def _run(cmd: list[str], env: dict[str, str]) -> str:
    from analysis.store.backup import BackupError

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    if done.returncode != 0:
        raise BackupError(f"{Path(cmd[0]).name} failed: {done.stderr.strip()[-800:]}")
    return done.stdout


def _inspect(conn: Connection, anchor_file: Path | None = None) -> dict[str, Any]:
    """Counts, referenced images, audit-chain (and, given ``anchor_file``, anchor) check and
    revision, read on ``conn``'s snapshot."""
    from analysis.store import anchor, audit
    from analysis.store.models import AuditEvent, Base, Photo

    tables = set(inspect(conn).get_table_names())
    counts = {
        t: int(conn.execute(text(f'SELECT COUNT(*) FROM "{t}"')).scalar_one())
        for t in sorted(Base.metadata.tables)
        if t in tables
    }
    session = Session(bind=conn)
    referenced = sorted(set(session.scalars(select(Photo.sha256))))
    chain = audit.verify_chain(session)
    last = session.execute(
        select(AuditEvent.id, AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)
    ).first()
    anchored = anchor.verify_anchor(session, anchor_file) if anchor_file is not None else []
    revision = (
        conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        if "alembic_version" in tables
        else None
    )
    return {
        "row_counts": counts,
        "blobs": referenced,
        "audit_head": last[1] if last else audit.GENESIS,
        "audit_last_id": int(last[0]) if last else 0,
        "audit_problems": [f"audit event {p.event_id}: {p.problem}" for p in chain]
        + [f"anchor, event {p.event_id}: {p.problem}" for p in anchored],
        "alembic_revision": revision,
    }


def _last_event_id(conn: Connection) -> int:
    from analysis.store.models import AuditEvent

    return int(Session(bind=conn).scalar(select(func.max(AuditEvent.id))) or 0)


def _blob_problems(store: ImageStore, names: list[str]) -> tuple[list[str], int]:
    problems, total = [], 0
    for name in names:
        if store.verify(name):
            total += store.stored_size(name)
        else:
            problems.append(f"image {name[:12]}… is missing or does not re-hash")
    return problems, total


def backup_postgres(dest: Path, *, url: str, store: ImageStore) -> Any:
    """Dump the database at ``url`` and copy its referenced images (from ``store``, a directory
    or object storage) and the audit anchor up to
    the snapshot's newest event into ``dest``; checked. The caller signs and writes the
    manifest."""
    from analysis.store import db
    from analysis.store.backup import ANCHOR_NAME, BackupError, Manifest, _sha256_file, copy_anchor

    dump = dest / DUMP_NAME
    args, env = connection_args(url)
    engine = db.make_engine(url)
    try:
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
            with conn.begin():
                snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
                _run(
                    [
                        pg_tool("pg_dump"),
                        "--format=custom",
                        "--no-owner",
                        "--no-privileges",
                        f"--snapshot={snapshot}",
                        f"--file={dump}",
                        *args,
                    ],
                    env,
                )
                copy_anchor(dest / ANCHOR_NAME, _last_event_id(conn))
                info = _inspect(conn, dest / ANCHOR_NAME)
    finally:
        engine.dispose()
    dst_store = ImageStore(dest / "images")
    for name in info["blobs"]:
        try:
            dst_store.put(store.get(name, verify=True))
        except OSError as exc:
            raise BackupError(f"cannot back up: {exc}") from exc
    _run([pg_tool("pg_restore"), "--list", str(dump)], env)  # the archive is readable
    problems, total = _blob_problems(dst_store, info["blobs"])
    manifest = Manifest(
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        database_sha256=_sha256_file(dump),
        alembic_revision=info["alembic_revision"],
        row_counts=info["row_counts"],
        blob_count=len(info["blobs"]),
        blob_bytes=total,
        blobs=info["blobs"],
        audit_events=info["row_counts"].get("audit_events", 0),
        audit_head=info["audit_head"],
        audit_chain_intact=not info["audit_problems"],
        problems=problems,
        audit_problems=info["audit_problems"],
        engine="postgresql",
        audit_last_id=info["audit_last_id"],
    )
    return manifest


def verify_postgres_backup(src: Path, manifest: Any) -> None:
    """The dump hashes to the manifest and is readable; every image is present and re-hashes."""
    from analysis.store.backup import BackupError, BackupRejected, _sha256_file

    dump = src / DUMP_NAME
    if not dump.is_file():
        raise BackupRejected(f"{src} has no {DUMP_NAME}")
    problems = []
    if _sha256_file(dump) != manifest.database_sha256:
        problems.append("the dump does not match the manifest's SHA-256")
    else:
        try:
            _run([pg_tool("pg_restore"), "--list", str(dump)], dict(os.environ))
        except BackupError as exc:
            problems.append(f"the dump is unreadable ({exc})")
    problems += _blob_problems(ImageStore(src / "images"), manifest.blobs)[0]
    if problems:
        raise BackupRejected(f"backup {src} failed verification: " + "; ".join(problems))


def restore_postgres(src: Path, manifest: Any, *, url: str, store: ImageStore) -> None:
    """Restore into the empty database at ``url`` and the image store ``store`` (a directory
    or object storage; blobs already there are not rewritten)."""
    from analysis.store import db
    from analysis.store.backup import ANCHOR_NAME, BackupError

    engine = db.make_engine(url)
    try:
        if inspect(engine).get_table_names():
            raise BackupError(
                "the target PostgreSQL database is not empty; restore into a new "
                "database (createdb candor_restored) and point "
                "CANDOR_DATABASE_URL at it"
            )
        args, env = connection_args(url)
        _run(
            [
                pg_tool("pg_restore"),
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
                *args,
                str(src / DUMP_NAME),
            ],
            env,
        )
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
            with conn.begin():
                anchor_file = src / ANCHOR_NAME
                info = _inspect(conn, anchor_file if anchor_file.is_file() else None)
    finally:
        engine.dispose()
    mismatches = [
        k
        for k in ("row_counts", "blobs", "audit_head", "audit_problems")
        if info[k] != getattr(manifest, k)
    ]
    if mismatches:
        raise BackupError(f"the restored database differs from the manifest: {mismatches}")
    source = ImageStore(src / "images")
    try:
        for name in manifest.blobs:
            store.put(source.get(name, verify=True))
        problems = _blob_problems(store, manifest.blobs)[0]
    except OSError as exc:  # e.g. the object store cannot be reached
        raise BackupError(f"cannot restore the images: {exc}") from exc
    if problems:
        raise BackupError("restored images failed verification: " + "; ".join(problems))
