"""Encryption at rest for the embedded clinic: SQLCipher for the SQLite file, AES-GCM for blobs.

One master key, 256 bits as 64 hex characters, in ``CANDOR_DB_KEY`` or in the file named by
``CANDOR_DB_KEY_FILE`` (``python -m analysis keygen FILE`` makes one). Two keys are derived from
it with HKDF-SHA-256, so neither use weakens the other:

* the SQLCipher raw key (``PRAGMA key = "x'…'"``: no per-connection PBKDF2, the key is already
  random) for the database file, its WAL and its journal;
* the AES-256-GCM key for image blobs (:class:`analysis.store.images.ImageStore`): each blob is
  ``MAGIC + nonce(12) + ciphertext+tag`` with its SHA-256 name (the hash of the *plaintext*) as
  associated data, so a blob cannot be swapped for another one's ciphertext.

Without a key everything stays plaintext, as before. A file's own header says which it is
(:func:`is_plaintext_sqlite`), so a key set on a plaintext clinic (or a missing key on an
encrypted one) is a clear error, not "file is not a database". ``python -m analysis encrypt``
(:mod:`analysis.store.encrypt`) converts a clinic and rotates keys.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from analysis.store import crypto

KEY_ENV, KEY_FILE_ENV = "CANDOR_DB_KEY", "CANDOR_DB_KEY_FILE"
SQLITE_HEADER = b"SQLite format 3\x00"


class AtRestError(RuntimeError):
    """The database or a blob cannot be opened with the configured key (or lack of one)."""


def master_key() -> bytes | None:
    """The configured master key, or None (plaintext clinic)."""
    try:
        return crypto.load_key(KEY_ENV, KEY_FILE_ENV)
    except crypto.BadKeyError as exc:
        raise AtRestError(str(exc)) from exc


def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"candor at rest: " + purpose
    ).derive(master)


def sqlcipher_key(master: bytes) -> bytes:
    return _derive(master, b"sqlcipher")


def blob_key(master: bytes | None) -> bytes | None:
    return None if master is None else _derive(master, b"blobs")


def key_pragma(master: bytes) -> str:
    return f"PRAGMA key = \"x'{sqlcipher_key(master).hex()}'\""


def is_plaintext_sqlite(path: Path) -> bool | None:
    """True for a plaintext SQLite file, False for anything else (SQLCipher), None when the
    file does not exist or is empty (a new database takes whichever form is configured)."""
    try:
        with Path(path).open("rb") as handle:
            head = handle.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return None
    if not head:
        return None
    return head == SQLITE_HEADER


def dbapi_for(path: Path, master: bytes | None) -> tuple[Any, bytes | None]:
    """The DB-API module and the key to open ``path`` with, checked against its header."""
    plain = is_plaintext_sqlite(path)
    if plain is True and master is not None:
        raise AtRestError(
            f"the database {path} is not encrypted but CANDOR_DB_KEY is set: run "
            "`python -m analysis encrypt` to encrypt it, or unset the key"
        )
    if plain is False and master is None:
        raise AtRestError(
            f"the database {path} is encrypted (or not a SQLite file): set "
            "CANDOR_DB_KEY or CANDOR_DB_KEY_FILE to its key"
        )
    if master is None:
        return sqlite3, None
    import sqlcipher3.dbapi2 as sqlcipher

    return sqlcipher, master


def apply_key(dbapi_connection: Any, master: bytes | None) -> None:
    """First statement on a new connection: the key, then a read that proves it is right."""
    if master is None:
        return
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(key_pragma(master))
        cursor.execute("SELECT count(*) FROM sqlite_master")
    except Exception as exc:  # sqlcipher3.DatabaseError: "file is not a database"
        raise AtRestError(
            "the database does not open with the configured CANDOR_DB_KEY (a "
            "different key, or the file is damaged)"
        ) from exc
    finally:
        cursor.close()


def connect(
    path: Path, *, readonly: bool = False, master: bytes | None | bool = True, **kwargs: Any
) -> Any:
    """A raw DB-API connection to the SQLite file ``path``, keyed as its header requires.
    ``master=True`` means the configured key."""
    key = master_key() if master is True else master
    module, key = dbapi_for(path, key)  # type: ignore[arg-type]
    target = f"file:{path}?mode=ro" if readonly else str(path)
    con = module.connect(target, uri=readonly, **kwargs)
    try:
        apply_key(con, key)
    except BaseException:
        con.close()
        raise
    return con
