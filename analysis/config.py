"""Candor's configuration: the one module that reads environment variables.

Every setting is read at call time (so tests and the CLI can point them elsewhere):

``CANDOR_DATA_DIR``              the data directory (default: ``data/`` at the project root)
``CANDOR_DATABASE_URL``          the database (default: ``sqlite:///<data dir>/candor.sqlite3``)
``CANDOR_DB_KEY[_FILE]``         SQLCipher key for the embedded database (hex, or a file holding it)
``CANDOR_BACKUP_KEY[_FILE]``     key that encrypts backups
``CANDOR_AUDIT_KEY[_FILE]``      HMAC key of the audit chain and its anchor
``CANDOR_AUDIT_ANCHOR``          append-only file of signed audit heads
``CANDOR_AUTH``                  ``password`` (default) or ``oidc``
``CANDOR_IDLE_TIMEOUT_MIN``      sign-in idle timeout in minutes (default 15)
``CANDOR_TRUSTED_PROXY_HEADER``  header carrying the client address, set only behind a trusted proxy
``CANDOR_ADMIN_PASSWORD``        password for ``create-admin`` when not typed at a prompt
``CANDOR_DEMO_PASSWORD``         password of the demo accounts (demo only)
``CANDOR_TIMEZONE``              the clinic's time zone for displayed times (IANA name, default UTC;
                                 times are always stored in UTC)

Other modules call :func:`setting` (or the typed helpers below), never ``os.environ``; a test holds
that.
"""

from __future__ import annotations

import os
from pathlib import Path
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


def image_dir() -> Path:
    """Root of the content-addressed image store."""
    path = data_dir() / "images"
    path.mkdir(parents=True, exist_ok=True)
    return path


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
        raise ValueError(f"CANDOR_TIMEZONE must be an IANA time zone name such as Europe/Berlin "
                         f"or America/New_York, got {name!r}") from None
