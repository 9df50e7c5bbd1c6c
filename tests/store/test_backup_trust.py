"""Backups against someone holding the files (issue #12): each attack on a backup is refused by
``restore`` with one sentence on stderr and exit code 2, never a traceback, and nothing is
written; an encrypted backup needs its key; a restore puts the audit anchor back so
``verify-audit`` passes afterwards. SQLite through the command line, PostgreSQL through the API."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.services import records
from analysis.store import backup, crypto, db
from analysis.store.images import ImageStore
from tests.conftest import PROJECT_ROOT
from tests.support.backups import make_backup_clinic, recreate_database, snapshot
from tests.support.photo_clinic import CLINICIAN, make_clinic


@pytest.fixture
def clinic_dir(tmp_path: Path) -> Path:
    return make_backup_clinic(tmp_path)


def _cli(data_dir: Path, *args: str, **env_extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CANDOR_DATA_DIR": str(data_dir), **env_extra}
    env.pop("CANDOR_DATABASE_URL", None)
    for name, value in env_extra.items():
        if value == "":
            env.pop(name)
    return subprocess.run(
        [sys.executable, "-m", "analysis", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _state(data_dir: Path) -> dict[str, bytes]:
    """Every file under the data directory and the anchor file, with its bytes."""
    files = (
        {str(p.relative_to(data_dir)): p.read_bytes() for p in data_dir.rglob("*") if p.is_file()}
        if data_dir.exists()
        else {}
    )
    anchor = Path(os.environ["CANDOR_AUDIT_ANCHOR"])
    files["<anchor>"] = anchor.read_bytes() if anchor.exists() else b""
    return files


def _refused(data_dir: Path, src: Path, *args: str, **env: str) -> str:
    """Run ``restore``; assert exit 2, one line on stderr, no traceback, nothing written."""
    before = _state(data_dir)
    result = _cli(data_dir, "restore", str(src), *args, **env)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("restore refused, nothing was written:")
    assert _state(data_dir) == before
    return result.stderr


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rewrite_manifest(dest: Path, **changes: object) -> None:
    manifest = json.loads((dest / "manifest.json").read_text())
    for key, value in changes.items():
        if key == "files":
            manifest["files"].update(value)
        else:
            manifest[key] = value
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))


@pytest.fixture
def made(clinic_dir: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "backup"
    result = _cli(clinic_dir, "backup", str(dest))
    assert result.returncode == 0, result.stderr
    return dest


def test_a_forged_backup_is_refused(made: Path, tmp_path: Path) -> None:
    """Consent row edited (a withdrawal undone), database hash in the manifest rewritten."""
    con = sqlite3.connect(made / "candor.sqlite3")
    with con:
        changed = con.execute(
            "UPDATE consents SET withdrawn_at = NULL WHERE withdrawn_at IS NOT NULL"
        ).rowcount
    con.close()
    assert changed == 1
    digest = _sha(made / "candor.sqlite3")
    _rewrite_manifest(made, database_sha256=digest, files={"candor.sqlite3": digest})
    target = tmp_path / "target"
    assert "was altered after it was made" in _refused(target, made)
    assert not (target / "candor.sqlite3").exists()

    # re-signed with a key of the attacker's own: still refused
    attacker = hashlib.sha256(b"attacker").digest()
    key = hmac.new(attacker, b"candor backup manifest v1", hashlib.sha256).digest()
    (made / "manifest.sig").write_text(
        hmac.new(key, (made / "manifest.json").read_bytes(), hashlib.sha256).hexdigest()
    )
    assert "was altered after it was made" in _refused(target, made)


def test_restore_with_another_clinics_audit_key_is_refused(made: Path, tmp_path: Path) -> None:
    other = hashlib.sha256(b"another clinic").hexdigest()
    message = _refused(tmp_path / "target", made, CANDOR_AUDIT_KEY=other)
    assert "not the key of the clinic that made it" in message
    missing = _refused(
        tmp_path / "target", made, CANDOR_AUDIT_KEY_FILE=str(tmp_path / "no-such.key")
    )
    assert "there is no audit key" in missing
    assert not (tmp_path / "no-such.key").exists()  # verification never creates a key


def test_a_truncated_backup_database_is_refused(made: Path, tmp_path: Path) -> None:
    db_file = made / "candor.sqlite3"
    data = db_file.read_bytes()
    db_file.write_bytes(data[: len(data) // 2])
    assert "candor.sqlite3 in the backup" in _refused(tmp_path / "target", made)

    # with the hashes rewritten and the signature removed, an explicitly accepted unsigned
    # backup still gets a sentence from the database check, not sqlite3's traceback
    digest = _sha(db_file)
    _rewrite_manifest(made, database_sha256=digest, files={"candor.sqlite3": digest})
    (made / "manifest.sig").unlink()
    assert "--accept-unsigned" in _refused(tmp_path / "target", made)
    message = _refused(tmp_path / "target", made, "--accept-unsigned")
    assert "cannot be read" in message and "damaged or truncated" in message


def test_a_corrupted_or_incomplete_backup_is_refused(made: Path, tmp_path: Path) -> None:
    (name,) = ImageStore(made / "images").names()
    blob = ImageStore(made / "images").path_for(name)
    original = blob.read_bytes()
    blob.write_bytes(bytes([original[0] ^ 1]) + original[1:])
    assert f"images/{name[:2]}/{name}" in _refused(tmp_path / "target", made)
    blob.unlink()
    assert "is missing from the backup" in _refused(tmp_path / "target", made)
    blob.write_bytes(original)
    (made / "audit.anchor").write_text("")  # the anchor copy emptied
    assert "audit.anchor in the backup" in _refused(tmp_path / "target", made)
    (made / "manifest.json").unlink()
    assert "incomplete" in _refused(tmp_path / "target", made)


def test_verify_audit_passes_after_a_restore(clinic_dir: Path, tmp_path: Path, made: Path) -> None:
    url = f"sqlite:///{clinic_dir / 'candor.sqlite3'}"
    engine = db.make_engine(url)
    with db.session_scope(engine) as session:  # work after the backup: the anchor moves on
        records.create_patient(
            session, CLINICIAN, code="P-LATE", birth_year=1970, sex="male", fitzpatrick=5
        )
    engine.dispose()
    assert _cli(clinic_dir, "verify-audit").returncode == 0

    result = _cli(clinic_dir, "restore", str(made), "--force")
    assert result.returncode == 0, result.stderr
    check = _cli(clinic_dir, "verify-audit")
    assert check.returncode == 0 and "audit chain intact" in check.stdout, check.stdout
    anchor = Path(os.environ["CANDOR_AUDIT_ANCHOR"])
    (kept,) = anchor.parent.glob(f"{anchor.name}.pre-restore-*")  # the replaced anchor is kept
    assert len(kept.read_text().splitlines()) == len(anchor.read_text().splitlines())
    assert [p[1] for p in snapshot(url)["patients"]] == ["P-100"]

    # the restored clinic's anchor still catches a truncation afterwards
    engine = db.make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER audit_events_no_delete")
        conn.exec_driver_sql(
            "DELETE FROM audit_events WHERE id = (SELECT MAX(id) FROM audit_events)"
        )
    engine.dispose()
    check = _cli(clinic_dir, "verify-audit")
    assert check.returncode == 1 and "truncated" in check.stdout


def test_encrypted_backup_needs_its_key(clinic_dir: Path, tmp_path: Path) -> None:
    key_file, wrong_file = tmp_path / "backup.key", tmp_path / "wrong.key"
    assert _cli(clinic_dir, "keygen", str(key_file)).returncode == 0
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert _cli(clinic_dir, "keygen", str(key_file)).returncode == 1  # never overwritten
    assert _cli(clinic_dir, "keygen", str(wrong_file)).returncode == 0

    refused = _cli(clinic_dir, "backup", str(tmp_path / "nokey"), "--encrypt")
    assert refused.returncode == 1 and "needs a key" in refused.stderr

    dest = tmp_path / "enc"
    made = _cli(clinic_dir, "backup", str(dest), CANDOR_BACKUP_KEY_FILE=str(key_file))
    assert made.returncode == 0 and "encrypted" in made.stdout, made.stderr
    stored = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert "candor.sqlite3" not in stored and "candor.sqlite3.enc" in stored
    assert all(n.endswith(".enc") or n.startswith("manifest.") for n in stored)
    ciphertext = (dest / "candor.sqlite3.enc").read_bytes()
    assert b"SQLite format 3" not in ciphertext and b"P-100" not in ciphertext
    assert not list(clinic_dir.parent.glob(".backup-staging-*"))  # plaintext staging removed

    target = tmp_path / "target"
    assert "is encrypted" in _refused(target, dest)
    assert "another key" in _refused(target, dest, CANDOR_BACKUP_KEY_FILE=str(wrong_file))
    done = _cli(target, "restore", str(dest), CANDOR_BACKUP_KEY_FILE=str(key_file))
    assert done.returncode == 0, done.stderr
    source, restored = (
        snapshot(f"sqlite:///{clinic_dir / 'candor.sqlite3'}"),
        snapshot(f"sqlite:///{target / 'candor.sqlite3'}"),
    )
    for key in ("patients", "consents", "photos"):
        assert restored[key] == source[key]
    assert _cli(target, "verify-audit").returncode == 0
    assert not list(target.glob(".restore-*"))  # decrypted staging removed

    with (dest / "candor.sqlite3.enc").open("r+b") as handle:  # one ciphertext byte flipped
        handle.seek(100)
        byte = handle.read(1)
        handle.seek(100)
        handle.write(bytes([byte[0] ^ 1]))
    assert "damaged or truncated" in _refused(
        tmp_path / "t2", dest, CANDOR_BACKUP_KEY_FILE=str(key_file)
    )


@pytest.mark.parametrize("plain_len", [0, 5, 64, 100])
def test_file_encryption_detects_every_truncation_and_reorder(
    tmp_path: Path, plain_len: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(crypto, "CHUNK", 32)  # many chunks from a small file
    key = os.urandom(32)
    plain = tmp_path / "plain"
    plain.write_bytes(os.urandom(plain_len))
    sealed = tmp_path / "sealed"
    crypto.encrypt_file(plain, sealed, key)
    crypto.decrypt_file(sealed, tmp_path / "round", key)
    assert (tmp_path / "round").read_bytes() == plain.read_bytes()
    data = sealed.read_bytes()
    header, body = data[:32], data[32:]
    chunks = [body[i : i + 48] for i in range(0, len(body), 48)]
    attacks = [header + b"".join(chunks[:n]) for n in range(len(chunks))]  # cut at each boundary
    attacks.append(data[:-1])
    if len(chunks) > 2:
        attacks.append(header + chunks[1] + chunks[0] + b"".join(chunks[2:]))
    for n, attacked in enumerate(attacks):
        (tmp_path / "attacked").write_bytes(attacked)
        out = tmp_path / f"out-{n}"
        with pytest.raises(crypto.DecryptError):
            crypto.decrypt_file(tmp_path / "attacked", out, key)
        assert not out.exists()  # no partial plaintext left behind
    with pytest.raises(crypto.DecryptError):
        crypto.decrypt_file(sealed, tmp_path / "other-key", os.urandom(32))


@pytest.mark.postgres
def test_postgres_backup_signed_encrypted_and_anchor_restored(
    postgres_server_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from analysis.store import anchor

    source_url = recreate_database(postgres_server_url, "candor_trust_src")
    engine = db.make_engine(source_url)
    db.upgrade(engine)
    engine.dispose()
    clinic = make_clinic(source_url, tmp_path / "images", scopes=("clinical_record", "teaching"))
    clinic.engine.dispose()
    key_file = tmp_path / "backup.key"
    crypto.generate_key_file(key_file)
    monkeypatch.setenv("CANDOR_BACKUP_KEY_FILE", str(key_file))
    monkeypatch.setenv("CANDOR_DATA_DIR", str(tmp_path / "data"))
    dest = tmp_path / "pg-backup"
    manifest = backup.backup(dest, url=source_url, image_root=tmp_path / "images", encrypt=True)
    assert manifest.encrypted and (dest / "candor.pgdump.enc").is_file()
    assert not (dest / "candor.pgdump").exists()

    target_url = recreate_database(postgres_server_url, "candor_trust_dst")
    monkeypatch.delenv("CANDOR_BACKUP_KEY_FILE")
    with pytest.raises(backup.BackupRejected, match="is encrypted"):
        backup.restore(dest, url=target_url, image_root=tmp_path / "restored")
    monkeypatch.setenv("CANDOR_BACKUP_KEY_FILE", str(key_file))

    # forged: the dump replaced and its hash rewritten in the manifest
    original = (dest / "candor.pgdump.enc").read_bytes()
    crypto_out = tmp_path / "other.enc"
    (tmp_path / "junk").write_bytes(b"not a dump")
    key = crypto.load_key("CANDOR_BACKUP_KEY", "CANDOR_BACKUP_KEY_FILE")
    assert key is not None
    crypto.encrypt_file(tmp_path / "junk", crypto_out, key)
    (dest / "candor.pgdump.enc").write_bytes(crypto_out.read_bytes())
    saved = (dest / "manifest.json").read_text()
    _rewrite_manifest(dest, files={"candor.pgdump.enc": _sha(dest / "candor.pgdump.enc")})
    with pytest.raises(backup.BackupRejected, match="was altered after it was made"):
        backup.restore(dest, url=target_url, image_root=tmp_path / "restored")
    (dest / "manifest.json").write_text(saved)
    with pytest.raises(backup.BackupRejected, match="damaged or truncated"):
        backup.restore(dest, url=target_url, image_root=tmp_path / "restored")
    (dest / "candor.pgdump.enc").write_bytes(original)
    engine = db.make_engine(target_url)
    from sqlalchemy import inspect

    assert inspect(engine).get_table_names() == []  # nothing was written by the refusals
    engine.dispose()

    anchor.write_anchor(10_000, "f" * 64)  # the live anchor has moved on (or is another clinic's)
    backup.restore(dest, url=target_url, image_root=tmp_path / "restored")
    engine = db.make_engine(target_url)
    with db.session_scope(engine) as session:
        assert anchor.verify_anchor(session) == []
    engine.dispose()
    assert snapshot(target_url)["chain"] == []
