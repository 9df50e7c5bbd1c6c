"""Fixtures shared by the whole suite.

* ``SHARED_DATASETS``: ``../shared/datasets`` beside the checkout, or ``None``; tests that use it are
  marked ``shared`` and skip cleanly when it is absent (a user's clone has no shared/).
* ``candor_env``: points CANDOR_DATA_DIR / CANDOR_DATABASE_URL at a fresh temporary directory.
* ``chromium_path`` / ``browser``: Debian's ``/usr/bin/chromium`` driven by one Playwright for the
  whole run (a second sync Playwright in one thread will not start while the first is alive), so
  the e2e folder and any other browser test share it; missing Chromium skips, in CI it fails.
* ``s3_endpoint`` / ``s3_images``: a real S3 API server on loopback (moto's standalone server,
  tests/s3_server.py) and, per test, a fresh bucket with CANDOR_IMAGE_STORE and the AWS_* variables
  pointed at it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.pg_server import start_postgres as _start_postgres
from tests.support.s3_server import ACCESS_KEY as _S3_ACCESS_KEY
from tests.support.s3_server import REGION as _S3_REGION
from tests.support.s3_server import SECRET_KEY as _S3_SECRET_KEY
from tests.support.s3_server import make_bucket as _make_bucket
from tests.support.s3_server import start_s3_server as _start_s3_server

if TYPE_CHECKING:
    from playwright.sync_api import Browser

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


# --- PostgreSQL: a throw-away server started from Debian's binaries (tests/support/pg_server.py) ----------


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


# --- S3-compatible object storage: moto's standalone server (tests/s3_server.py) -----------------


@pytest.fixture(scope="session")
def s3_endpoint() -> object:
    """Endpoint URL of a real S3 API server on loopback, started once for the run. Skips with the
    reason outside CI when it cannot be started; fails in CI."""
    try:
        endpoint, stop = _start_s3_server()
    except RuntimeError as exc:
        reason = f"no S3 API server available: {exc}"
        if in_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield endpoint
    finally:
        stop()


class S3Images:
    """A fresh bucket on the test S3 server and the store URL pointing into it."""

    def __init__(self, endpoint: str, bucket: str, prefix: str) -> None:
        self.endpoint, self.bucket, self.prefix = endpoint, bucket, prefix
        self.url = f"s3://{bucket}/{prefix}"

    def settings(self) -> object:
        from analysis.config import S3Settings

        return S3Settings(
            endpoint=self.endpoint,
            region=_S3_REGION,
            access_key_id=_S3_ACCESS_KEY,
            secret_access_key=_S3_SECRET_KEY,
            session_token=None,
        )

    def new_bucket(self, prefix: str | None = None) -> S3Images:
        """Another empty bucket on the same server (e.g. a new clinic to restore into)."""
        import uuid

        bucket = f"candor-{uuid.uuid4().hex[:16]}"
        _make_bucket(self.endpoint, bucket)
        return S3Images(self.endpoint, bucket, self.prefix if prefix is None else prefix)


@pytest.fixture
def s3_images(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> S3Images:
    """A fresh bucket; ``CANDOR_IMAGE_STORE=s3://<bucket>/clinic-images`` and AWS_ENDPOINT_URL,
    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION point at the test server for this test
    (and the CLI processes it starts)."""
    target = S3Images(s3_endpoint, "unused", "clinic-images").new_bucket()
    monkeypatch.setenv("CANDOR_IMAGE_STORE", target.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", _S3_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", _S3_SECRET_KEY)
    monkeypatch.setenv("AWS_REGION", _S3_REGION)
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    return target


# --- a small seeded clinic for the clinician pages (AppTest, browser) -------------------------------


@pytest.fixture(scope="session")
def seeded_clinic_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """A data directory holding the small clinic of ``tests/support/clinician_clinic.py`` (made once)."""
    from tests.support.clinician_clinic import seed_clinician_clinic

    data = tmp_path_factory.mktemp("clinic") / "data"
    data.mkdir()
    saved = {k: os.environ.get(k) for k in ("CANDOR_DATA_DIR", "CANDOR_DATABASE_URL")}
    os.environ["CANDOR_DATA_DIR"] = str(data)
    os.environ.pop("CANDOR_DATABASE_URL", None)
    try:
        ids = seed_clinician_clinic(data)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return data, ids


@pytest.fixture
def seeded_clinic(
    seeded_clinic_dir: tuple[Path, dict[str, int]], monkeypatch: pytest.MonkeyPatch
) -> dict[str, int]:
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
def _audit_anchor_outside_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _session_audit_key: Path
) -> None:
    """Each test's audit anchor lives in its own temporary directory, beside the data; the key is
    the run's (:func:`_session_audit_key`)."""
    monkeypatch.setenv("CANDOR_AUDIT_ANCHOR", str(tmp_path / "audit.anchor"))
    monkeypatch.setenv("CANDOR_AUDIT_KEY_FILE", str(_session_audit_key))
    monkeypatch.delenv("CANDOR_AUDIT_KEY", raising=False)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    from tests.e2e.helpers import CHROMIUM

    if not CHROMIUM.is_file():
        reason = f"{CHROMIUM} is not installed (Debian package chromium); browser tests need it"
        if in_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    return str(CHROMIUM)


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    from tests.e2e.helpers import CHROMIUM_ARGS

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
