"""Crash durability: a writer SIGKILLed at random moments never loses an acknowledged commit.

A forked child writes a mixed stream to the real store (``records.create_patient`` + consent +
series + session in one transaction, or ``records.store_photo`` of a 50-400 kB blob through the
``ImageStore``) and, only after each commit returns, writes ``<kind> <ids>`` to a pipe. The parent
kills it with SIGKILL after a random delay, again and again (bounded to ~30 s in all), then checks
that every acknowledged commit is present, ``PRAGMA integrity_check`` is ``ok``, every photo row's
blob exists and re-hashes, the audit chain verifies, and the sweep leaves exactly the referenced
blobs and no temporary files. Figures are printed (``pytest -s``).

This exercises process crashes (the OS keeps what was written). Power loss is covered by the
store's design (WAL + ``synchronous=FULL``, fsync of blob and directory before the row), not by
this test.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from analysis.services import records
from analysis.store import audit, db
from analysis.store.access import Actor
from analysis.store.images import TEMP_PREFIX, ImageStore
from analysis.store.models import Patient, Photo, Protocol, Session

WRITER = Actor(user_id=None, email="writer@test", role="clinician")
MAX_KILLS = 18
BUDGET_S = 30.0
DAY0 = date(2026, 1, 1)


def _child(url: str, image_root: Path, fd: int, seed: int, protocol_id: int) -> None:
    """The writer: loops until killed; acknowledges each commit on ``fd`` after it returns."""
    rng = random.Random(seed)
    engine = db.make_engine(url)
    store = ImageStore(image_root)
    for n in range(1_000_000):
        if n == 0 or rng.random() < 0.3:
            with db.session_scope(engine) as session:
                patient = records.create_patient(
                    session,
                    WRITER,
                    code=f"K{seed}-{n}",
                    birth_year=1980,
                    sex="female",
                    fitzpatrick=3,
                )
                records.give_consent(
                    session,
                    WRITER,
                    patient_id=patient.id,
                    scope="clinical_record",
                    at=datetime.now(UTC) - timedelta(days=1),
                )
                series = records.create_series(
                    session, WRITER, patient_id=patient.id, protocol_id=protocol_id, started_on=DAY0
                )
                visit = records.add_session(session, WRITER, series_id=series.id, performed_on=DAY0)
                ack = f"visit {patient.id} {visit.id}\n"
            visit_id = visit.id
        else:
            data = rng.randbytes(rng.randint(50_000, 400_000))
            with db.session_scope(engine) as session:
                row = records.store_photo(
                    session,
                    WRITER,
                    store,
                    session_id=visit_id,
                    photo=records.PhotoInput(
                        data=data,
                        original_sha256="0" * 64,
                        media_type="image/jpeg",
                        width_px=1,
                        height_px=1,
                        view="face_frontal",
                        verdict="pass",
                        measurements={},
                        checks=[],
                    ),
                )
                ack = f"photo {row.id} {row.sha256}\n"
        os.write(fd, ack.encode())  # after the commit: this write is the acknowledgement


def _run_and_kill(
    url: str, image_root: Path, seed: int, protocol_id: int, delay_s: float
) -> list[str]:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child never returns into pytest
        try:
            os.close(read_fd)
            _child(url, image_root, write_fd, seed, protocol_id)
        finally:
            os._exit(0)
    os.close(write_fd)
    time.sleep(delay_s)
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (
        "the writer stopped before it was killed"
    )
    chunks = []
    while chunk := os.read(read_fd, 1 << 16):
        chunks.append(chunk)
    os.close(read_fd)
    return [line for line in b"".join(chunks).decode().splitlines() if line]


def test_sigkilled_writer_never_loses_an_acknowledged_commit(tmp_path: Path) -> None:
    db_file = tmp_path / "candor.sqlite3"
    url = f"sqlite:///{db_file}"
    image_root = tmp_path / "images"
    engine = db.make_engine(url)
    db.upgrade(engine)
    with db.session_scope(engine) as session:
        protocol = Protocol(
            name="Mesotherapy",
            modality="mesotherapy",
            target_area="face",
            planned_sessions=4,
            interval_days=14,
            required_views=[],
            endpoint_codes=[],
        )
        session.add(protocol)
        session.flush()
        protocol_id = protocol.id
    engine.dispose()
    db.dispose_engines()  # no open connection may cross the fork

    rng = random.Random(20261122)
    acked: list[str] = []
    kills = 0
    started = time.monotonic()
    while kills < MAX_KILLS and time.monotonic() - started < BUDGET_S:
        acked += _run_and_kill(
            url, image_root, seed=kills, protocol_id=protocol_id, delay_s=rng.uniform(0.05, 1.2)
        )
        kills += 1

    con = sqlite3.connect(db_file)
    try:
        integrity = con.execute("PRAGMA integrity_check").fetchall()
    finally:
        con.close()
    store = ImageStore(image_root)
    temp_before = len(list(image_root.glob(f"??/{TEMP_PREFIX}*")))
    engine = db.make_engine(url)
    lost: list[str] = []
    with db.session_scope(engine) as session:
        for line in acked:
            kind, *ids = line.split()
            if kind == "visit":
                if (
                    session.get(Patient, int(ids[0])) is None
                    or session.get(Session, int(ids[1])) is None
                ):
                    lost.append(line)
            else:
                photo = session.get(Photo, int(ids[0]))
                if photo is None or photo.sha256 != ids[1] or not store.verify(ids[1]):
                    lost.append(line)
        photos = list(session.scalars(select(Photo)))
        bad_blobs = [p.id for p in photos if not store.verify(p.sha256)]
        chain = audit.verify_chain(session)
        referenced = {p.sha256 for p in photos}
    engine.dispose()
    orphans_before = len(store.names() - referenced)
    report = store.sweep(referenced)

    print(
        f"\ncrash durability: {kills} SIGKILLs in {time.monotonic() - started:.1f} s, "
        f"{len(acked)} acknowledged commits ({sum(a.startswith('photo') for a in acked)} photo, "
        f"{sum(a.startswith('visit') for a in acked)} visit), lost {len(lost)}; "
        f"{len(photos)} photo rows; swept {report.temp_files_removed} temp files "
        f"and {report.unreferenced_removed} unreferenced blobs"
    )
    assert kills >= 10
    assert len(acked) > kills  # the writer made progress between kills
    assert lost == []
    assert integrity == [("ok",)]
    assert bad_blobs == [] and chain == []
    assert report.temp_files_removed == temp_before
    assert report.unreferenced_removed == orphans_before
    assert store.names() == referenced
    assert list(image_root.glob(f"??/{TEMP_PREFIX}*")) == []
