"""The clinic record on both databases: migrations, constraints, consent, expiry, audit, images."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session as DbSession

from analysis.services import records
from analysis.store import audit, db
from analysis.store.access import SYSTEM, Actor, PermissionDenied
from analysis.store.images import ImageStore
from analysis.store.models import AuditEvent, Base, Patient, Photo, Protocol, Series, Treatment
from analysis.store.models import Session as Visit
from tests.conftest import PROJECT_ROOT

CLINICIAN = Actor(user_id=None, email="clin@test", role="clinician")


def _protocol(session: DbSession) -> Protocol:
    protocol = Protocol(
        name="PRP scalp",
        modality="prp",
        target_area="scalp",
        planned_sessions=3,
        interval_days=28,
        required_views=["scalp_vertex"],
        endpoint_codes=[],
    )
    session.add(protocol)
    session.flush()
    return protocol


def _patient_with_session(
    session: DbSession,
    performed_on: date = date(2026, 3, 1),
) -> tuple[Patient, Series, Visit]:
    patient = records.create_patient(
        session, CLINICIAN, code="P-001", birth_year=1980, sex="female", fitzpatrick=3
    )
    series = records.create_series(
        session,
        CLINICIAN,
        patient_id=patient.id,
        protocol_id=_protocol(session).id,
        started_on=performed_on,
    )
    visit = records.add_session(session, CLINICIAN, series_id=series.id, performed_on=performed_on)
    return patient, series, visit


def test_migration_from_empty_creates_every_table(db_url: str) -> None:
    engine = db.make_engine(db_url)
    assert db.current_revision(engine) == db.head_revision() and db.head_revision() >= "0002"
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    assert db.is_empty(engine)
    engine.dispose()


def test_migration_0004_gives_the_demo_ratings_against_baseline_their_anchor(db_url: str) -> None:
    """A database seeded before ``endpoint_definitions.neutral`` existed reads GAIS like a new one."""
    from sqlalchemy import text

    engine = db.make_engine(db_url)  # migrated to head by the fixture: step back before 0004
    db.downgrade(engine, "0003")
    with engine.begin() as c:
        for code in ("gais_clinician", "hair_density"):
            c.execute(
                text(
                    "INSERT INTO endpoint_definitions (code, name, kind, higher_is_better, "
                    "patient_reported) VALUES (:c, :c, 'ordinal', false, false)"
                ),
                {"c": code},
            )
    db.upgrade(engine)
    with engine.connect() as c:
        got: dict[str, float | None] = dict(
            c.execute(text("SELECT code, neutral FROM endpoint_definitions")).all()
        )
    engine.dispose()
    assert got == {"gais_clinician": 4.0, "hair_density": None}


def test_migrations_build_exactly_the_schema_the_models_declare(db_url: str) -> None:
    """Alembic's own comparison of the migrated database with the models finds no difference
    (tables, columns, indexes): an index declared in one and not the other fails here."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = db.make_engine(db_url)
    with engine.connect() as c:
        diff = compare_metadata(MigrationContext.configure(c), Base.metadata)
    engine.dispose()
    assert diff == []


def _indexes(engine: object, table: str) -> set[str]:
    return {ix["name"] for ix in inspect(engine).get_indexes(table)}


def test_migration_0005_covering_indexes_up_and_down(db_url: str) -> None:
    engine = db.make_engine(db_url)
    new = {
        "photos": "ix_photos_session_verdict_view",
        "endpoint_measurements": "ix_endpoint_measurements_session_endpoint_value",
    }
    old = {
        "photos": "ix_photos_session_id",
        "endpoint_measurements": "ix_endpoint_measurements_session_id",
    }
    for table in new:
        assert new[table] in _indexes(engine, table) and old[table] not in _indexes(engine, table)
    db.downgrade(engine, "0004")
    for table in new:
        assert old[table] in _indexes(engine, table) and new[table] not in _indexes(engine, table)
    db.upgrade(engine)
    assert db.current_revision(engine) == db.head_revision()
    for table in new:
        assert new[table] in _indexes(engine, table)
    engine.dispose()


def test_sqlite_answers_the_photo_figures_from_the_covering_index(tmp_path: Path) -> None:
    """The loader's per-session photo aggregate never reads the wide photo rows."""
    from sqlalchemy.dialects import sqlite

    from analysis.services.frames import photo_sets_statement

    engine = db.make_engine(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    db.upgrade(engine)
    sql = str(
        photo_sets_statement().compile(
            dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}
        )
    )
    with engine.connect() as c:
        plan = " ".join(str(r[-1]) for r in c.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
    engine.dispose()
    assert "COVERING INDEX ix_photos_session_verdict_view" in plan, plan


def test_sqlite_runs_wal_with_full_sync_and_foreign_keys(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    engine.dispose()


def test_foreign_keys_are_enforced(db_url: str) -> None:
    engine = db.make_engine(db_url)
    with pytest.raises(IntegrityError):
        with db.session_scope(engine) as session:
            session.add(Series(patient_id=999, protocol_id=999, started_on=date(2026, 1, 1)))
    engine.dispose()


def test_utc_datetimes_round_trip(db_url: str) -> None:
    engine = db.make_engine(db_url)
    when = datetime(2026, 5, 4, 3, 2, 1, 123456, tzinfo=timezone(timedelta(hours=2)))
    with db.session_scope(engine) as session:
        patient = records.create_patient(
            session, CLINICIAN, code="P-9", birth_year=1990, sex="male", fitzpatrick=2
        )
        records.give_consent(session, CLINICIAN, patient_id=patient.id, scope="teaching", at=when)
    with db.session_scope(engine) as session:
        scopes_before = records.consent_scopes(session, patient.id, at=when - timedelta(seconds=1))
        scopes_at = records.consent_scopes(session, patient.id, at=when)
    assert scopes_before == set() and scopes_at == {"teaching"}
    engine.dispose()


def test_consent_withdrawal_takes_effect_on_the_next_query(db_url: str) -> None:
    engine = db.make_engine(db_url)
    with db.session_scope(engine) as session:
        patient = records.create_patient(
            session, CLINICIAN, code="P-2", birth_year=1975, sex="female", fitzpatrick=4
        )
        for scope in ("clinical_record", "consult_display"):
            records.give_consent(
                session,
                CLINICIAN,
                patient_id=patient.id,
                scope=scope,
                at=datetime.now(UTC) - timedelta(days=1),
            )
    with db.session_scope(engine) as session:
        assert records.consent_scopes(session, patient.id) == {"clinical_record", "consult_display"}
        assert (
            records.withdraw_consent(
                session, CLINICIAN, patient_id=patient.id, scope="consult_display"
            )
            == 1
        )
    with db.session_scope(engine) as session:
        assert records.consent_scopes(session, patient.id) == {"clinical_record"}
        actions = session.scalars(select(AuditEvent.action)).all()
    assert actions.count("consent.withdraw") == 1
    engine.dispose()


def test_expired_lot_is_rejected_unless_a_reason_is_given(db_url: str) -> None:
    engine = db.make_engine(db_url)
    with db.session_scope(engine) as session:
        _, _, visit = _patient_with_session(session, performed_on=date(2026, 3, 1))
        visit_id = visit.id
    with db.session_scope(engine) as session:
        with pytest.raises(records.ExpiredLotError) as err:
            records.record_treatment(
                session,
                CLINICIAN,
                session_id=visit_id,
                product="PRP kit",
                lot_number="L-OLD",
                expiry_on=date(2026, 2, 28),
                volume_ml=4.0,
            )
        assert err.value.field == "expiry_on" and "expired on 2026-02-28" in str(err.value)
    with db.session_scope(engine) as session:
        row = records.record_treatment(
            session,
            CLINICIAN,
            session_id=visit_id,
            product="PRP kit",
            lot_number="L-OLD",
            expiry_on=date(2026, 2, 28),
            volume_ml=4.0,
            override_reason="only kit in stock, MD ok",
        )
        ok = records.record_treatment(
            session,
            CLINICIAN,
            session_id=visit_id,
            product="PRP kit",
            lot_number="L-NEW",
            expiry_on=date(2027, 1, 1),
            volume_ml=4.0,
        )
        assert row.expired_at_use and not ok.expired_at_use
    with db.session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(Treatment)) == 2
    engine.dispose()


def test_validation_names_the_field_and_writes_nothing(db_url: str) -> None:
    engine = db.make_engine(db_url)
    with db.session_scope(engine) as session:
        _, series, visit = _patient_with_session(session)
        visit_id = visit.id
    cases: list[tuple[dict[str, Any], str]] = [
        (dict(product="", lot_number="A", expiry_on=date(2030, 1, 1), volume_ml=1.0), "product"),
        (
            dict(product="X", lot_number=" ", expiry_on=date(2030, 1, 1), volume_ml=1.0),
            "lot_number",
        ),
        (dict(product="X", lot_number="A", expiry_on=date(2030, 1, 1)), "volume_ml"),
        (
            dict(product="X", lot_number="A", expiry_on=date(2030, 1, 1), volume_ml=-1.0),
            "volume_ml",
        ),
    ]
    for kwargs, field in cases:
        with pytest.raises(records.FieldError) as err:
            with db.session_scope(engine) as session:
                records.record_treatment(session, CLINICIAN, session_id=visit_id, **kwargs)
        assert err.value.field == field
    with db.session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(Treatment)) == 0
    engine.dispose()


def test_red_flag_reaction_escalates_and_needs_a_note(db_url: str) -> None:
    engine = db.make_engine(db_url)
    with db.session_scope(engine) as session:
        _, _, visit = _patient_with_session(session)
        with pytest.raises(records.FieldError) as err:
            records.record_reaction(
                session,
                CLINICIAN,
                session_id=visit.id,
                kind="expected",
                term="blanching",
                severity="mild",
            )
        assert err.value.field == "escalation"
        row = records.record_reaction(
            session,
            CLINICIAN,
            session_id=visit.id,
            kind="expected",
            term="Blanching",
            severity="mild",
            escalation="hyaluronidase given, MD informed",
        )
        assert row.kind == "adverse" and row.red_flag
    engine.dispose()


def test_roles_are_enforced_in_the_service_functions(db_url: str) -> None:
    engine = db.make_engine(db_url)
    consult = Actor(user_id=None, email="c@test", role="consult_staff")
    with db.session_scope(engine) as session:
        with pytest.raises(PermissionDenied):
            records.create_patient(
                session, consult, code="X", birth_year=1980, sex="male", fitzpatrick=2
            )
    engine.dispose()


def test_audit_events_are_append_only_and_chained(db_url: str) -> None:
    engine = db.make_engine(db_url)
    with db.session_scope(engine) as session:
        for i in range(3):
            audit.record(session, SYSTEM, "test.event", object_id=i)
    with db.session_scope(engine) as session:
        assert audit.verify_chain(session) == []
    for statement in ("UPDATE audit_events SET action = 'x'", "DELETE FROM audit_events"):
        with pytest.raises(DBAPIError, match="append-only"):
            with engine.begin() as conn:
                conn.execute(text(statement))
    with db.session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == 3
    engine.dispose()


def test_chain_verifier_detects_edit_and_deletion(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.sqlite3'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    with db.session_scope(engine) as session:
        for i in range(4):
            audit.record(session, SYSTEM, "test.event", object_id=i)
    with engine.begin() as conn:  # an attacker with file access drops the triggers first
        conn.execute(text("DROP TRIGGER audit_events_no_update"))
        conn.execute(text("DROP TRIGGER audit_events_no_delete"))
        conn.execute(text("UPDATE audit_events SET object_id = '99' WHERE id = 2"))
        conn.execute(text("DELETE FROM audit_events WHERE id = 4"))
        conn.execute(text("DELETE FROM audit_events WHERE id = 3"))
    with db.session_scope(engine) as session:
        problems = audit.verify_chain(session)
    assert [p.event_id for p in problems] == [2]
    with db.session_scope(engine) as session:
        audit.record(session, SYSTEM, "test.event", object_id=5)  # chains onto event 2's hash
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE id = 1"))
    with db.session_scope(engine) as session:
        problems = audit.verify_chain(session)
    assert any("missing" in p.problem for p in problems)
    engine.dispose()


def test_image_store_is_content_addressed_and_verifies(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "img")
    name = store.put(b"abc")
    assert name == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert store.put(b"abc") == name and store.get(name) == b"abc"
    store.path_for(name).write_bytes(b"abd")
    assert not store.verify(name)
    with pytest.raises(ValueError):
        store.path_for("../../etc/passwd")


def test_failed_write_leaves_no_blob(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = ImageStore(tmp_path / "img")

    def broken_fsync(_fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        store.put(b"photo bytes")
    monkeypatch.undo()
    assert store.names() == set()
    assert (
        list((tmp_path / "img").rglob("*.tmp*")) == []
        and list((tmp_path / "img").rglob(".tmp-*")) == []
    )


def test_crash_between_blob_and_row_leaves_no_dangling_row(tmp_path: Path) -> None:
    """A writer killed after the blob is written and before the commit: no row, swept blob."""
    url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    with db.session_scope(engine) as session:
        patient, _, visit = _patient_with_session(session)
        records.give_consent(
            session,
            CLINICIAN,
            patient_id=patient.id,
            scope="clinical_record",
            at=datetime.now(UTC) - timedelta(hours=1),
        )
        visit_id = visit.id
    engine.dispose()
    child = textwrap.dedent(f"""
        import os
        from analysis.store import db
        from analysis.services import records
        from analysis.store.access import Actor
        from analysis.store.images import ImageStore
        engine = db.make_engine({url!r})
        store = ImageStore({str(tmp_path / "img")!r})
        actor = Actor(user_id=None, email="clin@test", role="clinician")
        with db.session_scope(engine) as session:
            records.store_photo(session, actor, store, session_id={visit_id},
                photo=records.PhotoInput(data=b"jpeg-bytes", original_sha256="0"*64,
                    media_type="image/jpeg", width_px=10, height_px=10, view="scalp_vertex",
                    verdict="baseline", measurements={{}}, checks=[]))
            os._exit(9)  # killed before commit
    """)
    result = subprocess.run([sys.executable, "-c", child], cwd=PROJECT_ROOT, timeout=60)
    assert result.returncode == 9
    store = ImageStore(tmp_path / "img")
    assert len(store.names()) == 1  # the blob was written first...
    engine = db.make_engine(url)
    with db.session_scope(engine) as session:
        referenced = set(session.scalars(select(Photo.sha256)))
        assert referenced == set()  # ...and no row points anywhere
    report = store.sweep(referenced)
    assert report.unreferenced_removed == 1 and store.names() == set()
    engine.dispose()


def test_photo_needs_clinical_consent_and_a_reason_when_failing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.sqlite3'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    store = ImageStore(tmp_path / "img")
    photo = records.PhotoInput(
        data=b"x",
        original_sha256="0" * 64,
        media_type="image/jpeg",
        width_px=1,
        height_px=1,
        view="face_frontal",
        verdict="fail",
        measurements={},
        checks=[],
    )
    with db.session_scope(engine) as session:
        patient, _, visit = _patient_with_session(session)
        with pytest.raises(records.FieldError) as err:
            records.store_photo(session, CLINICIAN, store, session_id=visit.id, photo=photo)
        assert err.value.field == "consent"
        records.give_consent(
            session,
            CLINICIAN,
            patient_id=patient.id,
            scope="clinical_record",
            at=datetime.now(UTC) - timedelta(minutes=1),
        )
        with pytest.raises(records.FieldError) as err:
            records.store_photo(session, CLINICIAN, store, session_id=visit.id, photo=photo)
        assert err.value.field == "override_reason"
    assert store.names() == set()  # nothing written for a refused photo
    engine.dispose()


def test_sessions_added_in_one_transaction_are_numbered_in_order(db_url: str) -> None:
    engine = db.make_engine(db_url)
    with db.session_scope(engine) as session:
        _, series, first = _patient_with_session(session, performed_on=date(2026, 1, 5))
        second = records.add_session(
            session, CLINICIAN, series_id=series.id, performed_on=date(2026, 1, 19)
        )
        third = records.add_session(
            session, CLINICIAN, series_id=series.id, performed_on=date(2026, 2, 2)
        )
        assert (first.number, second.number, third.number) == (1, 2, 3)
        with pytest.raises(records.FieldError) as err:
            records.add_session(
                session, CLINICIAN, series_id=series.id, performed_on=date(2026, 1, 1)
            )
        assert err.value.field == "performed_on"
    engine.dispose()
