"""Audited, role- and consent-checked exports: the only way interop files leave Candor.

:func:`export_series` / :func:`export_patient` write one format (``dicom``, ``fhir`` or ``csv``)
into a directory, with a ``manifest.json`` that lists every file written and every photo left out
and why. In order they

1. check the role: exports of a patient's record need ``report.export`` (clinicians, the medical
   director); a refusal is audited (outcome ``denied``) and committed before it is raised;
2. read the record (:func:`load_series`) and check, per photo, the patient's consent for the
   export's purpose *as of now* (:data:`analysis.services.photo_access.PURPOSES`): photos outside
   the scope are left out (no DICOM file, no FHIR Media, no photo rows) and the manifest names them;
3. write one ``interop.export`` audit event with the format, the series, the photos included and
   left out, and commit it; only then are the files written (into a fresh temporary folder that
   is renamed into place, so a failure leaves no half export).

If the audit event cannot be written nothing is exported.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from analysis.errors import FieldError
from analysis.interop import snapshot as snap
from analysis.services.photo_access import PURPOSES, check_consent
from analysis.store import audit
from analysis.store.access import Actor, PermissionDenied, allowed
from analysis.store.images import ImageStore, default_store
from analysis.store.models import AuditEvent, Consent, Patient, Series, User

FORMATS = ("dicom", "fhir", "csv")
ACTION = "interop.export"


@dataclass
class ExportResult:
    """What was written (paths relative to ``out_dir``) and what was left out."""

    out_dir: Path
    format: str
    files: list[str] = field(default_factory=list)
    photos_included: list[int] = field(default_factory=list)
    photos_left_out: list[dict[str, Any]] = field(default_factory=list)

    @property
    def manifest_path(self) -> Path:
        return self.out_dir / "manifest.json"


# --- reading the record -------------------------------------------------------------------------


def _names(session: DbSession) -> dict[int, str]:
    return {int(i): str(n) for i, n in session.execute(select(User.id, User.display_name))}


def _patient_info(session: DbSession, patient: Patient) -> snap.PatientInfo:
    consents = session.scalars(
        select(Consent)
        .where(Consent.patient_id == patient.id)
        .order_by(Consent.given_at, Consent.id)
    ).all()
    return snap.PatientInfo(
        patient_id=patient.id,
        code=patient.code,
        birth_year=patient.birth_year,
        sex=patient.sex,
        fitzpatrick=patient.fitzpatrick,
        consents=tuple(
            snap.ConsentInfo(c.id, c.scope, c.given_at, c.withdrawn_at) for c in consents
        ),
    )


def _eager() -> list[Any]:
    """Load a series' record in a fixed number of queries (no lazy load per session)."""
    from sqlalchemy.orm import selectinload

    from analysis.store.models import EndpointMeasurement, Treatment
    from analysis.store.models import Session as Visit

    visits = selectinload(Series.sessions)
    return [
        selectinload(Series.protocol),
        selectinload(Series.patient),
        visits.selectinload(Visit.treatments).selectinload(Treatment.lot),
        visits.selectinload(Visit.measurements).selectinload(EndpointMeasurement.endpoint),
        visits.selectinload(Visit.reactions),
        visits.selectinload(Visit.photos),
    ]


def load_series(
    session: DbSession, series: Series, *, names: dict[int, str] | None = None
) -> snap.SeriesInfo:
    """A frozen copy of the series (every photo; consent filtering is the caller's job).
    ``names``: user id -> display name, when the caller has them already."""
    names = names if names is not None else _names(session)

    def name(uid: int | None) -> str:
        return names.get(uid, "") if uid is not None else ""

    sessions = []
    for v in sorted(series.sessions, key=lambda v: v.number):
        sessions.append(
            snap.SessionInfo(
                session_id=v.id,
                number=v.number,
                performed_on=v.performed_on,
                operator=name(v.operator_id),
                treatments=tuple(
                    snap.TreatmentInfo(
                        t.id,
                        t.lot.product,
                        t.lot.lot_number,
                        t.lot.expiry_on,
                        tuple(t.sites or ()),
                        t.volume_ml,
                        t.units,
                        t.depth_intent,
                        t.expired_at_use,
                        name(t.operator_id) or name(v.operator_id),
                    )
                    for t in sorted(v.treatments, key=lambda t: t.id)
                ),
                measurements=tuple(
                    snap.MeasurementInfo(
                        m.id,
                        m.endpoint.code,
                        m.endpoint.name,
                        m.endpoint.kind,
                        m.endpoint.unit,
                        m.value_num,
                        m.value_text,
                        m.site,
                        "patient" if m.rated_by_patient else name(m.rater_id),
                        m.rated_by_patient,
                        m.blinded,
                        m.measured_at,
                    )
                    for m in sorted(v.measurements, key=lambda m: m.id)
                ),
                reactions=tuple(
                    snap.ReactionInfo(
                        r.id,
                        r.kind,
                        r.term,
                        r.onset_day,
                        r.severity,
                        r.duration_days,
                        r.resolved,
                        r.red_flag,
                    )
                    for r in sorted(v.reactions, key=lambda r: r.id)
                ),
                photos=tuple(
                    snap.PhotoInfo(
                        p.id,
                        p.view,
                        p.sha256,
                        p.media_type,
                        p.width_px,
                        p.height_px,
                        p.taken_at,
                        p.verdict,
                        p.override_reason,
                    )
                    for p in sorted(v.photos, key=lambda p: p.id)
                ),
            )
        )
    return snap.SeriesInfo(
        series_id=series.id,
        protocol_name=series.protocol.name,
        modality=series.protocol.modality,
        target_area=series.protocol.target_area,
        status=series.status,
        started_on=series.started_on,
        patient=_patient_info(session, series.patient),
        sessions=tuple(sessions),
    )


def _without_photos(info: snap.SeriesInfo, keep: set[int]) -> snap.SeriesInfo:
    from dataclasses import replace

    return replace(
        info,
        sessions=tuple(
            replace(v, photos=tuple(p for p in v.photos if p.photo_id in keep))
            for v in info.sessions
        ),
    )


# --- the checks ---------------------------------------------------------------------------------


def _refuse(session: DbSession, actor: Actor, error: Exception, **where: Any) -> Exception:
    if isinstance(error, PermissionDenied):
        audit.record_denial(session, actor, ACTION, error, **where)
    else:
        audit.record(
            session,
            actor,
            ACTION,
            outcome="failure",
            details={**where.pop("details", {}), "reason": str(error)},
            **where,
        )
        session.commit()
    return error


def _series_for(
    session: DbSession,
    actor: Actor,
    *,
    series_id: int | None,
    patient_code: str | None,
    fmt: str,
    purpose: str,
) -> tuple[list[Series], int]:
    base = {"format": fmt, "purpose": purpose, "series_id": series_id, "patient_code": patient_code}
    if fmt not in FORMATS:
        raise FieldError("format", f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if purpose not in PURPOSES:
        raise FieldError(
            "purpose", f"unknown purpose {purpose!r}; expected one of {', '.join(PURPOSES)}"
        )
    if (series_id is None) == (patient_code is None):
        raise FieldError("series", "name either one series or one patient")
    if not allowed(actor, "report.export"):
        raise _refuse(
            session,
            actor,
            PermissionDenied(
                f"{actor.role.replace('_', ' ')} accounts may not export patient records"
            ),
            object_type="series" if series_id else "patient",
            object_id=series_id or patient_code or "",
            details=base,
        )
    if series_id is not None:
        found = session.get(Series, series_id)
        if found is None:
            raise _refuse(
                session,
                actor,
                FieldError("series", f"no series with id {series_id}"),
                object_type="series",
                object_id=series_id,
                details=base,
            )
        return [found], found.patient_id
    patient = session.scalar(select(Patient).where(Patient.code == patient_code))
    if patient is None:
        raise _refuse(
            session,
            actor,
            FieldError("patient", f"no patient with code {patient_code!r}"),
            object_type="patient",
            object_id=str(patient_code),
            details=base,
        )
    return sorted(patient.series, key=lambda s: (s.started_on, s.id)), patient.id


# --- the entry points ---------------------------------------------------------------------------


def export_series(
    session: DbSession,
    actor: Actor,
    *,
    series_id: int,
    fmt: str,
    out_dir: Path,
    purpose: str = "clinical_record",
    store: ImageStore | None = None,
) -> ExportResult:
    """Export one series; see the module docstring. Commits the caller's transaction."""
    return _export(
        session,
        actor,
        series_id=series_id,
        patient_code=None,
        fmt=fmt,
        out_dir=out_dir,
        purpose=purpose,
        store=store,
    )


def export_patient(
    session: DbSession,
    actor: Actor,
    *,
    patient_code: str,
    fmt: str,
    out_dir: Path,
    purpose: str = "clinical_record",
    store: ImageStore | None = None,
) -> ExportResult:
    """Export every series of one patient; see the module docstring."""
    return _export(
        session,
        actor,
        series_id=None,
        patient_code=patient_code,
        fmt=fmt,
        out_dir=out_dir,
        purpose=purpose,
        store=store,
    )


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FieldError("out", f"{out_dir} exists and is not an empty folder; choose a new one")


def _export(
    session: DbSession,
    actor: Actor,
    *,
    series_id: int | None,
    patient_code: str | None,
    fmt: str,
    out_dir: Path,
    purpose: str,
    store: ImageStore | None,
) -> ExportResult:
    out_dir = Path(out_dir)
    _check_out_dir(out_dir)
    found, patient_id = _series_for(
        session, actor, series_id=series_id, patient_code=patient_code, fmt=fmt, purpose=purpose
    )
    scope = PURPOSES[purpose][1]
    infos: list[snap.SeriesInfo] = []
    included: list[int] = []
    left_out: list[dict[str, Any]] = []
    for series in found:
        info = load_series(session, series)
        photo_ok = allowed(actor, PURPOSES[purpose][0])
        consent_ok = check_consent(session, patient_id=series.patient_id, scope=scope)
        keep: set[int] = set()
        for v in info.sessions:
            for p in v.photos:
                if not photo_ok:
                    left_out.append(
                        {
                            "photo_id": p.photo_id,
                            "reason": f"{actor.role} accounts may not view photos for {purpose}",
                        }
                    )
                elif not consent_ok:
                    left_out.append(
                        {"photo_id": p.photo_id, "reason": f"no active {scope} consent"}
                    )
                else:
                    keep.add(p.photo_id)
                    included.append(p.photo_id)
        infos.append(_without_photos(info, keep))
    details = {
        "format": fmt,
        "purpose": purpose,
        "series": [s.series_id for s in infos],
        "photos_included": included,
        "photos_left_out": [d["photo_id"] for d in left_out],
    }
    audit.record(
        session,
        actor,
        ACTION,
        patient_id=patient_id,
        object_type="series" if series_id is not None else "patient",
        object_id=series_id if series_id is not None else str(patient_code),
        details=details,
    )
    salt = clinic_salt(session)
    session.commit()  # durable before any file leaves

    result = ExportResult(
        out_dir=out_dir, format=fmt, photos_included=included, photos_left_out=left_out
    )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".candor-export-", dir=out_dir.parent))
    try:
        files = _write(
            fmt, infos, tmp, store or default_store(), salt, per_patient=series_id is None
        )
        result.files = sorted(files)
        manifest = {
            "format": fmt,
            "purpose": purpose,
            "consent_scope": scope,
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "exported_by": actor.email,
            "series": [s.series_id for s in infos],
            "patient_code": infos[0].patient.code if infos else None,
            "files": [{"path": f, "sha256": _sha256(tmp / f)} for f in result.files],
            "photos_included": included,
            "photos_left_out": left_out,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if out_dir.exists():
            out_dir.rmdir()  # empty, checked above
        os.replace(tmp, out_dir)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, (OSError, ValueError)):  # a missing/corrupt image, a full disk
            audit.record(
                session,
                actor,
                ACTION,
                outcome="failure",
                patient_id=patient_id,
                object_type="series" if series_id is not None else "patient",
                object_id=series_id if series_id is not None else str(patient_code),
                details={**details, "reason": str(exc)},
            )
            session.commit()
        raise
    return result


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write(
    fmt: str,
    infos: Iterable[snap.SeriesInfo],
    root: Path,
    store: ImageStore,
    salt: str,
    *,
    per_patient: bool,
) -> list[str]:
    infos = list(infos)
    if fmt == "dicom":
        return _write_dicom(infos, root, store, salt)
    if fmt == "fhir":
        from analysis.interop.fhir import patient_bundle, series_bundle

        if not infos:
            return []
        if per_patient:
            code = re.sub(r"[^A-Za-z0-9._-]", "_", infos[0].patient.code)
            name, bundle = f"bundle-patient-{code}.json", patient_bundle(infos)
        else:
            (info,) = infos
            name, bundle = f"bundle-series-{info.series_id}.json", series_bundle(info)
        (root / name).write_text(json.dumps(bundle, indent=1) + "\n")
        return [name]
    from analysis.interop.tables import write_tables

    return write_tables(infos, root)


def clinic_salt(session: DbSession) -> str:
    """Stable and unique per clinic database: the hash of its first audit event."""
    first = session.scalar(select(AuditEvent.hash).order_by(AuditEvent.id).limit(1))
    return first or "candor"


def _write_dicom(
    infos: list[snap.SeriesInfo], root: Path, store: ImageStore, salt: str
) -> list[str]:
    from analysis.interop.dicom import PhotoMeta, photo_to_dicom

    files = []
    for info in infos:
        for v in info.sessions:
            for number, p in enumerate(v.photos, start=1):
                meta = PhotoMeta(
                    photo_id=p.photo_id,
                    patient_code=info.patient.code,
                    sex=info.patient.sex,
                    series_id=info.series_id,
                    session_id=v.session_id,
                    session_number=v.number,
                    series_started_on=info.started_on,
                    view=p.view,
                    taken_at=p.taken_at,
                    performed_on=v.performed_on,
                    study_description=info.treatment_context,
                    series_description=f"Session {v.number}, {v.performed_on.isoformat()}",
                    instance_number=number,
                    clinic_uid_salt=salt,
                )
                data = photo_to_dicom(store.get(p.sha256, verify=True), meta)
                rel = f"series-{info.series_id}/session-{v.number}/photo-{p.photo_id}.dcm"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                (root / rel).write_bytes(data)
                files.append(rel)
    return files


def manifest_dict(result: ExportResult) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads(result.manifest_path.read_text())
    return manifest


# --- imports ------------------------------------------------------------------------------------


class ImportRefused(ValueError):
    """The file has problems; nothing was imported. ``problems`` says where and why."""

    def __init__(self, problems: list[Any]) -> None:
        self.problems = problems
        head = "; ".join(str(p) for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(f"nothing was imported: {head}{more}")


@dataclass(frozen=True)
class PlannedValue:
    line: int
    patient_code: str
    series_id: int
    session_id: int
    session_number: int
    endpoint_code: str
    site: str
    value: float


@dataclass
class ImportReport:
    """What an import would write (dry run) or wrote (``committed``)."""

    values: list[PlannedValue]
    committed: bool

    @property
    def rows(self) -> int:
        return len({v.line for v in self.values})


def import_hair_density(
    session: DbSession, actor: Actor, *, data: bytes, commit: bool, filename: str = ""
) -> ImportReport:
    """Check a trichoscope CSV against the record and, with ``commit``, write it in the caller's
    transaction: all rows or none.

    Each row must name a known patient with exactly one session on that date (the visit is
    recorded first), and each value's endpoint must be in the clinic's library
    (``hair_density``; ``hair_terminal_pct``, ``hair_vellus_pct``, ``hair_mean_diameter_um`` for
    the optional columns) within its scale. A value already recorded for that session, endpoint
    and area is refused (a file imported twice is not doubled). Raises :class:`ImportRefused`
    with every problem found; a dry run (``commit=False``) writes nothing, not even an audit
    event. A commit writes the measurements (each audited as ``measurement.record``) and one
    ``interop.import`` event; the caller's transaction commits them together.
    """
    from analysis.interop.device_import import ImportProblem, parse_hair_density
    from analysis.store.access import require
    from analysis.store.models import EndpointDefinition

    require(actor, "visit.record", session)
    rows, problems = parse_hair_density(data)
    endpoints = {e.code: e for e in session.scalars(select(EndpointDefinition))}
    matched, recorded = _row_visits(session, rows, problems)
    planned: list[PlannedValue] = []
    for row, visit in matched:
        for code, value in row.values.items():
            endpoint = endpoints.get(code)
            if endpoint is None:
                problems.append(
                    ImportProblem(
                        row.line,
                        code,
                        f"endpoint {code} is not in the clinic's endpoint library (Protocol setup)",
                    )
                )
                continue
            if (endpoint.scale_min is not None and value < endpoint.scale_min) or (
                endpoint.scale_max is not None and value > endpoint.scale_max
            ):
                problems.append(
                    ImportProblem(row.line, code, f"{value:g} is outside the endpoint's scale")
                )
                continue
            if (visit.id, endpoint.id, row.area) in recorded:
                problems.append(
                    ImportProblem(
                        row.line,
                        code,
                        f"already recorded for "
                        f"{row.patient_code} on {row.on.isoformat()} at "
                        f"{row.area}",
                    )
                )
                continue
            planned.append(
                PlannedValue(
                    row.line,
                    row.patient_code,
                    visit.series_id,
                    visit.id,
                    visit.number,
                    code,
                    row.area,
                    value,
                )
            )
    return _commit_import(
        session,
        actor,
        planned,
        problems,
        commit=commit,
        kind="hair_density",
        data=data,
        filename=filename,
    )


def _row_visits(
    session: DbSession, rows: list[Any], problems: list[Any]
) -> tuple[list[tuple[Any, Any]], set[tuple[int, int, str]]]:
    """Each row with its patient's only session on the row's date (a row without exactly one
    gets its problem appended instead), and the ``(session id, endpoint id, site)`` of every value
    already recorded on those sessions: three queries for the whole file, none per row."""
    from analysis.interop.device_import import ImportProblem
    from analysis.store.models import EndpointMeasurement
    from analysis.store.models import Session as Visit

    patients = dict(
        session.execute(
            select(Patient.code, Patient.id).where(Patient.code.in_({r.patient_code for r in rows}))
        ).all()
    )
    visits_on: dict[tuple[int, Any], list[Visit]] = {}
    for visit, patient_id in session.execute(
        select(Visit, Series.patient_id)
        .join(Series, Visit.series_id == Series.id)
        .where(Series.patient_id.in_(set(patients.values())))
        .order_by(Visit.id)
    ).all():
        visits_on.setdefault((patient_id, visit.performed_on), []).append(visit)
    matched: list[tuple[Any, Any]] = []
    for row in rows:
        code, on = row.patient_code, row.on
        if code not in patients:
            problems.append(ImportProblem(row.line, "patient_code", f"no patient with code {code}"))
            continue
        visits = visits_on.get((patients[code], on), [])
        if len(visits) != 1:
            problems.append(
                ImportProblem(
                    row.line,
                    "date",
                    (f"{code} has no session on {on.isoformat()}; record the visit first")
                    if not visits
                    else f"{code} has {len(visits)} sessions on {on.isoformat()}; import them one by one",
                )
            )
            continue
        matched.append((row, visits[0]))
    visit_ids = {visit.id for _row, visit in matched}
    recorded = {
        (int(sid), int(eid), str(site))
        for sid, eid, site in session.execute(
            select(
                EndpointMeasurement.session_id,
                EndpointMeasurement.endpoint_id,
                EndpointMeasurement.site,
            ).where(EndpointMeasurement.session_id.in_(visit_ids))
        )
    }
    return matched, recorded


def _commit_import(
    session: DbSession,
    actor: Actor,
    planned: list[PlannedValue],
    problems: list[Any],
    *,
    commit: bool,
    kind: str,
    data: bytes,
    filename: str,
    rated_by_patient: bool = False,
) -> ImportReport:
    from analysis.services import records

    if problems:
        raise ImportRefused(sorted(problems, key=lambda p: p.line))
    if not commit:
        return ImportReport(planned, committed=False)
    for v in planned:
        records.record_measurement(
            session,
            actor,
            session_id=v.session_id,
            endpoint_code=v.endpoint_code,
            value=v.value,
            site=v.site,
            rated_by_patient=rated_by_patient,
        )
    audit.record(
        session,
        actor,
        "interop.import",
        object_type="import",
        object_id=hashlib.sha256(data).hexdigest()[:16],
        details={
            "kind": kind,
            "filename": filename[:120],
            "rows": len({v.line for v in planned}),
            "values": len(planned),
            "patients": sorted({v.patient_code for v in planned}),
        },
    )
    session.flush()
    return ImportReport(planned, committed=True)


def import_prom(
    session: DbSession, actor: Actor, *, data: bytes, commit: bool, filename: str = ""
) -> ImportReport:
    """PROM answers from a questionnaire/tablet CSV (:func:`~analysis.interop.device_import.
    parse_prom`): one column per patient-reported endpoint. Same rules as
    :func:`import_hair_density`: each row needs a known patient with one session on that date;
    an answer already recorded for that session and endpoint is refused; dry run first, then all
    or nothing. Values are stored as rated by the patient."""
    from analysis.interop.device_import import ImportProblem, PromEndpoint, parse_prom
    from analysis.store.access import require
    from analysis.store.models import EndpointDefinition

    require(actor, "visit.record", session)
    library = {
        e.code: e
        for e in session.scalars(
            select(EndpointDefinition).where(
                EndpointDefinition.patient_reported.is_(True), EndpointDefinition.kind != "text"
            )
        )
    }
    specs = {c: PromEndpoint(e.kind, e.scale_min, e.scale_max) for c, e in library.items()}
    rows, problems = parse_prom(data, specs)
    matched, recorded = _row_visits(session, rows, problems)
    recorded_any_site = {(visit_id, endpoint_id) for visit_id, endpoint_id, _site in recorded}
    planned: list[PlannedValue] = []
    for row, visit in matched:
        for code, value in row.answers.items():
            if (visit.id, library[code].id) in recorded_any_site:
                problems.append(
                    ImportProblem(
                        row.line,
                        code,
                        f"already recorded for {row.patient_code} on {row.on.isoformat()}",
                    )
                )
                continue
            planned.append(
                PlannedValue(
                    row.line,
                    row.patient_code,
                    visit.series_id,
                    visit.id,
                    visit.number,
                    code,
                    "",
                    value,
                )
            )
    return _commit_import(
        session,
        actor,
        planned,
        problems,
        commit=commit,
        kind="prom",
        data=data,
        filename=filename,
        rated_by_patient=True,
    )


# --- downloads from the pages -------------------------------------------------------------------


def _zip_folder(folder: Path) -> bytes:
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            zf.write(path, path.relative_to(folder).as_posix())
    return out.getvalue()


def export_zip(
    session: DbSession,
    actor: Actor,
    *,
    fmt: str,
    series_id: int | None = None,
    patient_code: str | None = None,
    purpose: str = "clinical_record",
    store: ImageStore | None = None,
) -> bytes:
    """The export of :func:`export_series` / :func:`export_patient` as one zip (for a download
    button): same checks, same audit event, manifest inside."""
    with tempfile.TemporaryDirectory(prefix="candor-export-") as tmp:
        out = Path(tmp) / "export"
        _export(
            session,
            actor,
            series_id=series_id,
            patient_code=patient_code,
            fmt=fmt,
            out_dir=out,
            purpose=purpose,
            store=store,
        )
        return _zip_folder(out)


def analyst_tables_zip(
    session: DbSession,
    actor: Actor,
    *,
    series_ids: Iterable[int],
    filters: dict[str, Any] | None = None,
) -> bytes:
    """The analyst CSV tables (and data dictionary) of many series, zipped: the medical
    director's download from Protocols, for the series the page's filters selected.

    Needs ``cohort.export``; refusals are audited. Photo verdicts are given only for photos whose
    patient's ``clinical_record`` consent is active now (the manifest counts those left out).
    One ``interop.export`` event records the series and the filters.
    """
    from analysis.interop.tables import write_tables

    ids = sorted({int(i) for i in series_ids})
    info_filters = json.loads(json.dumps(filters or {}, default=str))
    where = dict(
        object_type="protocols",
        object_id=f"{len(ids)} series",
        details={"format": "csv", "filters": info_filters},
    )
    if not allowed(actor, "cohort.export"):
        raise _refuse(
            session,
            actor,
            PermissionDenied(
                f"{actor.role.replace('_', ' ')} accounts may not export clinic-wide tables"
            ),
            **where,
        )
    infos = []
    left_out = 0
    names = _names(session)
    for series in session.scalars(
        select(Series).where(Series.id.in_(ids)).options(*_eager()).order_by(Series.id)
    ):
        info = load_series(session, series, names=names)
        ok = check_consent(session, patient_id=series.patient_id, scope="clinical_record")
        if not ok:
            left_out += sum(len(v.photos) for v in info.sessions)
        infos.append(info if ok else _without_photos(info, set()))
    audit.record(
        session,
        actor,
        ACTION,
        object_type="protocols",
        object_id=f"{len(infos)} series",
        details={
            "format": "csv",
            "filters": info_filters,
            "series": len(infos),
            "photo_verdicts_left_out": left_out,
        },
    )
    session.commit()
    with tempfile.TemporaryDirectory(prefix="candor-tables-") as tmp:
        folder = Path(tmp) / "tables"
        files = write_tables(infos, folder)
        (folder / "manifest.json").write_text(
            json.dumps(
                {
                    "format": "csv",
                    "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "exported_by": actor.email,
                    "filters": info_filters,
                    "series": [i.series_id for i in infos],
                    "files": files,
                    "photo_verdicts_left_out": left_out,
                    "note": "photo_verdict is empty for photos whose patient has no active "
                    "clinical_record consent",
                },
                indent=2,
            )
            + "\n"
        )
        return _zip_folder(folder)


def analyst_tables_download(
    actor: Actor, *, series_ids: Iterable[int], filters: dict[str, Any] | None = None
) -> bytes:
    """:func:`analyst_tables_zip` in its own transaction (a download button's deferred data)."""
    from analysis.store import db

    with db.session_scope() as session:
        return analyst_tables_zip(session, actor, series_ids=series_ids, filters=filters)
