"""Interop exports (DICOM, FHIR, CSV) of the small clinic of ``tests/support/clinician_clinic.py``.

DICOM files are checked by Debian's ``dciodvfy`` (dicom3tools; installed by scripts/system-deps.sh
as chromium and postgresql are): zero errors. Outside CI the validator tests skip, saying why,
when it is missing; under CI=true they fail. Pixels are read back with pydicom and ``dcmdump``.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from analysis.errors import FieldError
from analysis.interop.dicom import PhotoMeta, embedded_jpeg, photo_to_dicom
from analysis.interop.fhir import unresolved_references
from analysis.interop.tables import COLUMNS
from analysis.services import interop as service
from analysis.services import records
from analysis.store import db
from analysis.store.access import Actor, PermissionDenied
from analysis.store.images import default_store
from analysis.store.models import AuditEvent, Photo
from tests.conftest import system_tool
from tests.support.clinician_clinic import astronaut_jpeg, seed_clinician_clinic

CLINICIAN = Actor(user_id=None, email="clinician@demo.candor", role="clinician")
DIRECTOR = Actor(user_id=None, email="director@demo.candor", role="medical_director")
CONSULT = Actor(user_id=None, email="consult@demo.candor", role="consult_staff")
ADMIN = Actor(user_id=None, email="admin@demo.candor", role="admin")


def dciodvfy_errors(path: Path) -> list[str]:
    out = subprocess.run(
        [system_tool("dciodvfy", "dicom3tools"), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Error")]


def _export(
    ids: dict[str, int], tmp_path: Path, fmt: str, actor: Actor = CLINICIAN, **kw: Any
) -> service.ExportResult:
    with db.session_scope() as s:
        return service.export_series(
            s, actor, series_id=ids["series_id"], fmt=fmt, out_dir=tmp_path / f"out-{fmt}", **kw
        )


def _events(action: str = service.ACTION) -> list[AuditEvent]:
    with db.session_scope() as s:
        rows = s.scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        ).all()
        s.expunge_all()
        return list(rows)


@pytest.fixture
def fresh_clinic(candor_env: Path) -> dict[str, int]:
    """A clinic of its own (these tests change consent and add records)."""
    return seed_clinician_clinic(candor_env)


# --- DICOM ----------------------------------------------------------------------------------------


def test_every_dicom_file_passes_dciodvfy(seeded_clinic: dict[str, int], tmp_path: Path) -> None:
    result = _export(seeded_clinic, tmp_path, "dicom")
    files = [result.out_dir / f for f in result.files]
    assert len(files) == 3 and all(f.suffix == ".dcm" for f in files)
    for f in files:
        assert dciodvfy_errors(f) == [], f
    # the check is live: the same file without its Modality is an error for dciodvfy
    from pydicom import dcmread

    broken = dcmread(files[0])
    del broken.Modality
    broken.save_as(tmp_path / "broken.dcm", enforce_file_format=True)
    assert dciodvfy_errors(tmp_path / "broken.dcm")


def test_dicom_pixels_round_trip_and_dcmdump_reads_them(
    seeded_clinic: dict[str, int], tmp_path: Path
) -> None:
    from pydicom import dcmread

    result = _export(seeded_clinic, tmp_path, "dicom")
    with db.session_scope() as s:
        photo = s.get_one(Photo, seeded_clinic["photo1_id"])
        stored = default_store().get(photo.sha256)
    path = (
        result.out_dir / f"series-{seeded_clinic['series_id']}/session-1/"
        f"photo-{seeded_clinic['photo1_id']}.dcm"
    )
    ds = dcmread(path)
    pixels = ds.pixel_array  # decoded by pydicom, YBR_FULL_422 converted to RGB
    frame = np.asarray(Image.open(io.BytesIO(embedded_jpeg(path.read_bytes()))).convert("RGB"))
    original = np.asarray(Image.open(io.BytesIO(stored)).convert("RGB"))
    assert pixels.shape == original.shape == (ds.Rows, ds.Columns, 3)
    assert np.abs(pixels.astype(int) - frame.astype(int)).max() <= 2
    # JPEG baseline re-encode at quality 95: close to the stored photo, pixel for pixel
    assert np.abs(pixels.astype(float) - original.astype(float)).mean() < 3.0
    dump = subprocess.run(
        [system_tool("dcmdump", "dcmtk"), "+P", "0028,0004", "+P", "0002,0010", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert dump.returncode == 0, dump.stderr
    assert "YBR_FULL_422" in dump.stdout and "JPEGBaseline" in dump.stdout


def test_dicom_attributes_say_who_what_where(seeded_clinic: dict[str, int], tmp_path: Path) -> None:
    from pydicom import dcmread

    result = _export(seeded_clinic, tmp_path, "dicom")
    sets = [dcmread(result.out_dir / f) for f in result.files]
    assert {d.SOPClassUID for d in sets} == {"1.2.840.10008.5.1.4.1.1.77.1.4"}
    assert {d.Modality for d in sets} == {"XC"}
    assert {str(d.PatientName) for d in sets} == {"P-0001"} == {d.PatientID for d in sets}
    assert len({d.StudyInstanceUID for d in sets}) == 1  # one study per series
    assert len({d.SeriesInstanceUID for d in sets}) == 3  # one series per session
    assert sorted(int(d.SeriesNumber) for d in sets) == [1, 2, 3]
    assert {d.PhotometricInterpretation for d in sets} == {"YBR_FULL_422"}
    assert {d.file_meta.TransferSyntaxUID for d in sets} == {"1.2.840.10008.1.2.4.50"}
    region = sets[0].AnatomicRegionSequence[0]
    assert (region.CodeValue, region.CodingSchemeDesignator) == ("89545001", "SCT")
    assert list(sets[0].PatientOrientation) == ["L", "F"]
    assert "Booster HA" in sets[0].StudyDescription and "L1" not in sets[0].StudyDescription
    assert sets[0].PatientBirthDate == ""
    # a re-export gives the same UIDs (a PACS merges instead of duplicating)
    again = _export(seeded_clinic, tmp_path / "again", "dicom")
    assert [dcmread(again.out_dir / f).SOPInstanceUID for f in again.files] == [
        d.SOPInstanceUID for d in sets
    ]


def test_no_exif_is_carried_into_dicom(tmp_path: Path) -> None:
    from datetime import date

    image = Image.open(io.BytesIO(astronaut_jpeg()))
    exif = Image.Exif()
    exif[0x010F] = "SecretCameraMaker"  # Make
    exif[0x8298] = "Patient Name Copyright"  # Copyright
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif.tobytes())
    assert b"SecretCameraMaker" in out.getvalue()
    meta = PhotoMeta(
        photo_id=9,
        patient_code="P-9",
        sex="male",
        series_id=1,
        session_id=1,
        session_number=1,
        series_started_on=date(2026, 1, 1),
        view="scalp_vertex",
        taken_at=None,
        performed_on=date(2026, 1, 1),
        study_description="x",
        series_description="y",
        instance_number=1,
    )
    data = photo_to_dicom(out.getvalue(), meta)
    assert b"SecretCameraMaker" not in data and b"Exif" not in data
    assert b"Patient Name Copyright" not in data
    (tmp_path / "scalp.dcm").write_bytes(data)
    assert dciodvfy_errors(tmp_path / "scalp.dcm") == []


def test_photo_to_dicom_refuses_bytes_that_are_not_an_image() -> None:
    from datetime import date

    meta = PhotoMeta(
        photo_id=1,
        patient_code="P",
        sex="female",
        series_id=1,
        session_id=1,
        session_number=1,
        series_started_on=date(2026, 1, 1),
        view="face_frontal",
        taken_at=None,
        performed_on=date(2026, 1, 1),
        study_description="",
        series_description="",
        instance_number=1,
    )
    with pytest.raises(ValueError, match="could not be decoded"):
        photo_to_dicom(b"not a jpeg at all", meta)
    with pytest.raises(ValueError, match="no DICOM coding for view"):
        photo_to_dicom(astronaut_jpeg(), PhotoMeta(**{**meta.__dict__, "view": "elbow"}))


# --- FHIR -----------------------------------------------------------------------------------------


def _bundle(result: service.ExportResult) -> dict[str, Any]:
    (name,) = result.files
    bundle: dict[str, Any] = json.loads((result.out_dir / name).read_text())
    return bundle


def _of(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def test_fhir_bundle_validates_and_its_references_resolve(
    seeded_clinic: dict[str, int], tmp_path: Path
) -> None:
    from fhir.resources.R4B.bundle import Bundle

    bundle = _bundle(_export(seeded_clinic, tmp_path, "fhir"))
    parsed = Bundle.model_validate(bundle)  # the R4B models accept it
    assert parsed.type == "collection"
    assert unresolved_references(bundle) == []
    (patient,) = _of(bundle, "Patient")
    assert patient["birthDate"] == "1980" and patient["identifier"][0]["value"] == "P-0001"
    assert "name" not in patient
    assert len(_of(bundle, "Procedure")) == 3  # one per session
    medication = _of(bundle, "Medication")[0]
    assert medication["batch"]["lotNumber"] == "L1"
    observations = _of(bundle, "Observation")
    values = [o for o in observations if o["code"]["coding"][0]["code"] == "photo_score_7"]
    assert sorted(o["valueInteger"] for o in values) == [4, 5]
    verdicts = [o for o in observations if o["code"]["coding"][0]["code"] == "photo-comparability"]
    assert len(verdicts) == 3 and {o["status"] for o in verdicts} == {"preliminary"}
    assert sorted(o["valueCodeableConcept"]["coding"][0]["code"] for o in verdicts) == [
        "baseline",
        "fail",
        "pass",
    ]
    assert len(_of(bundle, "Media")) == 3
    # the expected reaction is an Observation, not an AdverseEvent
    assert _of(bundle, "AdverseEvent") == []
    assert any(o["code"]["coding"][0]["code"] == "expected-reaction" for o in observations)
    # every Candor code used is defined in a CodeSystem shipped in the bundle
    defined = {(cs["url"], c["code"]) for cs in _of(bundle, "CodeSystem") for c in cs["concept"]}
    used = {
        (c["system"], c["code"])
        for o in observations
        for c in o["code"]["coding"] + o.get("valueCodeableConcept", {}).get("coding", [])
        if c["system"].startswith("https://candor.invalid/")
    }
    assert used and used <= defined


def test_fhir_adverse_event_withdrawn_consent_and_units(
    fresh_clinic: dict[str, int], tmp_path: Path
) -> None:
    from fhir.resources.R4B.bundle import Bundle

    with db.session_scope() as s:
        records.record_reaction(
            s,
            CLINICIAN,
            session_id=fresh_clinic["session2_id"],
            kind="adverse",
            term="nodule",
            severity="moderate",
            onset_day=3,
            resolved=False,
        )
        from analysis.store.models import EndpointDefinition

        s.add(
            EndpointDefinition(
                code="hair_density", name="Hair density", kind="numeric", unit="hairs/cm²"
            )
        )
        s.flush()
        records.record_measurement(
            s,
            CLINICIAN,
            session_id=fresh_clinic["session1_id"],
            endpoint_code="hair_density",
            value=152.5,
            blinded=True,
        )
        patient_id = s.get_one(Photo, fresh_clinic["photo1_id"]).session.series.patient_id
        records.give_consent(s, CLINICIAN, patient_id=patient_id, scope="teaching")
        records.withdraw_consent(s, CLINICIAN, patient_id=patient_id, scope="teaching")
    bundle = _bundle(_export(fresh_clinic, tmp_path, "fhir"))
    Bundle.model_validate(bundle)
    assert unresolved_references(bundle) == []
    (event,) = _of(bundle, "AdverseEvent")
    assert event["event"]["text"] == "nodule"
    assert event["outcome"]["coding"][0]["code"] == "ongoing"
    assert event["suspectEntity"][0]["instance"]["reference"] in {
        e["fullUrl"] for e in bundle["entry"]
    }
    (density,) = [
        o for o in _of(bundle, "Observation") if o["code"]["coding"][0]["code"] == "hair_density"
    ]
    assert density["valueQuantity"] == {
        "value": 152.5,
        "unit": "hairs/cm²",
        "system": "http://unitsofmeasure.org",
        "code": "/cm2",
    }
    assert density["extension"][0]["valueBoolean"] is True
    consents = _of(bundle, "Consent")
    teaching = [c for c in consents if c["provision"]["purpose"][0]["code"] == "teaching"]
    assert len(consents) == 2 and len(teaching) == 1
    assert teaching[0]["status"] == "inactive" and "end" in teaching[0]["provision"]["period"]


# --- CSV ------------------------------------------------------------------------------------------


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_csv_tables_and_their_dictionary(seeded_clinic: dict[str, int], tmp_path: Path) -> None:
    result = _export(seeded_clinic, tmp_path, "csv")
    assert set(result.files) == {
        "endpoint_values.csv",
        "treatments.csv",
        "reactions.csv",
        "data_dictionary.csv",
        "endpoint_values.parquet",
        "treatments.parquet",
        "reactions.parquet",
    }
    values = _read_csv(result.out_dir / "endpoint_values.csv")
    assert [
        (r["session_number"], r["days_since_baseline"], r["value"], r["photo_verdict"])
        for r in values
    ] == [("1", "0", "5", "baseline"), ("2", "28", "4", "pass")]
    assert {r["patient_code"] for r in values} == {"P-0001"}
    (treatment,) = _read_csv(result.out_dir / "treatments.csv")
    assert (treatment["product"], treatment["lot_number"], treatment["volume_ml"]) == (
        "Booster HA",
        "L1",
        "1",
    )
    (reaction,) = _read_csv(result.out_dir / "reactions.csv")
    assert (reaction["kind"], reaction["term"], reaction["red_flag"]) == (
        "expected",
        "erythema",
        "false",
    )
    dictionary = _read_csv(result.out_dir / "data_dictionary.csv")
    for table in COLUMNS:
        with open(result.out_dir / f"{table}.csv", encoding="utf-8") as fh:
            header = next(csv.reader(fh))
        assert header == [d["column"] for d in dictionary if d["table"] == table]
    assert all(d["description"] for d in dictionary)
    # the Parquet tables hold the same rows, typed as the dictionary says
    import pyarrow.parquet as pq

    table = pq.read_table(result.out_dir / "endpoint_values.parquet")
    assert table.column_names == [c[0] for c in COLUMNS["endpoint_values"]]
    assert table.column("value").to_pylist() == [5.0, 4.0]
    assert table.column("days_since_baseline").to_pylist() == [0, 28]
    assert str(table.schema.field("session_date").type) == "date32[day]"
    assert table.column("blinded").to_pylist() == [False, False]


# --- refusals, consent, audit ---------------------------------------------------------------------


@pytest.mark.parametrize("actor", [CONSULT, ADMIN], ids=["consult_staff", "admin"])
@pytest.mark.parametrize("fmt", service.FORMATS)
def test_roles_without_export_rights_are_refused_and_audited(
    seeded_clinic: dict[str, int], tmp_path: Path, actor: Actor, fmt: str
) -> None:
    before = len(_events())
    root = tmp_path / "exports"
    root.mkdir()
    with pytest.raises(PermissionDenied), db.session_scope() as s:
        service.export_series(
            s, actor, series_id=seeded_clinic["series_id"], fmt=fmt, out_dir=root / "out"
        )
    assert list(root.iterdir()) == []  # no export, no temporary folder left behind
    events = _events()[before:]
    assert [(e.outcome, e.actor_role) for e in events] == [("denied", actor.role)]


def test_withdrawn_consent_leaves_photos_out_and_the_manifest_says_so(
    fresh_clinic: dict[str, int], tmp_path: Path
) -> None:
    with db.session_scope() as s:
        patient_id = s.get_one(Photo, fresh_clinic["photo1_id"]).session.series.patient_id
        records.withdraw_consent(s, CLINICIAN, patient_id=patient_id, scope="clinical_record")
    photos = {fresh_clinic[k] for k in ("photo1_id", "photo2_id", "photo3_id")}
    dicom = _export(fresh_clinic, tmp_path, "dicom")
    assert dicom.files == [] and list(dicom.out_dir.rglob("*.dcm")) == []
    manifest = json.loads(dicom.manifest_path.read_text())
    assert {p["photo_id"] for p in manifest["photos_left_out"]} == photos
    assert {p["reason"] for p in manifest["photos_left_out"]} == {
        "no active clinical_record consent"
    }
    bundle = _bundle(_export(fresh_clinic, tmp_path, "fhir"))
    assert _of(bundle, "Media") == [] and len(_of(bundle, "Procedure")) == 3
    values = _read_csv(_export(fresh_clinic, tmp_path, "csv").out_dir / "endpoint_values.csv")
    assert {r["photo_verdict"] for r in values} == {""} and len(values) == 2
    (event, *_) = [e for e in _events() if e.details["format"] == "dicom"]
    assert event.outcome == "success" and event.patient_id == patient_id
    assert set(event.details["photos_left_out"]) == photos
    assert event.details["photos_included"] == []


def test_teaching_purpose_needs_teaching_consent(
    seeded_clinic: dict[str, int], tmp_path: Path
) -> None:
    result = _export(seeded_clinic, tmp_path, "dicom", purpose="teaching")
    assert result.files == [] and len(result.photos_left_out) == 3
    assert {p["reason"] for p in result.photos_left_out} == {"no active teaching consent"}


def test_export_is_audited_with_what_went_out(
    seeded_clinic: dict[str, int], tmp_path: Path
) -> None:
    before = len(_events())
    result = _export(seeded_clinic, tmp_path, "dicom", actor=DIRECTOR)
    (event,) = _events()[before:]
    assert (event.outcome, event.actor_role, event.object_id) == (
        "success",
        "medical_director",
        str(seeded_clinic["series_id"]),
    )
    assert event.details["format"] == "dicom"
    assert sorted(event.details["photos_included"]) == sorted(result.photos_included)
    manifest = json.loads(result.manifest_path.read_text())
    import hashlib

    for item in manifest["files"]:
        assert (
            hashlib.sha256((result.out_dir / item["path"]).read_bytes()).hexdigest()
            == item["sha256"]
        )


def test_patient_export_is_one_bundle_over_every_series(
    fresh_clinic: dict[str, int], tmp_path: Path
) -> None:
    from datetime import date

    from analysis.store.models import Series

    with db.session_scope() as s:
        first = s.get_one(Series, fresh_clinic["series_id"])
        second = records.create_series(
            s,
            CLINICIAN,
            patient_id=first.patient_id,
            protocol_id=fresh_clinic["protocol_id"],
            started_on=date.today(),
            goal="second course",
        )
        records.add_session(s, CLINICIAN, series_id=second.id, performed_on=date.today(), number=1)
        second_id = second.id
    with db.session_scope() as s:
        result = service.export_patient(
            s, CLINICIAN, patient_code="P-0001", fmt="fhir", out_dir=tmp_path / "p1"
        )
    assert result.files == ["bundle-patient-P-0001.json"]
    bundle = _bundle(result)
    assert unresolved_references(bundle) == []
    assert len(_of(bundle, "Patient")) == 1 and len(_of(bundle, "Procedure")) == 4
    assert bundle["identifier"]["value"] == "P-0001"
    manifest = json.loads(result.manifest_path.read_text())
    assert manifest["series"] == [fresh_clinic["series_id"], second_id]


def test_bad_requests_get_clear_errors_and_write_nothing(
    seeded_clinic: dict[str, int], tmp_path: Path
) -> None:
    tmp_path = tmp_path / "exports"
    (tmp_path / "busy").mkdir(parents=True)
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    cases: list[tuple[dict[str, Any], str]] = [
        (
            dict(series_id=seeded_clinic["series_id"], fmt="dicom", out_dir=tmp_path / "busy"),
            "not an empty folder",
        ),
        (dict(series_id=999_999, fmt="dicom", out_dir=tmp_path / "a"), "no series with id"),
        (
            dict(series_id=seeded_clinic["series_id"], fmt="hl7v2", out_dir=tmp_path / "b"),
            "unknown format",
        ),
    ]
    for kwargs, message in cases:
        with pytest.raises(FieldError, match=message), db.session_scope() as s:
            service.export_series(s, CLINICIAN, **kwargs)
    with pytest.raises(FieldError, match="no patient with code"), db.session_scope() as s:
        service.export_patient(s, CLINICIAN, patient_code="NOPE", fmt="csv", out_dir=tmp_path / "c")
    assert (tmp_path / "busy" / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]


# --- both databases -------------------------------------------------------------------------------


def test_exports_and_refusals_on_sqlite_and_postgresql(
    db_url: str, candor_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from fhir.resources.R4B.bundle import Bundle

    monkeypatch.setenv("CANDOR_DATABASE_URL", db_url)
    ids = seed_clinician_clinic(candor_env)
    try:
        dicom = _export(ids, tmp_path, "dicom")
        assert len(dicom.files) == 3
        bundle = _bundle(_export(ids, tmp_path, "fhir"))
        Bundle.model_validate(bundle)
        assert unresolved_references(bundle) == []
        with pytest.raises(PermissionDenied), db.session_scope() as s:
            service.export_series(
                s, CONSULT, series_id=ids["series_id"], fmt="csv", out_dir=tmp_path / "refused"
            )
        outcomes = [(e.outcome, e.details["format"]) for e in _events()]
        assert outcomes == [("success", "dicom"), ("success", "fhir"), ("denied", "csv")]
    finally:
        db.dispose_engines()


def test_a_corrupt_stored_photo_fails_the_export_whole_and_is_audited(
    fresh_clinic: dict[str, int], tmp_path: Path
) -> None:
    from analysis.store.images import BlobCorruptError

    with db.session_scope() as s:
        sha = s.get_one(Photo, fresh_clinic["photo2_id"]).sha256
    path = default_store().path_for(sha)
    path.write_bytes(path.read_bytes()[:-100] + b"x" * 100)
    root = tmp_path / "exports"
    root.mkdir()
    with pytest.raises(BlobCorruptError), db.session_scope() as s:
        service.export_series(
            s, CLINICIAN, series_id=fresh_clinic["series_id"], fmt="dicom", out_dir=root / "out"
        )
    assert list(root.iterdir()) == []  # not one file of the three, no temporary folder
    assert [e.outcome for e in _events()] == ["success", "failure"]
    assert "hash mismatch" in _events()[-1].details["reason"]
