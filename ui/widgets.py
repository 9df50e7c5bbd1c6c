"""Small display helpers shared by the clinician pages: view names, verdict badges, check tables,
photos fetched through the audited door (:func:`analysis.services.photo_access.photo_bytes`)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, TypeVar

import pandas as pd
import streamlit as st

from analysis.services.capture import MeasurementCache, series_choices
from analysis.services.common import (
    BlobCorruptError,
    BlobMissingError,
    FieldError,
    PermissionDenied,
)
from analysis.services.photo_access import (
    PhotoNotFound,
    photo_bytes,
    photo_pair_bytes,
    photo_thumbnails,
)
from ui import frame

MEASUREMENTS_KEY = "candor_measurements"  # one MeasurementCache per browser session
SERIES_KEY = "candor_series_id"  # the chosen series lives in session state, never in the URL

VIEW_LABELS: dict[str, str] = {
    "face_frontal": "Face · frontal",
    "face_oblique_left": "Face · oblique, patient's left",
    "face_oblique_right": "Face · oblique, patient's right",
    "face_lateral_left": "Face · lateral, patient's left",
    "face_lateral_right": "Face · lateral, patient's right",
    "scalp_vertex": "Scalp · vertex",
    "scalp_midline_part": "Scalp · midline part",
    "scalp_frontal_hairline": "Scalp · frontal hairline",
    "scalp_temporal_left": "Scalp · temporal, left",
    "scalp_temporal_right": "Scalp · temporal, right",
    "scalp_trichoscopy": "Scalp · trichoscopy close-up",
}

VERDICT_STYLE: dict[str, tuple[str, str, str]] = {
    # verdict -> (label, colour, icon)
    "baseline": ("Baseline", "blue", ":material/flag:"),
    "pass": ("Comparable", "green", ":material/check_circle:"),
    "warn": ("Check before comparing", "orange", ":material/warning:"),
    "fail": ("Not comparable", "red", ":material/block:"),
    "not_assessed": ("Not assessed", "gray", ":material/help:"),
}

STATUS_WORDS = {"pass": "OK", "warn": "Warn", "fail": "Fail", "not_assessed": "—"}


K = TypeVar("K", bound=Hashable)


def labeller(labels: Mapping[K, str]) -> Callable[[K], str]:
    """``format_func`` for a widget over ``labels``' keys: the key's label (``str`` of the
    lookup, as ``format_func=labels.get`` showed)."""
    return lambda key: str(labels.get(key))


def view_label(view: str) -> str:
    return VIEW_LABELS.get(view, view.replace("_", " "))


SHORT_LABELS = {"warn": "Check"}  # for narrow grid cells; the help text says the rest


def field_error(exc: FieldError, labels: Mapping[str, str]) -> None:
    """A form error that names the field (by its label in ``labels``) and says why."""
    st.error(f"**{labels.get(exc.field) or exc.field}**: {exc}", icon=":material/error:")


def verdict_badge(verdict: str, *, help: str | None = None, short: bool = False) -> None:
    label, colour, icon = VERDICT_STYLE.get(verdict, (verdict, "gray", None))
    if short and verdict in SHORT_LABELS:
        help = help or label
        label = SHORT_LABELS[verdict]
    st.badge(label, color=colour, icon=icon, help=help)  # type: ignore[arg-type]


def text_or_blank(value: object) -> str:
    """``str(value)``, or ``""`` for None/NaN (pandas turns missing units into NaN)."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value)


def verdict_text(verdict: str) -> str:
    """Markdown badge for use inside captions and tables."""
    label, colour, _ = VERDICT_STYLE.get(verdict, (verdict, "gray", ""))
    return f":{colour}-badge[{label}]"


def checks_frame(checks: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The per-check values as a small table (JSON dicts of ``Check.to_json_dict``)."""
    rows = []
    for c in checks:
        value = c.get("value")
        unit = c.get("unit") or ""
        rows.append(
            {
                "Check": str(c.get("name", "")).replace("_", " "),
                "Result": STATUS_WORDS.get(c.get("status", ""), c.get("status", "")),
                "Value": "" if value is None else f"{value:+.3g} {unit}".strip(),
                "Limits (warn / fail)": (
                    "" if c.get("warn_at") is None else f"{c['warn_at']:g} / {c['fail_at']:g}"
                ),
                "What it means": c.get("message", ""),
            }
        )
    return pd.DataFrame(rows)


def show_checks(checks: Sequence[dict[str, Any]]) -> None:
    if checks:
        st.dataframe(checks_frame(checks), hide_index=True, width="stretch")


def measurement_cache() -> MeasurementCache:
    """This browser session's measurement cache (shared by Capture photos and Series review)."""
    cache: MeasurementCache = st.session_state.setdefault(MEASUREMENTS_KEY, MeasurementCache())
    return cache


def _refused(photo_id: int | str, exc: Exception, *, quiet: bool) -> None:
    if not quiet:
        st.warning(f"Photo {photo_id} cannot be shown: {exc}", icon=":material/hide_image:")


def fetch_photo(
    photo_id: int, *, thumbnail: bool = False, max_side: int = 320, quiet: bool = False
) -> bytes | None:
    """Bytes of a stored photo via the audited door (:func:`photo_bytes`: role, current consent,
    one audit event per view). Never cached, so a consent withdrawal or role change applies on the
    next rerun and every view is audited. A clear message (and ``None``) when refused or missing."""
    try:
        return frame.call(
            photo_bytes,
            photo_id=photo_id,
            purpose="clinical_record",
            thumbnail=thumbnail,
            max_side=max_side,
        )
    except (PermissionDenied, PhotoNotFound, BlobMissingError, BlobCorruptError) as exc:
        _refused(photo_id, exc, quiet=quiet)  # PermissionDenied includes ConsentMissing
    return None


def fetch_thumbnails(photo_ids: Sequence[int], *, max_side: int = 320) -> dict[int, bytes]:
    """Thumbnails of a grid of photos through the same audited door in one transaction
    (:func:`photo_thumbnails`: role and current consent, one audit event per photo). A clear
    message for each photo that cannot be shown; never cached, like :func:`fetch_photo`."""
    if not photo_ids:
        return {}
    try:
        got = frame.call(
            photo_thumbnails,
            photo_ids=list(photo_ids),
            purpose="clinical_record",
            max_side=max_side,
        )
    except PermissionDenied as exc:  # includes ConsentMissing
        _refused("grid", exc, quiet=False)
        return {}
    for photo_id, value in got.items():
        if isinstance(value, Exception):
            _refused(photo_id, value, quiet=False)
    return {i: v for i, v in got.items() if isinstance(v, bytes)}


def fetch_pair(earlier_id: int, later_id: int) -> tuple[bytes, bytes] | None:
    """Both photos of a comparison with ONE audit event (``photo.compare``), same checks."""
    try:
        return frame.call(
            photo_pair_bytes,
            baseline_id=earlier_id,
            follow_up_id=later_id,
            purpose="clinical_record",
        )
    except (PermissionDenied, PhotoNotFound, BlobMissingError, BlobCorruptError) as exc:
        _refused(f"{earlier_id}/{later_id}", exc, quiet=False)
    return None


#: The picker lists at most this many series; more are found by typing part of the code.
PICKER_LIMIT = 50


def pick_series() -> int | None:
    """The "Patient and series" picker shared by the clinician pages; remembers the choice in
    :data:`SERIES_KEY` (Patients sets it too). A search box narrows the list in the database, so
    a clinic of any size sends at most :data:`PICKER_LIMIT` labels to the browser. ``None`` and a
    note when there are no series."""
    current = st.session_state.get(SERIES_KEY)
    search = st.text_input(
        "Find a patient",
        key="series_search",
        placeholder="patient code or protocol, e.g. CND-0042",
        help="Searches the whole clinic.",
    )
    choices = frame.call(series_choices, search=search, limit=PICKER_LIMIT + 1, include=current)
    if not choices:
        st.info(
            f"No series match {search.strip()!r}."
            if search.strip()
            else "There are no treatment series yet."
        )
        return None
    others = [c.series_id for c in choices if c.series_id != current]
    keep = set(others[:PICKER_LIMIT]) | {current}
    shown = [c for c in choices if c.series_id in keep]  # the chosen one stays listed
    ids = [c.series_id for c in shown]
    labels = {c.series_id: c.label for c in shown}
    series_id = st.selectbox(
        "Patient and series",
        ids,
        index=ids.index(current) if current in ids else 0,
        format_func=labels.__getitem__,
    )
    if len(others) > PICKER_LIMIT:
        st.caption(f"Showing the first {PICKER_LIMIT} matches; type more of the code to narrow.")
    st.session_state[SERIES_KEY] = series_id
    return series_id


def pick_session(sessions: Sequence[Any], *, key: str) -> int:
    """The "Session" picker (latest by default) over ``sessions`` with ``session_id`` and
    ``label``; ``key`` keeps each page's choice in session state."""
    ids = [s.session_id for s in sessions]
    if st.session_state.get(key) not in ids:
        st.session_state[key] = ids[-1]
    labels = {s.session_id: s.label for s in sessions}
    return int(st.selectbox("Session", ids, key=key, format_func=labels.__getitem__))
