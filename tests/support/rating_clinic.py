"""A small clinic for the blinded-rating tests (services, AppTest, browser).

Made through the record services: the demo accounts plus two more clinicians (raters), one face
protocol with a rating made against baseline (``gais_test``: 1-5, 3 = no change, lower is better)
and a stand-alone severity scale (``severity_test``: 0-4, lower is better), and ``n_series``
consenting patients whose series have sessions 1, 2 and 3 with a frontal photo each (made from
``skimage.data.astronaut()``, public domain, shifted per patient). Two series are built to be left
out with known reasons: one patient without photo consent and one whose session 3 photo failed the
comparability gate. Verdicts are given directly (no photo engine run), which is enough for the
study's gate rule.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import TypedDict

from analysis.services import records
from analysis.services import users as user_admin
from analysis.store import db
from analysis.store.access import SYSTEM, Actor
from analysis.store.images import ImageStore
from analysis.store.models import EndpointDefinition, Protocol
from tests.support.clinician_clinic import astronaut_jpeg

START = date(2026, 3, 2)
#: clinic-recorded values per series index: (gais at session 3, severity at 1, severity at 3)
RECORDED = [(1, 3, 1), (2, 3, 2), (3, 2, 2), (2, 4, 2), (1, 3, 0), (4, 2, 3)]


class RatingClinic(TypedDict):
    """What :func:`seed_rating_clinic` made: ids and emails the tests sign in and look up with."""

    series: list[int]
    patients: list[str]
    protocol_id: int
    clinician_id: int
    director_id: int
    rater_ids: list[int]
    rater_emails: list[str]
    clinician_email: str
    director_email: str
    no_consent_series: int
    failing_series: int


def seed_rating_clinic(url: str, image_root: Path, *, n_series: int = 6) -> RatingClinic:
    engine = db.make_engine(url)
    db.upgrade(engine)
    store = ImageStore(image_root)
    series_ids: list[int] = []
    patient_codes: list[str] = []
    with db.session_scope(engine) as s:
        users = user_admin.seed_demo_accounts(s)
        clinician = next(u for u in users if u.role == "clinician")
        director = next(u for u in users if u.role == "medical_director")
        extra = [
            user_admin.create_user(
                s,
                SYSTEM,
                email=f"rater{i}@test.candor",
                display_name=f"Rater {i}",
                role="clinician",
                password=None,
            )
            for i in (2, 3)
        ]
        actor = Actor(user_id=clinician.id, email=clinician.email, role="clinician")
        s.add_all(
            [
                EndpointDefinition(
                    code="gais_test",
                    name="GAIS (test)",
                    kind="ordinal",
                    scale_min=1,
                    scale_max=5,
                    higher_is_better=False,
                    neutral=3.0,
                    mcid=1.0,
                    anchors={
                        "1": "much improved",
                        "2": "improved",
                        "3": "no change",
                        "4": "worse",
                        "5": "much worse",
                    },
                ),
                EndpointDefinition(
                    code="severity_test",
                    name="Severity (test)",
                    kind="ordinal",
                    scale_min=0,
                    scale_max=4,
                    higher_is_better=False,
                    mcid=1.0,
                    anchors={"0": "none", "2": "moderate", "4": "severe"},
                ),
            ]
        )
        protocol = Protocol(
            name="Booster test",
            modality="skin booster",
            target_area="face",
            planned_sessions=3,
            interval_days=28,
            required_views=["face_frontal"],
            endpoint_codes=["gais_test", "severity_test"],
            primary_endpoint="severity_test",
        )
        s.add(protocol)
        s.flush()
        for i in range(n_series + 2):
            code = f"RT-{i:03d}"
            patient = records.create_patient(
                s, actor, code=code, birth_year=1980 + i, sex="female", fitzpatrick=2
            )
            no_consent = i == n_series  # left out: no photo consent
            failing = i == n_series + 1  # left out: follow-up photo failed the gate
            records.give_consent(s, actor, patient_id=patient.id, scope="clinical_record", at=None)
            series = records.create_series(
                s, actor, patient_id=patient.id, protocol_id=protocol.id, started_on=START
            )
            for number in (1, 2, 3):
                visit = records.add_session(
                    s,
                    actor,
                    series_id=series.id,
                    number=number,
                    performed_on=START + timedelta(days=28 * (number - 1)),
                )
                verdict = (
                    "baseline" if number == 1 else ("fail" if failing and number == 3 else "pass")
                )
                data = astronaut_jpeg(shift_px=4 * i + number, size=160)
                records.store_photo(
                    s,
                    actor,
                    store,
                    session_id=visit.id,
                    photo=records.PhotoInput(
                        data=data,
                        original_sha256=f"{i:02d}{number:02d}".ljust(64, "0"),
                        media_type="image/jpeg",
                        width_px=160,
                        height_px=160,
                        view="face_frontal",
                        verdict=verdict,
                        measurements={},
                        checks=[],
                        override_reason="test photo" if verdict == "fail" else "",
                    ),
                )
                gais, sev1, sev3 = RECORDED[i % len(RECORDED)]
                if number == 1:
                    records.record_measurement(
                        s, actor, session_id=visit.id, endpoint_code="severity_test", value=sev1
                    )
                if number == 3:
                    records.record_measurement(
                        s, actor, session_id=visit.id, endpoint_code="severity_test", value=sev3
                    )
                    records.record_measurement(
                        s, actor, session_id=visit.id, endpoint_code="gais_test", value=gais
                    )
            if no_consent:
                records.withdraw_consent(s, actor, patient_id=patient.id, scope="clinical_record")
            series_ids.append(series.id)
            patient_codes.append(code)
        out = RatingClinic(
            series=series_ids,
            patients=patient_codes,
            protocol_id=protocol.id,
            clinician_id=clinician.id,
            director_id=director.id,
            rater_ids=[clinician.id, *(u.id for u in extra)],
            rater_emails=[clinician.email, *(u.email for u in extra)],
            clinician_email=clinician.email,
            director_email=director.email,
            no_consent_series=series_ids[n_series],
            failing_series=series_ids[n_series + 1],
        )
    engine.dispose()
    return out
