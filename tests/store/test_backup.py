"""Backup and restore round-trip a clinic (records, photos, audit chain) and refuse anything
unverified: tampered images or database, missing manifest, a non-empty target without --force."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis.services import records
from analysis.services.photo_access import photo_bytes
from analysis.store import backup, db
from analysis.store.images import ImageStore
from tests.support.backups import make_backup_clinic, recreate_database, run_cli, snapshot
from tests.support.photo_clinic import CLINICIAN, make_clinic


@pytest.fixture
def clinic_dir(tmp_path: Path) -> Path:
    return make_backup_clinic(tmp_path)


def test_backup_and_restore_round_trip_a_clinic(clinic_dir: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{clinic_dir / 'candor.sqlite3'}"
    dest = tmp_path / "backup-1"
    result = run_cli(clinic_dir, "backup", str(dest))
    assert result.returncode == 0, result.stderr
    assert "verified" in result.stdout
    before = snapshot(url)  # includes the store.backup event written just before the copy
    assert before["audit"][-1][1] == "store.backup" and before["chain"] == []

    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["row_counts"]["patients"] == 1 and manifest["blob_count"] == 1
    assert manifest["audit_chain_intact"] and manifest["audit_head"] == before["audit"][-1][2]
    assert len(ImageStore(dest / "images").names()) == 1  # only referenced blobs are copied

    fresh = tmp_path / "new-server"
    result = run_cli(fresh, "restore", str(dest))
    assert result.returncode == 0, result.stderr
    after = snapshot(f"sqlite:///{fresh / 'candor.sqlite3'}")
    for key in ("patients", "consents", "photos"):
        assert after[key] == before[key]
    assert after["audit"][:-1] == before["audit"]  # the same chain, plus the restore event
    assert after["audit"][-1][1] == "store.restore" and after["chain"] == []

    engine = db.make_engine(f"sqlite:///{fresh / 'candor.sqlite3'}")
    with db.session_scope(engine) as session:
        photo_id = before["photos"][0][0]
        data = photo_bytes(
            session, CLINICIAN, photo_id=photo_id, store=ImageStore(fresh / "images")
        )
    engine.dispose()
    assert ImageStore(fresh / "images").verify(before["photos"][0][1])
    assert len(data) > 1000


def test_restore_refuses_a_non_empty_data_dir_unless_forced(
    clinic_dir: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "backup"
    url = f"sqlite:///{clinic_dir / 'candor.sqlite3'}"
    backup.backup(dest, url=url, image_root=clinic_dir / "images")
    engine = db.make_engine(url)
    with db.session_scope(engine) as session:  # work done after the backup
        records.create_patient(
            session, CLINICIAN, code="P-LATE", birth_year=1970, sex="male", fitzpatrick=5
        )
    engine.dispose()

    refused = run_cli(clinic_dir, "restore", str(dest))
    assert refused.returncode == 1 and "--force" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert [p[1] for p in snapshot(url)["patients"]] == ["P-100", "P-LATE"]  # untouched

    backup.restore(dest, url=url, image_root=clinic_dir / "images", force=True)
    assert [p[1] for p in snapshot(url)["patients"]] == ["P-100"]
    (aside,) = clinic_dir.glob(".pre-restore-*")  # the replaced data is kept, not deleted
    kept = snapshot(f"sqlite:///{aside / 'candor.sqlite3'}")
    assert [p[1] for p in kept["patients"]] == ["P-100", "P-LATE"]


def test_a_tampered_or_incomplete_backup_is_refused(clinic_dir: Path, tmp_path: Path) -> None:
    dest = tmp_path / "backup"
    backup.backup(
        dest, url=f"sqlite:///{clinic_dir / 'candor.sqlite3'}", image_root=clinic_dir / "images"
    )
    assert backup.verify_backup(dest).blob_count == 1

    (name,) = ImageStore(dest / "images").names()
    blob = ImageStore(dest / "images").path_for(name)
    original = blob.read_bytes()
    blob.write_bytes(original[:-10] + b"0123456789")  # a flipped tail: same size, new content
    with pytest.raises(backup.BackupRejected, match="damaged or truncated"):
        backup.verify_backup(dest)
    target = tmp_path / "target"
    result = run_cli(target, "restore", str(dest))
    assert result.returncode == 2 and "damaged or truncated" in result.stderr
    assert not (target / "candor.sqlite3").exists()
    blob.write_bytes(original)
    backup.verify_backup(dest)

    with (dest / "candor.sqlite3").open("r+b") as handle:  # one byte of the database changes
        handle.seek(200)
        byte = handle.read(1)
        handle.seek(200)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(backup.BackupRejected, match="candor.sqlite3 .*damaged"):
        backup.verify_backup(dest)

    (dest / "manifest.json").unlink()
    with pytest.raises(backup.BackupRejected, match="incomplete"):
        backup.verify_backup(dest)


def test_backup_needs_an_empty_destination(clinic_dir: Path, tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "something").write_text("x")
    result = run_cli(clinic_dir, "backup", str(busy))
    assert result.returncode == 1 and "not empty" in result.stderr


def test_a_broken_audit_chain_is_copied_faithfully_and_reported(
    clinic_dir: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{clinic_dir / 'candor.sqlite3'}"
    engine = db.make_engine(url)
    with engine.begin() as conn:  # tampering found during an incident: back up anyway
        conn.exec_driver_sql("DROP TRIGGER audit_events_no_update")
        conn.exec_driver_sql("UPDATE audit_events SET actor_email = 'x@y' WHERE id = 2")
    engine.dispose()
    result = run_cli(clinic_dir, "backup", str(tmp_path / "incident"))
    assert result.returncode == 2 and "WARNING: the audit chain" in result.stderr
    manifest = backup.verify_backup(tmp_path / "incident")
    assert not manifest.audit_chain_intact and manifest.audit_problems[0].startswith(
        "audit event 2:"
    )


@pytest.mark.postgres
def test_postgres_backup_and_restore_round_trip(postgres_server_url: str, tmp_path: Path) -> None:
    source_url = recreate_database(postgres_server_url, "candor_backup_src")
    engine = db.make_engine(source_url)
    db.upgrade(engine)
    engine.dispose()
    clinic = make_clinic(source_url, tmp_path / "images", scopes=("clinical_record", "teaching"))
    clinic.engine.dispose()
    dest = tmp_path / "pg-backup"
    manifest = backup.backup(dest, url=source_url, image_root=tmp_path / "images")
    assert manifest.engine == "postgresql" and (dest / "candor.pgdump").is_file()
    before = snapshot(source_url)
    assert manifest.audit_head == before["audit"][-1][2] and before["chain"] == []

    target_url = recreate_database(postgres_server_url, "candor_backup_dst")
    backup.restore(dest, url=target_url, image_root=tmp_path / "restored-images")
    after = snapshot(target_url)
    for key in ("patients", "consents", "photos"):
        assert after[key] == before[key]
    assert after["audit"][:-1] == before["audit"] and after["audit"][-1][1] == "store.restore"
    assert after["chain"] == []
    engine = db.make_engine(target_url)
    with engine.begin() as conn:  # the append-only triggers came back with the schema
        with pytest.raises(Exception, match="append-only"):
            conn.exec_driver_sql("DELETE FROM audit_events")
    engine.dispose()
    assert ImageStore(tmp_path / "restored-images").names() == set(manifest.blobs)

    with pytest.raises(backup.BackupError, match="not empty"):
        backup.restore(dest, url=target_url, image_root=tmp_path / "restored-images")
    with pytest.raises(backup.BackupError, match="postgresql backup"):
        backup.restore(dest, url=f"sqlite:///{tmp_path / 'x.sqlite3'}", image_root=tmp_path / "x")
    with (dest / "candor.pgdump").open("ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(backup.BackupError, match="SHA-256"):
        backup.verify_backup(dest)
