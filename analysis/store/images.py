"""Content-addressed image store, on a local directory or on S3-compatible object storage.

A blob is named by the SHA-256 of its bytes and lives at ``<ab>/<abcdef...>`` (two-character
fan-out) under the store's root: a directory (:class:`ImageStore`, ``file://``, the default) or a
bucket and prefix (:class:`S3ImageStore`, ``s3://bucket/prefix``); ``CANDOR_IMAGE_STORE`` selects
one (:func:`default_store`, :mod:`analysis.config`). The key is the hash and nothing else, so no
patient identifier ever appears in a file or object name.

Writes are atomic and idempotent by hash. On a directory, bytes go to a temporary file in the
same directory, are fsynced, then renamed into place and the directory is fsynced, so a crash
leaves either no blob or a whole one, never a torn file. On object storage a single PUT is atomic
(never multipart), made with ``If-None-Match: *`` so two replicas writing the same photo at once
both succeed and neither overwrites the other. An existing blob already in this store's form is
never rewritten. Callers write the blob *before* the database row that references it; a crash in
between leaves an unreferenced blob, which :meth:`ImageStore.sweep` removes.

With an at-rest key (``CANDOR_DB_KEY``, :mod:`analysis.store.at_rest`) each blob holds
``BLOB_MAGIC + nonce + AES-256-GCM(bytes)``, a fresh random nonce per blob and the name as
associated data; the name is still the SHA-256 of the *plaintext*, and ``verify`` decrypts and
re-hashes. A store reads both forms (a plaintext blob has no magic), so ``python -m analysis
encrypt`` can convert one blob at a time. The object store holds only what the file store would
hold on disk: sealed bytes when a key is set.

Reads return bytes (:meth:`ImageStore.get`) or stream in chunks (:meth:`ImageStore.stream`). A
blob that is not there is :class:`BlobMissingError`; an object store that cannot be reached, or
refuses, is :class:`ImageStoreUnavailableError` (an ``OSError``, so callers that report a failed
read or write report this too), never a missing blob.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_KEY = re.compile(r"^([0-9a-f]{2})/([0-9a-f]{64})$")
TEMP_PREFIX = ".tmp-"
STREAM_CHUNK = 1 << 20

T = TypeVar("T")


class BlobMissingError(FileNotFoundError):
    """The referenced blob is not in the store."""


class BlobCorruptError(OSError):
    """The blob's bytes no longer hash to its name (or, encrypted, no longer authenticate)."""


class BlobLockedError(OSError):
    """The blob is encrypted and no (or another) at-rest key is configured."""


class ImageStoreUnavailableError(OSError):
    """The object store cannot be reached, refuses the credentials, or has no such bucket."""


BLOB_MAGIC = b"CANDOR-BLOB-1\n"
_SEAL_OVERHEAD = len(BLOB_MAGIC) + 12 + 16  # magic, GCM nonce, GCM tag
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


def _check_name(sha256: str) -> str:
    if not isinstance(sha256, str) or not _HEX64.match(sha256):
        raise ValueError(f"not a SHA-256 hex name: {sha256!r}")
    return sha256


def blob_key(sha256: str) -> str:
    """The blob's name inside any store: ``ab/abcdef…`` (the hash, nothing else)."""
    _check_name(sha256)
    return f"{sha256[:2]}/{sha256}"


class ImageStore:
    """Blobs under the directory ``root``; every method validates the hex name so no path can
    escape the root. This class is also the interface: :class:`S3ImageStore` keeps the same
    blobs in a bucket by overriding the six ``_stored_*`` / ``_remove*`` primitives."""

    def __init__(self, root: Path, key: bytes | None | object = _DEFAULT) -> None:
        """``key``: the blob key (:func:`analysis.store.at_rest.blob_key`); by default the one
        derived from the configured ``CANDOR_DB_KEY``, None for plaintext."""
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._set_key(key)

    def _set_key(self, key: bytes | None | object) -> None:
        if key is _DEFAULT:
            from analysis.store import at_rest

            key = at_rest.blob_key(at_rest.master_key())
        self.key: bytes | None = key  # type: ignore[assignment]

    @property
    def url(self) -> str:
        """Where the blobs are, for messages (``file:///…`` or ``s3://bucket/prefix``)."""
        return self.root.resolve().as_uri()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r}, sealed={self.key is not None})"

    # --- sealing (both backends) ------------------------------------------------------------

    def _encode(self, name: str, data: bytes) -> bytes:
        if self.key is None:
            return data
        from analysis.store.crypto import seal

        return BLOB_MAGIC + seal(data, self.key, name.encode())

    def _decode(self, name: str, raw: bytes) -> bytes:
        if not raw.startswith(BLOB_MAGIC):
            return raw
        if self.key is None:
            raise BlobLockedError(
                f"image {name[:12]}… is encrypted: set CANDOR_DB_KEY or "
                "CANDOR_DB_KEY_FILE to the clinic's key"
            )
        from analysis.store.crypto import DecryptError, unseal

        try:
            return unseal(raw[len(BLOB_MAGIC) :], self.key, name.encode())
        except DecryptError as exc:
            raise BlobCorruptError(
                f"image {name[:12]}… does not decrypt (another key, or altered)"
            ) from exc

    def _current_form(self, stored_size: int, plain_len: int) -> bool:
        """A stored blob of ``stored_size`` bytes is already this blob in this store's form
        (plaintext, or sealed: a plaintext blob of this name is exactly ``plain_len`` bytes)."""
        return stored_size == (plain_len if self.key is None else plain_len + _SEAL_OVERHEAD)

    # --- the interface ------------------------------------------------------------------------

    def path_for(self, sha256: str) -> Path:
        """The blob's file (directory store only)."""
        return self.root / blob_key(sha256)

    def put(self, data: bytes) -> str:
        """Store ``data`` atomically and durably; return its SHA-256 name. Idempotent: a blob
        already stored in this store's form is not written again."""
        data = bytes(data)
        name = sha256_hex(data)
        size = self._stored_size(name)
        if size is not None and self._current_form(size, len(data)):
            return name
        self._stored_write(name, self._encode(name, data), replace=size is not None)
        return name

    def get(self, sha256: str, *, verify: bool = False) -> bytes:
        """The blob's plaintext bytes; :class:`BlobMissingError` when it is not stored."""
        _check_name(sha256)
        data = self._decode(sha256, self._stored_read(sha256))
        if verify and sha256_hex(data) != sha256:
            raise BlobCorruptError(f"image {sha256[:12]}… is corrupt (hash mismatch)")
        return data

    def stream(
        self, sha256: str, *, chunk_size: int = STREAM_CHUNK, verify: bool = True
    ) -> Iterator[bytes]:
        """The blob's plaintext in chunks of about ``chunk_size`` bytes, without holding a large
        plaintext blob in memory. With ``verify`` the bytes are hashed as they pass and the
        iterator raises :class:`BlobCorruptError` after the last chunk if they do not hash to
        the name: a consumer must discard what it got then. A sealed blob is authenticated as
        a whole (AES-GCM), so it is read and decrypted before its first chunk is given out.
        :class:`BlobMissingError` is raised by the first ``next()``."""
        _check_name(sha256)
        chunk_size = max(int(chunk_size), len(BLOB_MAGIC))
        chunks = self._stored_stream(sha256, chunk_size)
        first = next(chunks, b"")
        if first.startswith(BLOB_MAGIC):
            raw = b"".join([first, *chunks])
            data = self._decode(sha256, raw)
            if verify and sha256_hex(data) != sha256:
                raise BlobCorruptError(f"image {sha256[:12]}… is corrupt (hash mismatch)")
            for start in range(0, len(data), chunk_size):
                yield data[start : start + chunk_size]
            return
        digest = hashlib.sha256()
        for chunk in _chain(first, chunks):
            if chunk:
                digest.update(chunk)
                yield chunk
        if verify and digest.hexdigest() != sha256:
            raise BlobCorruptError(f"image {sha256[:12]}… is corrupt (hash mismatch)")

    def exists(self, sha256: str) -> bool:
        return self._stored_size(_check_name(sha256)) is not None

    def stored_size(self, sha256: str) -> int:
        """Bytes the blob takes in the store (sealed blobs are 42 bytes longer)."""
        size = self._stored_size(_check_name(sha256))
        if size is None:
            raise BlobMissingError(f"image {sha256[:12]}… is missing from the store")
        return size

    def verify(self, sha256: str) -> bool:
        """True when the blob exists and re-hashes to its name. An object store that cannot be
        reached raises :class:`ImageStoreUnavailableError` rather than answer False."""
        try:
            self.get(sha256, verify=True)
        except (BlobMissingError, BlobCorruptError, BlobLockedError):
            return False
        return True

    def names(self) -> set[str]:
        return {name for name, _ in self._stored_names()}

    def check(self) -> None:
        """Raise when the store cannot be used (readiness probes): one cheap request."""
        if not self.root.is_dir():
            raise ImageStoreUnavailableError(f"the image store {self.url} is not a directory")

    def sweep(self, referenced: set[str], *, min_age_s: float = 0.0) -> SweepReport:
        """Remove leftover temporary files and blobs no row references. ``min_age_s`` spares
        anything written in the last that many seconds: while the app runs, a blob is written
        just before the row that references it is committed, so a sweep beside running
        replicas must not remove what a replica is saving right now."""
        cutoff = time.time() - max(0.0, float(min_age_s))
        temps = self._remove_temps(cutoff)
        orphans = 0
        for name, modified in self._stored_names():
            if name not in referenced and modified <= cutoff:
                self._remove(name)
                orphans += 1
        return SweepReport(temp_files_removed=temps, unreferenced_removed=orphans)

    # --- directory primitives -----------------------------------------------------------------

    def _stored_size(self, name: str) -> int | None:
        try:
            stat = self.path_for(name).stat()
        except FileNotFoundError:
            return None
        return stat.st_size

    def _stored_read(self, name: str) -> bytes:
        try:
            return self.path_for(name).read_bytes()
        except FileNotFoundError as exc:
            raise BlobMissingError(f"image {name[:12]}… is missing from the store") from exc

    def _stored_stream(self, name: str, chunk_size: int) -> Iterator[bytes]:
        try:
            handle = self.path_for(name).open("rb")
        except FileNotFoundError as exc:
            raise BlobMissingError(f"image {name[:12]}… is missing from the store") from exc
        with handle:
            yield from iter(lambda: handle.read(chunk_size), b"")

    def _stored_write(self, name: str, payload: bytes, *, replace: bool) -> None:
        final = self.path_for(name)
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

    def _stored_names(self) -> Iterator[tuple[str, float]]:
        for path in self.root.glob("??/*"):
            if _HEX64.match(path.name) and path.parent.name == path.name[:2]:
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue
                yield path.name, stat.st_mtime

    def _remove(self, name: str) -> None:
        self.path_for(name).unlink(missing_ok=True)

    def _remove_temps(self, cutoff: float) -> int:
        removed = 0
        for tmp in self.root.glob(f"??/{TEMP_PREFIX}*"):
            try:
                if tmp.stat().st_mtime > cutoff:
                    continue
            except FileNotFoundError:
                continue
            tmp.unlink(missing_ok=True)
            removed += 1
        return removed


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


# --- S3-compatible object storage --------------------------------------------------------------


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix without slashes; may be empty)."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"not an S3 store URL: {url!r} (use s3://bucket/prefix)")
    if parts.query or parts.fragment:
        raise ValueError(
            f"{url!r}: an S3 store URL takes no query; the endpoint and "
            "credentials come from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, "
            "AWS_SECRET_ACCESS_KEY and AWS_REGION"
        )
    prefix = unquote(parts.path).strip("/")
    if any(seg in ("", ".", "..") for seg in prefix.split("/")) and prefix:
        raise ValueError(f"{url!r}: the prefix has an empty, '.' or '..' segment")
    return parts.netloc, prefix


@functools.lru_cache(maxsize=32)
def _s3_client(bucket: str, prefix: str, settings: Any, timeout_s: float) -> Any:
    """One obstore client (and its connection pool) per bucket, prefix and settings, shared by
    every store object and thread of the process: building one costs ~15 ms."""
    from datetime import timedelta

    from obstore.store import S3Store

    endpoint = settings.endpoint
    options: dict[str, Any] = {"region": settings.region}
    if endpoint:
        options["endpoint"] = endpoint
    if settings.access_key_id:
        options["access_key_id"] = settings.access_key_id
    if settings.secret_access_key:
        options["secret_access_key"] = settings.secret_access_key
    if settings.session_token:
        options["session_token"] = settings.session_token
    client = {
        "allow_http": bool(endpoint and endpoint.startswith("http://")),
        "connect_timeout": timedelta(seconds=min(timeout_s, 10.0)),
        "timeout": timedelta(seconds=timeout_s),
    }
    retry = {"max_retries": 3, "retry_timeout": timedelta(seconds=timeout_s)}
    return S3Store(
        bucket,
        prefix=prefix or None,
        config=options,  # type: ignore[arg-type]
        client_options=client,  # type: ignore[arg-type]
        retry_config=retry,  # type: ignore[arg-type]
    )


class S3ImageStore(ImageStore):
    """The same blobs, same names and same sealing, as objects ``<prefix>/<ab>/<abcdef…>`` in
    one bucket of S3-compatible storage (AWS S3, MinIO, Ceph RGW, …), through ``obstore``."""

    def __init__(
        self,
        url: str,
        settings: Any | None = None,
        key: bytes | None | object = _DEFAULT,
        *,
        timeout_s: float = 30.0,
    ) -> None:
        """``settings``: :class:`analysis.config.S3Settings` (default: from the environment)."""
        from analysis import config

        self.bucket, self.prefix = parse_s3_url(url)
        self.settings = settings if settings is not None else config.s3_settings()
        try:
            self._s3 = _s3_client(self.bucket, self.prefix, self.settings, float(timeout_s))
        except Exception as exc:  # obstore's configuration errors
            raise ImageStoreUnavailableError(
                f"the image store {self.url} is misconfigured: {_first_line(exc)}"
            ) from exc
        self._set_key(key)

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def path_for(self, sha256: str) -> Path:
        raise TypeError(
            f"{self.url} is object storage: its blobs have keys, not local paths "
            "(use get, stream, stored_size)"
        )

    def object_key(self, sha256: str) -> str:
        """The blob's full object key in the bucket (prefix included)."""
        key = blob_key(sha256)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, what: str, name: str | None, fn: Callable[[], T]) -> T:
        """Run one obstore call; a missing object is :class:`BlobMissingError`, anything else
        that goes wrong (network, credentials, no bucket) :class:`ImageStoreUnavailableError`."""
        import obstore.exceptions as oe

        try:
            return fn()
        except (FileNotFoundError, oe.BaseError) as exc:
            error: Exception = exc
        if "NoSuchBucket" in str(error):
            raise ImageStoreUnavailableError(
                f"the image store {self.url}: the bucket {self.bucket!r} does not exist at "
                f"{self.settings.endpoint or 'AWS S3'} ({what})"
            ) from error
        if isinstance(error, (FileNotFoundError, oe.NotFoundError)) and name is not None:
            raise BlobMissingError(f"image {name[:12]}… is missing from the store") from error
        if isinstance(error, (oe.PermissionDeniedError, oe.UnauthenticatedError)):
            raise ImageStoreUnavailableError(
                f"the image store {self.url} refused {what}: check AWS_ACCESS_KEY_ID, "
                f"AWS_SECRET_ACCESS_KEY and the bucket policy ({_first_line(error)})"
            ) from error
        raise ImageStoreUnavailableError(
            f"the image store {self.url} failed {what}: {_first_line(error)}"
        ) from error

    def _stored_size(self, name: str) -> int | None:
        import obstore

        try:
            meta = self._call("a HEAD", name, lambda: obstore.head(self._s3, blob_key(name)))
        except BlobMissingError:
            return None
        return int(meta["size"])

    def _stored_read(self, name: str) -> bytes:
        import obstore

        return self._call(
            "a GET", name, lambda: bytes(obstore.get(self._s3, blob_key(name)).bytes())
        )

    def _stored_stream(self, name: str, chunk_size: int) -> Iterator[bytes]:
        import obstore

        result = self._call("a GET", name, lambda: obstore.get(self._s3, blob_key(name)))
        chunks = iter(result.stream(min_chunk_size=chunk_size))
        while True:
            chunk = self._call("a GET", name, lambda: next(chunks, None))
            if chunk is None:
                return
            yield bytes(chunk)

    def _stored_write(self, name: str, payload: bytes, *, replace: bool) -> None:
        import obstore
        import obstore.exceptions as oe

        key = blob_key(name)
        if replace:  # an old form (plaintext under a key, or the reverse) is converted
            self._call(
                "a PUT", name, lambda: obstore.put(self._s3, key, payload, use_multipart=False)
            )
            return
        try:
            self._call("a PUT", name, lambda: obstore.put(self._s3, key, payload, mode="create"))
        except ImageStoreUnavailableError as exc:
            cause = exc.__cause__
            if isinstance(cause, oe.AlreadyExistsError):
                return  # another replica stored the same photo a moment ago: same name, done
            if isinstance(cause, oe.NotSupportedError):  # a store without conditional PUT
                self._call(
                    "a PUT", name, lambda: obstore.put(self._s3, key, payload, use_multipart=False)
                )
                return
            raise

    def _stored_names(self) -> Iterator[tuple[str, float]]:
        import obstore

        pages = iter(obstore.list(self._s3, chunk_size=1000))
        while True:
            page = self._call("a LIST", None, lambda: next(pages, None))
            if page is None:
                return
            for meta in page:
                match = _KEY.match(meta["path"])
                if match and match.group(2)[:2] == match.group(1):
                    yield match.group(2), meta["last_modified"].timestamp()

    def _remove(self, name: str) -> None:
        import obstore

        try:
            self._call("a DELETE", name, lambda: obstore.delete(self._s3, blob_key(name)))
        except BlobMissingError:
            pass

    def check(self) -> None:
        """One LIST of at most one key: the endpoint answers, the credentials and the bucket
        are good (a HEAD of a missing key cannot tell a missing bucket from a missing blob)."""
        import obstore

        pages = iter(obstore.list(self._s3, chunk_size=1))
        self._call("a LIST", None, lambda: next(pages, None))

    def _remove_temps(self, cutoff: float) -> int:
        return 0  # a PUT is atomic (never multipart here): object storage has no temp files


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def open_store(
    url: str, *, key: bytes | None | object = _DEFAULT, settings: Any | None = None
) -> ImageStore:
    """The store at ``url``: ``file:///path`` (or a plain path) or ``s3://bucket/prefix``."""
    parts = urlsplit(url)
    if parts.scheme in ("", "file"):
        return ImageStore(Path(unquote(parts.path) if parts.scheme else url), key=key)
    if parts.scheme == "s3":
        return S3ImageStore(url, settings, key=key)
    raise ValueError(
        f"CANDOR_IMAGE_STORE={url!r}: use file:///path/to/images (the default is "
        "<data dir>/images) or s3://bucket/prefix"
    )


def default_store() -> ImageStore:
    """The configured store (``CANDOR_IMAGE_STORE``; default ``<data dir>/images``)."""
    from analysis import config

    if config.image_store_is_local():
        return ImageStore(config.image_dir())
    return S3ImageStore(config.image_store_url(), config.s3_settings())
