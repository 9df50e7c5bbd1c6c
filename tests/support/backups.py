"""Shared test support (moved from test_backup.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import TypedDict

from sqlalchemy import select

from analysis.services import records
from analysis.services.photo_access import photo_bytes
from analysis.store import audit, db
from analysis.store.audit import ChainProblem
from analysis.store.images import ImageStore
from analysis.store.models import AuditEvent, Consent, Patient, Photo
from tests.conftest import PROJECT_ROOT
from tests.support.photo_clinic import CLINICIAN, make_clinic


def run_cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CANDOR_DATA_DIR": str(data_dir)}
    env.pop("CANDOR_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "analysis", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


class Snapshot(TypedDict):
    """What snapshot() reads back from a database: rows as tuples, and the chain check."""

    patients: list[tuple[int, str, int]]
    consents: list[tuple[int, str, datetime, datetime | None]]
    photos: list[tuple[int, str, str, str]]
    audit: list[tuple[int, str, str]]
    chain: list[ChainProblem]


def snapshot(url: str) -> Snapshot:
    engine = db.make_engine(url)
    try:
        with db.session_scope(engine) as session:
            return {
                "patients": [
                    (p.id, p.code, p.birth_year)
                    for p in session.scalars(select(Patient).order_by(Patient.id))
                ],
                "consents": [
                    (c.patient_id, c.scope, c.given_at, c.withdrawn_at)
                    for c in session.scalars(select(Consent).order_by(Consent.id))
                ],
                "photos": [
                    (p.id, p.sha256, p.view, p.verdict)
                    for p in session.scalars(select(Photo).order_by(Photo.id))
                ],
                "audit": [
                    (e.id, e.action, e.hash)
                    for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))
                ],
                "chain": audit.verify_chain(session),
            }
    finally:
        engine.dispose()


def recreate_database(admin_url: str, name: str) -> str:
    from sqlalchemy import create_engine, text

    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return admin_url.replace("/candor?", f"/{name}?")


def make_backup_clinic(tmp_path: Path) -> Path:
    """A data directory with a small clinic: two photos, consents (one withdrawn), audit trail."""
    data = tmp_path / "clinic"
    data.mkdir()
    url = f"sqlite:///{data / 'candor.sqlite3'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    engine.dispose()
    clinic = make_clinic(url, data / "images", scopes=("clinical_record", "teaching"))
    with db.session_scope(clinic.engine) as session:
        records.withdraw_consent(session, CLINICIAN, patient_id=clinic.patient_id, scope="teaching")
        photo_bytes(session, CLINICIAN, photo_id=clinic.photo_id, store=clinic.store)
    ImageStore(data / "images").put(b"an unreferenced blob")  # not part of the record
    clinic.engine.dispose()
    return data
