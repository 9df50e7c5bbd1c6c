"""``python -m analysis encrypt``: convert an embedded clinic to encryption at rest, or rotate its
key, without ever leaving a half-converted store in use.

The conversion is *staged, verified, then rolled forward*:

1. a complete converted copy is built in ``<data dir>/.encrypt-staging-<time>/``: the database through
   ``sqlcipher_export`` (schema, indexes, triggers and rows, under the new key) and every blob
   re-sealed under the new blob key; the copy is checked (``integrity_check``, same tables and
   row counts, every blob decrypts and re-hashes to its name). A crash here leaves the clinic
   untouched; the next run discards the partial copy.
2. a marker file ``.encrypt-in-progress.json`` is written (fsynced). From then on no engine opens
   the database (:func:`analysis.store.db.make_engine` refuses) until the swap is complete.
3. the swap: the old images, database, ``-wal`` and ``-shm`` are moved to
   ``.pre-encrypt-<time>/``, the converted ones moved in, directories fsynced, the marker
   removed. Every step is idempotent: after a crash, running ``encrypt`` again finishes it.

The old files are kept in ``.pre-encrypt-<time>/`` (plaintext, or the old key's ciphertext) until
you delete them; the command says so. Key rotation is the same operation from the current key
(``CANDOR_DB_KEY`` / ``CANDOR_DB_KEY_FILE``) to a new one (``--new-key-file``).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from analysis.store import at_rest, crypto
from analysis.store.db import ENCRYPT_MARKER
from analysis.store.images import TEMP_PREFIX, ImageStore, _fsync_dir

DB_STAGED = "candor.sqlite3"
IMAGES_STAGED = "images"


class EncryptError(RuntimeError):
    """The conversion cannot proceed; nothing was changed (the message says why)."""


@dataclass(frozen=True)
class EncryptReport:
    tables: int
    rows: int
    blobs: int
    kept_aside: str
    resumed: bool


def _replace(src: Path, dst: Path) -> None:
    """One rename (a seam for the crash tests)."""
    os.replace(src, dst)


def _attach_key(master: bytes | None) -> str:
    return "''" if master is None else f"\"x'{at_rest.sqlcipher_key(master).hex()}'\""


def _counts(con: Any) -> tuple[list[tuple[str, str]], dict[str, int]]:
    schema = sorted(
        (str(t), str(n))
        for t, n in con.execute(
            "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
        )
    )
    counts = {
        name: int(con.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0])
        for kind, name in schema
        if kind == "table"
    }
    return schema, counts


def _export_database(
    db_file: Path, staged: Path, old: bytes | None, new: bytes | None
) -> tuple[int, int]:
    import sqlcipher3.dbapi2 as sqlcipher

    con = at_rest.connect(db_file, master=old, timeout=30)
    try:
        if not isinstance(con, sqlcipher.Connection):  # plaintext source: SQLCipher reads it too
            con.close()
            con = sqlcipher.connect(str(db_file), timeout=30)
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        source_schema, source_counts = _counts(con)
        con.execute(f"ATTACH DATABASE ? AS converted KEY {_attach_key(new)}", (str(staged),))
        con.execute("SELECT sqlcipher_export('converted')")
        con.execute("DETACH DATABASE converted")
    finally:
        con.close()
    check = at_rest.connect(staged, master=new)
    try:
        integrity = [r[0] for r in check.execute("PRAGMA integrity_check")]
        schema, counts = _counts(check)
    finally:
        check.close()
    if integrity != ["ok"] or schema != source_schema or counts != source_counts:
        raise EncryptError(
            "the converted database does not match the original "
            f"(integrity {integrity[:1]}); nothing was changed"
        )
    with staged.open("rb") as handle:
        os.fsync(handle.fileno())
    return len(counts), sum(counts.values())


def _convert_blobs(image_root: Path, staged: Path, old: bytes | None, new: bytes | None) -> int:
    source = ImageStore(image_root, key=at_rest.blob_key(old))
    target = ImageStore(staged, key=at_rest.blob_key(new))
    names = sorted(source.names())
    for name in names:
        try:
            target.put(source.get(name, verify=True))
        except OSError as exc:
            raise EncryptError(f"cannot convert: {exc}; nothing was changed") from exc
    for name in names:
        if not target.verify(name):
            raise EncryptError(f"converted image {name[:12]}… does not verify; nothing changed")
    _fsync_dir(staged)
    return len(names)


def _roll_forward(marker: Path) -> str:
    """Finish the swap a marker describes (idempotent); returns the directory kept aside."""
    plan = json.loads(marker.read_text())
    staging, aside = Path(plan["staging"]), Path(plan["aside"])
    db_file, image_root = Path(plan["database"]), Path(plan["images"])
    aside.mkdir(exist_ok=True)
    if (staging / IMAGES_STAGED).exists():
        if image_root.exists():
            _replace(image_root, aside / image_root.name)
        _replace(staging / IMAGES_STAGED, image_root)
    if (staging / DB_STAGED).exists():
        for path in (db_file, Path(f"{db_file}-wal"), Path(f"{db_file}-shm")):
            if path.exists():
                _replace(path, aside / path.name)
        _replace(staging / DB_STAGED, db_file)
    _fsync_dir(db_file.parent)
    if image_root.parent != db_file.parent:
        _fsync_dir(image_root.parent)
    marker.unlink()
    _fsync_dir(marker.parent)
    shutil.rmtree(staging, ignore_errors=True)
    return str(aside)


def convert(
    db_file: Path, image_root: Path, *, old: bytes | None, new: bytes | None
) -> EncryptReport:
    """Convert the clinic (``db_file`` + ``image_root``) from the key ``old`` to ``new`` (either
    may be None: plaintext). Resumes an interrupted conversion first."""
    from analysis.store import db

    db_file, image_root = Path(db_file).resolve(), Path(image_root).resolve()
    marker = db_file.parent / ENCRYPT_MARKER
    if marker.exists():
        kept = _roll_forward(marker)
        return EncryptReport(tables=0, rows=0, blobs=0, kept_aside=kept, resumed=True)
    for stale in db_file.parent.glob(".encrypt-staging-*"):  # a copy a crash left before the marker
        shutil.rmtree(stale, ignore_errors=True)
    if not db_file.is_file():
        raise EncryptError(f"there is no database at {db_file}")
    form = at_rest.is_plaintext_sqlite(db_file)
    if form is True and old is not None:
        raise EncryptError(
            f"{db_file} is not encrypted; unset CANDOR_DB_KEY to encrypt it with "
            "--new-key-file, or keep the key set and run encrypt without it"
        )
    if form is False and old is None:
        raise EncryptError(
            f"{db_file} is already encrypted; set CANDOR_DB_KEY_FILE to its key "
            "(and --new-key-file to rotate)"
        )
    if old is not None and new is not None and crypto.key_id(old) == crypto.key_id(new):
        raise EncryptError(
            "the new key is the current key; make a new one with `python -m analysis keygen FILE`"
        )
    db.dispose_engines()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    staging = db_file.parent / f".encrypt-staging-{stamp}"
    staging.mkdir()
    try:
        tables, rows = _export_database(db_file, staging / DB_STAGED, old, new)
        blobs = (
            _convert_blobs(image_root, staging / IMAGES_STAGED, old, new)
            if image_root.is_dir()
            else 0
        )
        for tmp in (staging / IMAGES_STAGED).glob(f"??/{TEMP_PREFIX}*"):
            tmp.unlink()
        _fsync_dir(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    tmp_marker = marker.with_name(marker.name + ".tmp")
    tmp_marker.write_text(
        json.dumps(
            {
                "staging": str(staging),
                "aside": str(db_file.parent / f".pre-encrypt-{stamp}"),
                "database": str(db_file),
                "images": str(image_root),
                "to_key_id": crypto.key_id(new) if new is not None else "",
            }
        )
    )
    with tmp_marker.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp_marker, marker)
    _fsync_dir(marker.parent)
    kept = _roll_forward(marker)
    return EncryptReport(tables=tables, rows=rows, blobs=blobs, kept_aside=kept, resumed=False)
