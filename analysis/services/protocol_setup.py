"""The Protocol setup service: the medical director defines protocols, their photo standard and
the endpoints they record.

A protocol says what is done (modality, target area), how often (planned sessions, interval), which
photo views every session needs, which endpoints are recorded (and which one is primary), and how
strict the photo comparability check is for it: any of the :class:`~analysis.photos.compare.Tolerances`
can be overridden; what is not overridden keeps the default. Changes apply to photos graded from then
on; photos already stored keep the verdict they were saved with.

Validation raises ``records.FieldError`` naming the form field; every save writes one audit event
(``protocol.create`` / ``protocol.update``) listing the fields that changed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session as DbSession

from analysis.errors import FieldError
from analysis.outcomes.endpoints import expected_change
from analysis.photos.compare import Tolerances
from analysis.photos.types import ALL_VIEWS
from analysis.store import audit
from analysis.store.access import Actor, require
from analysis.store.models import ENDPOINT_KINDS as ENDPOINT_KINDS  # re-exported for the page
from analysis.store.models import (
    EndpointDefinition,
    EndpointMeasurement,
    Protocol,
    Series,
    utcnow,
)

MAX_SESSIONS = 30
MAX_INTERVAL_DAYS = 180
_DEFAULTS = Tolerances()

#: What each tolerance means, for the setup table (units in brackets).
TOLERANCE_HELP: dict[str, str] = {
    "yaw_warn_deg": "Head turn change, warn [deg]",
    "yaw_fail_deg": "Head turn change, fail [deg]",
    "pitch_warn_deg": "Head tilt up/down change, warn [deg]",
    "pitch_fail_deg": "Head tilt up/down change, fail [deg]",
    "roll_warn_deg": "Head roll change, warn [deg]",
    "roll_fail_deg": "Head roll change, fail [deg]",
    "distance_warn_pct": "Camera distance change, warn [%]",
    "distance_fail_pct": "Camera distance change, fail [%]",
    "framing_warn_frac": "Subject moved in the frame, warn [share of frame]",
    "framing_fail_frac": "Subject moved in the frame, fail [share of frame]",
    "scalp_rotation_warn_deg": "Scalp photo rotation, warn [deg]",
    "scalp_rotation_fail_deg": "Scalp photo rotation, fail [deg]",
    "exposure_warn_dl": "Exposure change, warn [delta L*]",
    "exposure_fail_dl": "Exposure change, fail [delta L*]",
    "clipped_warn_share": "More clipped skin, warn [share]",
    "clipped_fail_share": "More clipped skin, fail [share]",
    "color_warn_de": "White balance change, warn [CIEDE2000]",
    "color_fail_de": "White balance change, fail [CIEDE2000]",
    "light_side_warn": "Light direction change, warn [light_side units]",
    "light_side_fail": "Light direction change, fail [light_side units]",
    "lighting_min_exposure_l": "Darker than this, light direction not judged [L*]",
    "eye_open_warn": "Eye opening change, warn [eye aspect ratio]",
    "eye_open_fail": "Eye opening change, fail [eye aspect ratio]",
    "mouth_open_warn": "Mouth opening change, warn [share of mouth width]",
    "mouth_open_fail": "Mouth opening change, fail [share of mouth width]",
    "smile_warn": "Smile change, warn [share of mouth width]",
    "smile_fail": "Smile change, fail [share of mouth width]",
    "sharpness_warn_ratio": "Sharpness vs baseline below, warn [ratio]",
    "sharpness_fail_ratio": "Sharpness vs baseline below, fail [ratio]",
    "resolution_warn_ratio": "Pixels across the face vs baseline below, warn [ratio]",
    "resolution_fail_ratio": "Pixels across the face vs baseline below, fail [ratio]",
    "min_ipd_px": "Fewest pixels between the pupils [px]",
}


@dataclass(frozen=True)
class ProtocolForm:
    """A protocol as the setup form edits it (``protocol_id`` None = a new protocol)."""

    protocol_id: int | None = None
    name: str = ""
    modality: str = ""
    target_area: str = ""
    planned_sessions: int | None = None
    interval_days: int | None = None
    required_views: tuple[str, ...] = ()
    endpoint_codes: tuple[str, ...] = ()
    primary_endpoint: str | None = None
    tolerances: Mapping[str, float] = field(default_factory=dict)
    description: str = ""
    series_count: int = 0
    #: endpoint code -> {session number: expected change from baseline} (charts' reference lines)
    expected_course: Mapping[str, Mapping[int, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class ToleranceRow:
    name: str
    meaning: str
    default: float
    override: float | None


def protocol_choices(session: DbSession, actor: Actor) -> list[tuple[int, str]]:
    require(actor, "protocol.write", session)
    return [
        (int(i), str(n))
        for i, n in session.execute(
            select(Protocol.id, Protocol.name).order_by(Protocol.name)
        ).all()
    ]


def endpoint_choices(
    session: DbSession, actor: Actor, *, keep: Sequence[str] = ()
) -> list[tuple[str, str]]:
    """``(code, label)`` of every endpoint a protocol may list, by name: the endpoints in use
    plus ``keep`` (a protocol's own endpoints stay choosable after they are retired)."""
    require(actor, "protocol.write", session)
    rows = session.scalars(select(EndpointDefinition).order_by(EndpointDefinition.name)).all()
    return [
        (
            e.code,
            e.name
            + (f" ({e.unit})" if e.unit else "")
            + (" · retired" if e.retired_at is not None else ""),
        )
        for e in rows
        if e.retired_at is None or e.code in keep
    ]


def protocol_form(session: DbSession, actor: Actor, *, protocol_id: int | None) -> ProtocolForm:
    """The stored protocol as a form, or an empty form when ``protocol_id`` is None."""
    require(actor, "protocol.write", session)
    if protocol_id is None:
        return ProtocolForm()
    p = session.get(Protocol, protocol_id)
    if p is None:
        raise FieldError("protocol_id", f"no protocol with id {protocol_id}")
    return ProtocolForm(
        protocol_id=p.id,
        name=p.name,
        modality=p.modality,
        target_area=p.target_area,
        planned_sessions=p.planned_sessions,
        interval_days=p.interval_days,
        required_views=tuple(p.required_views or ()),
        endpoint_codes=tuple(p.endpoint_codes or ()),
        primary_endpoint=p.primary_endpoint,
        tolerances=dict(p.tolerances or {}),
        description=p.description or "",
        series_count=session.scalar(select(func.count(Series.id)).where(Series.protocol_id == p.id))
        or 0,
        expected_course={
            code: expected_change(p.expected_course, endpoint_code=code)
            for code in (p.expected_course or {})
        },
    )


def tolerance_rows(overrides: Mapping[str, Any] | None) -> list[ToleranceRow]:
    """Every tolerance with its meaning, default and this protocol's override (None = default)."""
    overrides = dict(overrides or {})
    return [
        ToleranceRow(
            f.name,
            TOLERANCE_HELP.get(f.name, f.name),
            float(getattr(_DEFAULTS, f.name)),
            None if overrides.get(f.name) is None else float(overrides[f.name]),
        )
        for f in fields(Tolerances)
    ]


def clean_overrides(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Overrides from edited table rows (``name``, ``override``): blanks and defaults dropped.

    Raises ``FieldError('tolerances')`` when a value is not a number or the set is inconsistent
    (:class:`Tolerances` says which).
    """
    known = {f.name for f in fields(Tolerances)}
    out: dict[str, float] = {}
    for row in rows:
        name, value = row.get("name"), row.get("override")
        if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
            continue
        if name not in known:
            raise FieldError("tolerances", f"unknown tolerance {name!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise FieldError("tolerances", f"{name}: {value!r} is not a number") from None
        if number != float(getattr(_DEFAULTS, str(name))):
            out[str(name)] = number
    try:
        Tolerances.from_dict(out)
    except ValueError as exc:
        raise FieldError("tolerances", str(exc)) from None
    return out


def course_rows(form: ProtocolForm) -> list[dict[str, Any]]:
    """One row per endpoint of the protocol: ``endpoint`` and ``s2`` ... ``sN`` (None = no line)."""
    n = form.planned_sessions or 0
    return [
        {
            "endpoint": code,
            **{f"s{k}": (form.expected_course.get(code) or {}).get(k) for k in range(2, n + 1)},
        }
        for code in form.endpoint_codes
    ]


def course_from_rows(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[int, float]]:
    """Inverse of :func:`course_rows`: blanks (None, NaN) dropped."""
    out: dict[str, dict[int, float]] = {}
    for row in rows:
        for key, value in row.items():
            if not str(key).startswith("s") or value is None or value == "":
                continue
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise FieldError(
                    "expected_course",
                    f"{row.get('endpoint')}, session {str(key)[1:]}: {value!r} is not a number",
                ) from None
            if not math.isnan(number):
                out.setdefault(str(row["endpoint"]), {})[int(str(key)[1:])] = number
    return out


def _clean_course(
    course: Mapping[str, Mapping[int, float]], *, codes: Sequence[str], sessions: int
) -> dict[str, dict[str, float]]:
    """Validated expected course as stored (session numbers as JSON keys)."""
    out: dict[str, dict[str, float]] = {}
    for code, by_session in course.items():
        if code not in codes:
            continue  # an endpoint taken off the protocol takes its course with it
        for k, v in by_session.items():
            if not 2 <= int(k) <= sessions:
                raise FieldError(
                    "expected_course", f"{code}: session {k} is outside sessions 2 to {sessions}"
                )
            if not math.isfinite(float(v)):
                raise FieldError("expected_course", f"{code}, session {k}: not a number")
            out.setdefault(code, {})[str(int(k))] = float(v)
    return out


def save_protocol(session: DbSession, actor: Actor, form: ProtocolForm) -> int:
    """Create or update the protocol; returns its id. Validation errors name the field."""
    require(actor, "protocol.write", session)
    name, modality, area = form.name.strip(), form.modality.strip(), form.target_area.strip()
    for value, key, what, limit in (
        (name, "name", "a name", 160),
        (modality, "modality", "the modality", 64),
        (area, "target_area", "the target area", 64),
    ):
        if not value:
            raise FieldError(key, f"enter {what}")
        if len(value) > limit:
            raise FieldError(key, f"at most {limit} characters")
    clash = session.scalar(select(Protocol.id).where(Protocol.name == name))
    if clash is not None and clash != form.protocol_id:
        raise FieldError("name", f"a protocol named {name!r} already exists")
    if form.planned_sessions is None or not 1 <= int(form.planned_sessions) <= MAX_SESSIONS:
        raise FieldError("planned_sessions", f"between 1 and {MAX_SESSIONS} sessions")
    if form.interval_days is None or not 1 <= int(form.interval_days) <= MAX_INTERVAL_DAYS:
        raise FieldError("interval_days", f"between 1 and {MAX_INTERVAL_DAYS} days")
    views = list(dict.fromkeys(form.required_views))
    if not views:
        raise FieldError("required_views", "choose at least one photo view every session needs")
    if bad := [v for v in views if v not in ALL_VIEWS]:
        raise FieldError("required_views", f"unknown view(s): {', '.join(bad)}")
    codes = list(dict.fromkeys(form.endpoint_codes))
    known = set(session.scalars(select(EndpointDefinition.code)))
    if bad := [c for c in codes if c not in known]:
        raise FieldError("endpoint_codes", f"unknown endpoint(s): {', '.join(bad)}")
    had = (
        set()
        if form.protocol_id is None
        else set((session.get(Protocol, form.protocol_id) or Protocol()).endpoint_codes or [])
    )
    retired = set(
        session.scalars(
            select(EndpointDefinition.code).where(EndpointDefinition.retired_at.is_not(None))
        )
    )
    if bad := [c for c in codes if c in retired and c not in had]:
        raise FieldError("endpoint_codes", f"retired endpoint(s) cannot be added: {', '.join(bad)}")
    primary = form.primary_endpoint or None
    if primary is not None and primary not in codes:
        raise FieldError("primary_endpoint", "the primary endpoint must be one of the endpoints")
    try:
        Tolerances.from_dict(form.tolerances)
    except ValueError as exc:
        raise FieldError("tolerances", str(exc)) from None
    course = _clean_course(form.expected_course, codes=codes, sessions=int(form.planned_sessions))
    values: dict[str, Any] = {
        "name": name,
        "modality": modality,
        "target_area": area,
        "planned_sessions": int(form.planned_sessions),
        "interval_days": int(form.interval_days),
        "required_views": views,
        "endpoint_codes": codes,
        "primary_endpoint": primary,
        "tolerances": {k: float(v) for k, v in form.tolerances.items()},
        "description": form.description.strip(),
        "expected_course": course,
    }
    protocol: Protocol | None
    if form.protocol_id is None:
        protocol = Protocol(**values)
        session.add(protocol)
        session.flush()
        audit.record(
            session,
            actor,
            "protocol.create",
            object_type="protocol",
            object_id=protocol.id,
            details={"name": name},
        )
        return protocol.id
    protocol = session.get(Protocol, form.protocol_id)
    if protocol is None:
        raise FieldError("protocol_id", f"no protocol with id {form.protocol_id}")
    changed = sorted(k for k, v in values.items() if getattr(protocol, k) != v)
    for key in changed:
        setattr(protocol, key, values[key])
    session.flush()
    if changed:
        audit.record(
            session,
            actor,
            "protocol.update",
            object_type="protocol",
            object_id=protocol.id,
            details={"changed": changed},
        )
    return protocol.id


# --- endpoints ------------------------------------------------------------------------------------

_CODE = re.compile(r"^[a-z][a-z0-9_]{1,63}$")


@dataclass(frozen=True)
class EndpointForm:
    """A new endpoint definition (see ``EndpointDefinition`` for the meaning of each field)."""

    code: str = ""
    name: str = ""
    kind: str | None = None
    unit: str = ""
    scale_min: float | None = None
    scale_max: float | None = None
    higher_is_better: bool = True
    mcid: float | None = None
    noise_sd: float | None = None
    neutral: float | None = None
    patient_reported: bool = False


def endpoint_table(session: DbSession, actor: Actor) -> list[dict[str, Any]]:
    """Every endpoint definition as a row for the setup page, with how many values are recorded
    on it (one aggregate query) and whether it is retired."""
    require(actor, "protocol.write", session)
    rows = session.scalars(select(EndpointDefinition).order_by(EndpointDefinition.name)).all()
    counts = _value_counts(session)
    return [
        {
            "code": e.code,
            "name": e.name,
            "kind": e.kind,
            "unit": e.unit or "",
            "scale": "" if e.scale_min is None else f"{e.scale_min:g} to {e.scale_max:g}",
            "better": "higher" if e.higher_is_better else "lower",
            "mcid": e.mcid,
            "rated_against_baseline": e.neutral is not None,
            "patient_reported": bool(e.patient_reported),
            "values": counts.get(e.id, 0),
            "retired": e.retired_at is not None,
        }
        for e in rows
    ]


def _value_counts(session: DbSession, endpoint_id: int | None = None) -> dict[int, int]:
    stmt = select(EndpointMeasurement.endpoint_id, func.count()).group_by(
        EndpointMeasurement.endpoint_id
    )
    if endpoint_id is not None:
        stmt = stmt.where(EndpointMeasurement.endpoint_id == endpoint_id)
    return {int(i): int(n) for i, n in session.execute(stmt).all()}


def missing_standard_endpoints(session: DbSession, actor: Actor) -> list[str]:
    """Names of the standard library's endpoints this clinic does not have yet (by code)."""
    from analysis.outcomes.endpoint_library import ENDPOINTS

    require(actor, "protocol.write", session)
    have = set(session.scalars(select(EndpointDefinition.code)))
    return [e.name for e in ENDPOINTS if e.code not in have]


def add_standard_endpoints(session: DbSession, actor: Actor) -> int:
    """Add the standard library's missing endpoints; returns how many were added.

    The library is the published scales the demo clinic uses too (GAIS, Sinclair shedding,
    Hamilton-Norwood, Ludwig, a 7-point global photographic score, hair density, pull test,
    hydration, elasticity, satisfaction), with their anchors, MCIDs and repeatability.
    """
    from analysis.outcomes.endpoint_library import ENDPOINTS

    require(actor, "protocol.write", session)
    have = set(session.scalars(select(EndpointDefinition.code)))
    added = [e for e in ENDPOINTS if e.code not in have]
    for e in added:
        session.add(EndpointDefinition(**e.row()))
    session.flush()
    if added:
        audit.record(
            session,
            actor,
            "endpoint.create",
            object_type="endpoint",
            details={"codes": [e.code for e in added], "source": "standard library"},
        )
    return len(added)


def _checked(form: EndpointForm) -> dict[str, Any]:
    """The definition's columns from ``form`` (all but the code), or ``FieldError`` naming the field."""
    name, unit = form.name.strip(), form.unit.strip()
    if not name or len(name) > 160:
        raise FieldError("name", "enter a name (at most 160 characters)")
    if form.kind not in ENDPOINT_KINDS:
        raise FieldError("kind", f"choose one of {', '.join(ENDPOINT_KINDS)}")
    if len(unit) > 32:
        raise FieldError("unit", "at most 32 characters")
    low, high = form.scale_min, form.scale_max
    if form.kind == "text":
        if any(v is not None for v in (low, high, form.mcid, form.noise_sd, form.neutral)):
            raise FieldError("kind", "a text endpoint has no scale, MCID, noise or anchor")
    elif form.kind == "ordinal" and (low is None or high is None):
        raise FieldError("scale_min", "an ordinal scale needs its lowest and highest point")
    if (low is None) != (high is None):
        raise FieldError("scale_max", "give both ends of the scale, or neither")
    if low is not None and high is not None and not low < high:
        raise FieldError("scale_max", "the highest point must be above the lowest")
    for value, key in ((form.mcid, "mcid"), (form.noise_sd, "noise_sd")):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise FieldError(key, "must be a positive number (or left empty)")
    if form.neutral is not None:
        if form.mcid is None:
            raise FieldError(
                "mcid",
                "a rating against baseline needs its MCID (the step from "
                "'no change' that counts as a response)",
            )
        if low is not None and high is not None and not low <= form.neutral <= high:
            raise FieldError("neutral", "the 'no change' point must lie on the scale")
    return dict(
        name=name,
        kind=form.kind,
        unit=unit or None,
        scale_min=low,
        scale_max=high,
        higher_is_better=bool(form.higher_is_better),
        mcid=form.mcid,
        noise_sd=form.noise_sd,
        neutral=form.neutral,
        patient_reported=bool(form.patient_reported),
    )


def save_endpoint(session: DbSession, actor: Actor, form: EndpointForm) -> str:
    """Create an endpoint definition; returns its code. Validation errors name the field."""
    require(actor, "protocol.write", session)
    code = form.code.strip()
    if not _CODE.match(code):
        raise FieldError(
            "code",
            "2-64 characters: lower-case letters, digits and _, "
            "starting with a letter (e.g. wrinkle_grade)",
        )
    if session.scalar(select(EndpointDefinition.id).where(EndpointDefinition.code == code)):
        raise FieldError("code", f"an endpoint with code {code!r} already exists")
    session.add(EndpointDefinition(code=code, **_checked(form)))
    session.flush()
    audit.record(
        session,
        actor,
        "endpoint.create",
        object_type="endpoint",
        object_id=code,
        details={"codes": [code]},
    )
    return code


#: What recorded values are measured on: once a value exists these cannot change (retire the
#: definition and add a new one instead), so no value silently changes meaning.
SCALE_FIELDS = ("kind", "unit", "scale_min", "scale_max", "higher_is_better", "neutral")


def _definition(session: DbSession, code: str) -> EndpointDefinition:
    found = session.scalar(select(EndpointDefinition).where(EndpointDefinition.code == code))
    if found is None:
        raise FieldError("code", f"no endpoint with code {code!r}")
    return found


def endpoint_form(session: DbSession, actor: Actor, *, code: str) -> EndpointForm:
    """The stored definition of ``code`` as a form to edit."""
    require(actor, "protocol.write", session)
    e = _definition(session, code)
    return EndpointForm(
        code=e.code,
        name=e.name,
        kind=e.kind,
        unit=e.unit or "",
        scale_min=e.scale_min,
        scale_max=e.scale_max,
        higher_is_better=bool(e.higher_is_better),
        mcid=e.mcid,
        noise_sd=e.noise_sd,
        neutral=e.neutral,
        patient_reported=bool(e.patient_reported),
    )


def update_endpoint(session: DbSession, actor: Actor, form: EndpointForm) -> list[str]:
    """Edit the definition ``form.code`` (the code itself never changes); returns the fields that
    changed. Name, MCID, noise SD and patient-reported can always be edited; the scale
    (:data:`SCALE_FIELDS`) only while no value is recorded on it. Audited with old and new values."""
    require(actor, "protocol.write", session)
    e = _definition(session, form.code.strip())
    new = _checked(form)
    changed = {k: [getattr(e, k), v] for k, v in new.items() if getattr(e, k) != v}
    if not changed:
        return []
    values = _value_counts(session, e.id).get(e.id, 0)
    locked = [k for k in SCALE_FIELDS if k in changed]
    if values and locked:
        raise FieldError(
            locked[0],
            f"{values} value(s) are recorded on this scale, so its "
            f"{locked[0].replace('_', ' ')} cannot change; retire this "
            "endpoint and add a new one instead",
        )
    for key, (_, value) in changed.items():
        setattr(e, key, value)
    session.flush()
    audit.record(
        session,
        actor,
        "endpoint.update",
        object_type="endpoint",
        object_id=e.code,
        details={"changed": changed},
    )
    return sorted(changed)


def retire_endpoint(session: DbSession, actor: Actor, *, code: str, retired: bool = True) -> bool:
    """Retire (or, with ``retired=False``, reinstate) an endpoint definition; returns whether
    anything changed. A retired endpoint is no longer offered for protocols; its values, charts
    and exports stay. Refused while a protocol lists it (remove it from those protocols first, so
    no protocol asks for a measure nobody may choose). Audited."""
    require(actor, "protocol.write", session)
    e = _definition(session, code)
    if (e.retired_at is not None) == retired:
        return False
    if retired:
        users = [
            p.name
            for p in session.scalars(select(Protocol).order_by(Protocol.name))
            if e.code in (p.endpoint_codes or []) or p.primary_endpoint == e.code
        ]
        if users:
            raise FieldError(
                "code",
                f"{', '.join(users)} still list(s) {e.name}; remove it from those protocols first",
            )
    e.retired_at = utcnow() if retired else None
    session.flush()
    audit.record(
        session,
        actor,
        "endpoint.retire" if retired else "endpoint.reinstate",
        object_type="endpoint",
        object_id=e.code,
    )
    return True
