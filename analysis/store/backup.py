"""Verified, signed and optionally encrypted backup and restore of a clinic: database + images +
audit anchor.

A backup is a directory::

    DEST/candor.sqlite3    consistent copy via SQLite's online backup API (safe while the app runs)
                           (PostgreSQL: candor.pgdump, see :mod:`analysis.store.backup_pg`)
    DEST/images/ab/ab...   every blob a photo row references, re-hashed as it is copied (from the
                           configured image store: a directory, or S3 object storage)
    DEST/audit.anchor      the signed audit heads (:mod:`analysis.store.anchor`) up to the newest
                           event in the copy; a restore puts them back, so verify-audit passes
    DEST/manifest.json     written last: counts, SHA-256 of every file as stored, blob names,
                           audit-chain length, head hash and verification result
    DEST/manifest.sig      HMAC-SHA-256 of manifest.json under a key derived from the audit key
                           (CANDOR_AUDIT_KEY / CANDOR_AUDIT_KEY_FILE), which is never in the backup

With a backup key (``CANDOR_BACKUP_KEY`` or ``CANDOR_BACKUP_KEY_FILE``) every file except the
manifest and its signature is stored AES-256-GCM encrypted (``<name>.enc``,
:mod:`analysis.store.crypto`); the plaintext is staged beside the data directory, never on the
backup disk, and a restore needs the same key.

A backup is *verified* before it is reported done, and again before a restore swaps it in. The
order of the checks matters: the signature first (a forged manifest is refused before anything in
it is trusted), then every stored file's SHA-256 against the manifest (a truncated or corrupted
file is refused before it is opened), then decryption, then ``PRAGMA integrity_check``, every
blob re-hashed, the audit chain and the anchor re-walked. Every refusal is a
:class:`BackupRejected` with one sentence; nothing is written to the clinic. A broken audit chain
does not stop a backup (in an incident a faithful copy matters most): the manifest records the
problems and the command warns.

Both write one audit event as the system actor: ``store.backup`` into the live database just
before the copy (so the backup contains it) and ``store.restore`` into the restored database.

Restore refuses a data directory that already holds clinic data unless ``force`` is given; the
replaced database and images are then moved aside (``.pre-restore-<UTC time>/``) and the replaced
anchor file is kept as ``<anchor>.pre-restore-<UTC time>``, never deleted. PostgreSQL URLs are
handled by :mod:`analysis.store.backup_pg` (``pg_dump`` of one exported snapshot, same manifest
and checks; restores go into an empty database only).

The backup itself is always a local directory. The live image store may be object storage
(``CANDOR_IMAGE_STORE=s3://…``, :class:`analysis.store.images.S3ImageStore`): a backup reads the
referenced blobs from it, and a restore writes the backup's blobs into it (idempotent by hash,
each read back and re-hashed) before the database is swapped in. Blobs of a replaced clinic stay in
the bucket, untouched, where nothing references them; ``python -m analysis sweep`` removes them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import sqlite3
import tempfile
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from analysis import config
from analysis.store import at_rest, crypto
from analysis.store.images import ImageStore, S3ImageStore, _fsync_dir, default_store

DB_NAME = "candor.sqlite3"
IMAGES = "images"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
ANCHOR_NAME = "audit.anchor"
ENC_SUFFIX = ".enc"
FORMAT = 2
BACKUP_KEY_ENV, BACKUP_KEY_FILE_ENV = "CANDOR_BACKUP_KEY", "CANDOR_BACKUP_KEY_FILE"
POSTGRES_HINT = (
    "this database is PostgreSQL, not a SQLite file; `python -m analysis backup` handles it "
    "with pg_dump (analysis.store.backup_pg), or use pg_dump yourself and copy the image "
    "directory ({images}) alongside"
)


class BackupError(RuntimeError):
    """The backup or restore cannot proceed; the message says why and what to do."""


class BackupRejected(BackupError):
    """The backup itself is forged, damaged, truncated, unsigned or cannot be decrypted."""


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
    audit_last_id: int = 0
    anchor_lines: int = 0
    files: dict[str, str] = field(default_factory=dict)  # stored path -> SHA-256 as stored
    encrypted: bool = False
    backup_key_id: str = ""
    at_rest_key_id: str = ""  # the clinic's CANDOR_DB_KEY (database file and blobs), if any


def sqlite_path(url: str) -> Path:
    """The database file of a SQLite URL; :class:`BackupError` with the pg_dump hint otherwise."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        from analysis import config

        raise BackupError(POSTGRES_HINT.format(images=config.image_store_url()))
    if not parsed.database or parsed.database == ":memory:":
        raise BackupError("an in-memory database cannot be backed up")
    return Path(parsed.database).resolve()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_file(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def _online_copy(source: Path, dest: Path) -> None:
    """Copy a live SQLite database page by page (``sqlite3.Connection.backup``), then fsync.
    An encrypted (SQLCipher) database is copied as it is, under the same key."""
    src = at_rest.connect(source, readonly=True, timeout=30)
    try:
        dst = at_rest.connect(
            dest,
            master=at_rest.master_key() if at_rest.is_plaintext_sqlite(source) is False else None,
        )
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")  # a self-contained file, no -wal beside it
        finally:
            dst.close()
    finally:
        src.close()
    _fsync_file(dest)


def _readonly_session(path: Path) -> tuple[Any, Session]:
    module, key = at_rest.dbapi_for(path, at_rest.master_key())
    engine = create_engine(f"sqlite:///file:{path}?mode=ro&uri=true", module=module)
    if key is not None:
        event.listen(engine, "connect", lambda con, _rec: at_rest.apply_key(con, key))
    return engine, Session(engine)


# --- keys and the manifest signature ---------------------------------------------------------


def backup_key() -> bytes | None:
    """The backup encryption key (``CANDOR_BACKUP_KEY`` / ``CANDOR_BACKUP_KEY_FILE``) or None."""
    try:
        return crypto.load_key(BACKUP_KEY_ENV, BACKUP_KEY_FILE_ENV)
    except crypto.BadKeyError as exc:
        raise BackupError(str(exc)) from exc


def _signing_key(*, create: bool) -> bytes:
    """The manifest-signing key, derived from the audit anchor key (never stored in a backup).
    Verification never creates a key: a missing one is a clear refusal."""
    from analysis.store import anchor

    if (
        not create
        and not config.setting("CANDOR_AUDIT_KEY")
        and not config.audit_key_path().exists()
    ):
        raise BackupRejected(
            "there is no audit key to check the backup's signature with; set CANDOR_AUDIT_KEY "
            "or CANDOR_AUDIT_KEY_FILE to the clinic's audit key (it is never inside a backup)"
        )
    try:
        key = anchor.audit_key()
    except (OSError, ValueError) as exc:
        raise BackupRejected(f"the audit key cannot be read ({exc})") from exc
    return hmac.new(key, b"candor backup manifest v1", hashlib.sha256).digest()


def _sign(data: bytes, *, create: bool) -> str:
    return hmac.new(_signing_key(create=create), data, hashlib.sha256).hexdigest()


# --- inspecting a database copy ------------------------------------------------------------------


def live_store(image_root: Path | None = None, store: ImageStore | None = None) -> ImageStore:
    """The image store a backup reads or a restore fills: ``store``, else the directory
    ``image_root``, else the configured one (``CANDOR_IMAGE_STORE``)."""
    if store is not None:
        return store
    return ImageStore(Path(image_root)) if image_root is not None else default_store()


def _beside(store: ImageStore) -> Path:
    """A local directory beside the store for staging (the data directory for object storage)."""
    from analysis import config

    return config.data_dir() if isinstance(store, S3ImageStore) else store.root.parent


def inspect_database(
    db_file: Path, image_root: Path | ImageStore, anchor_file: Path | None = None
) -> Manifest:
    """Check a database file, its image store (a directory or a store) and (when given) its
    anchor copy; the result lists any problems found. Raises :class:`BackupRejected` when the
    file is not a readable database."""
    unreadable: tuple[type[Exception], ...] = (
        sqlite3.DatabaseError,
        SQLAlchemyError,
        *_sqlcipher_errors(),
    )
    try:
        return _inspect_database(db_file, image_root, anchor_file)
    except at_rest.AtRestError as exc:
        raise BackupRejected(f"{db_file.name}: {exc}") from exc
    except unreadable as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise BackupRejected(
            f"the database file {db_file.name} cannot be read ({reason}): it is "
            "damaged or truncated"
        ) from exc


def _sqlcipher_errors() -> tuple[type[Exception], ...]:
    try:
        import sqlcipher3.dbapi2 as sqlcipher
    except ImportError:
        return ()
    return (sqlcipher.DatabaseError,)


def _inspect_database(
    db_file: Path, image_root: Path | ImageStore, anchor_file: Path | None
) -> Manifest:
    from analysis.store import anchor, audit
    from analysis.store.models import AuditEvent, Base, Photo

    problems: list[str] = []
    con = at_rest.connect(db_file, readonly=True)
    try:
        check = [row[0] for row in con.execute("PRAGMA integrity_check")]
        if check != ["ok"]:
            problems.append(f"integrity_check: {'; '.join(check[:5])}")
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        counts = {
            t: int(con.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0])
            for t in sorted(Base.metadata.tables)
            if t in tables
        }
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
        last = session.execute(
            select(AuditEvent.id, AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)
        ).first()
        anchored = anchor.verify_anchor(session, anchor_file) if anchor_file is not None else []
    finally:
        session.close()
        engine.dispose()
    audit_problems = [f"audit event {p.event_id}: {p.problem}" for p in chain]
    audit_problems += [f"anchor, event {p.event_id}: {p.problem}" for p in anchored]
    store = image_root if isinstance(image_root, ImageStore) else ImageStore(image_root)
    total = 0
    for name in referenced:
        if not store.verify(name):
            problems.append(f"image {name[:12]}… is missing or does not re-hash")
        else:
            total += store.stored_size(name)
    return Manifest(
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        database_sha256=_sha256_file(db_file),
        alembic_revision=revision,
        row_counts=counts,
        blob_count=len(referenced),
        blob_bytes=total,
        blobs=referenced,
        audit_events=counts.get("audit_events", 0),
        audit_head=last[1] if last else audit.GENESIS,
        audit_chain_intact=not chain,
        problems=problems,
        audit_problems=audit_problems,
        audit_last_id=int(last[0]) if last else 0,
        anchor_lines=len(anchor.read_anchors(anchor_file)) if anchor_file is not None else 0,
    )


def copy_anchor(dest: Path, last_event_id: int) -> None:
    """Copy the live anchor's lines naming events up to ``last_event_id`` (those in the copy)
    into ``dest``; later lines belong to events written after the copy was taken."""

    live = config.audit_anchor_path()
    lines = live.read_text().splitlines(keepends=True) if live.exists() else []
    kept = []
    for line in lines:
        try:
            if int(json.loads(line)["id"]) > last_event_id:
                continue
        except (ValueError, KeyError, TypeError):
            pass  # a damaged line is copied as it is (verification reports it)
        kept.append(line)
    dest.write_text("".join(kept))
    _fsync_file(dest)


def _stored_files(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and p.name not in (MANIFEST, SIGNATURE)
    )


def _write_manifest(dest: Path, manifest: Manifest) -> None:
    data = json.dumps(asdict(manifest), indent=2, sort_keys=True).encode()
    for name, payload in (
        (SIGNATURE, _sign(data, create=True).encode() + b"\n"),
        (MANIFEST, data),
    ):  # the manifest last: its presence means complete
        tmp = dest / f".{name}.tmp"
        tmp.write_bytes(payload)
        _fsync_file(tmp)
        os.replace(tmp, dest / name)
    _fsync_dir(dest)


# --- reading and verifying a backup --------------------------------------------------------------


def read_manifest(src: Path, *, accept_unsigned: bool = False) -> Manifest:
    """The backup's manifest, after its signature is checked; :class:`BackupRejected` if it is
    missing, unsigned (unless ``accept_unsigned``), forged or unreadable."""
    src = Path(src)
    path = src / MANIFEST
    if not path.is_file():
        raise BackupRejected(f"{src} has no {MANIFEST}: not a Candor backup, or an incomplete one")
    data = path.read_bytes()
    sig_path = src / SIGNATURE
    if sig_path.is_file():
        if not hmac.compare_digest(
            sig_path.read_bytes().strip(), _sign(data, create=False).encode()
        ):
            raise BackupRejected(
                f"the manifest signature of {src} does not match: the backup was altered after "
                "it was made, or CANDOR_AUDIT_KEY is not the key of the clinic that made it"
            )
    elif not accept_unsigned:
        raise BackupRejected(
            f"{src} has no manifest signature ({SIGNATURE}): it was made before "
            "backups were signed or the signature was removed; restore it with "
            "--accept-unsigned only if you trust where it came from"
        )
    try:
        return Manifest(**json.loads(data))
    except (ValueError, TypeError) as exc:
        raise BackupRejected(f"{path} is unreadable: {exc}") from exc


def _check_files(src: Path, manifest: Manifest) -> None:
    """Every stored file hashes to the signed manifest (before any of them is opened)."""
    for rel, digest in sorted(manifest.files.items()):
        path = src / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            raise BackupRejected(f"the manifest names an unsafe path {rel!r}")
        if not path.is_file():
            raise BackupRejected(f"{rel} is missing from the backup {src}")
        if _sha256_file(path) != digest:
            raise BackupRejected(
                f"{rel} in the backup {src} is damaged or truncated (its SHA-256 "
                "does not match the signed manifest)"
            )


def _decrypt_into(src: Path, manifest: Manifest, plain: Path) -> None:
    key = backup_key()
    if key is None:
        raise BackupRejected(
            f"the backup {src} is encrypted; set CANDOR_BACKUP_KEY or "
            "CANDOR_BACKUP_KEY_FILE to its backup key"
        )
    if crypto.key_id(key) != manifest.backup_key_id:
        raise BackupRejected(
            f"the backup {src} was encrypted with another key (key id "
            f"{manifest.backup_key_id}, the configured key is "
            f"{crypto.key_id(key)})"
        )
    for rel in sorted(manifest.files):
        out = plain / rel.removesuffix(ENC_SUFFIX)
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            crypto.decrypt_file(src / rel, out, key)
        except crypto.DecryptError as exc:
            raise BackupRejected(f"{rel} in the backup {src}: {exc}") from exc


def _check_at_rest_key(src: Path, manifest: Manifest) -> None:
    """The backup's database and images are in the clinic's at-rest form: they need the same
    CANDOR_DB_KEY (or none) as the clinic that made it."""
    try:
        master = at_rest.master_key()
    except at_rest.AtRestError as exc:
        raise BackupRejected(str(exc)) from exc
    configured = crypto.key_id(master) if master is not None else ""
    if manifest.at_rest_key_id == configured:
        return
    if not manifest.at_rest_key_id:
        raise BackupRejected(
            f"the backup {src} is of an unencrypted clinic but CANDOR_DB_KEY is "
            "set; restore it without the key, then run `python -m analysis "
            "encrypt`"
        )
    if master is None:
        raise BackupRejected(
            f"the backup {src} holds a clinic encrypted at rest (key id "
            f"{manifest.at_rest_key_id}); set CANDOR_DB_KEY or "
            "CANDOR_DB_KEY_FILE to that clinic's key"
        )
    raise BackupRejected(
        f"the backup {src} was encrypted at rest with another CANDOR_DB_KEY "
        f"(key id {manifest.at_rest_key_id}, the configured key is {configured})"
    )


def open_backup(src: Path, work: Path, *, accept_unsigned: bool = False) -> tuple[Manifest, Path]:
    """Verify the backup ``src`` completely; returns its manifest and the directory holding its
    plaintext (``src`` itself, or ``work/backup`` when it had to be decrypted there)."""
    src = Path(src)
    recorded = read_manifest(src, accept_unsigned=accept_unsigned)
    _check_files(src, recorded)
    _check_at_rest_key(src, recorded)
    plain = src
    if recorded.encrypted:
        plain = work / "backup"
        _decrypt_into(src, recorded, plain)
    if recorded.engine == "postgresql":
        from analysis.store.backup_pg import verify_postgres_backup

        verify_postgres_backup(plain, recorded)
        return recorded, plain
    _verify_sqlite_copy(plain, recorded, src)
    return recorded, plain


def _verify_sqlite_copy(plain: Path, recorded: Manifest, src: Path) -> None:
    db_file = plain / DB_NAME
    if not db_file.is_file():
        raise BackupRejected(f"{src} has no {DB_NAME}")
    anchor_file = plain / ANCHOR_NAME
    found = inspect_database(
        db_file, plain / IMAGES, anchor_file if anchor_file.is_file() else None
    )
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
            "the audit chain check differs from the manifest"
        ]
    if problems:
        raise BackupRejected(f"backup {src} failed verification: " + "; ".join(problems))


def verify_backup(src: Path, *, accept_unsigned: bool = False) -> Manifest:
    """Re-check a backup against its signed manifest; :class:`BackupRejected` naming the first
    problem. An encrypted backup is decrypted into a temporary directory beside the data
    directory (needs the backup key) and the plaintext removed afterwards."""

    work = Path(tempfile.mkdtemp(prefix=".verify-backup-", dir=config.data_dir().parent))
    try:
        return open_backup(Path(src), work, accept_unsigned=accept_unsigned)[0]
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- backup ----------------------------------------------------------------------------------------


def backup(
    dest: Path,
    *,
    url: str | None = None,
    image_root: Path | None = None,
    encrypt: bool = False,
    store: ImageStore | None = None,
) -> Manifest:
    """Back up the clinic at ``url`` (default: the configured database) and its images
    (``store``, or the directory ``image_root``, default the configured image store) into the
    new or empty directory ``dest``, then verify the copy. Encrypted when a backup key is
    configured; ``encrypt`` makes a missing key an error. Returns the manifest."""
    from analysis import config

    url = url or config.database_url()
    store = live_store(image_root, store)
    dest = Path(dest)
    key = backup_key()
    if encrypt and key is None:
        raise BackupError(
            "an encrypted backup needs a key: set CANDOR_BACKUP_KEY_FILE (make one "
            "with `python -m analysis keygen FILE`) or CANDOR_BACKUP_KEY"
        )
    postgres = make_url(url).get_backend_name() == "postgresql"
    source = None if postgres else sqlite_path(url)
    if source is not None and not source.is_file():
        raise BackupError(f"there is no database at {source}")
    if dest.exists() and any(dest.iterdir()):
        raise BackupError(f"{dest} is not empty; back up into a new directory")
    dest.mkdir(parents=True, exist_ok=True)
    _audit_system(url, "store.backup", {"dest": str(dest.resolve()), "encrypted": key is not None})
    plain = (
        dest
        if key is None
        else Path(tempfile.mkdtemp(prefix=".backup-staging-", dir=_beside(store)))
    )
    try:
        if source is None:
            from analysis.store.backup_pg import backup_postgres

            manifest: Manifest = backup_postgres(plain, url=url, store=store)
        else:
            manifest = _backup_sqlite(plain, source, store)
        if manifest.problems:
            raise BackupError(
                "the backup copy failed verification: " + "; ".join(manifest.problems)
            )
        files = {}
        for rel in _stored_files(plain):
            if key is None:
                files[rel] = _sha256_file(plain / rel)
                continue
            out = dest / (rel + ENC_SUFFIX)
            out.parent.mkdir(parents=True, exist_ok=True)
            crypto.encrypt_file(plain / rel, out, key)
            files[rel + ENC_SUFFIX] = _sha256_file(out)
        master = at_rest.master_key()
        manifest = replace(
            manifest,
            files=files,
            encrypted=key is not None,
            backup_key_id=crypto.key_id(key) if key is not None else "",
            at_rest_key_id=crypto.key_id(master) if master is not None else "",
        )
        _write_manifest(dest, manifest)
    finally:
        if plain != dest:
            shutil.rmtree(plain, ignore_errors=True)
    return manifest


def _backup_sqlite(dest: Path, source: Path, src_store: ImageStore) -> Manifest:
    _online_copy(source, dest / DB_NAME)
    engine, session = _readonly_session(dest / DB_NAME)
    try:
        from analysis.store.models import AuditEvent, Photo

        referenced = sorted(set(session.scalars(select(Photo.sha256))))
        last_id = session.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1))
    finally:
        session.close()
        engine.dispose()
    dst_store = ImageStore(dest / IMAGES)
    for name in referenced:
        try:
            data = src_store.get(name, verify=True)
        except OSError as exc:  # missing or corrupt in the live store: say so, stop
            raise BackupError(f"cannot back up: {exc}") from exc
        dst_store.put(data)
    copy_anchor(dest / ANCHOR_NAME, int(last_id or 0))
    return inspect_database(dest / DB_NAME, dest / IMAGES, dest / ANCHOR_NAME)


# --- restore ---------------------------------------------------------------------------------------


def _has_clinic_data(db_file: Path, store: ImageStore) -> bool:
    try:
        if store.names():
            return True
    except OSError as exc:  # the object store cannot be reached or listed
        raise BackupError(f"cannot check the image store before restoring: {exc}") from exc
    if not db_file.is_file() or db_file.stat().st_size == 0:
        return False
    con = at_rest.connect(db_file, readonly=True)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        return any(
            con.execute(f'SELECT 1 FROM "{t}" LIMIT 1').fetchone()
            for t in ("patients", "users", "audit_events")
            if t in tables
        )
    finally:
        con.close()


def install_anchor(source: Path, stamp: str) -> str:
    """Make ``source`` (a backup's anchor lines) the live anchor file. The live file is kept as
    ``<anchor>.pre-restore-<stamp>`` (returned, or "" when there was none); the swap is one
    rename, so the live path always holds a whole file."""

    live = config.audit_anchor_path()
    live.parent.mkdir(parents=True, exist_ok=True)
    tmp = live.with_name(f".{live.name}.restore-{stamp}")
    shutil.copyfile(source, tmp)
    os.chmod(tmp, 0o600)
    _fsync_file(tmp)
    kept = ""
    if live.exists():
        aside = live.with_name(f"{live.name}.pre-restore-{stamp}")
        shutil.copy2(live, aside)
        _fsync_file(aside)
        kept = str(aside)
    os.replace(tmp, live)
    _fsync_dir(live.parent)
    return kept


def restore(
    src: Path,
    *,
    url: str | None = None,
    image_root: Path | None = None,
    force: bool = False,
    accept_unsigned: bool = False,
    store: ImageStore | None = None,
) -> Manifest:
    """Restore the backup ``src`` into the configured data directory and image store (or
    ``url`` and ``store`` / the directory ``image_root``).

    Verifies ``src`` (signature, file hashes, decryption, contents), stages a copy next to the
    target, verifies the staged copy, then swaps it in together with the backup's audit anchor.
    Refuses when the target already holds clinic data unless ``force``; replaced files are moved
    to ``.pre-restore-<time>/`` beside the database. Close the app before restoring.
    """

    src = Path(src)
    url = url or config.database_url()
    store = live_store(image_root, store)
    kind = "postgresql" if make_url(url).get_backend_name() == "postgresql" else "sqlite"
    target = sqlite_path(url) if kind == "sqlite" else None
    if target is not None and _has_clinic_data(target, store) and not force:
        raise BackupError(
            f"{target.parent} already holds clinic data; restoring would replace it. "
            "Back it up first, then restore with --force."
        )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    staging = (target.parent if target is not None else _beside(store)) / f".restore-{stamp}"
    staging.mkdir(parents=True)
    try:
        manifest, plain = open_backup(src, staging, accept_unsigned=accept_unsigned)
        if kind != manifest.engine:
            raise BackupError(
                f"{src} is a {manifest.engine} backup but the configured database "
                f"is {kind}; restore it into a {manifest.engine} database"
            )
        if target is None:
            from analysis.store.backup_pg import restore_postgres

            restore_postgres(plain, manifest, url=url, store=store)
        else:
            _restore_sqlite(plain, manifest, staging, target, store, stamp)
        replaced_anchor = ""
        if (plain / ANCHOR_NAME).is_file():
            replaced_anchor = install_anchor(plain / ANCHOR_NAME, stamp)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _audit_system(
        url,
        "store.restore",
        {
            "source": str(src.resolve()),
            "backup_created_at": manifest.created_at,
            "audit_head": manifest.audit_head,
            "forced": force,
            "encrypted": manifest.encrypted,
            "replaced_anchor": replaced_anchor,
        },
    )
    return manifest


def _restore_sqlite(
    plain: Path, manifest: Manifest, staging: Path, target: Path, store: ImageStore, stamp: str
) -> None:
    """Stage the database (and, for a directory store, the images) beside the target, verify
    the staged copy, then swap it in. Object storage cannot be swapped: the backup's blobs are
    written into the live bucket (idempotent by hash), and read back and re-hashed by the
    verification, before the database that references them is put in place."""
    from analysis.store import db

    local = not isinstance(store, S3ImageStore)
    staged_db = staging / "staged" / DB_NAME
    staged_db.parent.mkdir()
    _online_copy(plain / DB_NAME, staged_db)
    staged_store = ImageStore(staged_db.parent / IMAGES) if local else store
    source_store = ImageStore(plain / IMAGES)
    try:
        for name in manifest.blobs:
            staged_store.put(source_store.get(name, verify=True))
    except OSError as exc:  # e.g. the object store cannot be reached
        raise BackupError(f"cannot restore the images: {exc}") from exc
    anchor_file = plain / ANCHOR_NAME
    staged = inspect_database(
        staged_db, staged_store, anchor_file if anchor_file.is_file() else None
    )
    if (
        staged.problems
        or staged.audit_head != manifest.audit_head
        or staged.audit_problems != manifest.audit_problems
    ):
        raise BackupError("the staged copy failed verification: " + "; ".join(staged.problems))
    db.dispose_engines()
    aside = target.parent / f".pre-restore-{stamp}"
    if local and store.root.is_dir() and not any(store.root.iterdir()):
        store.root.rmdir()  # an empty image directory has nothing to keep aside
    moved = [target, Path(f"{target}-wal"), Path(f"{target}-shm")] + ([store.root] if local else [])
    for path in moved:
        if path.exists():
            aside.mkdir(exist_ok=True)
            os.replace(path, aside / path.name)
    if local:
        os.replace(staged_db.parent / IMAGES, store.root)
    os.replace(staged_db, target)
    _fsync_dir(target.parent)
    if local and store.root.parent != target.parent:
        _fsync_dir(store.root.parent)


def _audit_system(url: str, action: str, details: dict[str, Any]) -> None:
    from analysis.store import audit, db
    from analysis.store.access import SYSTEM

    engine = db.make_engine(url)
    try:
        with db.session_scope(engine) as session:
            audit.record(session, SYSTEM, action, object_type="store", details=details)
    except (SQLAlchemyError, audit.AuditWriteError) as exc:
        raise BackupError(f"cannot record {action} in the audit log: {exc}") from exc
    finally:
        engine.dispose()
