"""The shared frame every page runs inside: identity, the page registry, the sidebar.

Identity is read through :func:`current_actor` only (AppTest cannot run ``st.user``; tests set
``st.session_state[ACTOR_KEY]`` instead). Pages get the actor from here and call ``analysis``
functions through :func:`call`, which opens one database transaction per call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import streamlit as st

from analysis.services.common import Actor, PermissionDenied, allowed
from analysis.store import db
from ui import prefetch

ACTOR_KEY = "candor_actor"
T = TypeVar("T")


@dataclass(frozen=True)
class PageSpec:
    section: str
    path: str
    title: str
    icon: str
    action: str  # the permission (analysis.store.access) a role needs to see the page


#: Every page, in navigation order. Titles are used by outside checks: keep them stable.
PAGES: tuple[PageSpec, ...] = (
    PageSpec("Clinic", "views/patients.py", "Patients", ":material/groups:", "patient.read"),
    PageSpec(
        "Clinic", "views/patient_record.py", "Patient record", ":material/badge:", "patient.write"
    ),
    PageSpec(
        "Clinic", "views/series_review.py", "Series review", ":material/compare:", "series.read"
    ),
    PageSpec(
        "Clinic",
        "views/capture_photos.py",
        "Capture photos",
        ":material/add_a_photo:",
        "photo.capture",
    ),
    PageSpec(
        "Clinic", "views/record_visit.py", "Record visit", ":material/edit_note:", "visit.record"
    ),
    PageSpec(
        "Insights", "views/protocols.py", "Protocols", ":material/compare_arrows:", "cohort.read"
    ),
    PageSpec("Insights", "views/timelines.py", "Timelines", ":material/timeline:", "timeline.read"),
    PageSpec(
        "Insights",
        "views/blinded_rating.py",
        "Blinded rating",
        ":material/visibility_off:",
        "rating.rate",
    ),
    PageSpec(
        "Admin", "views/protocol_setup.py", "Protocol setup", ":material/tune:", "protocol.write"
    ),
    PageSpec("Admin", "views/audit_log.py", "Audit log", ":material/policy:", "audit.read"),
    PageSpec("Admin", "views/users.py", "Users", ":material/manage_accounts:", "users.manage"),
)


def current_actor() -> Actor | None:
    actor = st.session_state.get(ACTOR_KEY)
    return actor if isinstance(actor, Actor) else None


def sign_in(actor: Actor) -> None:
    st.session_state[ACTOR_KEY] = actor


def sign_out() -> None:
    from ui import signin  # ends the server-side session (audited) before the state is cleared

    signin.end_current_session()
    for key in list(st.session_state.keys()):
        del st.session_state[key]


def pages_for(actor: Actor) -> dict[str, list[Any]]:
    sections: dict[str, list[Any]] = {}
    for spec in PAGES:
        if allowed(actor, spec.action):
            sections.setdefault(spec.section, []).append(
                st.Page(spec.path, title=spec.title, icon=spec.icon)
            )
    return sections


def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn(session, actor, *args, **kwargs)`` in one transaction as the signed-in user."""
    actor = current_actor()
    if actor is None:
        st.error("Please sign in.")
        st.stop()
    with db.session_scope() as session:
        return fn(session, actor, *args, **kwargs)


def require_page(action: str) -> Actor:
    """The actor, or a clear message and stop when the role may not use this page."""
    actor = current_actor()
    if actor is None:
        st.error("Please sign in.")
        st.stop()
    if not allowed(actor, action):
        st.error(
            str(
                PermissionDenied(
                    f"Your role ({actor.role.replace('_', ' ')}) cannot open this page."
                )
            )
        )
        st.stop()
    return actor


def sidebar(actor: Actor) -> None:
    with st.sidebar:
        st.caption(f"Signed in as **{actor.email}** · {actor.role.replace('_', ' ')}")
        if st.button("Sign out", icon=":material/logout:"):
            sign_out()
            st.rerun()
        prefetch.chart_library()
