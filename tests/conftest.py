"""Fixtures shared by the whole suite.

* ``SHARED_DATASETS``: ``../shared/datasets`` beside the checkout, or ``None``; tests that use it are
  marked ``shared`` and skip cleanly when it is absent (a user's clone has no shared/).
* ``candor_env``: points CANDOR_DATA_DIR / CANDOR_DATABASE_URL at a fresh temporary directory.
* ``clinic``: the audit-trail clinic (``make_clinic`` plus a nurse account signing in with
  ``NURSE_PASSWORD``), shared by test_audit_trail and test_audit_anchor; a module that defines its
  own ``clinic`` fixture overrides it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from analysis.auth import accounts
from analysis.store import db
from analysis.store.models import User
from tests.pg_server import start_postgres as _start_postgres
from tests.test_photo_access import Clinic, make_clinic

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_shared = PROJECT_ROOT.parent / "shared" / "datasets"
SHARED_DATASETS: Path | None = _shared if _shared.is_dir() else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if SHARED_DATASETS is not None:
        return
    skip = pytest.mark.skip(reason="../shared/datasets is not present (internal test material)")
    for item in items:
        if "shared" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def candor_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty data directory with the default SQLite database inside it."""
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("CANDOR_DATA_DIR", str(data))
    monkeypatch.delenv("CANDOR_DATABASE_URL", raising=False)
    return data


NURSE_PASSWORD = "trail-test-password"


@pytest.fixture(scope="module")
def password_hash() -> str:
    return accounts.hash_password(NURSE_PASSWORD)  # Argon2id is slow by design: hash once


@pytest.fixture
def clinic(db_url: str, tmp_path: Path, password_hash: str) -> Iterator[Clinic]:
    c = make_clinic(db_url, tmp_path / "images", scopes=("clinical_record", "consult_display"))
    with db.session_scope(c.engine) as session:
        user = User(email="nurse@test", display_name="Nurse", role="clinician",
                    password_hash=password_hash)
        session.add(user)
    yield c
    c.engine.dispose()


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def system_tool(name: str, package: str) -> str:
    """Path of the command ``name`` (Debian package ``package``, installed by
    scripts/system-deps.sh); the test skips, saying why, when it is missing (fails under CI)."""
    import shutil

    path = shutil.which(name)
    if path is None:
        reason = f"{name} is not installed (Debian package {package}; scripts/system-deps.sh)"
        if in_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    return path


# --- PostgreSQL: a throw-away server started from Debian's binaries (tests/pg_server.py) ----------


@pytest.fixture(scope="session")
def postgres_server_url() -> object:
    """URL of a real PostgreSQL database: CANDOR_TEST_POSTGRES_URL, or a private server started
    here. Skips with the reason outside CI when no server can be had; fails in CI."""
    url = os.environ.get("CANDOR_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    try:
        url, stop = _start_postgres()
    except (RuntimeError, subprocess.CalledProcessError, KeyError, LookupError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        reason = f"no PostgreSQL server available: {exc} {detail.decode(errors='replace')[:300]}"
        if in_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield url
    finally:
        stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using it runs on both databases, empty and migrated to head."""
    from sqlalchemy import text

    from analysis.store import db

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'candor.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_server_url")
        engine = db.make_engine(url)
        with engine.begin() as conn:  # a clean schema per test
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    engine = db.make_engine(url)
    db.upgrade(engine)
    engine.dispose()
    return url


# --- a small seeded clinic for the clinician pages (AppTest, browser) -------------------------------


@pytest.fixture(scope="session")
def seeded_clinic_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """A data directory holding the small clinic of ``tests/clinician_seed.py`` (made once)."""
    from tests.clinician_seed import seed_small_clinic

    data = tmp_path_factory.mktemp("clinic") / "data"
    data.mkdir()
    saved = {k: os.environ.get(k) for k in ("CANDOR_DATA_DIR", "CANDOR_DATABASE_URL")}
    os.environ["CANDOR_DATA_DIR"] = str(data)
    os.environ.pop("CANDOR_DATABASE_URL", None)
    try:
        ids = seed_small_clinic(data)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return data, ids


@pytest.fixture
def seeded_clinic(seeded_clinic_dir: tuple[Path, dict[str, int]],
                  monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """CANDOR_DATA_DIR pointed at the seeded clinic for one test; returns its key ids."""
    data, ids = seeded_clinic_dir
    monkeypatch.setenv("CANDOR_DATA_DIR", str(data))
    monkeypatch.delenv("CANDOR_DATABASE_URL", raising=False)
    return ids


@pytest.fixture(scope="session", autouse=True)
def _session_audit_key(tmp_path_factory: pytest.TempPathFactory) -> object:
    """One audit key file for the whole run, set before any module- or session-scoped fixture
    writes audit events: the chain is keyed, so a clinic seeded once and checked by later tests
    must be verified with the key it was written under."""
    path = tmp_path_factory.mktemp("audit-key") / "audit.key"
    saved = {k: os.environ.get(k) for k in ("CANDOR_AUDIT_KEY_FILE", "CANDOR_AUDIT_KEY")}
    os.environ["CANDOR_AUDIT_KEY_FILE"] = str(path)
    os.environ.pop("CANDOR_AUDIT_KEY", None)
    yield path
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(autouse=True)
def _audit_anchor_outside_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               _session_audit_key: Path) -> None:
    """Each test's audit anchor lives in its own temporary directory, beside the data; the key is
    the run's (:func:`_session_audit_key`)."""
    monkeypatch.setenv("CANDOR_AUDIT_ANCHOR", str(tmp_path / "audit.anchor"))
    monkeypatch.setenv("CANDOR_AUDIT_KEY_FILE", str(_session_audit_key))
    monkeypatch.delenv("CANDOR_AUDIT_KEY", raising=False)
