"""The content-addressed image store on both backends (issue #18 part 1): a local directory and
S3-compatible object storage, the latter against a real S3 API server on loopback (moto's
standalone server, tests/s3_server.py) reached over HTTP by obstore, the client the app uses.

The interface tests run on both backends (``backend`` fixture); the object-storage tests cover
what only it has: object keys, conditional PUTs between replicas, an unreachable or missing
bucket, and configuration by CANDOR_IMAGE_STORE. Sweep, backup and restore run end to end through
``python -m analysis`` with the images in a bucket."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from analysis import config
from analysis.store.images import (
    BLOB_MAGIC,
    BlobCorruptError,
    BlobLockedError,
    BlobMissingError,
    ImageStore,
    ImageStoreUnavailableError,
    S3ImageStore,
    default_store,
    open_store,
    sha256_hex,
)
from tests.conftest import PROJECT_ROOT, S3Images
from tests.support import s3_server

pytestmark = pytest.mark.s3
ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # sha256(b"abc")


class Backend:
    """One store backend, and raw access to what it holds (to tamper and to look)."""

    def __init__(
        self,
        kind: str,
        make: Callable[..., ImageStore],
        raw_read: Callable[[str], bytes],
        raw_write: Callable[[str, bytes], None],
    ):
        self.kind, self.make, self.raw_read, self.raw_write = kind, make, raw_read, raw_write


@pytest.fixture(params=["file", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "file":
        root = tmp_path / "images"

        def make_file(key: bytes | None = None) -> ImageStore:
            return ImageStore(root, key=key)

        return Backend(
            "file",
            make_file,
            lambda name: (root / name[:2] / name).read_bytes(),
            lambda name, raw: (root / name[:2] / name).write_bytes(raw),
        )
    s3: S3Images = request.getfixturevalue("s3_images")
    client = s3_server.client(s3.endpoint)

    def make_s3(key: bytes | None = None) -> ImageStore:
        return S3ImageStore(s3.url, s3.settings(), key=key)

    def key_of(name: str) -> str:
        return f"{s3.prefix}/{name[:2]}/{name}"

    return Backend(
        "s3",
        make_s3,
        lambda name: client.get_object(Bucket=s3.bucket, Key=key_of(name))["Body"].read(),
        lambda name, raw: client.put_object(Bucket=s3.bucket, Key=key_of(name), Body=raw),
    )


# --- the interface, on both backends ----------------------------------------------------------------


def test_blobs_are_content_addressed_idempotent_and_verified(backend: Backend) -> None:
    store = backend.make()
    name = store.put(b"abc")
    assert name == ABC and store.get(name) == b"abc" and store.exists(name)
    assert store.names() == {name} and store.stored_size(name) == 3
    assert store.put(b"abc") == name and store.names() == {name}
    backend.raw_write(name, b"abd")
    assert not store.verify(name)
    with pytest.raises(BlobCorruptError, match="hash mismatch"):
        store.get(name, verify=True)
    with pytest.raises(ValueError):
        store.get("../../etc/passwd")
    with pytest.raises(ValueError):
        store.exists("AB" * 32)


def test_a_stored_blob_is_not_rewritten(backend: Backend) -> None:
    """Sealing uses a fresh nonce, so a rewrite would change the stored bytes: they stay."""
    store = backend.make(key=os.urandom(32))
    name = store.put(b"a photo")
    first = backend.raw_read(name)
    assert store.put(b"a photo") == name
    assert backend.raw_read(name) == first


def test_a_missing_blob_is_the_clear_error(backend: Backend) -> None:
    store = backend.make()
    absent = sha256_hex(b"never stored")
    with pytest.raises(BlobMissingError, match="missing from the store"):
        store.get(absent)
    with pytest.raises(BlobMissingError):
        next(store.stream(absent))
    with pytest.raises(BlobMissingError):
        store.stored_size(absent)
    assert not store.exists(absent) and not store.verify(absent)


def test_sealed_blobs_hold_no_plaintext_and_detect_edits_swaps_and_keys(backend: Backend) -> None:
    key = os.urandom(32)
    store = backend.make(key=key)
    first, second = store.put(b"first photo bytes"), store.put(b"second photo bytes")
    one, two = backend.raw_read(first), backend.raw_read(second)
    assert one.startswith(BLOB_MAGIC) and b"first photo" not in one
    assert store.get(first, verify=True) == b"first photo bytes"
    with pytest.raises(BlobLockedError, match="CANDOR_DB_KEY"):
        backend.make(key=None).get(first)
    assert not backend.make(key=os.urandom(32)).verify(first)
    backend.raw_write(first, one[:-1] + bytes([one[-1] ^ 1]))
    with pytest.raises(BlobCorruptError):
        store.get(first)
    backend.raw_write(first, two)  # another blob's ciphertext under this name
    with pytest.raises(BlobCorruptError):
        store.get(first)
    backend.raw_write(first, one)
    assert store.verify(first)


def test_a_plaintext_blob_is_sealed_when_put_again_under_a_key(backend: Backend) -> None:
    name = backend.make(key=None).put(b"written before the clinic had a key")
    assert not backend.raw_read(name).startswith(BLOB_MAGIC)
    sealed = backend.make(key=os.urandom(32))
    assert sealed.put(b"written before the clinic had a key") == name
    assert backend.raw_read(name).startswith(BLOB_MAGIC) and sealed.verify(name)


@pytest.mark.parametrize("sealed", [False, True])
def test_big_blobs_stream_in_chunks(backend: Backend, sealed: bool) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    store = backend.make(key=os.urandom(32) if sealed else None)
    name = store.put(data)
    chunks = list(store.stream(name, chunk_size=256 * 1024))
    assert b"".join(chunks) == data and len(chunks) >= 2  # never the whole blob in one piece
    assert all(len(c) >= 256 * 1024 for c in chunks[:-1])
    if not sealed:  # a tampered plaintext stream fails after its last chunk
        backend.raw_write(name, data[:-1] + bytes([data[-1] ^ 1]))  # always a change
        with pytest.raises(BlobCorruptError):
            list(store.stream(name, chunk_size=256 * 1024))


def test_sweep_removes_unreferenced_blobs_and_spares_recent_ones(backend: Backend) -> None:
    store = backend.make()
    kept, orphan = store.put(b"referenced photo"), store.put(b"orphaned photo")
    report = store.sweep({kept}, min_age_s=3600)  # the orphan was written just now: spared
    assert report.unreferenced_removed == 0 and store.names() == {kept, orphan}
    report = store.sweep({kept})
    assert report.unreferenced_removed == 1 and store.names() == {kept}
    assert store.get(kept) == b"referenced photo"
    with pytest.raises(BlobMissingError):
        store.get(orphan)


# --- object storage only ----------------------------------------------------------------------------


def _seed_clinic(url: str, store: ImageStore, code: str) -> dict[str, object]:
    """One patient (``code``) with consent, a series, a visit and one stored photo."""
    from analysis.store import db
    from analysis.store.models import Photo
    from tests.support.photo_clinic import make_clinic

    engine = db.make_engine(url)
    db.upgrade(engine)
    engine.dispose()
    clinic = make_clinic(url, store, code=code)
    with db.session_scope(clinic.engine) as session:
        sha256 = session.get_one(Photo, clinic.photo_id).sha256
    clinic.engine.dispose()
    return {
        "patient": clinic.patient_id,
        "photo": clinic.photo_id,
        "sha256": sha256,
        "bytes": clinic.photo,
    }


def _photo_through_the_app(url: str, photo_id: int) -> bytes:
    from analysis.services.photo_access import photo_bytes
    from analysis.store import db
    from tests.support.photo_clinic import CLINICIAN

    engine = db.make_engine(url)
    try:
        with db.session_scope(engine) as session:
            return photo_bytes(session, CLINICIAN, photo_id=photo_id)  # the configured store
    finally:
        engine.dispose()


def test_object_keys_are_hashes_and_name_no_patient(s3_images: S3Images, tmp_path: Path) -> None:
    code = "SMITH-JANE-19850412"
    url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    seeded = _seed_clinic(url, default_store(), code)
    keys = s3_server.object_keys(s3_images.endpoint, s3_images.bucket)
    assert keys == [f"clinic-images/{str(seeded['sha256'])[:2]}/{seeded['sha256']}"]
    client = s3_server.client(s3_images.endpoint)
    for key in keys:
        assert re.fullmatch(r"clinic-images/[0-9a-f]{2}/[0-9a-f]{64}", key)
        assert "SMITH" not in key and "1985" not in key
        head = client.head_object(Bucket=s3_images.bucket, Key=key)
        assert head["Metadata"] == {}  # nothing about the patient rides along as metadata
    assert _photo_through_the_app(url, int(seeded["photo"])) == seeded["bytes"]


def test_two_replicas_writing_the_same_photo_at_once(s3_images: S3Images) -> None:
    key = os.urandom(32)
    stores = [S3ImageStore(s3_images.url, s3_images.settings(), key=key) for _ in range(4)]
    data = os.urandom(200_000)
    names: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(len(stores))

    def save(store: ImageStore) -> None:
        start.wait()
        try:
            names.append(store.put(data))
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == [] and names == [sha256_hex(data)] * len(stores)
    assert len(s3_server.object_keys(s3_images.endpoint, s3_images.bucket)) == 1
    assert stores[0].get(names[0], verify=True) == data
    # the conditional PUT itself: a create over an existing object keeps the first writer's bytes
    before = (
        s3_server.client(s3_images.endpoint)
        .get_object(Bucket=s3_images.bucket, Key=stores[0].object_key(names[0]))["Body"]
        .read()
    )
    stores[1]._stored_write(names[0], b"other bytes", replace=False)
    after = (
        s3_server.client(s3_images.endpoint)
        .get_object(Bucket=s3_images.bucket, Key=stores[0].object_key(names[0]))["Body"]
        .read()
    )
    assert after == before


def test_an_unreachable_store_or_missing_bucket_is_a_clear_error(s3_images: S3Images) -> None:
    from tests.support.pg_server import free_port

    settings = s3_images.settings()
    dead = type(settings)(
        endpoint=f"http://127.0.0.1:{free_port()}",
        region="us-east-1",
        access_key_id="x",
        secret_access_key="y",
        session_token=None,
    )
    store = S3ImageStore("s3://candor-images/x", dead, key=None, timeout_s=3)
    started = time.monotonic()
    with pytest.raises(ImageStoreUnavailableError, match="s3://candor-images/x"):
        store.put(b"photo")
    assert time.monotonic() - started < 30
    with pytest.raises(ImageStoreUnavailableError):
        store.get(ABC)  # not "missing": the store could not be asked
    nobucket = S3ImageStore("s3://no-such-candor-bucket", settings, key=None)
    with pytest.raises(ImageStoreUnavailableError, match="does not exist"):
        nobucket.put(b"photo")
    with pytest.raises(ImageStoreUnavailableError, match="does not exist"):
        nobucket.names()
    assert "candor-test-secret" not in repr(settings) and "<hidden>" in repr(settings)


def test_candor_image_store_selects_the_backend(
    s3_images: S3Images, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = default_store()
    assert isinstance(store, S3ImageStore)
    assert (store.bucket, store.prefix) == (s3_images.bucket, "clinic-images")
    assert store.settings.endpoint == s3_images.endpoint
    assert not config.image_store_is_local()
    monkeypatch.setenv("CANDOR_IMAGE_STORE", (tmp_path / "elsewhere").as_uri())
    local = default_store()
    assert type(local) is ImageStore and local.root == (tmp_path / "elsewhere").resolve()
    monkeypatch.delenv("CANDOR_IMAGE_STORE")
    monkeypatch.setenv("CANDOR_DATA_DIR", str(tmp_path / "data"))
    assert default_store().root == (tmp_path / "data" / "images").resolve()  # the default
    for bad in ("gs://bucket/x", "s3://", "s3://bucket/a/../b", "s3://bucket/x?endpoint=y"):
        with pytest.raises(ValueError):
            open_store(bad)


# --- sweep, backup and restore through the CLI, images in a bucket ----------------------------------


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **env}
    full.pop("CANDOR_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "analysis", *args],
        cwd=PROJECT_ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_sweep_command_cleans_the_bucket(s3_images: S3Images, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    seeded = _seed_clinic(f"sqlite:///{data / 'candor.sqlite3'}", default_store(), "P-1")
    orphan = default_store().put(b"a blob whose row never committed")
    result = _cli("sweep", "--min-age-minutes", "60", CANDOR_DATA_DIR=str(data))
    assert result.returncode == 0, result.stderr
    assert "0 unreferenced blobs" in result.stdout and s3_images.url in result.stdout
    assert default_store().names() == {seeded["sha256"], orphan}
    result = _cli("sweep", CANDOR_DATA_DIR=str(data))
    assert result.returncode == 0, result.stderr
    assert "1 unreferenced blobs" in result.stdout
    assert default_store().names() == {seeded["sha256"]}
    result = _cli("sweep", CANDOR_DATA_DIR=str(data), AWS_ENDPOINT_URL="http://127.0.0.1:9")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "sweep stopped" in result.stderr and s3_images.url in result.stderr


@pytest.mark.parametrize("sealed", [False, True])
def test_backup_and_restore_round_trip_with_images_in_a_bucket(
    s3_images: S3Images, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sealed: bool
) -> None:
    if sealed:
        from analysis.store import crypto

        crypto.generate_key_file(tmp_path / "db.key")
        monkeypatch.setenv("CANDOR_DB_KEY_FILE", str(tmp_path / "db.key"))
    data = tmp_path / "clinic"
    data.mkdir()
    monkeypatch.setenv("CANDOR_DATA_DIR", str(data))
    seeded = _seed_clinic(f"sqlite:///{data / 'candor.sqlite3'}", default_store(), "P-200")
    stored = (
        s3_server.client(s3_images.endpoint)
        .get_object(
            Bucket=s3_images.bucket,
            Key=f"clinic-images/{str(seeded['sha256'])[:2]}/{seeded['sha256']}",
        )["Body"]
        .read()
    )
    assert stored.startswith(BLOB_MAGIC) is sealed
    default_store().put(b"an unreferenced blob")  # not part of the record

    dest = tmp_path / "backup"
    result = _cli("backup", str(dest))
    assert result.returncode == 0, result.stderr
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["blob_count"] == 1 and manifest["blobs"] == [seeded["sha256"]]
    assert ImageStore(dest / "images", key=None).names() == {seeded["sha256"]}

    # a new server: empty data directory, a new empty bucket
    target = s3_images.new_bucket(prefix="restored")
    fresh = tmp_path / "new-server"
    env = {"CANDOR_DATA_DIR": str(fresh), "CANDOR_IMAGE_STORE": target.url}
    result = _cli("restore", str(dest), **env)
    assert result.returncode == 0, result.stderr
    assert "all verified" in result.stdout
    assert s3_server.object_keys(target.endpoint, target.bucket) == [
        f"restored/{str(seeded['sha256'])[:2]}/{seeded['sha256']}"
    ]
    monkeypatch.setenv("CANDOR_DATA_DIR", str(fresh))
    monkeypatch.setenv("CANDOR_IMAGE_STORE", target.url)
    assert (
        _photo_through_the_app(f"sqlite:///{fresh / 'candor.sqlite3'}", int(seeded["photo"]))
        == seeded["bytes"]
    )
    assert not any(p.name == "images" for p in fresh.rglob("images"))  # nothing staged left
    result = _cli("verify-audit", **env)
    assert result.returncode == 0, result.stdout + result.stderr

    # restoring again over a clinic with data needs --force; the bucket's blobs stay
    result = _cli("restore", str(dest), **env)
    assert result.returncode == 1 and "already holds clinic data" in result.stderr
    result = _cli("restore", str(dest), "--force", **env)
    assert result.returncode == 0, result.stderr

    # a backup of the new server whose blob is gone from its bucket is refused, naming it
    s3_server.client(target.endpoint).delete_object(
        Bucket=target.bucket, Key=f"restored/{str(seeded['sha256'])[:2]}/{seeded['sha256']}"
    )
    result = _cli("backup", str(tmp_path / "backup-2"), **env)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert str(seeded["sha256"])[:12] in result.stderr and "missing" in result.stderr


def _fresh_database(server_url: str, name: str) -> str:
    """An empty database ``name`` on the test PostgreSQL server."""
    from sqlalchemy import create_engine, text

    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return server_url.replace("/candor?", f"/{name}?")


@pytest.mark.postgres
def test_postgres_backup_and_restore_with_images_in_a_bucket(
    s3_images: S3Images, postgres_server_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deployment of issue #18: one PostgreSQL, images in object storage."""
    from analysis.store import backup
    from tests.support.backups import snapshot

    monkeypatch.setenv("CANDOR_DATA_DIR", str(tmp_path / "data"))
    source_url = _fresh_database(postgres_server_url, "candor_s3_src")
    seeded = _seed_clinic(source_url, default_store(), "P-300")
    manifest = backup.backup(tmp_path / "pg-backup", url=source_url)
    assert manifest.engine == "postgresql" and manifest.blobs == [seeded["sha256"]]
    before = snapshot(source_url)

    target = s3_images.new_bucket(prefix="")
    restored = S3ImageStore(target.url, target.settings())
    target_url = _fresh_database(postgres_server_url, "candor_s3_dst")
    backup.restore(tmp_path / "pg-backup", url=target_url, store=restored)
    after = snapshot(target_url)
    assert after["photos"] == before["photos"] and after["chain"] == []
    assert s3_server.object_keys(target.endpoint, target.bucket) == [
        f"{str(seeded['sha256'])[:2]}/{seeded['sha256']}"
    ]
    assert restored.get(str(seeded["sha256"]), verify=True) == seeded["bytes"]


def test_encrypt_refuses_a_clinic_whose_images_are_in_a_bucket(
    s3_images: S3Images, tmp_path: Path
) -> None:
    from analysis.store import crypto

    data = tmp_path / "data"
    data.mkdir()
    _seed_clinic(f"sqlite:///{data / 'candor.sqlite3'}", default_store(), "P-400")
    crypto.generate_key_file(tmp_path / "db.key")
    result = _cli("encrypt", CANDOR_DATA_DIR=str(data), CANDOR_DB_KEY_FILE=str(tmp_path / "db.key"))
    assert result.returncode == 1 and "object storage" in result.stderr
    assert "Traceback" not in result.stderr
