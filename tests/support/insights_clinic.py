"""A small synthetic clinic for the Insights pages (AppTest and browser): two protocols, sixteen
patients, photos, lots (one recalled, one used past expiry) and consents. See
:func:`seed_insights_clinic`.
"""

from __future__ import annotations

import io
from datetime import date, timedelta

import numpy as np
from PIL import Image
from sqlalchemy import select

PATIENT_CODE_PREFIX = "CND-"


def _photo_bytes(seed: int) -> bytes:
    """A small synthetic PNG (a smooth gradient plus a seed-dependent disc); no real person."""
    rng = np.random.default_rng(seed)
    h, w = 96, 80
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 3) % 256, (yy * 2) % 256, np.full_like(xx, 120)], axis=-1)
    cy, cx = rng.integers(30, 60, size=2)
    img[(yy - cy) ** 2 + (xx - cx) ** 2 < 150] = (200, 160, 140)
    buf = io.BytesIO()
    Image.fromarray(img.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def seed_insights_clinic(*, n_patients: int = 16, seed: int = 7) -> None:
    """Write a small synthetic clinic into the database of the current ``CANDOR_*`` environment.

    Two facial protocols share the endpoint ``wrinkle_grade`` (lower is better, MCID 0.5); patients
    alternate between them. Sessions are four weeks apart; a few series drop out; one lot is
    recalled and one treatment used an expired lot (with an override reason). Every patient has
    clinical-record consent; all but every seventh also consented to consult display. Patient
    codes start with ``CND-`` so tests can check that none leaks onto consult pages.
    """
    from analysis.services import records
    from analysis.services import users as user_admin
    from analysis.store import db
    from analysis.store.access import SYSTEM, Actor
    from analysis.store.images import default_store
    from analysis.store.models import EndpointDefinition, ProductLot, Protocol, User

    db.upgrade()
    rng = np.random.default_rng(seed)
    store = default_store()
    with db.session_scope() as s:
        user_admin.seed_demo_accounts(s)
        nurse = user_admin.create_user(
            s,
            SYSTEM,
            email="injector@demo.candor",
            display_name="Nurse Injector",
            role="clinician",
            password=None,
        )
        clinician = s.scalars(select(User).where(User.email == "clinician@demo.candor")).one()
        operators = [nurse.id, clinician.id]
        me = Actor(user_id=clinician.id, email=clinician.email, role="clinician")
        s.add(
            EndpointDefinition(
                code="wrinkle_grade",
                name="Wrinkle grade",
                kind="ordinal",
                unit="grade",
                scale_min=0,
                scale_max=5,
                higher_is_better=False,
                mcid=0.5,
                noise_sd=0.2,
            )
        )
        s.add(
            EndpointDefinition(
                code="satisfaction",
                name="Satisfaction",
                kind="numeric",
                unit="points",
                scale_min=0,
                scale_max=10,
                higher_is_better=True,
                mcid=1.0,
                noise_sd=0.5,
                patient_reported=True,
            )
        )
        protocols = [
            Protocol(
                name="Skin booster x4",
                modality="skin_booster",
                target_area="face",
                planned_sessions=4,
                interval_days=28,
                required_views=["face_frontal"],
                endpoint_codes=["wrinkle_grade", "satisfaction"],
                primary_endpoint="wrinkle_grade",
            ),
            Protocol(
                name="Microneedling x5",
                modality="microneedling",
                target_area="face",
                planned_sessions=5,
                interval_days=28,
                required_views=["face_frontal"],
                endpoint_codes=["wrinkle_grade", "satisfaction"],
                primary_endpoint="wrinkle_grade",
            ),
        ]
        s.add_all(protocols)
        s.flush()
        recalled = ProductLot(
            product="HydraBoost 1 mL",
            lot_number="HB-RECALL-9",
            expiry_on=date(2030, 1, 1),
            recalled=True,
            recall_note="sterility deviation (synthetic)",
        )
        s.add(recalled)
        s.flush()
        for i in range(n_patients):
            protocol = protocols[i % 2]
            patient = records.create_patient(
                s,
                me,
                code=f"{PATIENT_CODE_PREFIX}{i + 1:04d}",
                birth_year=1965 + 2 * i,
                sex="female",
                fitzpatrick=1 + i % 6,
            )
            records.give_consent(s, me, patient_id=patient.id, scope="clinical_record")
            if i % 7 != 6:
                records.give_consent(s, me, patient_id=patient.id, scope="consult_display")
            start = date(2025, 1, 6) + timedelta(days=7 * i)
            series = records.create_series(
                s,
                me,
                patient_id=patient.id,
                protocol_id=protocol.id,
                started_on=start,
                goal="fine lines",
            )
            dropout = i in (5, 10)
            n_sessions = 2 if dropout else protocol.planned_sessions
            baseline = float(rng.integers(3, 5))
            slope = 0.25 + 0.15 * (i % 4) + (0.1 if protocol.planned_sessions == 5 else 0.0)
            for k in range(1, n_sessions + 1):
                visit = records.add_session(
                    s,
                    me,
                    series_id=series.id,
                    performed_on=start + timedelta(days=28 * (k - 1)),
                    operator_id=operators[(i + k) % 2],
                    number=k,
                )
                if i == 3 and k == 2:
                    records.record_treatment(
                        s,
                        me,
                        session_id=visit.id,
                        product="HydraBoost 1 mL",
                        lot_number="HB-RECALL-9",
                        expiry_on=date(2030, 1, 1),
                        volume_ml=1.0,
                    )
                elif i == 4 and k == 1:
                    records.record_treatment(
                        s,
                        me,
                        session_id=visit.id,
                        product="HydraBoost 1 mL",
                        lot_number="HB-OLD-1",
                        expiry_on=date(2024, 12, 31),
                        volume_ml=1.0,
                        override_reason="no other stock; patient informed",
                    )
                else:
                    records.record_treatment(
                        s,
                        me,
                        session_id=visit.id,
                        product="HydraBoost 1 mL",
                        lot_number="HB-2401",
                        expiry_on=date(2027, 6, 30),
                        volume_ml=1.0,
                    )
                grade = max(0.0, round(baseline - slope * (k - 1) + rng.normal(0, 0.2)))
                records.record_measurement(
                    s, me, session_id=visit.id, endpoint_code="wrinkle_grade", value=grade
                )
                records.record_measurement(
                    s,
                    me,
                    session_id=visit.id,
                    endpoint_code="satisfaction",
                    value=float(min(10, 5 + k + int(rng.integers(0, 2)))),
                    rated_by_patient=True,
                )
                records.record_reaction(
                    s,
                    me,
                    session_id=visit.id,
                    kind="expected",
                    term="erythema",
                    severity="mild",
                    duration_days=float(rng.integers(1, 3)),
                )
                if (i + k) % 4 == 0:
                    records.record_reaction(
                        s,
                        me,
                        session_id=visit.id,
                        kind="expected",
                        term="bruising",
                        severity="moderate",
                        duration_days=float(rng.integers(3, 7)),
                    )
                if i == 3 and k == 2:
                    records.record_reaction(
                        s,
                        me,
                        session_id=visit.id,
                        kind="adverse",
                        term="nodule",
                        severity="moderate",
                        duration_days=14.0,
                    )
                verdict = "baseline" if k == 1 else ("warn" if (i + k) % 5 == 0 else "pass")
                if i % 6 == 1 and k == 3:
                    continue  # a missed photo: photo compliance below 100% for someone
                data = _photo_bytes(1000 * i + k)
                records.store_photo(
                    s,
                    me,
                    store,
                    session_id=visit.id,
                    photo=records.PhotoInput(
                        data=data,
                        original_sha256="0" * 64,
                        media_type="image/png",
                        width_px=80,
                        height_px=96,
                        view="face_frontal",
                        verdict=verdict,
                        measurements={},
                        checks=[],
                        truth={"synthetic": True},
                    ),
                )
            if dropout:
                records.set_series_status(s, me, series_id=series.id, status="dropped_out")
            else:
                records.set_series_status(s, me, series_id=series.id, status="completed")
