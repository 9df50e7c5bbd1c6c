"""Patient record: register a patient, record or withdraw photo consent, start a series with its
contraindication screen, and pause, complete or close a series.

Nothing typed is lost on an error: forms keep their values (keyed widgets, not cleared on submit)
and the error names the field.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import streamlit as st

from analysis.services import patient_record as pr
from analysis.services.common import (
    CONSENT_SCOPES,
    SCREENING_ITEMS,
    SERIES_STATUSES,
    SEXES,
    FieldError,
    format_clinic_time,
)
from ui import frame, interop, widgets

PATIENT_KEY = "record_patient_id"
FLASH = "record_flash"
FIELD_LABELS = {
    "code": "Patient code",
    "birth_year": "Birth year",
    "sex": "Sex",
    "fitzpatrick": "Skin type",
    "protocol_id": "Protocol",
    "started_on": "Start date",
    "screening": "Screening",
    "flags_reviewed": "Screening",
    "status": "Status",
    "scope": "Consent",
    "patient_id": "Patient",
    "series_id": "Series",
    "reason": "Reason for the correction",
}
FITZPATRICK = {
    1: "I – always burns, never tans",
    2: "II – usually burns, tans minimally",
    3: "III – sometimes burns, tans uniformly",
    4: "IV – burns minimally, tans well",
    5: "V – rarely burns, tans darkly",
    6: "VI – never burns",
}


def _done(message: str) -> None:
    st.session_state[FLASH] = message
    st.rerun()


def _register() -> None:
    with st.form("register_patient", clear_on_submit=False):
        c1, c2 = st.columns(2)
        code = c1.text_input(
            "Patient code",
            key="reg_code",
            max_chars=32,
            placeholder="Pseudonymous, e.g. P-0107 (never a name)",
        )
        birth_year = c2.number_input(
            "Birth year",
            value=None,
            min_value=1900,
            max_value=date.today().year,
            step=1,
            key="reg_birth_year",
        )
        c3, c4 = st.columns(2)
        sex = c3.selectbox(
            "Sex", SEXES, index=None, key="reg_sex", format_func=pr.SEX_LABELS.__getitem__
        )
        fitz = c4.selectbox(
            "Fitzpatrick skin type",
            list(FITZPATRICK),
            index=None,
            key="reg_fitz",
            format_func=FITZPATRICK.__getitem__,
        )
        scopes = st.multiselect(
            "Photo consent given today",
            CONSENT_SCOPES,
            key="reg_scopes",
            format_func=pr.SCOPE_LABELS.__getitem__,
            placeholder="None yet (photos cannot be saved without the first)",
        )
        submitted = st.form_submit_button("Register patient", type="primary")
    if not submitted:
        return
    try:
        patient_id = frame.call(
            pr.register_patient,
            code=code,
            birth_year=birth_year,
            sex=sex,
            fitzpatrick=fitz,
            consent_scopes=scopes,
        )
    except FieldError as exc:
        widgets.field_error(exc, FIELD_LABELS)
        return
    for key in ("reg_code", "reg_birth_year", "reg_sex", "reg_fitz", "reg_scopes"):
        st.session_state.pop(key, None)
    st.session_state[PATIENT_KEY] = patient_id
    _done(f"Patient {code.strip()} registered.")


def _pick_patient() -> int | None:
    """The patient picker; follows the series chosen on the Patients page until one is picked."""
    choices = frame.call(pr.patient_choices)
    ids = [i for i, _ in choices]
    codes = dict(choices)
    current = st.session_state.get(PATIENT_KEY)
    if current not in ids and (series_id := st.session_state.get(widgets.SERIES_KEY)) is not None:
        current = frame.call(pr.patient_id_of_series, series_id=series_id)
    chosen = st.selectbox(
        "Patient",
        ids,
        index=ids.index(current) if current in ids else None,
        format_func=codes.__getitem__,
        placeholder="Choose a patient, or register a new one below",
    )
    st.session_state[PATIENT_KEY] = chosen
    return chosen


def _correct(record: pr.PatientRecord) -> None:
    sfx = record.patient_id
    with st.form(f"correct_{sfx}", clear_on_submit=False):
        code = st.text_input(
            "Patient code",
            value=record.code,
            key=f"fix_code_{sfx}",
            max_chars=32,
            help="The pseudonymous code; a change is audited with the old and new code",
        )
        c1, c2, c3 = st.columns(3)
        birth_year = c1.number_input(
            "Birth year",
            value=record.birth_year,
            min_value=1900,
            max_value=date.today().year,
            step=1,
            key=f"fix_year_{sfx}",
        )
        sex = c2.selectbox(
            "Sex",
            SEXES,
            index=SEXES.index(record.sex),
            key=f"fix_sex_{sfx}",
            format_func=pr.SEX_LABELS.__getitem__,
        )
        fitz = c3.selectbox(
            "Fitzpatrick skin type",
            list(FITZPATRICK),
            index=record.fitzpatrick - 1,
            key=f"fix_fitz_{sfx}",
            format_func=FITZPATRICK.__getitem__,
        )
        reason = st.text_input(
            "Reason for the correction",
            key=f"fix_reason_{sfx}",
            placeholder="e.g. birth year mistyped at registration",
        )
        submitted = st.form_submit_button("Save correction")
    if not submitted:
        return
    try:
        changed = frame.call(
            pr.correct_patient,
            patient_id=record.patient_id,
            birth_year=birth_year,
            sex=sex,
            fitzpatrick=fitz,
            reason=reason,
            code=code,
        )
    except FieldError as exc:
        widgets.field_error(exc, FIELD_LABELS)
        return
    st.session_state.pop(f"fix_reason_{sfx}", None)
    _done(
        "Nothing changed."
        if not changed
        else "Corrected: " + ", ".join(FIELD_LABELS.get(c, c).lower() for c in changed) + "."
    )


def _consents(record: pr.PatientRecord) -> None:
    st.subheader("Photo consent")

    def since(c: pr.ConsentState) -> str:
        when = c.given_at if c.active else c.withdrawn_at
        return format_clinic_time(when)

    rows = [
        {
            "Scope": c.label,
            "Status": "Given" if c.active else ("Withdrawn" if c.withdrawn_at else "Not given"),
            "Since": since(c),
        }
        for c in record.consents
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
    scope = c1.selectbox(
        "Consent scope",
        CONSENT_SCOPES,
        key="consent_scope",
        format_func=pr.SCOPE_LABELS.__getitem__,
    )
    active = record.consent(scope).active
    if not active:
        if c2.button("Record consent given now", key="consent_give", icon=":material/check:"):
            frame.call(pr.set_consent, patient_id=record.patient_id, scope=scope, given=True)
            _done(f"Consent recorded: {pr.SCOPE_LABELS[scope]}.")
        return
    confirm = st.checkbox(
        "The patient asks to withdraw this consent (photos needing it are hidden "
        "from the next page load on)",
        key="consent_confirm",
    )
    if c2.button(
        "Withdraw consent", key="consent_withdraw", icon=":material/block:", disabled=not confirm
    ):
        frame.call(pr.set_consent, patient_id=record.patient_id, scope=scope, given=False)
        st.session_state.pop("consent_confirm", None)
        _done(f"Consent withdrawn: {pr.SCOPE_LABELS[scope]}.")


def _series(record: pr.PatientRecord) -> None:
    st.subheader("Series")
    if not record.series:
        st.info("No series yet: start one below.")
        return
    table = pd.DataFrame(
        [
            {
                "Protocol": s.protocol_name,
                "Started": s.started_on,
                "Status": pr.STATUS_LABELS.get(s.status, s.status),
                "Sessions": f"{s.sessions_done}/{s.planned_sessions}",
                "Goal": s.goal,
                "Screening flags": ", ".join(pr.SCREENING_LABELS[f] for f in s.screening_flags)
                or "None",
            }
            for s in record.series
        ]
    )
    st.dataframe(table, hide_index=True, width="stretch")
    by_id = {s.series_id: s for s in record.series}
    c1, c2, c3 = st.columns([3, 2, 1], vertical_alignment="bottom")
    series_id = c1.selectbox(
        "Series",
        list(by_id),
        key="status_series",
        format_func=lambda i: f"{by_id[i].protocol_name} · started "
        f"{by_id[i].started_on.isoformat()}",
    )
    current = by_id[series_id].status
    status = c2.selectbox(
        "Status",
        SERIES_STATUSES,
        index=SERIES_STATUSES.index(current),
        key=f"status_value_{series_id}",
        format_func=pr.STATUS_LABELS.__getitem__,
    )
    if c3.button("Save status", key="status_save", disabled=status == current):
        frame.call(pr.change_series_status, series_id=series_id, status=status)
        _done(f"Series status: {pr.STATUS_LABELS[status]}.")
    st.page_link(
        "views/capture_photos.py",
        label="Capture photos for the chosen series",
        icon=":material/add_a_photo:",
    )
    st.session_state[widgets.SERIES_KEY] = series_id


def _new_series(record: pr.PatientRecord) -> None:
    protocols = frame.call(pr.protocol_choices)
    if not protocols:
        st.info("There are no protocols yet.")
        return
    by_id = {p.protocol_id: p for p in protocols}
    with st.form("start_series", clear_on_submit=False):
        c1, c2 = st.columns([3, 1])
        protocol_id = c1.selectbox(
            "Protocol",
            list(by_id),
            index=None,
            key="ns_protocol",
            format_func=lambda i: by_id[i].label,
        )
        started_on = c2.date_input("Start date", value=date.today(), key="ns_started")
        goal = st.text_input(
            "Goal, in the patient's own words",
            key="ns_goal",
            placeholder="e.g. less shedding, fuller crown",
        )
        st.markdown("**Contraindication screen** (answer every question; add a note to each yes)")
        answers: dict[str, bool | None] = {}
        details: dict[str, str] = {}
        for item in SCREENING_ITEMS:
            left, right = st.columns([2, 3], vertical_alignment="center")
            choice = left.radio(
                pr.SCREENING_LABELS[item],
                ["No", "Yes"],
                index=None,
                horizontal=True,
                key=f"ns_{item}",
            )
            answers[item] = None if choice is None else choice == "Yes"
            details[item] = right.text_input(
                f"Note: {pr.SCREENING_LABELS[item].lower()}",
                key=f"ns_{item}_note",
                label_visibility="collapsed",
                placeholder="Note (needed for a yes)",
            )
        reviewed = st.checkbox(
            "I have reviewed any flagged item and the treatment may go ahead", key="ns_reviewed"
        )
        submitted = st.form_submit_button("Start series", type="primary")
    if not submitted:
        return
    try:
        series_id = frame.call(
            pr.start_series,
            patient_id=record.patient_id,
            protocol_id=protocol_id,
            started_on=started_on,
            goal=goal,
            answers=answers,
            details=details,
            flags_reviewed=reviewed,
        )
    except FieldError as exc:
        widgets.field_error(exc, FIELD_LABELS)
        return
    for key in [k for k in st.session_state if str(k).startswith("ns_")]:
        del st.session_state[key]
    st.session_state[widgets.SERIES_KEY] = series_id
    st.session_state["status_series"] = series_id
    assert protocol_id is not None  # start_series refuses a series without a protocol
    _done(f"Series started: {by_id[protocol_id].name}. Capture its baseline photos next.")


def page() -> None:
    frame.require_page("patient.write")
    st.title("Patient record")
    if message := st.session_state.pop(FLASH, None):
        st.success(message, icon=":material/check_circle:")
    patient_id = _pick_patient()
    with st.expander(
        "Register a new patient", expanded=patient_id is None, icon=":material/person_add:"
    ):
        _register()
    if patient_id is None:
        return
    record = frame.call(pr.patient_record, patient_id=patient_id)
    st.markdown(f"### {record.code}")
    st.caption(
        f"Born {record.birth_year} · {pr.SEX_LABELS.get(record.sex, record.sex)} · "
        f"Fitzpatrick {FITZPATRICK[record.fitzpatrick].split(' –')[0]}"
    )
    with st.expander("Correct these details", icon=":material/edit:"):
        _correct(record)
    _consents(record)
    _series(record)
    with st.expander("Start a new series", expanded=not record.series, icon=":material/add:"):
        _new_series(record)
    with st.expander("Export this patient (DICOM, FHIR, CSV)", icon=":material/ios_share:"):
        interop.export_panel(key=f"interop_patient_{record.patient_id}", patient_code=record.code)


page()
