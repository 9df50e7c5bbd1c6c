"""Record visit: treatment, endpoint measurements, reactions and adverse events, confounders.

Nothing typed is lost on an error: every widget has a key (its value lives in session state) and
forms are not cleared on submit; the error names the field.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import streamlit as st

from analysis.services import capture, records, visit
from analysis.services.common import (
    CONFOUNDER_KINDS,
    SEVERITIES,
    ExpiredLotError,
    FieldError,
    PermissionDenied,
)
from ui import frame, interop, widgets

FIELD_LABELS = {
    "product": "Product",
    "lot_number": "Lot number",
    "expiry_on": "Expiry date",
    "volume_ml": "Volume (mL)",
    "units": "Units",
    "session_id": "Session",
    "term": "Reaction",
    "severity": "Severity",
    "onset_day": "Onset day",
    "duration_days": "Duration (days)",
    "escalation": "Escalation",
    "kind": "Kind",
    "started_on": "Start date",
    "ended_on": "End date",
    "endpoints": "Endpoints",
}


def _error(exc: FieldError, labels: dict[str, str] | None = None) -> None:
    widgets.field_error(exc, {**FIELD_LABELS, **(labels or {})})


def _pick() -> tuple[capture.CaptureContext, visit.VisitContext] | None:
    series_id = widgets.pick_series()
    if series_id is None:
        return None
    try:
        ctx = frame.call(capture.capture_context, series_id=series_id)
    except PermissionDenied as exc:  # e.g. a blinded rater of an open study with this series
        st.error(str(exc), icon=":material/visibility_off:")
        return None
    if not ctx.sessions:
        st.info("This series has no session yet: start one on the Capture photos page.")
        return None
    session_id = widgets.pick_session(ctx.sessions, key="visit_session_id")
    return ctx, frame.call(visit.visit_context, session_id=session_id)


def _treatment(v: visit.VisitContext) -> None:
    area = st.radio(
        "Area",
        list(visit.SITES),
        index=list(visit.SITES).index(v.area),
        horizontal=True,
        key="tx_area",
        format_func=str.capitalize,
    )
    operators = dict(v.operators)
    with st.form("treatment", clear_on_submit=False):
        c1, c2, c3 = st.columns(3)
        product = c1.text_input("Product", key="tx_product")
        lot = c2.text_input("Lot number", key="tx_lot")
        expiry = c3.date_input("Expiry date", value=None, key="tx_expiry")
        preparation = st.text_input(
            "Preparation", key="tx_prep", placeholder="e.g. 2 mL HA + 1 mL saline"
        )
        mixed = st.radio("Products", ["Separate", "Mixed"], horizontal=True, key="tx_mixed")
        sites = st.multiselect(
            "Sites", list(visit.SITES[area]), key=f"tx_sites_{area}", format_func=visit.describe
        )
        c4, c5, c6 = st.columns(3)
        depth = c4.selectbox("Depth intent", visit.DEPTH_INTENTS, index=None, key="tx_depth")
        volume = c5.number_input("Volume (mL)", value=None, step=0.1, key="tx_volume")
        units = c6.number_input("Units", value=None, step=1.0, key="tx_units")
        me = getattr(frame.current_actor(), "user_id", None)
        ids = list(operators)
        operator = st.selectbox(
            "Operator",
            ids,
            key="tx_operator",
            format_func=widgets.labeller(operators),
            index=ids.index(me) if me in ids else None,
            placeholder="Who performed the treatment",
        )
        if st.session_state.get("tx_expired"):
            st.error(
                f"**Expiry date**: {st.session_state['tx_expired']}", icon=":material/event_busy:"
            )
            st.text_input(
                "Reason to record it anyway (expired lot)",
                key="tx_override",
                placeholder="e.g. only lot in stock, patient informed",
            )
        submitted = st.form_submit_button("Save treatment", type="primary")
    if not submitted:
        return
    if expiry is None:
        _error(FieldError("expiry_on", "enter the expiry date printed on the lot"))
        return
    try:
        frame.call(
            records.record_treatment,
            session_id=v.session_id,
            product=product,
            lot_number=lot,
            expiry_on=expiry,
            preparation=preparation,
            mixed=mixed == "Mixed",
            sites=sites,
            depth_intent=depth or "",
            volume_ml=volume,
            units=units,
            operator_id=operator,
            override_reason=st.session_state.get("tx_override", ""),
        )
    except ExpiredLotError as exc:
        st.session_state["tx_expired"] = str(exc)  # shown in the form with the reason field
        st.rerun()
    except FieldError as exc:
        _error(exc)
        return
    st.session_state.pop("tx_expired", None)
    st.session_state["visit_flash"] = f"Treatment saved: {product.strip()}, lot {lot.strip()}."
    st.rerun()


def _endpoint_widget(field: visit.EndpointField) -> visit.EndpointEntry:
    key = f"ep_{field.code}"
    label = field.name + (f" ({field.unit})" if field.unit else "")
    site = ""
    if field.kind == "text":
        return visit.EndpointEntry(text=st.text_area(label, key=key))
    value: float | None
    if field.kind == "ordinal" and field.options():
        value = st.selectbox(
            label,
            field.options(),
            index=None,
            key=key,
            format_func=field.label_for,
            placeholder="Not measured",
        )
    else:
        value = st.number_input(
            label,
            value=None,
            key=key,
            step=1.0 if field.kind == "count" else 0.1,
            placeholder="Not measured",
        )
    if visit.needs_site(field):
        site = st.text_input(f"{field.name}: site", key=f"{key}_site", placeholder="e.g. vertex")
    return visit.EndpointEntry(
        value=None if value is None else float(value),
        site=site,
        rated_by_patient=field.patient_reported,
    )


def _endpoints(v: visit.VisitContext) -> None:
    if not v.endpoints:
        st.info("The protocol names no endpoints.")
        return
    with st.form("endpoints", clear_on_submit=False):
        entries = {f.code: _endpoint_widget(f) for f in v.endpoints}
        submitted = st.form_submit_button("Save measurements", type="primary")
    if not submitted:
        return
    labels = {f.code: f.name for f in v.endpoints}
    site_required = frozenset(f.code for f in v.endpoints if visit.needs_site(f))
    try:
        n = frame.call(
            visit.record_endpoints,
            session_id=v.session_id,
            entries=entries,
            site_required=site_required,
        )
    except FieldError as exc:
        _error(exc, labels)
        return
    st.session_state["visit_flash"] = f"{n} measurement(s) saved."
    st.rerun()


def _reaction(v: visit.VisitContext) -> None:
    kind = st.radio(
        "Kind",
        ["expected", "adverse"],
        horizontal=True,
        key="rx_kind",
        format_func={"expected": "Expected reaction", "adverse": "Adverse event"}.get,
    )
    term = st.selectbox(
        "Reaction",
        visit.reaction_terms(kind),
        index=None,
        key="rx_term",
        format_func=visit.describe,
        accept_new_options=True,
        placeholder="Choose or type",
    )
    if term and visit.red_flag(term):
        st.error(
            f"**Red flag: {visit.describe(term)}.** Possible vascular or serious event — "
            "follow the emergency protocol now and record who was called and what was done.",
            icon=":material/emergency:",
        )
    c1, c2, c3 = st.columns(3)
    severity = c1.selectbox("Severity", SEVERITIES, key="rx_severity")
    onset = c2.number_input("Onset (days after the session)", 0, 365, 0, key="rx_onset")
    duration = c3.number_input("Duration (days)", value=None, min_value=0.0, key="rx_duration")
    resolved = st.checkbox("Resolved", value=True, key="rx_resolved")
    escalation = st.text_area("Escalation (who was called, what was done)", key="rx_escalation")
    notes = st.text_input("Notes", key="rx_notes")
    if st.button("Save reaction", type="primary", key="rx_save"):
        try:
            frame.call(
                records.record_reaction,
                session_id=v.session_id,
                kind=kind,
                term=term or "",
                severity=severity,
                onset_day=int(onset),
                duration_days=duration,
                resolved=resolved,
                escalation=escalation,
                notes=notes,
            )
        except FieldError as exc:
            _error(exc)
            return
        st.session_state["visit_flash"] = f"Reaction saved: {visit.describe(term)}."
        st.rerun()


def _confounder(v: visit.VisitContext) -> None:
    with st.form("confounder", clear_on_submit=False):
        kind = st.selectbox(
            "Confounder", CONFOUNDER_KINDS, key="cf_kind", format_func=visit.describe
        )
        c1, c2 = st.columns(2)
        started = c1.date_input("Started", value=v.performed_on, key="cf_started")
        ended = c2.date_input("Ended (empty = ongoing)", value=None, key="cf_ended")
        details = st.text_input("Details", key="cf_details")
        submitted = st.form_submit_button("Save confounder", type="primary")
    if submitted:
        try:
            frame.call(
                records.add_confounder,
                series_id=v.series_id,
                kind=kind,
                started_on=started or date.today(),
                ended_on=ended,
                details=details,
                session_id=v.session_id,
            )
        except FieldError as exc:
            _error(exc)
            return
        st.session_state["visit_flash"] = f"Confounder saved: {visit.describe(kind)}."
        st.rerun()


def _recorded(v: visit.VisitContext) -> None:
    tables: list[tuple[str, Any]] = [
        ("Treatments", v.treatments),
        ("Measurements", v.measurements),
        ("Reactions", v.reactions),
    ]
    for title, df in tables:
        if len(df):
            st.markdown(f"**{title}**")
            st.dataframe(df, hide_index=True, width="stretch")
    if not any(len(df) for _, df in tables):
        st.caption("Nothing recorded for this session yet.")


def page() -> None:
    frame.require_page("visit.record")
    st.title("Record visit")
    with st.expander(
        "Import from a trichoscope or a PROM tablet (CSV)",
        icon=":material/upload_file:",
        expanded="import_flash" in st.session_state,
    ):
        interop.import_panel()
    picked = _pick()
    if picked is None:
        return
    _, v = picked
    if message := st.session_state.pop("visit_flash", None):
        st.success(message, icon=":material/check_circle:")
    tabs = st.tabs(
        ["Treatment", "Endpoints", "Reactions and adverse events", "Confounders", "Recorded"]
    )
    with tabs[0]:
        _treatment(v)
    with tabs[1]:
        _endpoints(v)
    with tabs[2]:
        _reaction(v)
    with tabs[3]:
        _confounder(v)
    with tabs[4]:
        _recorded(v)


page()
