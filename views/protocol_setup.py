"""Protocol setup (medical director): define a protocol, its required photo views and endpoints, and
how strict the photo comparability check is for it; add endpoints (the standard library or the
clinic's own).

Nothing typed is lost on an error: the form keeps its values and the error names the field.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from analysis.services import protocol_setup as ps
from analysis.services.common import ALL_VIEWS, FieldError
from ui import frame, trichoscopy, widgets

CHOICE = "setup_protocol_id"
FLASH = "setup_flash"
FIELD_LABELS = {
    "name": "Name",
    "modality": "Modality",
    "target_area": "Target area",
    "planned_sessions": "Planned sessions",
    "interval_days": "Interval (days)",
    "required_views": "Required photo views",
    "endpoint_codes": "Endpoints",
    "primary_endpoint": "Primary endpoint",
    "tolerances": "Comparability tolerances",
    "protocol_id": "Protocol",
    "code": "Code",
    "kind": "Kind",
    "unit": "Unit",
    "scale_min": "Scale from",
    "scale_max": "Scale to",
    "mcid": "MCID",
    "noise_sd": "Noise SD",
    "neutral": "'No change' point",
    "expected_course": "Expected course",
}


def _pick(choices: list[tuple[int, str]]) -> int | None:
    names = dict(choices)
    options: list[int | None] = [None, *names]
    current = st.session_state.get(CHOICE)
    chosen = st.selectbox(
        "Protocol",
        options,
        index=options.index(current) if current in options else 0,
        format_func=lambda i: "New protocol" if i is None else names[i],
    )
    st.session_state[CHOICE] = chosen
    return chosen


def _tolerance_table(form: ps.ProtocolForm, key: str) -> pd.DataFrame:
    rows = pd.DataFrame([vars(r) for r in ps.tolerance_rows(form.tolerances)])
    return st.data_editor(
        rows,
        key=key,
        hide_index=True,
        width="stretch",
        height=35 * (len(rows) + 1) + 3,
        disabled=["name", "meaning", "default"],
        column_order=["meaning", "default", "override"],
        column_config={
            "meaning": st.column_config.TextColumn("Check", width="large"),
            "default": st.column_config.NumberColumn("Default", format="%g"),
            "override": st.column_config.NumberColumn(
                "This protocol", format="%g", help="Leave empty to keep the default"
            ),
        },
    )


def _course_table(
    form: ps.ProtocolForm, endpoints: dict[str, str], key: str
) -> pd.DataFrame | None:
    st.markdown(
        "**Expected course** — the change from baseline you expect at each session, in the "
        "endpoint's units (the dashed reference line on charts). Leave empty for none."
    )
    rows = ps.course_rows(form)
    if not rows or not form.planned_sessions or form.planned_sessions < 2:
        st.caption(
            "Save the protocol with its endpoints and sessions first; their expected course "
            "is set here afterwards."
        )
        return None
    sessions = [c for c in rows[0] if c != "endpoint"]
    return st.data_editor(
        pd.DataFrame(rows),
        key=key,
        hide_index=True,
        width="stretch",
        disabled=["endpoint"],
        column_config={
            "endpoint": st.column_config.SelectboxColumn(
                "Endpoint", options=list(endpoints), width="medium"
            ),
            **{c: st.column_config.NumberColumn(f"Session {c[1:]}", format="%g") for c in sessions},
        },
    )


def _endpoint_fields(
    form: ps.EndpointForm, *, key: str, scale_locked: bool
) -> tuple[ps.EndpointForm, bool]:
    """The endpoint fields inside an open ``st.form``; returns what was typed and whether it is
    rated against baseline. ``scale_locked``: the scale fields are shown but cannot change."""
    c1, c2, c3, c4 = st.columns([2, 3, 1, 1])
    code = c1.text_input(
        "Code",
        value=form.code,
        key=f"{key}code",
        disabled=bool(form.code),
        placeholder="e.g. wrinkle_grade",
    )
    name = c2.text_input(
        "Name", value=form.name, key=f"{key}name", placeholder="e.g. Wrinkle severity (WSRS)"
    )
    kinds = list(ps.ENDPOINT_KINDS)
    kind = c3.selectbox(
        "Kind",
        kinds,
        index=kinds.index(form.kind) if form.kind in kinds else None,
        key=f"{key}kind",
        disabled=scale_locked,
    )
    unit = c4.text_input("Unit", value=form.unit, key=f"{key}unit", disabled=scale_locked)
    c5, c6, c7, c8, c9 = st.columns(5)
    low = c5.number_input(
        "Scale from", value=form.scale_min, key=f"{key}low", disabled=scale_locked
    )
    high = c6.number_input(
        "Scale to", value=form.scale_max, key=f"{key}high", disabled=scale_locked
    )
    mcid = c7.number_input(
        "MCID",
        value=form.mcid,
        key=f"{key}mcid",
        help="The smallest change that matters clinically (a response)",
    )
    noise = c8.number_input(
        "Noise SD",
        value=form.noise_sd,
        key=f"{key}noise",
        help="Repeatability of one measurement, same units",
    )
    better = c9.radio(
        "Better is",
        ["Higher", "Lower"],
        index=0 if form.higher_is_better else 1,
        key=f"{key}better",
        horizontal=True,
        disabled=scale_locked,
    )
    c10, c11, c12 = st.columns(3)
    relative = c10.checkbox(
        "Rated against baseline (like GAIS)",
        value=form.neutral is not None,
        key=f"{key}relative",
        disabled=scale_locked,
    )
    neutral = c11.number_input(
        "'No change' point",
        value=form.neutral,
        key=f"{key}neutral",
        help="For a rating against baseline: the scale's no-change point",
        disabled=scale_locked,
    )
    patient = c12.checkbox("Patient-reported", value=form.patient_reported, key=f"{key}patient")
    typed = ps.EndpointForm(
        code=form.code or code,
        name=name,
        kind=kind,
        unit=unit,
        scale_min=low,
        scale_max=high,
        higher_is_better=better == "Higher",
        mcid=mcid,
        noise_sd=noise,
        neutral=neutral if relative else None,
        patient_reported=patient,
    )
    return typed, relative


def _lacks_neutral(typed: ps.EndpointForm, relative: bool) -> bool:
    """A rating against baseline typed without its 'no change' point: say so on the field."""
    if relative and typed.neutral is None:
        widgets.field_error(
            FieldError("neutral", "a rating against baseline needs its 'no change' point"),
            FIELD_LABELS,
        )
        return True
    return False


def _endpoints() -> None:
    rows = frame.call(ps.endpoint_table)
    if rows:
        st.dataframe(
            pd.DataFrame(rows),
            hide_index=True,
            width="stretch",
            column_config={
                "code": "Code",
                "name": "Name",
                "kind": "Kind",
                "unit": "Unit",
                "scale": "Scale",
                "better": "Better",
                "rated_against_baseline": st.column_config.CheckboxColumn("Rated against baseline"),
                "patient_reported": st.column_config.CheckboxColumn("Patient-reported"),
                "mcid": st.column_config.NumberColumn("MCID", format="%g"),
                "values": st.column_config.NumberColumn("Values recorded", format="%d"),
                "retired": st.column_config.CheckboxColumn("Retired"),
            },
        )
    missing = frame.call(ps.missing_standard_endpoints)
    if missing:
        st.info(
            f"{len(missing)} standard endpoint(s) are not in this clinic yet: "
            + "; ".join(missing)
            + ".",
            icon=":material/library_add:",
        )
        if st.button("Add the standard endpoint library", key="ep_library"):
            added = frame.call(ps.add_standard_endpoints)
            st.session_state[FLASH] = f"{added} standard endpoint(s) added."
            st.rerun()
    if rows:
        with st.expander("Edit or retire an endpoint", icon=":material/edit:"):
            _edit_endpoint(rows)
    st.markdown("**New endpoint**")
    with st.form("new_endpoint", clear_on_submit=False):
        typed, relative = _endpoint_fields(ps.EndpointForm(), key="ep_", scale_locked=False)
        submitted = st.form_submit_button("Add endpoint")
    if not submitted:
        return
    if _lacks_neutral(typed, relative):
        return
    try:
        code_added = frame.call(ps.save_endpoint, typed)
    except FieldError as exc:
        widgets.field_error(exc, FIELD_LABELS)
        return
    for key in [k for k in st.session_state if str(k).startswith("ep_")]:
        del st.session_state[key]
    st.session_state[FLASH] = f"Endpoint added: {code_added}."
    st.rerun()


def _edit_endpoint(rows: list[dict[str, object]]) -> None:
    names = {str(r["code"]): f"{r['name']}" + (" (retired)" if r["retired"] else "") for r in rows}
    code = st.selectbox("Endpoint", list(names), format_func=names.__getitem__, key="epe_pick")
    row = next(r for r in rows if r["code"] == code)
    values = int(row["values"])  # type: ignore[call-overload]
    form = frame.call(ps.endpoint_form, code=code)
    if values:
        st.caption(
            f"{values} value(s) are recorded on this endpoint, so its scale (kind, unit, "
            "range, direction, 'no change' point) is fixed. To measure differently, retire "
            "it and add a new endpoint; its history stays."
        )
    with st.form(f"edit_endpoint_{code}", clear_on_submit=False):
        typed, relative = _endpoint_fields(form, key=f"epe_{code}_", scale_locked=values > 0)
        submitted = st.form_submit_button("Save changes")
    retired = bool(row["retired"])
    label = "Reinstate this endpoint" if retired else "Retire this endpoint"
    if st.button(
        label,
        key=f"epe_retire_{code}",
        icon=":material/unarchive:" if retired else ":material/archive:",
        help="Retired endpoints are no longer offered for protocols; their values, "
        "charts and exports stay",
    ):
        try:
            frame.call(ps.retire_endpoint, code=code, retired=not retired)
        except FieldError as exc:
            widgets.field_error(exc, FIELD_LABELS)
            return
        st.session_state[FLASH] = f"{names[code]}: {'reinstated' if retired else 'retired'}."
        st.rerun()
    if not submitted:
        return
    if _lacks_neutral(typed, relative):
        return
    try:
        changed = frame.call(ps.update_endpoint, typed)
    except FieldError as exc:
        widgets.field_error(exc, FIELD_LABELS)
        return
    st.session_state[FLASH] = (
        "Nothing changed." if not changed else f"{typed.name}: saved ({', '.join(changed)})."
    )
    st.rerun()


def page() -> None:
    frame.require_page("protocol.write")
    st.title("Protocol setup")
    if message := st.session_state.pop(FLASH, None):
        st.success(message, icon=":material/check_circle:")
    protocols_tab, endpoints_tab, devices_tab = st.tabs(
        ["Protocols", "Endpoints", "Trichoscopy devices"]
    )
    with endpoints_tab:
        _endpoints()
    with devices_tab:
        trichoscopy.calibration_form()
    with protocols_tab:
        _protocol()


def _protocol() -> None:
    protocol_id = _pick(frame.call(ps.protocol_choices))
    form = frame.call(ps.protocol_form, protocol_id=protocol_id)
    endpoints = dict(frame.call(ps.endpoint_choices, keep=form.endpoint_codes))
    sfx = str(protocol_id or "new")
    if form.series_count:
        st.caption(
            f"{form.series_count} series follow this protocol. Changed tolerances apply to "
            "photos graded from now on; saved photos keep the verdict they were saved with."
        )
    with st.form(f"protocol_{sfx}", clear_on_submit=False):
        c1, c2, c3 = st.columns([2, 1, 1])
        name = c1.text_input(
            "Name",
            value=form.name,
            key=f"ps_name_{sfx}",
            max_chars=160,
            placeholder="e.g. PRP, scalp, 4 x monthly",
        )
        modality = c2.text_input(
            "Modality", value=form.modality, key=f"ps_modality_{sfx}", placeholder="e.g. PRP"
        )
        area = c3.text_input(
            "Target area",
            value=form.target_area,
            key=f"ps_area_{sfx}",
            placeholder="e.g. scalp, face",
            help="A target area naming scalp or hair gets the scalp site map",
        )
        c4, c5 = st.columns(2)
        planned = c4.number_input(
            "Planned sessions",
            value=form.planned_sessions,
            min_value=1,
            max_value=ps.MAX_SESSIONS,
            step=1,
            key=f"ps_planned_{sfx}",
        )
        interval = c5.number_input(
            "Interval (days)",
            value=form.interval_days,
            min_value=1,
            max_value=ps.MAX_INTERVAL_DAYS,
            step=1,
            key=f"ps_interval_{sfx}",
        )
        views = st.multiselect(
            "Required photo views",
            ALL_VIEWS,
            default=list(form.required_views),
            key=f"ps_views_{sfx}",
            format_func=widgets.view_label,
        )
        codes = st.multiselect(
            "Endpoints",
            list(endpoints),
            default=list(form.endpoint_codes),
            key=f"ps_endpoints_{sfx}",
            format_func=endpoints.__getitem__,
        )
        codes_all = list(endpoints)
        primary = st.selectbox(
            "Primary endpoint",
            codes_all,
            key=f"ps_primary_{sfx}",
            index=codes_all.index(form.primary_endpoint)
            if form.primary_endpoint in codes_all
            else None,
            format_func=endpoints.__getitem__,
            placeholder="None",
        )
        description = st.text_area("Description", value=form.description, key=f"ps_desc_{sfx}")
        st.markdown(
            "**Photo comparability** — when a follow-up photo warns or fails against the "
            "baseline. Leave *This protocol* empty to keep the default."
        )
        edited = _tolerance_table(form, key=f"ps_tol_{sfx}")
        course = _course_table(form, endpoints, key=f"ps_course_{sfx}")
        submitted = st.form_submit_button("Save protocol", type="primary")
    if not submitted:
        return
    try:
        overrides = ps.clean_overrides(edited.to_dict("records"))
        expected = (
            ps.course_from_rows(course.to_dict("records"))
            if course is not None
            else dict(form.expected_course)
        )
        saved = frame.call(
            ps.save_protocol,
            ps.ProtocolForm(
                protocol_id=protocol_id,
                name=name,
                modality=modality,
                target_area=area,
                planned_sessions=None if planned is None else int(planned),
                interval_days=None if interval is None else int(interval),
                required_views=tuple(views),
                endpoint_codes=tuple(codes),
                primary_endpoint=primary,
                tolerances=overrides,
                description=description,
                expected_course=expected,
            ),
        )
    except FieldError as exc:
        widgets.field_error(exc, FIELD_LABELS)
        return
    if protocol_id is None:  # the next "New protocol" form starts empty
        for key in [
            k for k in st.session_state if str(k).startswith("ps_") and str(k).endswith("_new")
        ]:
            del st.session_state[key]
    st.session_state[CHOICE] = saved
    st.session_state[FLASH] = f"Protocol saved: {name.strip()}."
    st.rerun()


page()
