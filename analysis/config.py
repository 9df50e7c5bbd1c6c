"""Candor's configuration: the one module that reads environment variables.

Every setting is read at call time (so tests and the CLI can point them elsewhere):

``CANDOR_DATA_DIR``              the data directory (default: ``data/`` at the project root)
``CANDOR_DATABASE_URL``          the database (default: ``sqlite:///<data dir>/candor.sqlite3``)
``CANDOR_IMAGE_STORE``           the image store: ``file:///path`` (default ``<data dir>/images``) or
                                 ``s3://bucket/prefix``, endpoint and credentials from the usual AWS
                                 variables (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ...; see
                                 :func:`s3_settings`)
``CANDOR_DB_KEY[_FILE]``         SQLCipher key for the embedded database (hex, or a file holding it)
``CANDOR_BACKUP_KEY[_FILE]``     key that encrypts backups
``CANDOR_AUDIT_KEY[_FILE]``      HMAC key of the audit chain and its anchor
``CANDOR_AUDIT_ANCHOR``          append-only file of signed audit heads
``CANDOR_AUTH``                  ``password`` (default) or ``oidc``
``CANDOR_IDLE_TIMEOUT_MIN``      sign-in idle timeout in minutes (default 15)
``CANDOR_TRUSTED_PROXY_HEADER``  header carrying the client address, set only behind a trusted proxy
``CANDOR_ADMIN_PASSWORD``        password for ``create-admin`` when not typed at a prompt
``CANDOR_DEMO_PASSWORD``         password of the demo accounts (demo only)
``CANDOR_LOG_FORMAT``            ``text`` (default) or ``json``: one JSON object per log line, app and
                                 worker (:mod:`analysis.logs`); ``CANDOR_LOG_LEVEL`` (default INFO)
``CANDOR_DB_POOL_SIZE``          database connections each app process keeps open (default 10), plus
                                 ``CANDOR_DB_MAX_OVERFLOW`` more at busy times (default 20); a page
                                 waits up to ``CANDOR_DB_POOL_TIMEOUT_S`` (default 60) for one
                                 (:func:`db_pool`)
``CANDOR_PHOTO_WORKERS``         photo-analysis children each app process runs at once (default: its
                                 CPU count); an upload waits up to ``CANDOR_PHOTO_QUEUE_WAIT_S``
                                 (default 120) for a turn (:func:`photo_workers`)
``CANDOR_TIMEZONE``              the clinic's time zone for displayed times (IANA name, default UTC;
                                 times are always stored in UTC)

Other modules call :func:`setting` (or the typed helpers below), never ``os.environ``; a test holds
that.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def setting(name: str) -> str:
    """The environment variable ``name``, stripped; ``""`` when unset or blank."""
    return os.environ.get(name, "").strip()


def data_dir() -> Path:
    """The data directory, created if missing."""
    path = Path(os.environ.get("CANDOR_DATA_DIR") or PROJECT_ROOT / "data").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_url() -> str:
    """SQLAlchemy URL of the clinic database."""
    url = os.environ.get("CANDOR_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{data_dir() / 'candor.sqlite3'}"


def _number(name: str, default: float, minimum: float, kind: type) -> Any:
    """``kind(setting(name))``, or ``default`` when unset; refused with the variable named when it
    is not a number of at least ``minimum``."""
    raw = setting(name)
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, not {raw!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum:g}, not {raw!r}")
    return value


@dataclass(frozen=True)
class DbPool:
    """Connection pool of one process's database engine (SQLAlchemy's QueuePool)."""

    size: int
    max_overflow: int
    timeout_s: float


DEFAULT_DB_POOL = DbPool(size=10, max_overflow=20, timeout_s=60.0)
"""Every signed-in browser tab is a thread that holds one connection while a page reads or
writes, so a replica needs about as many connections as tabs that act at once. SQLAlchemy's
default (5 + 10 overflow, 30 s wait) made pages fail with "QueuePool limit ... reached" at 25
active users on a replica (benchmarks/load_replicas.py); 10 + 20 with a 60 s wait held 50. Two
replicas then use at most 60 of PostgreSQL's default 100 connections (docs/deployment.md)."""


def db_pool() -> DbPool:
    """The pool settings from ``CANDOR_DB_POOL_SIZE``, ``CANDOR_DB_MAX_OVERFLOW`` and
    ``CANDOR_DB_POOL_TIMEOUT_S`` (defaults :data:`DEFAULT_DB_POOL`); a value that is not a
    non-negative number (size at least 1) is refused with its variable named."""
    d = DEFAULT_DB_POOL
    return DbPool(
        size=_number("CANDOR_DB_POOL_SIZE", d.size, 1, int),
        max_overflow=_number("CANDOR_DB_MAX_OVERFLOW", d.max_overflow, 0, int),
        timeout_s=_number("CANDOR_DB_POOL_TIMEOUT_S", d.timeout_s, 0, float),
    )


@dataclass(frozen=True)
class PhotoWorkers:
    """How many photo-analysis children one app process runs at once, and how long an upload
    waits for a turn before it is told the server is busy."""

    slots: int
    queue_wait_s: float


def photo_workers() -> PhotoWorkers:
    """``CANDOR_PHOTO_WORKERS`` (default: the CPU count, at least 1) and
    ``CANDOR_PHOTO_QUEUE_WAIT_S`` (default 120 s), passed by the services to
    :func:`analysis.photos.worker.analyse_in_worker`.

    Each child decodes a full-resolution photo under a 2 GiB address-space limit and is CPU-bound,
    so running more children at once than there are cores adds memory, not throughput
    (benchmarks/load_replicas.py prints the peak number of children and the memory either way).
    """
    return PhotoWorkers(
        slots=_number("CANDOR_PHOTO_WORKERS", max(1, os.cpu_count() or 1), 1, int),
        queue_wait_s=_number("CANDOR_PHOTO_QUEUE_WAIT_S", 120.0, 0, float),
    )


def image_store_url() -> str:
    """URL of the content-addressed image store: ``CANDOR_IMAGE_STORE``, else ``file://`` of
    :func:`image_dir`. ``s3://bucket/prefix`` puts the blobs in object storage."""
    url = (os.environ.get("CANDOR_IMAGE_STORE") or "").strip()
    return url or image_dir().as_uri()


def image_store_is_local() -> bool:
    """The image store is a directory on this machine (``file://``, the default)."""
    return urlsplit(image_store_url()).scheme in ("", "file")


def image_dir() -> Path:
    """Root of the content-addressed image store when it is a directory: the path of a
    ``file://`` ``CANDOR_IMAGE_STORE``, else ``<data dir>/images``; created if missing. With an
    ``s3://`` store this is only where a local staging copy would go (see
    :func:`image_store_is_local`)."""
    url = (os.environ.get("CANDOR_IMAGE_STORE") or "").strip()
    parts = urlsplit(url)
    if url and parts.scheme in ("", "file"):
        if parts.netloc not in ("", "localhost"):
            raise ValueError(
                f"CANDOR_IMAGE_STORE={url!r}: a file:// URL names a local path "
                "(file:///srv/candor/images)"
            )
        path = Path(unquote(parts.path) if parts.scheme else url).resolve()
    else:
        path = data_dir() / "images"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True)
class S3Settings:
    """Where and as whom to reach S3-compatible object storage (the AWS SDK's variables)."""

    endpoint: str | None  # AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL; None: AWS's regional endpoint
    region: str  # AWS_REGION / AWS_DEFAULT_REGION, default us-east-1
    access_key_id: str | None  # AWS_ACCESS_KEY_ID
    secret_access_key: str | None  # AWS_SECRET_ACCESS_KEY
    session_token: str | None  # AWS_SESSION_TOKEN

    def __repr__(self) -> str:  # never print the secret
        return (
            f"S3Settings(endpoint={self.endpoint!r}, region={self.region!r}, "
            f"access_key_id={self.access_key_id!r}, secret_access_key=<hidden>)"
        )


def s3_settings() -> S3Settings:
    """Endpoint, region and credentials for an ``s3://`` image store, from the environment."""

    def env(*names: str) -> str | None:
        for name in names:
            value = (os.environ.get(name) or "").strip()
            if value:
                return value
        return None

    return S3Settings(
        endpoint=env("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
        region=env("AWS_REGION", "AWS_DEFAULT_REGION") or "us-east-1",
        access_key_id=env("AWS_ACCESS_KEY_ID"),
        secret_access_key=env("AWS_SECRET_ACCESS_KEY"),
        session_token=env("AWS_SESSION_TOKEN"),
    )


def _beside_data(variable: str, suffix: str) -> Path:
    """``$variable`` when set, else ``<data dir><suffix>`` beside (never inside) the data dir."""
    named = os.environ.get(variable)
    if named:
        return Path(named).resolve()
    data = data_dir()
    return data.parent / f"{data.name}{suffix}"


def audit_key_path() -> Path:
    """File holding the audit anchor's HMAC key: ``CANDOR_AUDIT_KEY_FILE``, else
    ``<data dir>.audit-key`` beside (never inside) the data directory."""
    return _beside_data("CANDOR_AUDIT_KEY_FILE", ".audit-key")


def audit_anchor_path() -> Path:
    """Append-only file of signed audit heads: ``CANDOR_AUDIT_ANCHOR``, else
    ``<data dir>.audit-anchor`` beside (never inside) the data directory."""
    return _beside_data("CANDOR_AUDIT_ANCHOR", ".audit-anchor")


def clinic_timezone() -> ZoneInfo:
    """The clinic's time zone (``CANDOR_TIMEZONE``, an IANA name such as ``Europe/Berlin``;
    default UTC). Display only: every stored time is UTC."""
    name = setting("CANDOR_TIMEZONE") or "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"CANDOR_TIMEZONE must be an IANA time zone name such as Europe/Berlin "
            f"or America/New_York, got {name!r}"
        ) from None
