"""Trichoscope hair-density CSV import: dry run, then all or nothing; hostile files refused with
the line and the reason. Also the ``export`` / ``import-hair-density`` commands end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from analysis.interop.device_import import MAX_BYTES, parse_hair_density
from analysis.services import interop as service
from analysis.store import db
from analysis.store.access import Actor, PermissionDenied
from analysis.store.models import AuditEvent, EndpointDefinition, EndpointMeasurement
from analysis.store.models import Session as Visit
from tests.conftest import PROJECT_ROOT
from tests.support.clinician_clinic import seed_clinician_clinic

CLINICIAN = Actor(user_id=None, email="clinician@demo.candor", role="clinician")
CONSULT = Actor(user_id=None, email="consult@demo.candor", role="consult_staff")


@pytest.fixture
def clinic(candor_env: Path) -> dict[str, object]:
    ids: dict[str, object] = dict(seed_clinician_clinic(candor_env))
    with db.session_scope() as s:
        s.add_all(
            [
                EndpointDefinition(
                    code="hair_density",
                    name="Hair density",
                    kind="numeric",
                    unit="hairs/cm²",
                    scale_min=0,
                    scale_max=1000,
                ),
                EndpointDefinition(
                    code="hair_terminal_pct",
                    name="Terminal hairs",
                    kind="numeric",
                    unit="%",
                    scale_min=0,
                    scale_max=100,
                ),
                EndpointDefinition(
                    code="hair_vellus_pct",
                    name="Vellus hairs",
                    kind="numeric",
                    unit="%",
                    scale_min=0,
                    scale_max=100,
                ),
            ]
        )
        ids["day1"] = s.get_one(Visit, ids["session1_id"]).performed_on
        ids["day2"] = s.get_one(Visit, ids["session2_id"]).performed_on
    ids["data_dir"] = candor_env
    return ids


def _count() -> int:
    with db.session_scope() as s:
        return s.scalars(select(func.count()).select_from(EndpointMeasurement)).one()


def _run(data: bytes, commit: bool, actor: Actor = CLINICIAN) -> service.ImportReport:
    with db.session_scope() as s:
        return service.import_hair_density(s, actor, data=data, commit=commit, filename="scan.csv")


def _good(ids: dict[str, object]) -> bytes:
    return (
        f"Patient ID;Date;Area;Hairs/cm²;Terminal %;Vellus %\n"
        f"P-0001;{ids['day1']};vertex;152,5;80;20\n"
        f"P-0001;{ids['day2']};vertex;160;82;18\n"
    ).encode()


def test_dry_run_writes_nothing_then_commit_writes_everything(clinic: dict[str, object]) -> None:
    before = _count()
    report = _run(_good(clinic), commit=False)
    assert (report.committed, report.rows, len(report.values)) == (False, 2, 6)
    assert _count() == before
    with db.session_scope() as s:
        assert (
            s.scalar(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.action == "interop.import")
            )
            == 0
        )
    report = _run(_good(clinic), commit=True)
    assert report.committed and _count() == before + 6
    with db.session_scope() as s:
        rows = s.execute(
            select(
                EndpointMeasurement.session_id,
                EndpointMeasurement.value_num,
                EndpointMeasurement.site,
            )
            .join(EndpointDefinition)
            .where(EndpointDefinition.code == "hair_density")
            .order_by(EndpointMeasurement.session_id)
        ).all()
        assert [tuple(r) for r in rows] == [
            (clinic["session1_id"], 152.5, "vertex"),
            (clinic["session2_id"], 160.0, "vertex"),
        ]
        (event,) = s.scalars(select(AuditEvent).where(AuditEvent.action == "interop.import"))
        assert event.details["values"] == 6 and event.details["patients"] == ["P-0001"]
    # the same file again is refused whole: nothing is doubled
    with pytest.raises(service.ImportRefused, match="already recorded"):
        _run(_good(clinic), commit=True)
    assert _count() == before + 6


def test_one_bad_row_imports_nothing_and_names_every_problem(clinic: dict[str, object]) -> None:
    before = _count()
    data = (
        f"patient_code,date,area,density_per_cm2\n"
        f"P-0001,{clinic['day1']},vertex,150\n"
        f"P-9999,{clinic['day1']},vertex,150\n"
        f"P-0001,2001-01-01,vertex,150\n"
        f"P-0001,{clinic['day2']},vertex,-3\n"
    ).encode()
    with pytest.raises(service.ImportRefused) as caught:
        _run(data, commit=True)
    lines = {(p.line, p.column) for p in caught.value.problems}
    assert lines == {(3, "patient_code"), (4, "date"), (5, "density_per_cm2")}
    assert "no patient with code P-9999" in str(caught.value)
    assert _count() == before


def test_endpoint_missing_from_the_library_is_named(clinic: dict[str, object]) -> None:
    data = (
        f"patient_code,date,area,density_per_cm2,mean_diameter_um\n"
        f"P-0001,{clinic['day1']},vertex,150,62\n"
    ).encode()
    with pytest.raises(service.ImportRefused, match="hair_mean_diameter_um is not in the clinic"):
        _run(data, commit=False)


def test_roles_without_visit_rights_cannot_import(clinic: dict[str, object]) -> None:
    with pytest.raises(PermissionDenied):
        _run(_good(clinic), commit=False, actor=CONSULT)


@pytest.mark.parametrize(
    ("data", "line", "reason"),
    [
        (b"", 1, "empty"),
        (
            b"patient_code,date,area,density_per_cm2,shoe_size\nP-1,2026-01-01,v,1,44\n",
            1,
            "unknown column",
        ),
        (b"patient_code,date,area\nP-1,2026-01-01,v\n", 1, "required column is missing"),
        (b"patient_code,date,area,density_per_cm2,density\n", 1, "appears twice"),
        (b"patient_code,date,area,density_per_cm2\n", 2, "no rows"),
        (b"patient_code,date,area,density_per_cm2\nP-1,2026-01-01,v\n", 2, "3 fields"),
        (b"patient_code,date,area,density_per_cm2\nP-1,01/02/2026,v,150\n", 2, "YYYY-MM-DD"),
        (b"patient_code,date,area,density_per_cm2\nP-1,2026-02-30,v,150\n", 2, "YYYY-MM-DD"),
        (b"patient_code,date,area,density_per_cm2\nP-1,2026-01-01,v,nan\n", 2, "not a number"),
        (b"patient_code,date,area,density_per_cm2\nP-1,2026-01-01,v,1e999\n", 2, "not a number"),
        (b"patient_code,date,area,density_per_cm2\nP-1,2026-01-01,v,1.5.2\n", 2, "not a number"),
        (b"patient_code,date,area,density_per_cm2\nP-1,2026-01-01,v,5000\n", 2, "outside"),
        (
            b"patient_code,date,area,density_per_cm2\n=cmd|' /C calc'!A0,2026-01-01,v,1\n",
            2,
            "not a patient code",
        ),
        (b"patient_code,date,area,density_per_cm2\nP-1,2026-01-01,,150\n", 2, "enter the area"),
        (
            b"patient_code,date,area,density_per_cm2\nP-1,2026-01-01,v,1\nP-1,2026-01-01,V,2\n",
            3,
            "same patient, date and area as line 2",
        ),
        (
            b"patient_code,date,area,density_per_cm2,terminal_pct,vellus_pct\n"
            b"P-1,2026-01-01,v,1,90,40\n",
            2,
            "over 100",
        ),
        (b'patient_code,date,area,density_per_cm2\nP-1,2026-01-01,"v,150\n', 2, "not valid CSV"),
        (b"patient_code,date,area,density_per_cm2\nP-1,2026-01-01,v\xff,1\n", 2, "not UTF-8"),
        (b"patient_code,date\x00,area\n", 0, "NUL"),
        (b"a" * (MAX_BYTES + 1), 0, "limit"),
    ],
)
def test_hostile_files_are_refused_with_line_and_reason(
    data: bytes, line: int, reason: str
) -> None:
    rows, problems = parse_hair_density(data)
    assert problems and problems[0].line == line, problems
    assert line not in {r.line for r in rows}
    assert any(reason in p.reason for p in problems), problems


def test_header_spellings_bom_and_delimiters() -> None:
    for data in (
        "\ufeffPatient,Exam Date,Site,Density\nP-1,2026-01-01,vertex,150.5\n".encode(),
        b"patient_id\texam_date\tregion\thairs/cm2\nP-1\t2026-01-01\tvertex\t150,5\n",
    ):
        rows, problems = parse_hair_density(data)
        assert problems == []
        assert [(r.patient_code, r.on, r.area, r.values) for r in rows] == [
            ("P-1", date(2026, 1, 1), "vertex", {"hair_density": 150.5})
        ]
    # a decimal comma in a comma-separated file would shift the columns: refused, not guessed
    rows, problems = parse_hair_density(b"patient,date,area,density\nP-1,2026-01-01,v,150,5\n")
    assert rows == [] and "5 fields" in problems[0].reason


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400) | st.text(max_size=300).map(str.encode))
def test_any_bytes_give_rows_or_problems_never_an_exception(data: bytes) -> None:
    rows, problems = parse_hair_density(
        b"patient_code,date,area,density_per_cm2\n" + data if data[:1] != b"p" else data
    )
    bad_lines = {p.line for p in problems}
    assert not bad_lines & {r.line for r in rows}
    for p in problems:
        assert p.line >= 0 and p.reason


# --- the commands ---------------------------------------------------------------------------------


def _cli(*args: str, env_dir: Path) -> subprocess.CompletedProcess[str]:
    import os

    env = {**os.environ, "CANDOR_DATA_DIR": str(env_dir)}
    env.pop("CANDOR_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "analysis", *args],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env=env,
        timeout=300,
    )


def test_commands_export_and_import(clinic: dict[str, object], tmp_path: Path) -> None:
    data_dir = clinic["data_dir"]
    assert isinstance(data_dir, Path)
    out = tmp_path / "exports" / "fhir"
    done = _cli(
        "export",
        "--series",
        str(clinic["series_id"]),
        "--format",
        "fhir",
        "--out",
        str(out),
        "--as",
        "director@demo.candor",
        env_dir=data_dir,
    )
    assert done.returncode == 0, done.stderr
    assert "1 file(s) written" in done.stdout
    assert json.loads((out / "manifest.json").read_text())["exported_by"] == "director@demo.candor"
    refused = _cli(
        "export",
        "--patient",
        "P-0001",
        "--format",
        "dicom",
        "--out",
        str(tmp_path / "exports" / "x"),
        "--as",
        "consult@demo.candor",
        env_dir=data_dir,
    )
    assert refused.returncode == 1 and "export refused" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "exports" / "x").exists()
    unknown = _cli(
        "export",
        "--series",
        "1",
        "--format",
        "csv",
        "--out",
        str(tmp_path / "y"),
        "--as",
        "nobody@example.org",
        env_dir=data_dir,
    )
    assert unknown.returncode == 1 and "no active Candor account" in unknown.stderr

    csv_file = tmp_path / "scan.csv"
    csv_file.write_bytes(_good(clinic))
    dry = _cli(
        "import-hair-density", str(csv_file), "--as", "clinician@demo.candor", env_dir=data_dir
    )
    assert dry.returncode == 0, dry.stderr
    assert "dry run" in dry.stdout and "hair_density=152.5 at vertex" in dry.stdout
    before = _count()
    assert before == _count()  # the dry run wrote nothing
    done = _cli(
        "import-hair-density",
        str(csv_file),
        "--as",
        "clinician@demo.candor",
        "--commit",
        env_dir=data_dir,
    )
    assert done.returncode == 0 and "imported: 6 value(s) from 2 row(s)" in done.stdout
    assert _count() == before + 6
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"patient_code,date,area,density_per_cm2,colour\nP-0001,x,v,1,red\n")
    failed = _cli(
        "import-hair-density",
        str(bad),
        "--as",
        "clinician@demo.candor",
        "--commit",
        env_dir=data_dir,
    )
    assert failed.returncode == 1 and "line 1, column colour: unknown column" in failed.stderr
    assert "Traceback" not in failed.stderr and _count() == before + 6


# --- PROM answers ---------------------------------------------------------------------------------


def _prom(ids: dict[str, object], extra: str = "") -> bytes:
    return (
        f"patient_code,date,satisfaction\nP-0001,{ids['day1']},7\nP-0001,{ids['day2']},8.5\n{extra}"
    ).encode()


def _prom_run(data: bytes, commit: bool, actor: Actor = CLINICIAN) -> service.ImportReport:
    with db.session_scope() as s:
        return service.import_prom(s, actor, data=data, commit=commit, filename="tablet.csv")


def test_prom_answers_import_as_patient_reported(clinic: dict[str, object]) -> None:
    before = _count()
    assert not _prom_run(_prom(clinic), commit=False).committed and _count() == before
    report = _prom_run(_prom(clinic), commit=True)
    assert [(v.session_id, v.endpoint_code, v.value) for v in report.values] == [
        (clinic["session1_id"], "satisfaction", 7.0),
        (clinic["session2_id"], "satisfaction", 8.5),
    ]
    with db.session_scope() as s:
        rows = s.execute(
            select(EndpointMeasurement.value_num, EndpointMeasurement.rated_by_patient)
            .join(EndpointDefinition)
            .where(EndpointDefinition.code == "satisfaction")
            .order_by(EndpointMeasurement.id)
        ).all()
    assert [tuple(r) for r in rows] == [(7.0, True), (8.5, True)]
    with pytest.raises(service.ImportRefused, match="already recorded"):
        _prom_run(_prom(clinic), commit=True)
    assert _count() == before + 2


@pytest.mark.parametrize(
    ("body", "line", "reason"),
    [
        # a clinician-rated endpoint is not a PROM: refused like an unknown column
        ("patient_code,date,photo_score_7\nP-0001,{day1},3\n", 1, "neither patient_code"),
        ("patient_code,date,shoe_size\nP-0001,{day1},3\n", 1, "neither patient_code"),
        ("patient_code,satisfaction\nP-0001,3\n", 1, "required column is missing"),
        ("patient_code,date,satisfaction\nP-0001,{day1},11\n", 2, "outside 0-10"),
        ("patient_code,date,satisfaction\nP-0001,{day1},lots\n", 2, "not a number"),
        ("patient_code,date,satisfaction\nP-0001,{day1},\n", 2, "no answer"),
        ("patient_code,date,satisfaction\nP-0001,1999-01-01,5\n", 2, "no session on 1999-01-01"),
        (
            "patient_code,date,satisfaction\nP-0001,{day1},5\nP-0001,{day1},6\n",
            3,
            "same patient and date",
        ),
    ],
)
def test_prom_files_with_problems_import_nothing(
    clinic: dict[str, object], body: str, line: int, reason: str
) -> None:
    before = _count()
    with pytest.raises(service.ImportRefused) as caught:
        _prom_run(body.format(day1=clinic["day1"]).encode(), commit=True)
    assert any(p.line == line and reason in p.reason for p in caught.value.problems), (
        caught.value.problems
    )
    assert _count() == before


def test_prom_import_command(clinic: dict[str, object], tmp_path: Path) -> None:
    data_dir = clinic["data_dir"]
    assert isinstance(data_dir, Path)
    path = tmp_path / "tablet.csv"
    path.write_bytes(_prom(clinic, extra=f"P-0001,{clinic['day2']},9\n"))
    failed = _cli(
        "import-prom", str(path), "--as", "clinician@demo.candor", "--commit", env_dir=data_dir
    )
    assert failed.returncode == 1 and "line 4: same patient and date as line 3" in failed.stderr
    path.write_bytes(_prom(clinic))
    done = _cli(
        "import-prom", str(path), "--as", "clinician@demo.candor", "--commit", env_dir=data_dir
    )
    assert done.returncode == 0 and "imported: 2 value(s) from 2 row(s)" in done.stdout


def test_import_all_or_nothing_on_sqlite_and_postgresql(
    db_url: str, candor_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CANDOR_DATABASE_URL", db_url)
    ids = seed_clinician_clinic(candor_env)
    try:
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
        before = _count()
        bad = (
            f"patient_code,date,area,density_per_cm2\nP-0001,{day1},vertex,150\n"
            f"P-0404,{day1},vertex,150\n"
        ).encode()
        with pytest.raises(service.ImportRefused, match="no patient with code P-0404"):
            _run(bad, commit=True)
        assert _count() == before
        good = f"patient_code,date,area,density_per_cm2\nP-0001,{day1},vertex,150\n".encode()
        assert _run(good, commit=True).committed and _count() == before + 1
    finally:
        db.dispose_engines()


def test_the_standard_library_defines_every_endpoint_a_trichoscope_file_fills() -> None:
    """A clinic that added the standard endpoint library imports a full trichoscope file: every
    column's endpoint is defined, numeric, with a scale inside the column's accepted range (the
    endpoint's scale is the narrower check applied on import)."""
    from analysis.demo.catalogue import ENDPOINTS_BY_CODE
    from analysis.interop.device_import import NUMERIC

    for column, (code, low, high) in NUMERIC.items():
        spec = ENDPOINTS_BY_CODE.get(code)
        assert spec is not None, f"{column} -> {code} is not in the standard library"
        assert spec.kind == "numeric"
        assert spec.scale_min is not None and spec.scale_max is not None, column
        assert low <= spec.scale_max and spec.scale_min <= high, column
