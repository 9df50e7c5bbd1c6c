"""Database engines, sessions and migrations.

SQLite (the embedded default) runs in WAL mode with ``synchronous=FULL`` (a committed transaction
survives power loss) and foreign keys on. PostgreSQL is selected by URL
(``postgresql+psycopg://...``). With ``CANDOR_DB_KEY`` (or ``CANDOR_DB_KEY_FILE``) set, a SQLite
database is opened through SQLCipher (:mod:`analysis.store.at_rest`): same URL, same code, an
encrypted file. The schema is owned by alembic: :func:`upgrade` migrates a database
(empty or older) to the newest revision.

Case-insensitive search goes through :class:`casefold` (``casefold(col).like(...)``): SQLite's own
``lower()`` folds ASCII only ("É" stays "É"), so on SQLite it calls Python's ``str.casefold``,
registered on every connection; PostgreSQL uses its locale-aware ``lower()``.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, String, create_engine, event, inspect, or_
from sqlalchemy.engine import make_url
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import GenericFunction

from analysis import config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


class casefold(GenericFunction[str]):  # noqa: N801 (an SQL function's name)
    """``casefold(text)``: the text folded for case-insensitive comparison, on both databases."""

    type = String()
    inherit_cache = True


@compiles(casefold, "sqlite")
def _casefold_sqlite(element: casefold, compiler: SQLCompiler, **kw: Any) -> str:
    return f"candor_casefold({compiler.process(element.clauses, **kw)})"


@compiles(casefold)
def _casefold_default(element: casefold, compiler: SQLCompiler, **kw: Any) -> str:
    return f"lower({compiler.process(element.clauses, **kw)})"


def matches_text(needle: str, *columns: Any) -> Any:
    """Case-insensitive substring match of ``needle`` in any of ``columns`` (``%``, ``_`` and
    ``\\`` in the needle are literal); ``None`` for a blank needle (no condition)."""
    folded = needle.strip().casefold()
    if not folded:
        return None
    escaped = folded.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return or_(*(casefold(c).like(f"%{escaped}%", escape="\\") for c in columns))


def _py_casefold(value: object) -> object:
    return value.casefold() if isinstance(value, str) else value


#: Left beside the database while ``python -m analysis encrypt`` swaps files; no engine opens
#: a database in that state (rerun ``encrypt`` to finish).
ENCRYPT_MARKER = ".encrypt-in-progress.json"


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (plain or ``file:…?uri=true`` form); None for memory."""
    database = make_url(url).database or ""
    if database.startswith("file:"):
        database = database[len("file:") :].split("?", 1)[0]
    if not database or database == ":memory:":
        return None
    return Path(database)


def _on_sqlite_connect(master: bytes | None, dbapi_connection: Any, _record: Any) -> None:
    from analysis.store import at_rest

    at_rest.apply_key(dbapi_connection, master)
    dbapi_connection.create_function("candor_casefold", 1, _py_casefold, deterministic=True)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


_CONFIGURED: Any = object()


def make_engine(url: str, *, db_key: Any = _CONFIGURED) -> Engine:
    """A new engine for ``url`` with Candor's connection settings. ``db_key``: the SQLite
    master key to open it with (default: the configured ``CANDOR_DB_KEY``; None: plaintext)."""
    if url.startswith("sqlite"):
        from analysis.store import at_rest

        path = sqlite_file(url)
        master = at_rest.master_key() if db_key is _CONFIGURED else db_key
        if path is not None and (path.parent / ENCRYPT_MARKER).exists():
            raise at_rest.AtRestError(
                f"an encryption of {path.parent} was interrupted; run "
                "`python -m analysis encrypt` again to finish it"
            )
        if path is not None:
            module, master = at_rest.dbapi_for(path, master)
        else:
            module = at_rest.dbapi_for(Path("/nonexistent"), master)[0]
        engine = create_engine(
            url,
            module=module,
            connect_args={"timeout": 10, "check_same_thread": False},
            **(_pool_arguments() if path is not None else {}),  # :memory: keeps its own pool
        )
        event.listen(engine, "connect", functools.partial(_on_sqlite_connect, master))
    else:
        engine = create_engine(url, pool_pre_ping=True, **_pool_arguments())
    return engine


def _pool_arguments() -> dict[str, Any]:
    pool = config.db_pool()
    return {
        "pool_size": pool.size,
        "max_overflow": pool.max_overflow,
        "pool_timeout": pool.timeout_s,
    }


def get_engine(url: str | None = None) -> Engine:
    """The process-wide engine for ``url`` (default: :func:`analysis.config.database_url`)."""
    url = url or config.database_url()
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = make_engine(url)
        return engine


def open_problem(url: str | None = None) -> str | None:
    """Why the configured database cannot be opened with the configured ``CANDOR_DB_KEY`` (or
    its absence), in one sentence; None when it opens (or does not exist yet)."""
    from analysis.store import at_rest

    url = url or config.database_url()
    path = sqlite_file(url) if url.startswith("sqlite") else None
    if path is None or not path.exists():
        return None
    try:
        with get_engine(url).connect():
            return None
    except Exception as exc:  # the key check runs in the pool's connect hook
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, at_rest.AtRestError):
            cause = getattr(cause, "orig", None) or cause.__cause__
        if cause is None:
            raise
        return str(cause)


def dispose_engines() -> None:
    """Close every pooled connection (tests, backup/restore)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def _alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option(
        "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
    )
    return cfg


def upgrade(engine: Engine | None = None, revision: str = "head") -> None:
    """Migrate the database to ``revision`` (creating every table on an empty database)."""
    from alembic import command

    engine = engine or get_engine()
    cfg = _alembic_config(engine)
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Migrate the database back to ``revision`` (tests of a migration step; recovery)."""
    from alembic import command

    cfg = _alembic_config(engine)
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, revision)


def head_revision() -> str:
    """The newest revision in the migration scripts."""
    from alembic.script import ScriptDirectory

    return str(ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head())


def current_revision(engine: Engine | None = None) -> str | None:
    from alembic.runtime.migration import MigrationContext

    engine = engine or get_engine()
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def is_empty(engine: Engine | None = None) -> bool:
    """True when the database has no clinic data (no schema, or no patients)."""
    engine = engine or get_engine()
    if "patients" not in inspect(engine).get_table_names():
        return True
    with engine.connect() as connection:
        from sqlalchemy import text

        empty: bool = connection.execute(text("SELECT COUNT(*) FROM patients")).scalar_one() == 0
        return empty


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A transaction: commits on success, rolls back on any exception."""
    factory = sessionmaker(bind=engine or get_engine(), expire_on_commit=False)
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
