"""Encryption at rest (issue #12): with CANDOR_DB_KEY the SQLite file is SQLCipher and every image
blob AES-GCM sealed, so someone holding the files reads neither; a missing or wrong key is a clear
refusal; ``python -m analysis encrypt`` converts a plaintext clinic and rotates keys, and a crash
at any step of it leaves either the old clinic or (after re-running) the new one, never a mix in
use; backups, the demo and the app work with a key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.services.photo_access import photo_bytes
from analysis.store import at_rest, crypto, db, encrypt
from analysis.store.images import BLOB_MAGIC, BlobCorruptError, BlobLockedError, ImageStore
from tests.conftest import PROJECT_ROOT
from tests.support.backups import make_backup_clinic, snapshot
from tests.support.photo_clinic import CLINICIAN, astronaut_jpeg, make_clinic


@pytest.fixture
def clinic_dir(tmp_path: Path) -> Path:
    return make_backup_clinic(tmp_path)


def _cli(data_dir: Path, *args: str, **env_extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CANDOR_DATA_DIR": str(data_dir), **env_extra}
    env.pop("CANDOR_DATABASE_URL", None)
    for name in [k for k, v in env_extra.items() if v == ""]:
        env.pop(name)
    return subprocess.run(
        [sys.executable, "-m", "analysis", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _key(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.key"
    crypto.generate_key_file(path)
    return path


def _files_of(data: Path) -> dict[str, bytes]:
    return {str(p.relative_to(data)): p.read_bytes() for p in data.rglob("*") if p.is_file()}


def _assert_encrypted(data: Path) -> None:
    """No file of the clinic shows SQLite's header, a patient code or a JPEG."""
    files = _files_of(data)
    assert files
    for name, content in files.items():
        assert not content.startswith(b"SQLite format 3"), name
        assert b"P-100" not in content and b"JFIF" not in content, name
    blobs = [n for n in files if n.startswith("images/")]
    assert blobs and all(files[n].startswith(BLOB_MAGIC) for n in blobs)


def test_a_keyed_clinic_keeps_no_plaintext_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CANDOR_DB_KEY_FILE", str(_key(tmp_path, "db")))
    data = tmp_path / "data"
    data.mkdir()
    url = f"sqlite:///{data / 'candor.sqlite3'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    engine.dispose()
    clinic = make_clinic(url, data / "images")
    with db.session_scope(clinic.engine) as session:
        shown = photo_bytes(session, CLINICIAN, photo_id=clinic.photo_id, store=clinic.store)
    clinic.engine.dispose()
    assert shown == astronaut_jpeg()
    _assert_encrypted(data)
    assert snapshot(url)["patients"][0][1] == "P-100" and snapshot(url)["chain"] == []

    monkeypatch.delenv("CANDOR_DB_KEY_FILE")
    with pytest.raises(at_rest.AtRestError, match="is encrypted"):
        db.make_engine(url)
    with pytest.raises(BlobLockedError, match="encrypted"):
        ImageStore(data / "images").get(clinic.store.names().pop())
    monkeypatch.setenv("CANDOR_DB_KEY", os.urandom(32).hex())  # another key
    engine = db.make_engine(url)
    with pytest.raises(Exception, match="does not open with the configured CANDOR_DB_KEY"):
        engine.connect()
    engine.dispose()
    assert not ImageStore(data / "images").verify(clinic.store.names().pop())

    result = _cli(data, "verify-audit", CANDOR_DB_KEY="")  # the CLI says it in one sentence
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "set CANDOR_DB_KEY" in result.stderr


def test_sealed_blobs_detect_edits_and_swaps(tmp_path: Path) -> None:
    key = os.urandom(32)
    store = ImageStore(tmp_path / "images", key=key)
    first, second = store.put(b"first photo bytes"), store.put(b"second photo bytes")
    assert store.get(first, verify=True) == b"first photo bytes"
    assert store.put(b"first photo bytes") == first  # idempotent, same ciphertext kept
    a, b = store.path_for(first), store.path_for(second)
    one, two = a.read_bytes(), b.read_bytes()
    assert ImageStore(tmp_path / "again", key=key).put(b"first photo bytes") == first
    assert (tmp_path / "again" / first[:2] / first).read_bytes() != one  # a fresh nonce per blob
    a.write_bytes(one[:-1] + bytes([one[-1] ^ 1]))
    with pytest.raises(BlobCorruptError):
        store.get(first)
    a.write_bytes(two)  # another blob's ciphertext under this name
    with pytest.raises(BlobCorruptError):
        store.get(first)
    a.write_bytes(one)
    assert store.verify(first) and not ImageStore(tmp_path / "images", key=os.urandom(32)).verify(
        first
    )


def test_encrypt_converts_a_plaintext_clinic(clinic_dir: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{clinic_dir / 'candor.sqlite3'}"
    before = snapshot(url)
    key = _key(tmp_path, "db")
    refused = _cli(clinic_dir, "encrypt")
    assert refused.returncode == 1 and "CANDOR_DB_KEY_FILE" in refused.stderr
    done = _cli(clinic_dir, "encrypt", CANDOR_DB_KEY_FILE=str(key))
    assert done.returncode == 0, done.stderr
    assert "and 2 images, verified" in done.stdout, done.stdout  # the photo and the orphan
    (aside,) = clinic_dir.glob(".pre-encrypt-*")
    assert (aside / "candor.sqlite3").read_bytes().startswith(b"SQLite format 3")  # kept
    _assert_encrypted_except(clinic_dir, aside)
    again = _cli(clinic_dir, "encrypt", CANDOR_DB_KEY_FILE=str(key))
    assert again.returncode == 1 and "already encrypted" in again.stderr

    os.environ["CANDOR_DB_KEY_FILE"] = str(key)
    try:
        after = snapshot(url)
        for part in ("patients", "consents", "photos", "chain"):
            assert after[part] == before[part]
        assert after["audit"][:-1] == before["audit"]  # plus the conversion's own event
        assert after["audit"][-1][1] == "store.encrypt"
        store = ImageStore(clinic_dir / "images")
        assert all(store.verify(p[1]) for p in after["photos"])
        engine = db.make_engine(url)
        with engine.begin() as conn:  # the append-only triggers came along
            with pytest.raises(Exception, match="append-only"):
                conn.exec_driver_sql("DELETE FROM audit_events")
        engine.dispose()
    finally:
        del os.environ["CANDOR_DB_KEY_FILE"]
    check = _cli(clinic_dir, "verify-audit", CANDOR_DB_KEY_FILE=str(key))
    assert check.returncode == 0, check.stdout + check.stderr


def _assert_encrypted_except(data: Path, aside: Path) -> None:
    for name, content in _files_of(data).items():
        if name.startswith(aside.name):
            continue
        assert not content.startswith(b"SQLite format 3") and b"P-100" not in content, name
        if name.startswith("images/"):
            assert content.startswith(BLOB_MAGIC), name


class Crash(BaseException):
    """Stands for the process dying (BaseException: nothing catches it on the way out)."""


def _crash_after(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    real = encrypt._replace
    calls: list[object] = []

    def replace(src: Path, dst: Path) -> None:
        if len(calls) == n:
            raise Crash(f"killed before rename {n}")
        calls.append(1)
        real(src, dst)

    monkeypatch.setattr(encrypt, "_replace", replace)


def test_a_crash_at_any_step_of_encrypt_never_leaves_a_mixed_store(
    clinic_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{clinic_dir / 'candor.sqlite3'}"
    before = snapshot(url)
    original = _files_of(clinic_dir)
    new = crypto.parse_key(_key(tmp_path, "db").read_text(), "key")

    # dies while building the converted copy: the clinic is untouched, the copy is discarded
    def dies(*_a: object) -> int:
        raise Crash("killed while converting images")

    monkeypatch.setattr(encrypt, "_convert_blobs", dies)
    with pytest.raises(Crash):
        encrypt.convert(clinic_dir / "candor.sqlite3", clinic_dir / "images", old=None, new=new)
    monkeypatch.undo()
    assert _files_of(clinic_dir) == original and snapshot(url) == before

    # dies at each rename of the swap: the database refuses to open, a re-run finishes it
    renames = 0
    for n in range(0, 20):
        target = tmp_path / f"run-{n}"
        os.makedirs(target)
        for name, content in original.items():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).write_bytes(content)
        _crash_after(monkeypatch, n)
        try:
            encrypt.convert(target / "candor.sqlite3", target / "images", old=None, new=new)
            renames = n
            monkeypatch.undo()
            break
        except Crash:
            monkeypatch.undo()
        with pytest.raises(at_rest.AtRestError, match="interrupted"):
            db.make_engine(f"sqlite:///{target / 'candor.sqlite3'}")
        report = encrypt.convert(target / "candor.sqlite3", target / "images", old=None, new=new)
        assert report.resumed
        _check_converted(target, new, before)
    assert renames >= 3  # images, database, -wal/-shm: every rename was crashed at once


def _check_converted(data: Path, key: bytes, before: dict[str, object]) -> None:
    os.environ["CANDOR_DB_KEY"] = key.hex()
    try:
        after = snapshot(f"sqlite:///{data / 'candor.sqlite3'}")
        for part in ("patients", "consents", "photos", "audit", "chain"):
            assert after[part] == before[part]
        store = ImageStore(data / "images")
        assert store.names() and all(store.verify(n) for n in store.names())
    finally:
        del os.environ["CANDOR_DB_KEY"]
    assert not (data / db.ENCRYPT_MARKER).exists()
    assert not list(data.glob(".encrypt-staging-*"))


def test_key_rotation(clinic_dir: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{clinic_dir / 'candor.sqlite3'}"
    before = snapshot(url)
    old, new = _key(tmp_path, "old"), _key(tmp_path, "new")
    assert _cli(clinic_dir, "encrypt", CANDOR_DB_KEY_FILE=str(old)).returncode == 0
    same = _cli(clinic_dir, "encrypt", "--new-key-file", str(old), CANDOR_DB_KEY_FILE=str(old))
    assert same.returncode == 1 and "is the current key" in same.stderr
    rotated = _cli(clinic_dir, "encrypt", "--new-key-file", str(new), CANDOR_DB_KEY_FILE=str(old))
    assert rotated.returncode == 0, rotated.stderr
    assert f"CANDOR_DB_KEY_FILE={new}" in rotated.stdout

    stale = _cli(clinic_dir, "verify-audit", CANDOR_DB_KEY_FILE=str(old))
    assert stale.returncode == 2 and "does not open" in stale.stderr
    assert _cli(clinic_dir, "verify-audit", CANDOR_DB_KEY_FILE=str(new)).returncode == 0
    os.environ["CANDOR_DB_KEY_FILE"] = str(new)
    try:
        after = snapshot(url)
        assert all(after[p] == before[p] for p in ("patients", "consents", "photos"))
        assert after["audit"][:-2] == before["audit"] and after["chain"] == []
        assert [e[1] for e in after["audit"][-2:]] == ["store.encrypt", "store.encrypt"]
        store = ImageStore(clinic_dir / "images")
        assert all(store.verify(p[1]) for p in after["photos"])
    finally:
        del os.environ["CANDOR_DB_KEY_FILE"]
    old_blobs = ImageStore(
        clinic_dir / "images", key=at_rest.blob_key(crypto.parse_key(old.read_text(), "old"))
    )
    assert not any(old_blobs.verify(p[1]) for p in after["photos"])


def test_backup_of_an_encrypted_clinic_needs_its_key(clinic_dir: Path, tmp_path: Path) -> None:
    key = _key(tmp_path, "db")
    assert _cli(clinic_dir, "encrypt", CANDOR_DB_KEY_FILE=str(key)).returncode == 0
    dest = tmp_path / "backup"
    made = _cli(clinic_dir, "backup", str(dest), CANDOR_DB_KEY_FILE=str(key))
    assert made.returncode == 0, made.stderr
    assert not (dest / "candor.sqlite3").read_bytes().startswith(b"SQLite format 3")
    target = tmp_path / "target"
    refused = _cli(target, "restore", str(dest))
    assert refused.returncode == 2 and "encrypted at rest" in refused.stderr
    assert not (target / "candor.sqlite3").exists()
    done = _cli(target, "restore", str(dest), CANDOR_DB_KEY_FILE=str(key))
    assert done.returncode == 0, done.stderr
    assert _cli(target, "verify-audit", CANDOR_DB_KEY_FILE=str(key)).returncode == 0
    _assert_encrypted(target)


def test_demo_and_app_with_a_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    from analysis.cli import main
    from analysis.store.access import Actor
    from ui.frame import ACTOR_KEY

    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("CANDOR_DATA_DIR", str(data))
    monkeypatch.delenv("CANDOR_DATABASE_URL", raising=False)
    monkeypatch.setenv("CANDOR_DB_KEY_FILE", str(_key(tmp_path, "db")))
    assert main(["demo", "--patients", "4", "--workers", "1"]) == 0
    db.dispose_engines()
    files = _files_of(data)
    assert not files["candor.sqlite3"].startswith(b"SQLite format 3")
    blobs = [n for n in files if n.startswith("images/")]
    assert blobs and all(files[n].startswith(BLOB_MAGIC) for n in blobs)

    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=120)
    at.session_state[ACTOR_KEY] = Actor(
        user_id=None, email="director@test.candor", role="medical_director"
    )
    at.run()
    assert not at.exception, at.exception
    at.switch_page("views/patients.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.dataframe  # the patient list was read from the encrypted database
    db.dispose_engines()


def test_app_names_a_missing_or_wrong_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("CANDOR_DATA_DIR", str(data))
    monkeypatch.delenv("CANDOR_DATABASE_URL", raising=False)
    monkeypatch.setenv("CANDOR_DB_KEY_FILE", str(_key(tmp_path, "db")))
    engine = db.make_engine(f"sqlite:///{data / 'candor.sqlite3'}")
    db.upgrade(engine)
    engine.dispose()
    app = str(PROJECT_ROOT / "app.py")
    for change in ({"CANDOR_DB_KEY_FILE": None}, {"CANDOR_DB_KEY": os.urandom(32).hex()}):
        for name, value in change.items():
            if value is None:
                monkeypatch.delenv(name)
            else:
                monkeypatch.setenv(name, value)
        db.dispose_engines()
        at = AppTest.from_file(app, default_timeout=60).run()
        assert not at.exception, at.exception
        (error,) = at.error
        assert "Candor cannot open its database" in error.value and "CANDOR_DB_KEY" in error.value
        assert not at.button  # no sign-in form over a database it cannot read
    db.dispose_engines()


def test_sigkill_during_encrypt_leaves_the_old_clinic_or_a_finishable_one(
    clinic_dir: Path, tmp_path: Path
) -> None:
    """A real ``kill -9`` of ``python -m analysis encrypt`` at spread-out moments: afterwards
    either no marker and the plaintext clinic intact, or a marker that a re-run finishes."""
    import signal
    import time

    store = ImageStore(clinic_dir / "images", key=None)
    for i in range(150):  # enough blobs that the conversion takes a while
        store.put(os.urandom(60_000) + i.to_bytes(2, "big"))
    url = f"sqlite:///{clinic_dir / 'candor.sqlite3'}"
    before = snapshot(url)
    original = _files_of(clinic_dir)
    key = _key(tmp_path, "db")
    env = {**os.environ, "CANDOR_DATA_DIR": str(clinic_dir), "CANDOR_DB_KEY_FILE": str(key)}
    env.pop("CANDOR_DATABASE_URL", None)
    outcomes = set()
    for delay in (0.3, 0.8, 1.2, 1.6, 2.0, 2.5, 3.0, 4.0):
        proc = subprocess.Popen(
            [sys.executable, "-m", "analysis", "encrypt"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if (clinic_dir / db.ENCRYPT_MARKER).exists():
            outcomes.add("mid-swap")
            with pytest.raises(at_rest.AtRestError, match="interrupted"):
                db.make_engine(url)
            break
        if at_rest.is_plaintext_sqlite(clinic_dir / "candor.sqlite3") is False:
            outcomes.add("finished")
            break
        outcomes.add("untouched")
        current = {
            n: c for n, c in _files_of(clinic_dir).items() if not n.startswith(".encrypt-staging-")
        }
        assert set(current) - set(original) <= {"candor.sqlite3-wal", "candor.sqlite3-shm"}
        assert all(current[n] == original[n] for n in original if n.startswith("images/"))
        assert snapshot(url)["patients"] == before["patients"]
    print("kill -9 outcomes:", sorted(outcomes))  # which moments were hit: machine speed
    assert "untouched" in outcomes  # at least one kill landed while the copy was being built
    if "finished" not in outcomes:
        done = _cli(clinic_dir, "encrypt", CANDOR_DB_KEY_FILE=str(key))
        assert done.returncode == 0, done.stderr
    os.environ["CANDOR_DB_KEY_FILE"] = str(key)
    try:
        after = snapshot(url)
        assert after["patients"] == before["patients"] and after["photos"] == before["photos"]
        assert after["chain"] == []
        converted = ImageStore(clinic_dir / "images")
        assert len(converted.names()) == 152 and all(converted.verify(n) for n in converted.names())
    finally:
        del os.environ["CANDOR_DB_KEY_FILE"]
    assert not list(clinic_dir.glob(".encrypt-staging-*"))
    assert _cli(clinic_dir, "verify-audit", CANDOR_DB_KEY_FILE=str(key)).returncode == 0


@pytest.mark.postgres
def test_postgres_clinic_with_a_key_seals_its_images(
    postgres_server_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL's own files are the server's (disk encryption); the image store is sealed."""
    from analysis.store import backup
    from tests.support.backups import recreate_database

    monkeypatch.setenv("CANDOR_DB_KEY_FILE", str(_key(tmp_path, "db")))
    monkeypatch.setenv("CANDOR_DATA_DIR", str(tmp_path / "data"))
    url = recreate_database(postgres_server_url, "candor_at_rest")
    engine = db.make_engine(url)
    db.upgrade(engine)
    engine.dispose()
    clinic = make_clinic(url, tmp_path / "images")
    with db.session_scope(clinic.engine) as session:
        assert (
            photo_bytes(session, CLINICIAN, photo_id=clinic.photo_id, store=clinic.store)
            == astronaut_jpeg()
        )
    clinic.engine.dispose()
    (name,) = clinic.store.names()
    assert clinic.store.path_for(name).read_bytes().startswith(BLOB_MAGIC)
    manifest = backup.backup(tmp_path / "pg-backup", url=url, image_root=tmp_path / "images")
    key = at_rest.master_key()
    assert key is not None
    assert manifest.at_rest_key_id == crypto.key_id(key)
    monkeypatch.delenv("CANDOR_DB_KEY_FILE")
    with pytest.raises(backup.BackupRejected, match="encrypted at rest"):
        backup.verify_backup(tmp_path / "pg-backup")
