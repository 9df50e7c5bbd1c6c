"""Plain, frozen copies of what an export writes: the writers take these, never ORM rows.

:func:`analysis.services.interop.load_series` fills them from the database; tests may build them
directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime


@dataclass(frozen=True)
class ConsentInfo:
    consent_id: int
    scope: str
    given_at: datetime
    withdrawn_at: datetime | None


@dataclass(frozen=True)
class PatientInfo:
    patient_id: int
    code: str
    birth_year: int
    sex: str
    fitzpatrick: int
    consents: tuple[ConsentInfo, ...] = ()


@dataclass(frozen=True)
class TreatmentInfo:
    treatment_id: int
    product: str
    lot_number: str
    expiry_on: date
    sites: tuple[str, ...]
    volume_ml: float | None
    units: float | None
    depth_intent: str
    expired_at_use: bool
    operator: str  # display name, "" when not recorded


@dataclass(frozen=True)
class MeasurementInfo:
    measurement_id: int
    endpoint_code: str
    endpoint_name: str
    kind: str
    unit: str | None
    value_num: float | None
    value_text: str
    site: str
    rater: str  # display name; "patient" when rated by the patient
    rated_by_patient: bool
    blinded: bool
    measured_at: datetime


@dataclass(frozen=True)
class ReactionInfo:
    reaction_id: int
    kind: str  # expected | adverse
    term: str
    onset_day: int
    severity: str
    duration_days: float | None
    resolved: bool
    red_flag: bool


@dataclass(frozen=True)
class PhotoInfo:
    photo_id: int
    view: str
    sha256: str
    media_type: str
    width_px: int
    height_px: int
    taken_at: datetime | None
    verdict: str  # baseline | pass | warn | fail
    override_reason: str


@dataclass(frozen=True)
class SessionInfo:
    session_id: int
    number: int
    performed_on: date
    operator: str
    treatments: tuple[TreatmentInfo, ...] = ()
    measurements: tuple[MeasurementInfo, ...] = ()
    reactions: tuple[ReactionInfo, ...] = ()
    photos: tuple[PhotoInfo, ...] = ()


@dataclass(frozen=True)
class SeriesInfo:
    series_id: int
    protocol_name: str
    modality: str
    target_area: str
    status: str
    started_on: date
    patient: PatientInfo
    sessions: tuple[SessionInfo, ...] = field(default=())

    @property
    def baseline_on(self) -> date:
        """The first session's date (the series start when it has none)."""
        return min((s.performed_on for s in self.sessions), default=self.started_on)

    @property
    def treatment_context(self) -> str:
        """Protocol and products, without lot numbers (for DICOM Study Description)."""
        products = sorted({t.product for s in self.sessions for t in s.treatments})
        return f"{self.protocol_name}" + (f" ({', '.join(products)})" if products else "")
