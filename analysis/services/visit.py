"""The Record visit service: what one session's forms need, and saving several endpoint values at once.

Writing goes through :mod:`analysis.services.records` (validation there raises ``FieldError`` naming the
field). :func:`record_endpoints` records every value of the endpoints form in the caller's single
transaction, so a bad value saves none of them and the form can be corrected and sent again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from analysis.services import records
from analysis.store.access import CLINICAL, Actor, require
from analysis.store.models import EndpointDefinition, Session, User

#: Injection / treatment sites by area (the Record visit site lists).
SITES: dict[str, tuple[str, ...]] = {
    "face": (
        "forehead",
        "glabella",
        "periorbital_left",
        "periorbital_right",
        "malar_left",
        "malar_right",
        "nasolabial_left",
        "nasolabial_right",
        "perioral",
        "jawline",
        "neck",
    ),
    "scalp": ("frontal", "mid_scalp", "vertex", "temporal_left", "temporal_right", "occipital"),
}
DEPTH_INTENTS: tuple[str, ...] = (
    "intradermal (papules/nappage)",
    "superficial dermis",
    "mid dermis",
    "deep dermis",
    "subdermal / subcutaneous",
    "supraperiosteal",
    "topical (microneedling channels)",
)
#: Common reaction terms; the red-flag ones come from ``records.RED_FLAG_TERMS``.
EXPECTED_TERMS: tuple[str, ...] = (
    "erythema",
    "oedema",
    "bruising",
    "pain_at_injection",
    "itching",
    "papules",
    "tenderness",
    "headache",
    "shedding",
)
ADVERSE_TERMS: tuple[str, ...] = (
    "nodules",
    "infection",
    "hypersensitivity",
    "prolonged_oedema",
    "hyperpigmentation",
    "granuloma",
    "tyndall_effect",
)


def area_of(target_area: str) -> str:
    """``"scalp"`` for scalp/hair protocols, else ``"face"``."""
    text = target_area.lower()
    return "scalp" if "scalp" in text or "hair" in text else "face"


@dataclass(frozen=True)
class EndpointField:
    """One endpoint of the protocol as the endpoints form shows it."""

    code: str
    name: str
    kind: str
    unit: str | None
    scale_min: float | None
    scale_max: float | None
    anchors: dict[str, str]
    patient_reported: bool

    def options(self) -> list[int]:
        """Whole-number choices of an ordinal scale (empty for other kinds)."""
        if self.kind != "ordinal" or self.scale_min is None or self.scale_max is None:
            return []
        return list(range(int(self.scale_min), int(self.scale_max) + 1))

    def label_for(self, value: int) -> str:
        """``"4 – Moderate"`` using the anchor text when the scale point has one."""
        anchor = self.anchors.get(str(value)) or self.anchors.get(f"{float(value):g}")
        return f"{value} – {anchor}" if anchor else str(value)


@dataclass(frozen=True)
class VisitContext:
    session_id: int
    series_id: int
    number: int
    performed_on: date
    area: str
    endpoints: tuple[EndpointField, ...]
    operators: tuple[tuple[int, str], ...]
    treatments: pd.DataFrame
    measurements: pd.DataFrame
    reactions: pd.DataFrame


def visit_context(session: DbSession, actor: Actor, *, session_id: int) -> VisitContext:
    """The session's protocol endpoints, the clinic's operators and what is already recorded."""
    require(actor, "series.read", session)
    visit = session.get(Session, session_id)
    if visit is None:
        raise records.FieldError("session_id", f"no session with id {session_id}")
    protocol = visit.series.protocol
    codes = list(protocol.endpoint_codes or [])
    defs = {
        d.code: d
        for d in session.scalars(
            select(EndpointDefinition).where(EndpointDefinition.code.in_(codes))
        )
    }
    endpoints = tuple(
        EndpointField(
            code=d.code,
            name=d.name,
            kind=d.kind,
            unit=d.unit,
            scale_min=d.scale_min,
            scale_max=d.scale_max,
            anchors={str(k): str(v) for k, v in (d.anchors or {}).items()},
            patient_reported=bool(d.patient_reported),
        )
        for d in (defs[c] for c in codes if c in defs)
    )
    operators = tuple(
        (int(i), str(n))
        for i, n in session.execute(
            select(User.id, User.display_name)
            .where(User.role.in_(sorted(CLINICAL)), User.active.is_(True))
            .order_by(User.display_name)
        )
    )
    treatments = pd.DataFrame(
        [
            (
                t.lot.product,
                t.lot.lot_number,
                t.lot.expiry_on,
                ", ".join(t.sites),
                t.depth_intent,
                t.volume_ml,
                t.units,
                t.expired_at_use,
                t.override_reason,
            )
            for t in visit.treatments
        ],
        columns=[
            "product",
            "lot",
            "expiry",
            "sites",
            "depth",
            "volume_ml",
            "units",
            "expired_at_use",
            "override_reason",
        ],
    )
    measurements = pd.DataFrame(
        [
            (m.endpoint.name, m.value_num, m.value_text, m.site, m.rated_by_patient)
            for m in visit.measurements
        ],
        columns=["endpoint", "value", "text", "site", "rated_by_patient"],
    )
    reactions = pd.DataFrame(
        [
            (
                r.kind,
                r.term.replace("_", " "),
                r.severity,
                r.onset_day,
                r.duration_days,
                r.resolved,
                r.red_flag,
                r.escalation,
            )
            for r in visit.reactions
        ],
        columns=[
            "kind",
            "term",
            "severity",
            "onset_day",
            "duration_days",
            "resolved",
            "red_flag",
            "escalation",
        ],
    )
    return VisitContext(
        session_id=visit.id,
        series_id=visit.series_id,
        number=visit.number,
        performed_on=visit.performed_on,
        area=area_of(protocol.target_area),
        endpoints=endpoints,
        operators=operators,
        treatments=treatments,
        measurements=measurements,
        reactions=reactions,
    )


@dataclass(frozen=True)
class EndpointEntry:
    """One value typed into the endpoints form (``value`` for numeric/ordinal/count, ``text``)."""

    value: float | None = None
    text: str = ""
    site: str = ""
    rated_by_patient: bool = False

    @property
    def empty(self) -> bool:
        return self.value is None and not self.text.strip()


def record_endpoints(
    session: DbSession,
    actor: Actor,
    *,
    session_id: int,
    entries: dict[str, EndpointEntry],
    site_required: frozenset[str] = frozenset(),
) -> int:
    """Record every non-empty entry; returns how many were recorded.

    Raises ``records.FieldError`` (field = the endpoint code) for the first bad value; the caller's
    transaction then rolls back, so nothing of the form is half-saved. Endpoints in
    ``site_required`` (e.g. hair density per cm²) need the named site.
    """
    require(actor, "visit.record", session)
    filled = {code: e for code, e in entries.items() if not e.empty}
    if not filled:
        raise records.FieldError("endpoints", "enter at least one value")
    for code, entry in filled.items():
        if code in site_required and not entry.site.strip():
            raise records.FieldError(code, "name the site where it was measured (e.g. vertex)")
        records.record_measurement(
            session,
            actor,
            session_id=session_id,
            endpoint_code=code,
            value=entry.value,
            text=entry.text,
            site=entry.site.strip(),
            rated_by_patient=entry.rated_by_patient,
            rater_id=None if entry.rated_by_patient else actor.user_id,
        )
    return len(filled)


def needs_site(field: EndpointField) -> bool:
    """Endpoints measured at a named site (hair density/counts per cm²)."""
    text = f"{field.code} {field.name} {field.unit or ''}".lower()
    return "density" in text and field.kind != "text"


def red_flag(term: str) -> bool:
    return term.strip().lower().replace(" ", "_") in records.RED_FLAG_TERMS


def reaction_terms(kind: str) -> list[str]:
    base = EXPECTED_TERMS if kind == "expected" else ADVERSE_TERMS
    return list(base) + sorted(records.RED_FLAG_TERMS)


def describe(value: Any) -> str:
    return str(value).replace("_", " ")
