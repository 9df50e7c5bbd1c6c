"""Writing the clinic record: the service functions pages, the CLI and the demo seeder call.

Every function takes the SQLAlchemy ``session`` (one transaction, see ``db.session_scope``) and the
``actor``; it checks the actor's permission, validates its input (raising :class:`FieldError` naming
the field and the reason, before anything is written), writes, and appends an audit event in the same
transaction. Photos follow the store's rule: blob first (atomic), then the row that references it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from analysis.errors import ExpiredLotError as ExpiredLotError
from analysis.errors import FieldError as FieldError  # re-exported: records.FieldError
from analysis.photos.types import ALL_VIEWS
from analysis.store import audit
from analysis.store.access import Actor, require
from analysis.store.images import ImageStore
from analysis.store.models import (
    CONFOUNDER_KINDS,
    CONSENT_SCOPES,
    PHOTO_VERDICTS,
    REACTION_KINDS,
    SCREENING_ITEMS,
    SERIES_STATUSES,
    SEVERITIES,
    SEXES,
    Confounder,
    Consent,
    EndpointDefinition,
    EndpointMeasurement,
    Patient,
    Photo,
    ProductLot,
    Protocol,
    Reaction,
    ScreeningAnswer,
    Series,
    Session,
    Treatment,
    utcnow,
)

#: Reactions that always escalate, whatever severity was entered (vascular compromise, etc.).
#: Pseudonymous patient codes: shown in pages, file names and reports, so plain characters only.
PATIENT_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
RED_FLAG_TERMS = frozenset(
    {
        "blanching",
        "vision_change",
        "livedo",
        "severe_pain_out_of_proportion",
        "skin_necrosis",
        "anaphylaxis",
        "vascular_occlusion",
    }
)


def _choice(field: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise FieldError(field, f"must be one of: {', '.join(choices)} (got {value!r})")
    return value


def _get(session: DbSession, model: type[Any], ident: int, what: str) -> Any:
    obj = session.get(model, ident)
    if obj is None:
        raise FieldError(what, f"no {what.replace('_id', '')} with id {ident}")
    return obj


# --- patients and consent ------------------------------------------------------------------------


def patient_details(
    birth_year: int | None, sex: str | None, fitzpatrick: int | None
) -> dict[str, Any]:
    """Checked ``birth_year``, ``sex`` and ``fitzpatrick`` (registration and corrections alike)."""
    if birth_year is None:
        raise FieldError("birth_year", "enter the birth year")
    if not 1900 <= int(birth_year) <= date.today().year:
        raise FieldError("birth_year", "birth year must be between 1900 and this year")
    if sex is None:
        raise FieldError("sex", 'choose one ("Not recorded" is a choice)')
    _choice("sex", sex, SEXES)
    if fitzpatrick is None:
        raise FieldError("fitzpatrick", "choose the Fitzpatrick skin type (1 to 6)")
    if not 1 <= int(fitzpatrick) <= 6:
        raise FieldError("fitzpatrick", "Fitzpatrick type must be 1 to 6")
    return {"birth_year": int(birth_year), "sex": sex, "fitzpatrick": int(fitzpatrick)}


def free_patient_code(session: DbSession, code: str) -> str:
    """``code`` stripped, if it is a valid pseudonymous code no patient has; else ``FieldError``."""
    code = code.strip()
    if not code:
        raise FieldError("code", "a patient code is required")
    if not PATIENT_CODE.fullmatch(code):
        raise FieldError(
            "code",
            "use 1-32 letters, digits, '-', '_' or '.' (a pseudonymous code "
            "such as P-0107, never a name)",
        )
    if session.scalar(select(Patient.id).where(Patient.code == code)) is not None:
        raise FieldError("code", f"patient code {code!r} is already in use")
    return code


def create_patient(
    session: DbSession,
    actor: Actor,
    *,
    code: str,
    birth_year: int | None,
    sex: str | None,
    fitzpatrick: int | None,
) -> Patient:
    require(actor, "patient.write", session)
    code = free_patient_code(session, code)
    patient = Patient(code=code, **patient_details(birth_year, sex, fitzpatrick))
    session.add(patient)
    session.flush()
    audit.record(
        session,
        actor,
        "patient.create",
        patient_id=patient.id,
        object_type="patient",
        object_id=patient.id,
    )
    return patient


def give_consent(
    session: DbSession, actor: Actor, *, patient_id: int, scope: str, at: datetime | None = None
) -> Consent:
    require(actor, "consent.write", session, patient_id=patient_id)
    _get(session, Patient, patient_id, "patient_id")
    _choice("scope", scope, CONSENT_SCOPES)
    consent = Consent(
        patient_id=patient_id, scope=scope, given_at=at or utcnow(), recorded_by_id=actor.user_id
    )
    session.add(consent)
    session.flush()
    audit.record(
        session,
        actor,
        "consent.give",
        patient_id=patient_id,
        object_type="consent",
        object_id=consent.id,
        details={"scope": scope},
    )
    return consent


def withdraw_consent(
    session: DbSession, actor: Actor, *, patient_id: int, scope: str, at: datetime | None = None
) -> int:
    """Withdraw every active consent of ``scope``; returns how many were withdrawn."""
    require(actor, "consent.write", session, patient_id=patient_id)
    _choice("scope", scope, CONSENT_SCOPES)
    active = session.scalars(
        select(Consent).where(
            Consent.patient_id == patient_id, Consent.scope == scope, Consent.withdrawn_at.is_(None)
        )
    ).all()
    when = at or utcnow()
    for consent in active:
        consent.withdrawn_at = when
    session.flush()
    audit.record(
        session,
        actor,
        "consent.withdraw",
        patient_id=patient_id,
        object_type="consent",
        details={"scope": scope, "withdrawn": len(active)},
    )
    return len(active)


def consent_scopes(session: DbSession, patient_id: int, *, at: datetime | None = None) -> set[str]:
    """Scopes the patient has consented to at ``at`` (default now). Read fresh on every call."""
    when = at or utcnow()
    rows = session.scalars(select(Consent).where(Consent.patient_id == patient_id)).all()
    return {
        c.scope
        for c in rows
        if c.given_at <= when and (c.withdrawn_at is None or c.withdrawn_at > when)
    }


# --- series, screening, confounders ------------------------------------------------------------


def create_series(
    session: DbSession,
    actor: Actor,
    *,
    patient_id: int,
    protocol_id: int,
    started_on: date,
    goal: str = "",
    status: str = "active",
) -> Series:
    require(actor, "series.write", session)
    _get(session, Patient, patient_id, "patient_id")
    _get(session, Protocol, protocol_id, "protocol_id")
    _choice("status", status, SERIES_STATUSES)
    series = Series(
        patient_id=patient_id,
        protocol_id=protocol_id,
        started_on=started_on,
        goal=goal.strip(),
        status=status,
    )
    session.add(series)
    session.flush()
    audit.record(
        session,
        actor,
        "series.create",
        patient_id=patient_id,
        object_type="series",
        object_id=series.id,
    )
    return series


def set_series_status(session: DbSession, actor: Actor, *, series_id: int, status: str) -> None:
    require(actor, "series.write", session)
    series: Series = _get(session, Series, series_id, "series_id")
    series.status = _choice("status", status, SERIES_STATUSES)
    session.flush()
    audit.record(
        session,
        actor,
        "series.status",
        patient_id=series.patient_id,
        object_type="series",
        object_id=series.id,
        details={"status": status},
    )


def record_screening(
    session: DbSession,
    actor: Actor,
    *,
    series_id: int,
    answers: dict[str, bool],
    details: dict[str, str] | None = None,
    screened_on: date | None = None,
) -> list[ScreeningAnswer]:
    """Record the contraindication screen; every item of ``SCREENING_ITEMS`` must be answered."""
    require(actor, "series.write", session)
    series: Series = _get(session, Series, series_id, "series_id")
    missing = [item for item in SCREENING_ITEMS if item not in answers]
    if missing:
        raise FieldError(missing[0], f"screening item not answered: {', '.join(missing)}")
    for item in answers:
        _choice("screening item", item, SCREENING_ITEMS)
    rows = [
        ScreeningAnswer(
            series_id=series_id,
            item=item,
            present=bool(answers[item]),
            details=(details or {}).get(item, ""),
            screened_on=screened_on or date.today(),
            screened_by_id=actor.user_id,
        )
        for item in SCREENING_ITEMS
    ]
    session.add_all(rows)
    session.flush()
    audit.record(
        session,
        actor,
        "screening.record",
        patient_id=series.patient_id,
        object_type="series",
        object_id=series_id,
        details={"flags": [r.item for r in rows if r.present]},
    )
    return rows


def add_confounder(
    session: DbSession,
    actor: Actor,
    *,
    series_id: int,
    kind: str,
    started_on: date,
    ended_on: date | None = None,
    details: str = "",
    session_id: int | None = None,
) -> Confounder:
    require(actor, "visit.record", session)
    series: Series = _get(session, Series, series_id, "series_id")
    _choice("kind", kind, CONFOUNDER_KINDS)
    if ended_on is not None and ended_on < started_on:
        raise FieldError("ended_on", "the end date is before the start date")
    row = Confounder(
        series_id=series_id,
        kind=kind,
        started_on=started_on,
        ended_on=ended_on,
        details=details,
        session_id=session_id,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor,
        "confounder.add",
        patient_id=series.patient_id,
        object_type="confounder",
        object_id=row.id,
        details={"kind": kind},
    )
    return row


# --- sessions and treatments ---------------------------------------------------------------------


def add_session(
    session: DbSession,
    actor: Actor,
    *,
    series_id: int,
    performed_on: date,
    operator_id: int | None = None,
    condition_tags: Iterable[str] = (),
    notes: str = "",
    number: int | None = None,
) -> Session:
    """Add the next session (numbered after the last one unless ``number`` is given)."""
    require(actor, "visit.record", session, object_type="series", object_id=series_id)
    series: Series = _get(session, Series, series_id, "series_id")
    # Query (not the possibly stale ``series.sessions``) so sessions added earlier in this
    # transaction count too.
    existing = session.execute(
        select(Session.number, Session.performed_on).where(Session.series_id == series_id)
    ).all()
    if number is None:
        number = max((n for n, _ in existing), default=0) + 1
    if any(n == number for n, _ in existing):
        raise FieldError("number", f"session {number} already exists in this series")
    earlier = [d for n, d in existing if n < number]
    if earlier and performed_on < max(earlier):
        raise FieldError("performed_on", "the date is before an earlier session of this series")
    visit = Session(
        series_id=series_id,
        number=number,
        performed_on=performed_on,
        operator_id=operator_id,
        condition_tags=list(condition_tags),
        notes=notes,
    )
    session.add(visit)
    session.flush()
    audit.record(
        session,
        actor,
        "session.create",
        patient_id=series.patient_id,
        object_type="session",
        object_id=visit.id,
        details={"number": number},
    )
    return visit


def get_or_create_lot(
    session: DbSession, *, product: str, lot_number: str, expiry_on: date
) -> ProductLot:
    product, lot_number = product.strip(), lot_number.strip()
    if not product:
        raise FieldError("product", "the product is required")
    if not lot_number:
        raise FieldError("lot_number", "the lot number is required (traceability)")
    lot = session.scalar(
        select(ProductLot).where(ProductLot.product == product, ProductLot.lot_number == lot_number)
    )
    if lot is None:
        lot = ProductLot(product=product, lot_number=lot_number, expiry_on=expiry_on)
        session.add(lot)
        session.flush()
    elif lot.expiry_on != expiry_on:
        raise FieldError(
            "expiry_on",
            f"lot {lot_number} of {product} is on file with expiry {lot.expiry_on.isoformat()}, "
            f"not {expiry_on.isoformat()}: check the label",
        )
    return lot


def record_treatment(
    session: DbSession,
    actor: Actor,
    *,
    session_id: int,
    product: str,
    lot_number: str,
    expiry_on: date,
    preparation: str = "",
    mixed: bool = False,
    sites: Iterable[str] = (),
    depth_intent: str = "",
    volume_ml: float | None = None,
    units: float | None = None,
    operator_id: int | None = None,
    override_reason: str = "",
) -> Treatment:
    """Record what was used. A lot past its expiry on the session date is rejected
    (:class:`ExpiredLotError`) unless an ``override_reason`` is given, in which case the treatment is
    stored flagged ``expired_at_use``. A recalled lot is always flagged in the audit event."""
    require(actor, "visit.record", session)
    visit: Session = _get(session, Session, session_id, "session_id")
    if volume_ml is not None and volume_ml < 0:
        raise FieldError("volume_ml", "volume cannot be negative")
    if units is not None and units < 0:
        raise FieldError("units", "units cannot be negative")
    if volume_ml is None and units is None:
        raise FieldError("volume_ml", "enter the volume (mL) or the units used")
    lot = get_or_create_lot(session, product=product, lot_number=lot_number, expiry_on=expiry_on)
    expired = lot.expiry_on < visit.performed_on
    if expired and not override_reason.strip():
        raise ExpiredLotError(
            "expiry_on",
            f"lot {lot.lot_number} expired on {lot.expiry_on.isoformat()}, before this session "
            f"({visit.performed_on.isoformat()}); use another lot or give a reason to record it",
        )
    row = Treatment(
        session_id=session_id,
        lot_id=lot.id,
        preparation=preparation,
        mixed=mixed,
        sites=list(sites),
        depth_intent=depth_intent,
        volume_ml=volume_ml,
        units=units,
        operator_id=operator_id,
        expired_at_use=expired,
        override_reason=override_reason.strip(),
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor,
        "treatment.record",
        patient_id=visit.series.patient_id,
        object_type="treatment",
        object_id=row.id,
        details={"lot": lot.lot_number, "expired_at_use": expired, "recalled": lot.recalled},
    )
    return row


# --- measurements and reactions ------------------------------------------------------------------


def record_measurement(
    session: DbSession,
    actor: Actor,
    *,
    session_id: int,
    endpoint_code: str,
    value: float | None = None,
    text: str = "",
    site: str = "",
    rated_by_patient: bool = False,
    blinded: bool = False,
    rater_id: int | None = None,
    measured_at: datetime | None = None,
) -> EndpointMeasurement:
    require(actor, "visit.record", session)
    visit: Session = _get(session, Session, session_id, "session_id")
    endpoint = session.scalar(
        select(EndpointDefinition).where(EndpointDefinition.code == endpoint_code)
    )
    if endpoint is None:
        raise FieldError("endpoint", f"unknown endpoint {endpoint_code!r}")
    if endpoint.kind == "text":
        if not text.strip():
            raise FieldError(endpoint_code, f"{endpoint.name}: the note is empty")
    else:
        if value is None:
            raise FieldError(endpoint_code, f"{endpoint.name}: a value is required")
        if endpoint.scale_min is not None and value < endpoint.scale_min:
            raise FieldError(
                endpoint_code, f"{endpoint.name} cannot be below {endpoint.scale_min:g}"
            )
        if endpoint.scale_max is not None and value > endpoint.scale_max:
            raise FieldError(
                endpoint_code, f"{endpoint.name} cannot be above {endpoint.scale_max:g}"
            )
        if endpoint.kind in ("ordinal", "count") and float(value) != int(value):
            raise FieldError(endpoint_code, f"{endpoint.name} takes whole numbers")
    row = EndpointMeasurement(
        session_id=session_id,
        endpoint_id=endpoint.id,
        value_num=value,
        value_text=text.strip(),
        site=site,
        rater_id=rater_id,
        rated_by_patient=rated_by_patient,
        blinded=blinded,
        measured_at=measured_at or utcnow(),
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor,
        "measurement.record",
        patient_id=visit.series.patient_id,
        object_type="measurement",
        object_id=row.id,
        details={"endpoint": endpoint_code},
    )
    return row


def reaction_term(term: str) -> tuple[str, bool]:
    """The stored form of a reaction term (trimmed, lower case, spaces as underscores) and whether
    it is a red flag (:data:`RED_FLAG_TERMS`: always recorded as an adverse event)."""
    stored = term.strip().lower().replace(" ", "_")
    return stored, stored in RED_FLAG_TERMS


def record_reaction(
    session: DbSession,
    actor: Actor,
    *,
    session_id: int,
    kind: str,
    term: str,
    severity: str,
    onset_day: int = 0,
    duration_days: float | None = None,
    resolved: bool = True,
    escalation: str = "",
    notes: str = "",
) -> Reaction:
    """Record an expected reaction or an adverse event. Red-flag terms (blanching, vision change,
    ...) are always recorded as adverse events with ``red_flag`` set and need an escalation note."""
    require(actor, "visit.record", session)
    visit: Session = _get(session, Session, session_id, "session_id")
    _choice("kind", kind, REACTION_KINDS)
    _choice("severity", severity, SEVERITIES)
    term, red_flag = reaction_term(term)
    if not term:
        raise FieldError("term", "say what the reaction was")
    if onset_day < 0:
        raise FieldError("onset_day", "onset day cannot be before the session")
    if duration_days is not None and duration_days < 0:
        raise FieldError("duration_days", "duration cannot be negative")
    if red_flag:
        kind = "adverse"
        if not escalation.strip():
            raise FieldError(
                "escalation",
                f"{term.replace('_', ' ')} is a red flag: record the "
                "escalation (who was called, what was done)",
            )
    if kind == "adverse" and severity == "severe" and not escalation.strip():
        raise FieldError("escalation", "a severe adverse event needs an escalation note")
    row = Reaction(
        session_id=session_id,
        kind=kind,
        term=term,
        severity=severity,
        onset_day=onset_day,
        duration_days=duration_days,
        resolved=resolved,
        escalation=escalation.strip(),
        red_flag=red_flag,
        notes=notes,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor,
        "reaction.record",
        patient_id=visit.series.patient_id,
        object_type="reaction",
        object_id=row.id,
        details={"kind": kind, "term": term, "red_flag": red_flag},
    )
    return row


# --- photos ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PhotoInput:
    """A photo ready to store: ``data`` is the metadata-stripped full-resolution image."""

    data: bytes
    original_sha256: str
    media_type: str
    width_px: int
    height_px: int
    view: str
    verdict: str
    measurements: dict[str, Any]
    checks: list[Any]
    taken_at: datetime | None = None
    override_reason: str = ""
    condition_tags: tuple[str, ...] = ()
    truth: dict[str, Any] | None = None


def store_photo(
    session: DbSession, actor: Actor, store: ImageStore, *, session_id: int, photo: PhotoInput
) -> Photo:
    """Write the blob (atomic, durable), then the row referencing it, in the caller's transaction.

    A crash after the blob and before the commit leaves an unreferenced blob (swept later), never a
    row pointing at a missing blob. Requires the patient's clinical-record photo consent.
    """
    require(actor, "photo.capture", session)
    visit: Session = _get(session, Session, session_id, "session_id")
    _choice("view", photo.view, ALL_VIEWS)
    _choice("verdict", photo.verdict, PHOTO_VERDICTS)
    patient_id = visit.series.patient_id
    if "clinical_record" not in consent_scopes(session, patient_id):
        raise FieldError(
            "consent",
            "this patient has not consented to clinical photography; "
            "record consent before saving photos",
        )
    if photo.verdict == "fail" and not photo.override_reason.strip():
        raise FieldError(
            "override_reason",
            "this photo failed the comparability check: retake it "
            "or give the reason it cannot be matched",
        )
    sha = store.put(photo.data)
    row = Photo(
        session_id=session_id,
        view=photo.view,
        sha256=sha,
        original_sha256=photo.original_sha256,
        media_type=photo.media_type,
        width_px=photo.width_px,
        height_px=photo.height_px,
        size_bytes=len(photo.data),
        taken_at=photo.taken_at,
        uploaded_by_id=actor.user_id,
        measurements=photo.measurements,
        verdict=photo.verdict,
        checks=photo.checks,
        override_reason=photo.override_reason.strip(),
        condition_tags=list(photo.condition_tags),
        truth=photo.truth or {},
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor,
        "photo.store",
        patient_id=patient_id,
        object_type="photo",
        object_id=row.id,
        details={"view": photo.view, "verdict": photo.verdict},
    )
    return row
