"""Patients: the clinic's patients and their series; pick one to review, capture or record."""

from __future__ import annotations

import streamlit as st

from analysis.services.common import series_status_label
from analysis.services.series import list_patients
from ui import frame, widgets

SERIES_KEY = widgets.SERIES_KEY
PAGE_ROWS = 50

COLUMNS = {
    "patient_code": st.column_config.TextColumn("Patient"),
    "protocol": st.column_config.TextColumn("Protocol"),
    "status_label": st.column_config.TextColumn("Status"),
    "started_on": st.column_config.DateColumn("Started"),
    "sessions_done": st.column_config.NumberColumn("Sessions done"),
    "sessions_planned": st.column_config.NumberColumn("Planned"),
    "last_visit_on": st.column_config.DateColumn("Last visit"),
    "photo_sets": st.column_config.TextColumn(
        "Photo sets complete",
        help="Sessions so far whose required photo views were all taken "
        "and passed the comparability check (not series progress)",
    ),
}


def page() -> None:
    frame.require_page("patient.read")
    st.title("Patients")
    search = st.text_input(
        "Search",
        placeholder="Patient code, protocol or status",
        key="patients_search",
        icon=":material/search:",
    )
    page_no = int(st.session_state.get("patients_page", 1))
    df = frame.call(list_patients, search=search, limit=PAGE_ROWS, offset=(page_no - 1) * PAGE_ROWS)
    total = int(df.attrs["total_series"])
    pages = max(1, -(-total // PAGE_ROWS))
    if df.empty and page_no > 1:  # the search shrank below this page: back to the first
        st.session_state["patients_page"] = 1
        st.rerun()
    if df.empty:
        st.info("No series match your search." if search.strip() else "There are no patients yet.")
        return
    df["status_label"] = df["status"].map(series_status_label)
    df["photo_sets"] = [
        f"{int(c)} of {int(n)} session{'s' if n != 1 else ''}" if n else "no sessions yet"
        for c, n in zip(df["photo_sets_compliant"], df["sessions_done"], strict=True)
    ]
    first = (page_no - 1) * PAGE_ROWS + 1
    st.caption(
        f"{df.attrs['total_patients']} patient(s), "
        f"{total} series; showing {first}-{first + len(df) - 1}, newest first. "
        "Select a row to open it."
    )
    event = st.dataframe(
        df[list(COLUMNS)],
        column_config=COLUMNS,
        hide_index=True,
        width="stretch",
        on_select="rerun",
        selection_mode="single-row",
        key="patients_table",
    )
    if pages > 1:
        st.number_input(
            f"Page (of {pages})", min_value=1, max_value=pages, step=1, key="patients_page"
        )
    rows = event.selection.rows if event is not None else []
    if rows:
        st.session_state[SERIES_KEY] = int(df.iloc[rows[0]]["series_id"])
    ids = [int(i) for i in df["series_id"]]
    labels = {
        int(r.series_id): f"{r.patient_code} · {r.protocol} · "
        f"{r.sessions_done}/{r.sessions_planned} sessions"
        for r in df.itertuples()
    }
    current = st.session_state.get(SERIES_KEY)
    chosen = st.selectbox(
        "Series",
        ids,
        index=ids.index(current) if current in ids else None,
        format_func=labels.__getitem__,
        placeholder="Select a row or choose here",
    )
    if chosen is not None:
        st.session_state[SERIES_KEY] = chosen
        cols = st.columns(3)
        cols[0].page_link(
            "views/series_review.py", label="Open in Series review", icon=":material/compare:"
        )
        cols[1].page_link(
            "views/capture_photos.py", label="Capture photos", icon=":material/add_a_photo:"
        )
        cols[2].page_link(
            "views/record_visit.py", label="Record visit", icon=":material/edit_note:"
        )


page()
