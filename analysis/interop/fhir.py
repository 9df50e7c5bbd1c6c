"""A series as a FHIR R4 Bundle (type ``collection``), built and validated with ``fhir.resources``
R4B models (R4B shares R4's resources used here).

Contents, all linked by ``urn:uuid:`` full URLs that resolve inside the bundle:

* ``Patient``: the pseudonymous code as identifier, gender, birth year only.
* ``Consent``: one per consent record (scope), ``inactive`` with the period's end once withdrawn.
* ``Practitioner``: one per operator or rater named on the record (display name only).
* ``Medication``: one per product lot used (lot number and expiry in ``batch``).
* ``Procedure``: one per treatment session (products via ``usedReference``, sites, operator).
* ``Observation``: one per endpoint value (``final``); one per expected reaction (``final``);
  one comparability verdict per photo (``preliminary``: machine-derived), ``derivedFrom`` its Media.
* ``AdverseEvent``: one per adverse event, suspect entity the session's Procedure.
* ``Media``: one per photo the export's consent scope allows (the pixels are not embedded; the
  DICOM export carries them).
* ``CodeSystem``: the Candor code systems used (endpoints, reactions, verdicts, consent scopes),
  with their definitions, so a receiver can read every Candor code.

No LOINC or SNOMED CT code is claimed for Candor's endpoints: the published scales they follow
(GAIS, Sinclair, phototrichogram density) have none we could verify, so they are coded in the
Candor endpoint CodeSystem and each concept's definition says what it measures. Units are UCUM
where the unit maps (:data:`UCUM`), otherwise a unit text only.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from analysis.interop import snapshot as snap

CANDOR = "https://candor.invalid/fhir"
CS_ENDPOINT = f"{CANDOR}/CodeSystem/endpoint"
CS_REACTION = f"{CANDOR}/CodeSystem/reaction"
CS_VERDICT = f"{CANDOR}/CodeSystem/photo-comparability"
CS_SCOPE = f"{CANDOR}/CodeSystem/consent-scope"
CS_OBSERVATION = f"{CANDOR}/CodeSystem/observation"
EXT_BLINDED = f"{CANDOR}/StructureDefinition/blinded-rating"
ID_PATIENT = f"{CANDOR}/sid/patient-code"
UCUM_SYSTEM = "http://unitsofmeasure.org"

#: Candor unit text -> UCUM code.
UCUM: dict[str, str] = {
    "hairs/cm²": "/cm2",
    "hairs/cm2": "/cm2",
    "/cm2": "/cm2",
    "hairs": "{hairs}",
    "mm": "mm",
    "µm": "um",
    "um": "um",
    "%": "%",
    "AU": "[arb'U]",
    "ratio": "1",
    "0-10": "{score}",
    "mL": "mL",
    "ml": "mL",
}
VERDICTS = {
    "baseline": ("Baseline", "The series' reference photo; later photos are compared with it."),
    "pass": (
        "Comparable",
        "Pose, distance, lighting, expression and sharpness within the "
        "protocol's tolerances of the baseline.",
    ),
    "warn": ("Comparable with caution", "At least one check is near its tolerance."),
    "fail": (
        "Not comparable",
        "At least one check is outside the protocol's tolerance; an "
        "apparent change may be the photo's, not the patient's.",
    ),
}
SCOPES = {
    "clinical_record": "Photos may be taken and kept in the clinical record.",
    "consult_display": "Anonymised photos may be shown to prospective patients.",
    "teaching": "Photos may be used for teaching.",
    "marketing": "Photos may be used for marketing.",
}
SEVERITY = "http://terminology.hl7.org/CodeSystem/adverse-event-severity"
AE_OUTCOME = "http://terminology.hl7.org/CodeSystem/adverse-event-outcome"
_NS = uuid.UUID("5b7f3e0c-7f1e-4c38-9a31-4c1f8d0a6e21")


def _uid(*parts: object) -> str:
    return f"urn:uuid:{uuid.uuid5(_NS, '/'.join(str(p) for p in parts))}"


def _ref(url: str) -> dict[str, str]:
    return {"reference": url}


def _dt(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds")


def _day(d: date) -> str:
    return datetime.combine(d, time(12, 0), tzinfo=UTC).isoformat(timespec="seconds")


def _quantity(value: float, unit: str | None) -> dict[str, Any]:
    q: dict[str, Any] = {"value": value}
    if unit:
        q["unit"] = unit
        if unit in UCUM:
            q.update(system=UCUM_SYSTEM, code=UCUM[unit])
    return q


def _codesystem(
    url: str, name: str, title: str, concepts: Iterable[tuple[str, str, str]]
) -> dict[str, Any]:
    items = [{"code": c, "display": d, "definition": defn} for c, d, defn in concepts]
    return {
        "resourceType": "CodeSystem",
        "url": url,
        "name": name,
        "title": title,
        "status": "active",
        "content": "fragment" if url in (CS_ENDPOINT, CS_REACTION) else "complete",
        "caseSensitive": True,
        "concept": items,
    }


def _endpoint_definition(m: snap.MeasurementInfo) -> str:
    unit = f", unit {m.unit}" if m.unit else ""
    return f"{m.endpoint_name} ({m.kind}{unit}); defined in the clinic's endpoint library."


def series_bundle(info: snap.SeriesInfo) -> dict[str, Any]:
    """The FHIR Bundle of one series as JSON-ready dict, validated by the R4B models."""
    return patient_bundle([info], identifier=("series", str(info.series_id)))


def patient_bundle(
    infos: list[snap.SeriesInfo], *, identifier: tuple[str, str] | None = None
) -> dict[str, Any]:
    """One Bundle for series of the same patient (their Patient and Consents once), validated by
    the R4B models."""
    if not infos:
        raise ValueError("a bundle needs at least one series")
    if len({i.patient.patient_id for i in infos}) != 1:
        raise ValueError("a patient bundle holds the series of one patient")
    info = infos[0]
    entries: list[dict[str, Any]] = []

    def add(url: str, resource: dict[str, Any]) -> str:
        entries.append({"fullUrl": url, "resource": resource})
        return url

    p = info.patient
    patient_url = add(
        _uid("patient", p.patient_id),
        {
            "resourceType": "Patient",
            "identifier": [{"system": ID_PATIENT, "value": p.code}],
            "gender": {"female": "female", "male": "male", "other": "other"}.get(p.sex, "unknown"),
            "birthDate": f"{p.birth_year:04d}",
        },
    )
    for c in p.consents:
        provision: dict[str, Any] = {
            "type": "permit",
            "period": {"start": _dt(c.given_at)},
            "purpose": [{"system": CS_SCOPE, "code": c.scope}],
        }
        if c.withdrawn_at:
            provision["period"]["end"] = _dt(c.withdrawn_at)
        add(
            _uid("consent", c.consent_id),
            {
                "resourceType": "Consent",
                "status": "inactive" if c.withdrawn_at else "active",
                "scope": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                            "code": "patient-privacy",
                        }
                    ]
                },
                "category": [
                    {
                        "coding": [
                            {
                                "system": "http://loinc.org",
                                "code": "59284-0",
                                "display": "Patient Consent",
                            }
                        ]
                    }
                ],
                "patient": _ref(patient_url),
                "dateTime": _dt(c.given_at),
                "policyRule": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                            "code": "OPTIN",
                        }
                    ]
                },
                "provision": provision,
            },
        )

    people: dict[str, str] = {}

    def practitioner(name: str) -> str | None:
        if not name:
            return None
        if name not in people:
            people[name] = add(
                _uid("practitioner", name),
                {"resourceType": "Practitioner", "name": [{"text": name}]},
            )
        return people[name]

    lots: dict[tuple[str, str], str] = {}
    endpoint_concepts: dict[str, tuple[str, str, str]] = {}
    reaction_concepts: dict[str, tuple[str, str, str]] = {}
    for info in infos:
        for v in info.sessions:
            used = []
            for t in v.treatments:
                key = (t.product, t.lot_number)
                if key not in lots:
                    lots[key] = add(
                        _uid("lot", *key),
                        {
                            "resourceType": "Medication",
                            "code": {"text": t.product},
                            "batch": {
                                "lotNumber": t.lot_number,
                                "expirationDate": _day(t.expiry_on),
                            },
                        },
                    )
                used.append(_ref(lots[key]))
            sites = sorted({s for t in v.treatments for s in t.sites})
            operator = practitioner(
                v.operator or next((t.operator for t in v.treatments if t.operator), "")
            )
            notes = [
                f"{t.product} lot {t.lot_number} (expires {t.expiry_on.isoformat()})"
                + (f", {t.volume_ml:g} mL" if t.volume_ml is not None else "")
                + (f", {t.units:g} units" if t.units is not None else "")
                + (", lot past expiry at use" if t.expired_at_use else "")
                for t in v.treatments
            ]
            procedure: dict[str, Any] = {
                "resourceType": "Procedure",
                "status": "completed",
                "code": {"text": f"{info.modality} ({info.protocol_name}), session {v.number}"},
                "subject": _ref(patient_url),
                "performedDateTime": v.performed_on.isoformat(),
            }
            if used:
                procedure["usedReference"] = used
            if sites:
                procedure["bodySite"] = [{"text": s} for s in sites]
            if operator:
                procedure["performer"] = [{"actor": _ref(operator)}]
            if notes:
                procedure["note"] = [{"text": n} for n in notes]
            procedure_url = add(_uid("session", v.session_id), procedure)

            for m in v.measurements:
                endpoint_concepts[m.endpoint_code] = (
                    m.endpoint_code,
                    m.endpoint_name,
                    _endpoint_definition(m),
                )
                obs: dict[str, Any] = {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {
                        "coding": [
                            {
                                "system": CS_ENDPOINT,
                                "code": m.endpoint_code,
                                "display": m.endpoint_name,
                            }
                        ]
                    },
                    "subject": _ref(patient_url),
                    "partOf": [_ref(procedure_url)],
                    "effectiveDateTime": _dt(m.measured_at),
                    "extension": [{"url": EXT_BLINDED, "valueBoolean": m.blinded}],
                }
                if m.kind == "text" or m.value_num is None:
                    obs["valueString"] = m.value_text or "(empty)"
                elif m.kind in ("ordinal", "count") and not m.unit:
                    obs["valueInteger"] = int(m.value_num)
                else:
                    obs["valueQuantity"] = _quantity(float(m.value_num), m.unit)
                if m.site:
                    obs["bodySite"] = {"text": m.site}
                who = patient_url if m.rated_by_patient else practitioner(m.rater)
                if who:
                    obs["performer"] = [_ref(who)]
                add(_uid("measurement", m.measurement_id), obs)

            for r in v.reactions:
                when = _day(v.performed_on + timedelta(days=r.onset_day))
                if r.kind == "adverse":
                    add(
                        _uid("reaction", r.reaction_id),
                        {
                            "resourceType": "AdverseEvent",
                            "actuality": "actual",
                            "event": {"text": r.term.replace("_", " ")},
                            "subject": _ref(patient_url),
                            "date": when,
                            "seriousness": {"text": "red flag" if r.red_flag else "not red flag"},
                            "severity": {"coding": [{"system": SEVERITY, "code": r.severity}]},
                            "outcome": {
                                "coding": [
                                    {
                                        "system": AE_OUTCOME,
                                        "code": "resolved" if r.resolved else "ongoing",
                                    }
                                ]
                            },
                            "suspectEntity": [{"instance": _ref(procedure_url)}],
                        },
                    )
                else:
                    reaction_concepts[r.term] = (
                        r.term,
                        r.term.replace("_", " "),
                        "An expected reaction after a treatment session.",
                    )
                    obs = {
                        "resourceType": "Observation",
                        "status": "final",
                        "code": {
                            "coding": [
                                {
                                    "system": CS_OBSERVATION,
                                    "code": "expected-reaction",
                                    "display": "Expected reaction after treatment",
                                }
                            ]
                        },
                        "subject": _ref(patient_url),
                        "partOf": [_ref(procedure_url)],
                        "effectiveDateTime": when,
                        "valueCodeableConcept": {
                            "coding": [{"system": CS_REACTION, "code": r.term}],
                            "text": r.term.replace("_", " "),
                        },
                        "component": [{"code": {"text": "severity"}, "valueString": r.severity}],
                    }
                    if r.duration_days is not None:
                        obs["component"].append(
                            {
                                "code": {"text": "duration"},
                                "valueQuantity": {
                                    "value": r.duration_days,
                                    "unit": "d",
                                    "system": UCUM_SYSTEM,
                                    "code": "d",
                                },
                            }
                        )
                    add(_uid("reaction", r.reaction_id), obs)

            for ph in v.photos:
                media: dict[str, Any] = {
                    "resourceType": "Media",
                    "status": "completed",
                    "type": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/media-type",
                                "code": "image",
                            }
                        ]
                    },
                    "subject": _ref(patient_url),
                    "partOf": [_ref(procedure_url)],
                    "view": {"text": ph.view},
                    "width": ph.width_px,
                    "height": ph.height_px,
                    "content": {"contentType": ph.media_type, "title": f"photo {ph.photo_id}"},
                }
                if ph.taken_at:
                    media["createdDateTime"] = _dt(ph.taken_at)
                media_url = add(_uid("photo", ph.photo_id), media)
                label, _ = VERDICTS[ph.verdict]
                verdict: dict[str, Any] = {
                    "resourceType": "Observation",
                    "status": "preliminary",
                    "code": {
                        "coding": [
                            {
                                "system": CS_OBSERVATION,
                                "code": "photo-comparability",
                                "display": "Photo comparability with the series baseline",
                            }
                        ]
                    },
                    "subject": _ref(patient_url),
                    "derivedFrom": [_ref(media_url)],
                    "valueCodeableConcept": {
                        "coding": [{"system": CS_VERDICT, "code": ph.verdict, "display": label}]
                    },
                }
                if ph.override_reason:
                    verdict["note"] = [{"text": f"kept by the clinician: {ph.override_reason}"}]
                add(_uid("verdict", ph.photo_id), verdict)

    add(
        _uid("cs", CS_OBSERVATION),
        _codesystem(
            CS_OBSERVATION,
            "CandorObservation",
            "Candor observation kinds",
            [
                (
                    "expected-reaction",
                    "Expected reaction after treatment",
                    "A reaction expected after the procedure (erythema, oedema, bruising...).",
                ),
                (
                    "photo-comparability",
                    "Photo comparability with the series baseline",
                    "Candor's machine-derived verdict on whether a photo can be compared with the "
                    "series baseline (pose, distance, lighting, expression, sharpness).",
                ),
            ],
        ),
    )
    add(
        _uid("cs", CS_VERDICT),
        _codesystem(
            CS_VERDICT,
            "CandorPhotoComparability",
            "Candor photo comparability verdicts",
            [(k, d, e) for k, (d, e) in VERDICTS.items()],
        ),
    )
    add(
        _uid("cs", CS_SCOPE),
        _codesystem(
            CS_SCOPE,
            "CandorConsentScope",
            "Candor photo consent scopes",
            [(k, k.replace("_", " "), d) for k, d in SCOPES.items()],
        ),
    )
    if endpoint_concepts:
        add(
            _uid("cs", CS_ENDPOINT),
            _codesystem(
                CS_ENDPOINT,
                "CandorEndpoint",
                "Candor endpoints",
                sorted(endpoint_concepts.values()),
            ),
        )
    if reaction_concepts:
        add(
            _uid("cs", CS_REACTION),
            _codesystem(
                CS_REACTION,
                "CandorReaction",
                "Candor reaction terms",
                sorted(reaction_concepts.values()),
            ),
        )

    kind, value = identifier or ("patient", info.patient.code)
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "identifier": {"system": f"{CANDOR}/sid/{kind}", "value": value},
        "entry": entries,
    }
    return validate_bundle(bundle)


def validate_bundle(bundle: dict[str, Any]) -> dict[str, Any]:
    """Parse ``bundle`` with the R4B models (raises ``pydantic.ValidationError`` when it is not a
    valid Bundle) and return the models' own JSON serialisation of it."""
    from fhir.resources.R4B.bundle import Bundle

    model = Bundle.model_validate(bundle)
    resource: dict[str, Any] = json.loads(model.model_dump_json(exclude_none=True))
    return resource


def unresolved_references(bundle: dict[str, Any]) -> list[str]:
    """Every ``reference`` in the bundle that names no entry's ``fullUrl`` (empty: all resolve)."""
    urls = {e["fullUrl"] for e in bundle.get("entry", [])}
    missing: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("reference")
            if isinstance(ref, str) and ref not in urls:
                missing.append(ref)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(bundle)
    return missing
