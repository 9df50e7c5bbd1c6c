"""Audit log: who did what to which record, when and with what outcome; chain check; CSV export.

Every query and export is itself audited (``audit.read`` / ``audit.export``), so results are kept
for this browser session until the filters change or the reader refreshes, not re-read on every
rerun.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import streamlit as st

from analysis.services import audit_log
from analysis.services.common import Actor, AuditWriteError, allowed, clinic_zone
from ui import frame

RESULT_KEY = "audit_log_result"  # (filters, DataFrame) of the last audited query
EXPORT_KEY = "audit_log_export"  # (filters, CSV bytes) of the last audited export
OUTCOMES = ("any", "success", "denied", "failure")
ZONE = clinic_zone()  # display only: stored and exported times are UTC

COLUMNS = {
    "occurred_at": st.column_config.DatetimeColumn(
        f"When ({ZONE.key})", format="YYYY-MM-DD HH:mm:ss", timezone=ZONE.key
    ),
    "actor_email": st.column_config.TextColumn("Who"),
    "actor_role": st.column_config.TextColumn("Role"),
    "action": st.column_config.TextColumn("Action"),
    "outcome": st.column_config.TextColumn("Outcome"),
    "patient_id": st.column_config.NumberColumn("Patient id", format="%d"),
    "object_type": st.column_config.TextColumn("Object"),
    "object_id": st.column_config.TextColumn("Object id"),
    "details": st.column_config.JsonColumn("Details"),
}


CHAIN_KEY = "audit_log_chain"  # the last chain check's status, kept until Refresh or a full check


def _chain_status(refresh: bool) -> None:
    """The hash chain's status: the events since the last full check on opening (kept for the
    session until Refresh), every event on request (recorded as that full check)."""
    status: audit_log.ChainStatus | None = None if refresh else st.session_state.get(CHAIN_KEY)
    if status is None:
        status = frame.call(audit_log.chain_status)
    full = st.button(
        f"Verify all {status.events:,} events",
        icon=":material/verified_user:",
        help="Re-hashes the whole log (about 15 s per million events on this kind of server); "
        "the result is recorded in the log.",
    )
    if full:
        with st.spinner(f"Re-hashing {status.events:,} events…"):
            status = frame.call(audit_log.chain_status, full=True)
    st.session_state[CHAIN_KEY] = status
    last = status.last_full
    since = (
        f"the last full check ({last.occurred_at.astimezone(ZONE):%Y-%m-%d %H:%M}, "
        f"{last.actor_email}, {last.events:,} events intact)"
        if last is not None
        else "no full check yet"
    )
    if status.intact:
        if status.full:
            what = f"all {status.checked:,} event(s) verified"
        else:
            what = (
                f"the newest {status.checked:,} of {status.events:,} events verified "
                f"(from event {status.checked_from}); {since}"
            )
        st.success(f"Hash chain intact: {what}.", icon=":material/verified:")
        return
    st.error(
        f"The audit trail has been altered: {len(status.problems)} problem(s) in the "
        f"{status.checked:,} event(s) checked of {status.events:,}. Preserve the database and "
        "investigate.",
        icon=":material/gpp_bad:",
    )
    st.dataframe(
        [{"event": p.event_id, "problem": p.problem} for p in status.problems], hide_index=True
    )


def _filters() -> dict[str, Any]:
    today = datetime.now(ZONE).date()
    with st.form("audit_filters"):
        cols = st.columns(4)
        action = cols[0].text_input("Action", placeholder="e.g. photo.view or auth.*")
        email = cols[1].text_input("User email")
        patient = cols[2].text_input("Patient id")
        outcome = cols[3].selectbox("Outcome", OUTCOMES)
        row2 = st.columns(3)
        since = row2[0].date_input(f"From ({ZONE.key})", value=today - timedelta(days=30))
        until = row2[1].date_input(f"To ({ZONE.key}, inclusive)", value=today)
        limit = row2[2].number_input(
            "At most",
            min_value=10,
            max_value=audit_log.MAX_LIMIT,
            value=audit_log.DEFAULT_LIMIT,
            step=100,
        )
        st.form_submit_button("Apply filters", icon=":material/filter_alt:")
    patient = patient.strip()
    if patient and not patient.isdigit():
        st.error("Patient id must be a whole number.")
        st.stop()

    def day(d: date) -> datetime:
        """A clinic day starts at local midnight; the query compares in UTC."""
        return datetime.combine(d, time(), tzinfo=ZONE).astimezone(UTC)

    return {
        "action": action.strip() or None,
        "actor_email": email.strip() or None,
        "patient_id": int(patient) if patient else None,
        "outcome": None if outcome == "any" else outcome,
        "since": day(since) if isinstance(since, date) else None,
        "until": day(until) + timedelta(days=1) if isinstance(until, date) else None,
        "limit": int(limit),
    }


def _export(filters: dict[str, Any], actor: Actor) -> None:
    if not allowed(actor, "audit.export"):
        return
    key = tuple(sorted(filters.items()))
    if st.button(
        "Prepare CSV export",
        icon=":material/download:",
        help="The export itself is recorded in the audit log.",
    ):
        try:
            st.session_state[EXPORT_KEY] = (key, frame.call(audit_log.export_csv, **filters))
        except AuditWriteError:
            st.error("The export could not be recorded in the audit log, so it was not produced.")
    prepared = st.session_state.get(EXPORT_KEY)
    if prepared is not None and prepared[0] == key:
        st.download_button(
            "Download CSV",
            data=prepared[1],
            mime="text/csv",
            file_name=f"candor-audit-{datetime.now(UTC):%Y%m%dT%H%MZ}.csv",
            icon=":material/file_download:",
        )


def page() -> None:
    actor = frame.require_page("audit.read")
    st.title("Audit log")
    st.caption(
        "Every photo view, comparison, export, consent or role change and sign-in, "
        f"append-only and hash-chained. Times are shown in {ZONE.key} (the clinic's time "
        "zone) and kept in UTC; the CSV export is UTC."
    )
    refresh = st.button("Refresh", icon=":material/refresh:")
    _chain_status(refresh)
    filters = _filters()
    key = tuple(sorted(filters.items()))
    cached = st.session_state.get(RESULT_KEY)
    if refresh or cached is None or cached[0] != key:
        try:
            cached = (key, frame.call(audit_log.query_events, **filters))
        except ValueError as exc:
            st.error(str(exc))
            return
        except AuditWriteError:
            st.error("Reading the log could not be recorded, so the events are not shown.")
            return
        st.session_state[RESULT_KEY] = cached
    events = cached[1]
    if events.empty:
        st.info("No events match these filters.")
    else:
        st.caption(f"{len(events)} event(s), newest first.")
        st.dataframe(events[list(COLUMNS)], column_config=COLUMNS, hide_index=True, width="stretch")
    _export(filters, actor)


page()
