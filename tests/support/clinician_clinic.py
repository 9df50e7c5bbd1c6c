"""A small, deterministic clinic for the clinician-page tests (AppTest and browser).

Made only through the record services (``analysis.services.records``) plus the protocol and endpoint
rows (which have no service yet): one face protocol (frontal view required) with endpoints of every
kind, two patients (one without photo consent), a series with three sessions (session 2's photo
shifted, session 3's far too dark: not comparable, kept with a reason), a baseline photo made
from ``skimage.data.astronaut()`` (public-domain NASA photo bundled with scikit-image), a treatment,
measurements, a reaction and a confounder. The demo accounts are created too.
"""

from __future__ import annotations

import io
from datetime import date, timedelta
from pathlib import Path

import numpy as np

ASTRONAUT_NOTE = "skimage.data.astronaut() (NASA, public domain), JPEG quality 92"


def astronaut_jpeg(*, shift_px: int = 0, brightness: float = 1.0, size: int = 512) -> bytes:
    """The astronaut photo as JPEG bytes, optionally shifted right and brightened/darkened."""
    from PIL import Image
    from skimage import data

    rgb = data.astronaut().astype(np.float32) * brightness
    rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    if shift_px:
        rgb = np.roll(rgb, shift_px, axis=1)
    image = Image.fromarray(rgb)
    if size != rgb.shape[0]:
        image = image.resize((size, size))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=92)
    return out.getvalue()


def seed_clinician_clinic(data_dir: Path) -> dict[str, int]:
    """Create the clinic in ``data_dir`` (CANDOR_DATA_DIR must point there); returns key ids."""
    from analysis.services import capture, records
    from analysis.services import users as user_admin
    from analysis.store import db
    from analysis.store.access import Actor
    from analysis.store.models import EndpointDefinition, Protocol

    engine = db.get_engine()
    db.upgrade(engine)
    with db.session_scope() as s:
        users = user_admin.seed_demo_accounts(s)
        clinician = next(u for u in users if u.role == "clinician")
        actor = Actor(user_id=clinician.id, email=clinician.email, role="clinician")
        s.add_all(
            [
                EndpointDefinition(
                    code="gais_clinician",
                    name="GAIS (clinician)",
                    kind="ordinal",
                    scale_min=-3,
                    scale_max=3,
                    higher_is_better=True,
                    anchors={"-3": "Very much worse", "0": "No change", "3": "Very much improved"},
                ),
                EndpointDefinition(
                    code="photo_score_7",
                    name="Global photo score (7-point)",
                    kind="ordinal",
                    scale_min=1,
                    scale_max=7,
                    higher_is_better=False,
                    mcid=1.0,
                    noise_sd=0.4,
                    anchors={"1": "None", "4": "Moderate", "7": "Very severe"},
                ),
                EndpointDefinition(
                    code="satisfaction",
                    name="Satisfaction",
                    kind="numeric",
                    unit="0-10",
                    scale_min=0,
                    scale_max=10,
                    patient_reported=True,
                    noise_sd=0.8,
                ),
                EndpointDefinition(
                    code="hair_density_notes", name="Hair density notes", kind="text"
                ),
            ]
        )
        protocol = Protocol(
            name="Skin booster, face",
            modality="skin booster",
            target_area="face",
            planned_sessions=3,
            interval_days=28,
            required_views=["face_frontal"],
            endpoint_codes=[
                "photo_score_7",
                "gais_clinician",
                "satisfaction",
                "hair_density_notes",
            ],
            primary_endpoint="photo_score_7",
            tolerances={},
            expected_course={"photo_score_7": {"2": -0.5, "3": -1.0}},
        )
        s.add(protocol)
        s.flush()
        p1 = records.create_patient(
            s, actor, code="P-0001", birth_year=1980, sex="female", fitzpatrick=3
        )
        p2 = records.create_patient(
            s, actor, code="P-0002", birth_year=1975, sex="male", fitzpatrick=2
        )
        records.give_consent(s, actor, patient_id=p1.id, scope="clinical_record")
        start = date.today() - timedelta(days=40)
        series = records.create_series(
            s,
            actor,
            patient_id=p1.id,
            protocol_id=protocol.id,
            started_on=start,
            goal="skin quality",
        )
        series2 = records.create_series(
            s,
            actor,
            patient_id=p2.id,
            protocol_id=protocol.id,
            started_on=start,
            goal="no consent on file",
        )
        v1 = records.add_session(s, actor, series_id=series.id, performed_on=start, number=1)
        v2 = records.add_session(
            s, actor, series_id=series.id, number=2, performed_on=start + timedelta(days=28)
        )
        records.add_session(s, actor, series_id=series2.id, performed_on=start, number=1)
        records.record_treatment(
            s,
            actor,
            session_id=v1.id,
            product="Booster HA",
            lot_number="L1",
            expiry_on=start + timedelta(days=365),
            sites=["malar_left"],
            volume_ml=1.0,
        )
        for visit, score in ((v1, 5), (v2, 4)):
            records.record_measurement(
                s, actor, session_id=visit.id, endpoint_code="photo_score_7", value=score
            )
        records.record_reaction(
            s,
            actor,
            session_id=v1.id,
            kind="expected",
            term="erythema",
            severity="mild",
            onset_day=0,
            duration_days=1,
        )
        records.add_confounder(
            s, actor, series_id=series.id, kind="retinoid", started_on=start + timedelta(days=10)
        )
        baseline = capture.assess_upload(astronaut_jpeg(), view="face_frontal")
        photo1 = capture.save_capture(
            s, actor, session_id=v1.id, data=astronaut_jpeg(), assessment=baseline
        )
        follow = capture.assess_upload(
            astronaut_jpeg(shift_px=8),
            view="face_frontal",
            baseline=baseline.measurement,
            baseline_photo_id=photo1,
        )
        photo2 = capture.save_capture(
            s,
            actor,
            session_id=v2.id,
            data=astronaut_jpeg(shift_px=8),
            assessment=follow,
            override_reason="test photo",
        )
        v3 = records.add_session(
            s, actor, series_id=series.id, number=3, performed_on=start + timedelta(days=35)
        )
        dark = capture.assess_upload(
            astronaut_jpeg(brightness=0.3),
            view="face_frontal",
            baseline=baseline.measurement,
            baseline_photo_id=photo1,
        )
        assert dark.verdict == "fail", dark.guidance
        photo3 = capture.save_capture(
            s,
            actor,
            session_id=v3.id,
            data=astronaut_jpeg(brightness=0.3),
            assessment=dark,
            override_reason="flash did not fire",
        )
        return {
            "series_id": series.id,
            "session3_id": v3.id,
            "photo3_id": photo3,
            "series_no_consent_id": series2.id,
            "session1_id": v1.id,
            "session2_id": v2.id,
            "photo1_id": photo1,
            "photo2_id": photo2,
            "clinician_user_id": clinician.id,
            "protocol_id": protocol.id,
        }
