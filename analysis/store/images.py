"""Content-addressed image store.

A blob is named by the SHA-256 of its bytes and lives at ``<root>/<ab>/<abcdef...>`` (two-character
fan-out). Writes are atomic: bytes go to a temporary file in the same directory, are fsynced, then
renamed into place and the directory is fsynced, so a crash leaves either no blob or a whole one,
never a torn file. Callers write the blob *before* the database row that references it; a crash in
between leaves an unreferenced blob, which :meth:`ImageStore.sweep` removes.

With an at-rest key (``CANDOR_DB_KEY``, :mod:`analysis.store.at_rest`) each blob file holds
``BLOB_MAGIC + nonce + AES-256-GCM(bytes)``, a fresh random nonce per blob and the name as
associated data; the name is still the SHA-256 of the *plaintext*, and ``verify`` decrypts and
re-hashes. A store reads both forms (a plaintext blob has no magic), so ``python -m analysis
encrypt`` can convert one blob at a time.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
TEMP_PREFIX = ".tmp-"


class BlobMissingError(FileNotFoundError):
    """The referenced blob is not in the store."""


class BlobCorruptError(OSError):
    """The blob's bytes no longer hash to its name (or, encrypted, no longer authenticate)."""


class BlobLockedError(OSError):
    """The blob is encrypted and no (or another) at-rest key is configured."""


BLOB_MAGIC = b"CANDOR-BLOB-1\n"
_DEFAULT = object()


@dataclass(frozen=True)
class SweepReport:
    temp_files_removed: int
    unreferenced_removed: int


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ImageStore:
    """Blobs under ``root``; every method validates the hex name so no path can escape the root."""

    def __init__(self, root: Path, key: bytes | None | object = _DEFAULT) -> None:
        """``key``: the blob key (:func:`analysis.store.at_rest.blob_key`); by default the one
        derived from the configured ``CANDOR_DB_KEY``, None for plaintext."""
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        if key is _DEFAULT:
            from analysis.store import at_rest

            key = at_rest.blob_key(at_rest.master_key())
        self.key: bytes | None = key  # type: ignore[assignment]

    def _encode(self, name: str, data: bytes) -> bytes:
        if self.key is None:
            return data
        from analysis.store.crypto import seal

        return BLOB_MAGIC + seal(data, self.key, name.encode())

    def _decode(self, name: str, raw: bytes) -> bytes:
        if not raw.startswith(BLOB_MAGIC):
            return raw
        if self.key is None:
            raise BlobLockedError(f"image {name[:12]}… is encrypted: set CANDOR_DB_KEY or "
                                  "CANDOR_DB_KEY_FILE to the clinic's key")
        from analysis.store.crypto import DecryptError, unseal

        try:
            return unseal(raw[len(BLOB_MAGIC):], self.key, name.encode())
        except DecryptError as exc:
            raise BlobCorruptError(f"image {name[:12]}… does not decrypt (another key, or "
                                   "altered)") from exc

    def path_for(self, sha256: str) -> Path:
        if not _HEX64.match(sha256):
            raise ValueError(f"not a SHA-256 hex name: {sha256!r}")
        return self.root / sha256[:2] / sha256

    def put(self, data: bytes) -> str:
        """Store ``data`` atomically and durably; return its SHA-256 name (idempotent)."""
        name = sha256_hex(data)
        final = self.path_for(name)
        if final.exists() and self._current_form(final, len(data)):
            return name
        payload = self._encode(name, data)
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=final.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(final.parent)
        return name

    def _current_form(self, path: Path, plain_len: int) -> bool:
        """The stored file is already this blob in this store's form (plaintext or sealed)."""
        if self.key is None:
            return path.stat().st_size == plain_len
        with path.open("rb") as handle:
            encrypted = handle.read(len(BLOB_MAGIC)) == BLOB_MAGIC
        return encrypted and path.stat().st_size == len(BLOB_MAGIC) + 12 + plain_len + 16

    def get(self, sha256: str, *, verify: bool = False) -> bytes:
        path = self.path_for(sha256)
        try:
            raw = path.read_bytes()
        except FileNotFoundError as exc:
            raise BlobMissingError(f"image {sha256[:12]}… is missing from the store") from exc
        data = self._decode(sha256, raw)
        if verify and sha256_hex(data) != sha256:
            raise BlobCorruptError(f"image {sha256[:12]}… is corrupt (hash mismatch)")
        return data

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def verify(self, sha256: str) -> bool:
        """True when the blob exists and re-hashes to its name."""
        try:
            self.get(sha256, verify=True)
        except (BlobMissingError, BlobCorruptError, BlobLockedError):
            return False
        return True

    def names(self) -> set[str]:
        return {
            p.name for p in self.root.glob("??/*") if p.is_file() and _HEX64.match(p.name)
        }

    def sweep(self, referenced: set[str]) -> SweepReport:
        """Remove leftover temporary files and blobs no row references."""
        temps = 0
        for tmp in self.root.glob(f"??/{TEMP_PREFIX}*"):
            tmp.unlink(missing_ok=True)
            temps += 1
        orphans = 0
        for name in self.names() - referenced:
            self.path_for(name).unlink(missing_ok=True)
            orphans += 1
        return SweepReport(temp_files_removed=temps, unreferenced_removed=orphans)


def default_store() -> ImageStore:
    from analysis import config

    return ImageStore(config.image_dir())
