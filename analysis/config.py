"""Where Candor keeps its data.

``CANDOR_DATA_DIR`` selects the data directory (default: ``data/`` at the project root).
``CANDOR_DATABASE_URL`` selects the database (default: ``sqlite:///<data dir>/candor.sqlite3``).
Both are read at call time, so tests and the CLI can point them elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


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
