"""Content-addressed image store.

A blob is named by the SHA-256 of its bytes and lives at ``<root>/<ab>/<abcdef...>`` (two-character
fan-out). Writes are atomic: bytes go to a temporary file in the same directory, are fsynced, then
renamed into place and the directory is fsynced, so a crash leaves either no blob or a whole one,
never a torn file. Callers write the blob *before* the database row that references it; a crash in
between leaves an unreferenced blob, which :meth:`ImageStore.sweep` removes.
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
    """The blob's bytes no longer hash to its name."""


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

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path_for(self, sha256: str) -> Path:
        if not _HEX64.match(sha256):
            raise ValueError(f"not a SHA-256 hex name: {sha256!r}")
        return self.root / sha256[:2] / sha256

    def put(self, data: bytes) -> str:
        """Store ``data`` atomically and durably; return its SHA-256 name (idempotent)."""
        name = sha256_hex(data)
        final = self.path_for(name)
        if final.exists() and final.stat().st_size == len(data):
            return name
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=final.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(final.parent)
        return name

    def get(self, sha256: str, *, verify: bool = False) -> bytes:
        path = self.path_for(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise BlobMissingError(f"image {sha256[:12]}… is missing from the store") from exc
        if verify and sha256_hex(data) != sha256:
            raise BlobCorruptError(f"image {sha256[:12]}… is corrupt (hash mismatch)")
        return data

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def verify(self, sha256: str) -> bool:
        """True when the blob exists and re-hashes to its name."""
        try:
            self.get(sha256, verify=True)
        except (BlobMissingError, BlobCorruptError):
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
