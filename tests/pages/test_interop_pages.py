"""Interop downloads on the pages (AppTest on the small seeded clinic): Series review and Patient
record prepare an audited zip; Protocols offers the director the analyst tables of its filters."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from analysis.services import interop as service
from analysis.store import db
from analysis.store.access import Actor, PermissionDenied
from analysis.store.models import AuditEvent
from tests.conftest import PROJECT_ROOT
from ui.frame import ACTOR_KEY

APP = str(PROJECT_ROOT / "app.py")
DIRECTOR = Actor(user_id=None, email="director@demo.candor", role="medical_director")


def _events() -> list[AuditEvent]:
    with db.session_scope() as s:
        rows = list(
            s.scalars(
                select(AuditEvent)
                .where(AuditEvent.action == service.ACTION)
                .order_by(AuditEvent.id)
            )
        )
        s.expunge_all()
        return rows


def _open(path: str, actor: Actor, **state: object) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state[ACTOR_KEY] = actor
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    at.switch_page(path).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_series_review_prepares_an_audited_dicom_zip(seeded_clinic: dict[str, int]) -> None:
    clinician = Actor(
        user_id=seeded_clinic["clinician_user_id"], email="clinician@demo.candor", role="clinician"
    )
    at = _open(
        "views/series_review.py",
        clinician,
        candor_series_id=seeded_clinic["series_id"],
        review_tab="Report",
    )
    before = len(_events())
    assert not [b for b in at.get("download_button") if "export" in b.proto.label]
    next(b for b in at.button if b.label == "Prepare export").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    (event,) = _events()[before:]
    assert event.details["format"] == "dicom" and len(event.details["photos_included"]) == 3
    assert [b for b in at.get("download_button") if b.proto.label == "Download export (zip)"]


def test_patient_record_exports_the_patient_as_csv(seeded_clinic: dict[str, int]) -> None:
    clinician = Actor(
        user_id=seeded_clinic["clinician_user_id"], email="clinician@demo.candor", role="clinician"
    )
    at = _open("views/patient_record.py", clinician, candor_series_id=seeded_clinic["series_id"])
    next(s for s in at.selectbox if s.label == "Export format").set_value("csv")
    at.run()
    before = len(_events())
    next(b for b in at.button if b.label == "Prepare export").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    (event,) = _events()[before:]
    assert (event.details["format"], event.object_type) == ("csv", "patient")


def test_protocols_offers_the_director_the_analyst_tables(seeded_clinic: dict[str, int]) -> None:
    before = len(_events())
    at = _open("views/protocols.py", DIRECTOR)
    at.session_state["protocols.section"] = "Export"  # the downloads are in the Export tab
    at.run()
    assert not at.exception
    assert len(_events()) == before  # the zip is built (and audited) only when clicked
    labels = [b.proto.label for b in at.get("download_button")]
    # the seeded protocol has two series (P-0001's and P-0002's)
    assert any(label.startswith("Analyst tables of these 2 series") for label in labels), labels


def test_analyst_tables_zip_holds_the_filtered_series(seeded_clinic: dict[str, int]) -> None:
    before = len(_events())
    data = service.analyst_tables_download(
        DIRECTOR, series_ids=[seeded_clinic["series_id"]], filters={"protocol_ids": [1]}
    )
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = set(zf.namelist())
        rows = list(csv.DictReader(io.TextIOWrapper(zf.open("endpoint_values.csv"), "utf-8")))
        manifest = json.loads(zf.read("manifest.json"))
    assert {
        "endpoint_values.csv",
        "treatments.csv",
        "reactions.csv",
        "data_dictionary.csv",
        "endpoint_values.parquet",
        "manifest.json",
    } <= names
    assert [r["value"] for r in rows] == ["5", "4"]
    assert manifest["series"] == [seeded_clinic["series_id"]]
    (event,) = _events()[before:]
    assert event.details["filters"] == {"protocol_ids": [1]}


def test_analyst_tables_are_for_the_director_only(seeded_clinic: dict[str, int]) -> None:
    clinician = Actor(user_id=None, email="clinician@demo.candor", role="clinician")
    before = len(_events())
    with pytest.raises(PermissionDenied):
        service.analyst_tables_download(clinician, series_ids=[seeded_clinic["series_id"]])
    (event,) = _events()[before:]
    assert event.outcome == "denied"


def test_record_visit_imports_a_trichoscope_file_after_a_dry_run(candor_env: Path) -> None:
    from sqlalchemy import func

    from analysis.store.models import EndpointDefinition, EndpointMeasurement
    from analysis.store.models import Session as Visit
    from tests.support.clinician_clinic import seed_clinician_clinic

    ids = seed_clinician_clinic(candor_env)
    with db.session_scope() as s:
        s.add(
            EndpointDefinition(
                code="hair_density",
                name="Hair density",
                kind="numeric",
                unit="hairs/cm²",
                scale_min=0,
                scale_max=1000,
            )
        )
        day1 = s.get_one(Visit, ids["session1_id"]).performed_on

    def count() -> int:
        with db.session_scope() as s:
            return s.scalars(select(func.count()).select_from(EndpointMeasurement)).one()

    clinician = Actor(
        user_id=ids["clinician_user_id"], email="clinician@demo.candor", role="clinician"
    )
    at = _open("views/record_visit.py", clinician)
    before = count()
    bad = b"patient_code,date,area,density_per_cm2,colour\nP-0001,x,v,1,red\n"
    at.file_uploader[0].set_value(("bad.csv", bad, "text/csv"))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Nothing can be imported from bad.csv" in str(e.value) for e in at.error)
    assert not [b for b in at.button if b.label.startswith("Import these")]
    good = f"patient_code,date,area,density_per_cm2\nP-0001,{day1},vertex,151\n".encode()
    at.file_uploader[0].set_value(("good.csv", good, "text/csv"))
    at.run()
    assert count() == before  # the dry run wrote nothing
    next(b for b in at.button if b.label == "Import these 1 values").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert count() == before + 1
    assert any("Imported 1 values from 1 rows of good.csv" in str(e.value) for e in at.success)
