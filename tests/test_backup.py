"""Backup and restore round-trip a clinic (records, photos, audit chain) and refuse anything
unverified: tampered images or database, missing manifest, a non-empty target without --force."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from analysis.store import audit, backup, db, records
from analysis.store.images import ImageStore
from analysis.store.models import AuditEvent, Consent, Patient, Photo
from analysis.store.photo_access import photo_bytes
from tests.conftest import PROJECT_ROOT
from tests.test_photo_access import CLINICIAN, make_clinic


def _cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CANDOR_DATA_DIR": str(data_dir)}
    env.pop("CANDOR_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "analysis", *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def _snapshot(url: str) -> dict[str, object]:
    engine = db.make_engine(url)
    try:
        with db.session_scope(engine) as session:
            return {
                "patients": [(p.id, p.code, p.birth_year)
                             for p in session.scalars(select(Patient).order_by(Patient.id))],
                "consents": [(c.patient_id, c.scope, c.given_at, c.withdrawn_at)
                             for c in session.scalars(select(Consent).order_by(Consent.id))],
                "photos": [(p.id, p.sha256, p.view, p.verdict)
                           for p in session.scalars(select(Photo).order_by(Photo.id))],
                "audit": [(e.id, e.action, e.hash) for e in
                          session.scalars(select(AuditEvent).order_by(AuditEvent.id))],
                "chain": audit.verify_chain(session),
            }
    finally:
        engine.dispose()


@pytest.fixture
def clinic_dir(tmp_path: Path) -> Path:
    """A data directory with a small clinic: two photos, consents (one withdrawn), audit trail."""
    data = tmp_path / "clinic"
    data.mkdir()
    url = f"sqlite:///{data / 'candor.sqlite3'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    engine.dispose()
    clinic = make_clinic(url, data / "images", scopes=("clinical_record", "teaching"))
    with db.session_scope(clinic.engine) as session:
        records.withdraw_consent(session, CLINICIAN, patient_id=clinic.patient_id,
                                 scope="teaching")
        photo_bytes(session, CLINICIAN, photo_id=clinic.photo_id, store=clinic.store)
    ImageStore(data / "images").put(b"an unreferenced blob")  # not part of the record
    clinic.engine.dispose()
    return data


def test_backup_and_restore_round_trip_a_clinic(clinic_dir: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{clinic_dir / 'candor.sqlite3'}"
    dest = tmp_path / "backup-1"
    result = _cli(clinic_dir, "backup", str(dest))
    assert result.returncode == 0, result.stderr
    assert "verified" in result.stdout
    before = _snapshot(url)  # includes the store.backup event written just before the copy
    assert before["audit"][-1][1] == "store.backup" and before["chain"] == []

    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["row_counts"]["patients"] == 1 and manifest["blob_count"] == 1
    assert manifest["audit_chain_intact"] and manifest["audit_head"] == before["audit"][-1][2]
    assert len(ImageStore(dest / "images").names()) == 1  # only referenced blobs are copied

    fresh = tmp_path / "new-server"
    result = _cli(fresh, "restore", str(dest))
    assert result.returncode == 0, result.stderr
    after = _snapshot(f"sqlite:///{fresh / 'candor.sqlite3'}")
    for key in ("patients", "consents", "photos"):
        assert after[key] == before[key]
    assert after["audit"][:-1] == before["audit"]  # the same chain, plus the restore event
    assert after["audit"][-1][1] == "store.restore" and after["chain"] == []

    engine = db.make_engine(f"sqlite:///{fresh / 'candor.sqlite3'}")
    with db.session_scope(engine) as session:
        photo_id = before["photos"][0][0]
        data = photo_bytes(session, CLINICIAN, photo_id=photo_id,
                           store=ImageStore(fresh / "images"))
    engine.dispose()
    assert ImageStore(fresh / "images").verify(before["photos"][0][1])
    assert len(data) > 1000


def test_restore_refuses_a_non_empty_data_dir_unless_forced(clinic_dir: Path,
                                                            tmp_path: Path) -> None:
    dest = tmp_path / "backup"
    url = f"sqlite:///{clinic_dir / 'candor.sqlite3'}"
    backup.backup(dest, url=url, image_root=clinic_dir / "images")
    engine = db.make_engine(url)
    with db.session_scope(engine) as session:  # work done after the backup
        records.create_patient(session, CLINICIAN, code="P-LATE", birth_year=1970, sex="male",
                               fitzpatrick=5)
    engine.dispose()

    refused = _cli(clinic_dir, "restore", str(dest))
    assert refused.returncode == 1 and "--force" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert [p[1] for p in _snapshot(url)["patients"]] == ["P-100", "P-LATE"]  # untouched

    backup.restore(dest, url=url, image_root=clinic_dir / "images", force=True)
    assert [p[1] for p in _snapshot(url)["patients"]] == ["P-100"]
    (aside,) = clinic_dir.glob(".pre-restore-*")  # the replaced data is kept, not deleted
    kept = _snapshot(f"sqlite:///{aside / 'candor.sqlite3'}")
    assert [p[1] for p in kept["patients"]] == ["P-100", "P-LATE"]


def test_a_tampered_or_incomplete_backup_is_refused(clinic_dir: Path, tmp_path: Path) -> None:
    dest = tmp_path / "backup"
    backup.backup(dest, url=f"sqlite:///{clinic_dir / 'candor.sqlite3'}",
                  image_root=clinic_dir / "images")
    assert backup.verify_backup(dest).blob_count == 1

    (name,) = ImageStore(dest / "images").names()
    blob = ImageStore(dest / "images").path_for(name)
    original = blob.read_bytes()
    blob.write_bytes(original[:-10] + b"0123456789")  # a flipped tail: same size, new content
    with pytest.raises(backup.BackupError, match="does not re-hash"):
        backup.verify_backup(dest)
    target = tmp_path / "target"
    result = _cli(target, "restore", str(dest))
    assert result.returncode == 1 and "failed verification" in result.stderr
    assert not (target / "candor.sqlite3").exists()
    blob.write_bytes(original)
    backup.verify_backup(dest)

    with (dest / "candor.sqlite3").open("r+b") as handle:  # one byte of the database changes
        handle.seek(200)
        byte = handle.read(1)
        handle.seek(200)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(backup.BackupError, match="SHA-256|integrity"):
        backup.verify_backup(dest)

    (dest / "manifest.json").unlink()
    with pytest.raises(backup.BackupError, match="incomplete"):
        backup.verify_backup(dest)


def test_backup_needs_an_empty_destination_and_explains_postgres(clinic_dir: Path,
                                                                 tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "something").write_text("x")
    result = _cli(clinic_dir, "backup", str(busy))
    assert result.returncode == 1 and "not empty" in result.stderr
    with pytest.raises(backup.BackupError, match="pg_dump"):
        backup.backup(tmp_path / "pg", url="postgresql+psycopg://u@localhost/candor")
