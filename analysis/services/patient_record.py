"""The Patient record service: register or correct a patient, keep their photo consent, start and
close series.

Writing goes through :mod:`analysis.services.records` (validation there raises ``FieldError`` naming the
field; every change is audited there). Each function here does one user action in the caller's single
transaction, so a registration with its consents, or a series with its contraindication screen, is
saved whole or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from analysis.services import records
from analysis.services.common import SERIES_STATUS_LABELS
from analysis.store import audit
from analysis.store.access import Actor, require
from analysis.store.models import (
    CONSENT_SCOPES,
    SCREENING_ITEMS,
    Consent,
    Patient,
    Protocol,
    Series,
)

SCOPE_LABELS: dict[str, str] = {
    "clinical_record": "Clinical record (needed to take and keep photos)",
    "consult_display": "Consult display (anonymised, shown to prospective patients)",
    "teaching": "Teaching",
    "marketing": "Marketing",
}
SCREENING_LABELS: dict[str, str] = {
    "pregnancy_or_breastfeeding": "Pregnant or breastfeeding",
    "active_infection_at_site": "Active infection at the treatment site",
    "uncontrolled_systemic_illness": "Uncontrolled systemic illness",
    "allergies": "Allergies relevant to the products",
    "anticoagulants_or_antiplatelets": "Anticoagulants or antiplatelets",
    "prior_injectable_reactions": "Earlier reactions to injectables",
    "recent_procedures_in_area": "Recent procedures in the area",
    "filler_history": "Filler in the area (history)",
}
STATUS_LABELS: dict[str, str] = SERIES_STATUS_LABELS
SEX_LABELS: dict[str, str] = {
    "female": "Female",
    "male": "Male",
    "other": "Other",
    "unknown": "Not recorded",
}


@dataclass(frozen=True)
class ConsentState:
    """One consent scope of a patient: given (since when) or not, and the last withdrawal."""

    scope: str
    active: bool
    given_at: datetime | None
    withdrawn_at: datetime | None

    @property
    def label(self) -> str:
        return SCOPE_LABELS.get(self.scope, self.scope)


@dataclass(frozen=True)
class SeriesRow:
    series_id: int
    protocol_name: str
    started_on: date
    status: str
    goal: str
    sessions_done: int
    planned_sessions: int
    screening_flags: tuple[str, ...]


@dataclass(frozen=True)
class PatientRecord:
    patient_id: int
    code: str
    birth_year: int
    sex: str
    fitzpatrick: int
    consents: tuple[ConsentState, ...]
    series: tuple[SeriesRow, ...]

    def consent(self, scope: str) -> ConsentState:
        return next(c for c in self.consents if c.scope == scope)


@dataclass(frozen=True)
class ProtocolChoice:
    protocol_id: int
    name: str
    planned_sessions: int
    interval_days: int

    @property
    def label(self) -> str:
        return f"{self.name} · {self.planned_sessions} sessions, every {self.interval_days} days"


def patient_choices(session: DbSession, actor: Actor) -> list[tuple[int, str]]:
    """``(patient_id, code)`` of every patient, by code."""
    require(actor, "patient.read", session)
    return [
        (int(i), str(c))
        for i, c in session.execute(select(Patient.id, Patient.code).order_by(Patient.code)).all()
    ]


def protocol_choices(session: DbSession, actor: Actor) -> list[ProtocolChoice]:
    require(actor, "series.read", session)
    rows = session.scalars(select(Protocol).order_by(Protocol.name)).all()
    return [ProtocolChoice(p.id, p.name, p.planned_sessions, p.interval_days) for p in rows]


def patient_id_of_series(session: DbSession, actor: Actor, *, series_id: int) -> int | None:
    require(actor, "series.read", session)
    return session.scalar(select(Series.patient_id).where(Series.id == series_id))


def patient_record(session: DbSession, actor: Actor, *, patient_id: int) -> PatientRecord:
    """The patient's details, consent per scope (as of now) and series; ``FieldError`` if unknown."""
    require(actor, "patient.read", session)
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise records.FieldError("patient_id", f"no patient with id {patient_id}")
    active = records.consent_scopes(session, patient_id)
    rows = session.scalars(
        select(Consent).where(Consent.patient_id == patient_id).order_by(Consent.given_at)
    ).all()
    consents = []
    for scope in CONSENT_SCOPES:
        mine = [c for c in rows if c.scope == scope]
        given = max((c.given_at for c in mine if c.withdrawn_at is None), default=None)
        withdrawn = max((c.withdrawn_at for c in mine if c.withdrawn_at is not None), default=None)
        consents.append(ConsentState(scope, scope in active, given, withdrawn))
    series = tuple(
        SeriesRow(
            series_id=s.id,
            protocol_name=s.protocol.name,
            started_on=s.started_on,
            status=s.status,
            goal=s.goal,
            sessions_done=len(s.sessions),
            planned_sessions=s.protocol.planned_sessions,
            screening_flags=tuple(a.item for a in s.screenings if a.present),
        )
        for s in sorted(patient.series, key=lambda s: (s.started_on, s.id))
    )
    return PatientRecord(
        patient_id=patient.id,
        code=patient.code,
        birth_year=patient.birth_year,
        sex=patient.sex,
        fitzpatrick=patient.fitzpatrick,
        consents=tuple(consents),
        series=series,
    )


def register_patient(
    session: DbSession,
    actor: Actor,
    *,
    code: str,
    birth_year: int | None,
    sex: str | None,
    fitzpatrick: int | None,
    consent_scopes: Iterable[str] = (),
) -> int:
    """Create the patient and record the consents given at registration; returns the patient id."""
    patient = records.create_patient(
        session, actor, code=code, birth_year=birth_year, sex=sex, fitzpatrick=fitzpatrick
    )
    for scope in dict.fromkeys(consent_scopes):
        records.give_consent(session, actor, patient_id=patient.id, scope=scope)
    return patient.id


def set_consent(
    session: DbSession, actor: Actor, *, patient_id: int, scope: str, given: bool
) -> bool:
    """Give or withdraw ``scope``; returns False (and writes nothing) when it is already so."""
    require(actor, "consent.write", session)
    if (scope in records.consent_scopes(session, patient_id)) == given:
        return False
    if given:
        records.give_consent(session, actor, patient_id=patient_id, scope=scope)
    else:
        records.withdraw_consent(session, actor, patient_id=patient_id, scope=scope)
    return True


def start_series(
    session: DbSession,
    actor: Actor,
    *,
    patient_id: int,
    protocol_id: int | None,
    started_on: date | None,
    goal: str,
    answers: Mapping[str, bool | None],
    details: Mapping[str, str] | None = None,
    flags_reviewed: bool = False,
) -> int:
    """Create an active series with its contraindication screen; returns the series id.

    Every item of ``SCREENING_ITEMS`` must be answered (``None`` = not answered). When any item is
    present, ``flags_reviewed`` must be True (the clinician confirms having weighed them) and each
    flagged item needs a note in ``details``.
    """
    if protocol_id is None:
        raise records.FieldError("protocol_id", "choose the protocol")
    if started_on is None:
        raise records.FieldError("started_on", "enter the start date")
    unanswered = [i for i in SCREENING_ITEMS if answers.get(i) is None]
    if unanswered:
        names = ", ".join(SCREENING_LABELS[i].lower() for i in unanswered)
        raise records.FieldError("screening", f"answer every screening question (missing: {names})")
    flags = [i for i in SCREENING_ITEMS if answers[i]]
    notes = {i: (details or {}).get(i, "").strip() for i in flags}
    if missing := [i for i in flags if not notes[i]]:
        raise records.FieldError(
            "screening",
            f"add a note to each answer of yes ({SCREENING_LABELS[missing[0]].lower()})",
        )
    if flags and not flags_reviewed:
        raise records.FieldError(
            "flags_reviewed",
            "screening found "
            + ", ".join(SCREENING_LABELS[i].lower() for i in flags)
            + ": confirm you have reviewed them before starting the series",
        )
    series = records.create_series(
        session,
        actor,
        patient_id=patient_id,
        protocol_id=protocol_id,
        started_on=started_on,
        goal=goal,
        status="active",
    )
    records.record_screening(
        session,
        actor,
        series_id=series.id,
        answers={i: bool(answers[i]) for i in SCREENING_ITEMS},
        details=notes,
        screened_on=started_on,
    )
    return series.id


def change_series_status(session: DbSession, actor: Actor, *, series_id: int, status: str) -> bool:
    """Set the series' status; returns False (and writes nothing) when it already has it."""
    require(actor, "series.write", session)
    current = session.scalar(select(Series.status).where(Series.id == series_id))
    if current is None:
        raise records.FieldError("series_id", f"no series with id {series_id}")
    if current == status:
        return False
    records.set_series_status(session, actor, series_id=series_id, status=status)
    return True


def correct_patient(
    session: DbSession,
    actor: Actor,
    *,
    patient_id: int,
    birth_year: int | None,
    sex: str | None,
    fitzpatrick: int | None,
    reason: str,
    code: str | None = None,
) -> list[str]:
    """Correct the patient's code, birth year, sex or skin type; returns the fields that changed.

    ``code`` None keeps the code. A new code follows the registration rule and must be free. A
    correction needs a reason, and the audit event keeps the old and new values, so nothing
    recorded is lost (an old code can always be traced to the patient it became).
    """
    require(actor, "patient.write", session)
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise records.FieldError("patient_id", f"no patient with id {patient_id}")
    new: dict[str, object] = dict(records.patient_details(birth_year, sex, fitzpatrick))
    if code is not None and code.strip() != patient.code:
        new["code"] = records.free_patient_code(session, code)
    changed = {k: [getattr(patient, k), v] for k, v in new.items() if getattr(patient, k) != v}
    if not changed:
        return []
    if not reason.strip():
        raise records.FieldError("reason", "say why the record is corrected")
    for key, (_, value) in changed.items():
        setattr(patient, key, value)
    session.flush()
    audit.record(
        session,
        actor,
        "patient.correct",
        patient_id=patient_id,
        object_type="patient",
        object_id=patient_id,
        details={"changed": changed, "reason": reason.strip()},
    )
    return sorted(changed)
