"""Shared test support (moved from test_photo_access.py)."""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from PIL import Image
from skimage import data as skdata
from sqlalchemy import Engine, func, select, text

from analysis.services import records
from analysis.store import db
from analysis.store.access import Actor
from analysis.store.images import ImageStore
from analysis.store.models import AuditEvent, Protocol

CLINICIAN = Actor(user_id=None, email="clin@test", role="clinician")


DIRECTOR = Actor(user_id=None, email="md@test", role="medical_director")


CONSULT = Actor(user_id=None, email="consult@test", role="consult_staff")


ADMIN = Actor(user_id=None, email="admin@test", role="admin")


YESTERDAY = datetime.now(UTC) - timedelta(days=1)


@functools.cache
def astronaut_jpeg() -> bytes:
    out = io.BytesIO()
    Image.fromarray(skdata.astronaut()).save(out, format="JPEG", quality=90)
    return out.getvalue()


@dataclass(frozen=True)
class Clinic:
    engine: Engine
    store: ImageStore
    patient_id: int
    series_id: int
    session_id: int
    photo_id: int
    photo: bytes


def make_clinic(
    url: str,
    image_root: Path | ImageStore,
    *,
    scopes: tuple[str, ...] = ("clinical_record",),
    code: str = "P-100",
) -> Clinic:
    """One patient (``code``) with consent for ``scopes``, a series, a session and one stored photo;
    ``image_root`` is a directory or an image store (e.g. on S3)."""
    engine = db.make_engine(url)
    store = image_root if isinstance(image_root, ImageStore) else ImageStore(image_root)
    photo = astronaut_jpeg()
    with db.session_scope(engine) as session:
        protocol = Protocol(
            name="Skin booster",
            modality="skin_booster",
            target_area="face",
            planned_sessions=3,
            interval_days=28,
            required_views=["face_frontal"],
            endpoint_codes=[],
        )
        session.add(protocol)
        session.flush()
        patient = records.create_patient(
            session, CLINICIAN, code=code, birth_year=1985, sex="female", fitzpatrick=3
        )
        for scope in dict.fromkeys(("clinical_record", *scopes)):
            records.give_consent(
                session, CLINICIAN, patient_id=patient.id, scope=scope, at=YESTERDAY
            )
        series = records.create_series(
            session,
            CLINICIAN,
            patient_id=patient.id,
            protocol_id=protocol.id,
            started_on=date(2026, 1, 5),
        )
        visit = records.add_session(
            session, CLINICIAN, series_id=series.id, performed_on=date(2026, 1, 5)
        )
        row = records.store_photo(
            session,
            CLINICIAN,
            store,
            session_id=visit.id,
            photo=records.PhotoInput(
                data=photo,
                original_sha256="0" * 64,
                media_type="image/jpeg",
                width_px=512,
                height_px=512,
                view="face_frontal",
                verdict="baseline",
                measurements={},
                checks=[],
            ),
        )
        ids = (patient.id, series.id, visit.id, row.id)
    if "clinical_record" not in scopes:
        with db.session_scope(engine) as session:
            records.withdraw_consent(session, CLINICIAN, patient_id=ids[0], scope="clinical_record")
    return Clinic(engine, store, *ids, photo)


def events(engine: Engine, action: str | None = None) -> list[AuditEvent]:
    with db.session_scope(engine) as session:
        query = select(AuditEvent).order_by(AuditEvent.id)
        if action is not None:
            query = query.where(AuditEvent.action == action)
        return list(session.scalars(query))


def count_events(engine: Engine) -> int:
    with db.session_scope(engine) as session:
        return int(session.scalar(select(func.count()).select_from(AuditEvent)))


def break_audit_inserts(engine: Engine) -> None:
    """Make every audit insert fail at the database (a full disk, a revoked grant...)."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(
                text(
                    "CREATE TRIGGER audit_broken BEFORE INSERT ON audit_events "
                    "BEGIN SELECT RAISE(ABORT, 'audit storage unavailable'); END"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE FUNCTION audit_broken() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'audit storage unavailable'; END $$"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER audit_broken BEFORE INSERT ON audit_events "
                    "FOR EACH ROW EXECUTE FUNCTION audit_broken()"
                )
            )
