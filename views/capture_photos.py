"""Capture photos: upload, check each photo against the series baseline of its view, then save or
retake it."""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Any

import numpy as np
import streamlit as st

from analysis.services import capture, viewing
from analysis.services.capture import start_standby
from analysis.services.common import (
    ALL_VIEWS,
    FACE_VIEWS,
    SCALP_VIEWS,
    FieldError,
    PermissionDenied,
    series_status_label,
)
from ui import frame, trichoscopy, widgets

UPLOADS = "capture_uploads"  # sha256 -> item dict (bytes kept until saved or discarded)
HANDLED = (
    "capture_handled"  # sha256 of uploads saved or discarded (ignored if still in the uploader)
)
NONCE = "capture_uploader_nonce"
DISPLAY = "capture_display"  # ("photo", photo id) -> display RGB array of a stored baseline
FLASH = "capture_flash"
FLASH_ERRORS = "capture_flash_errors"


def _state() -> None:
    st.session_state.setdefault(UPLOADS, {})
    st.session_state.setdefault(HANDLED, set())
    st.session_state.setdefault(NONCE, 0)
    st.session_state.setdefault(DISPLAY, {})


def _pick_series() -> capture.CaptureContext | None:
    series_id = widgets.pick_series()
    if series_id is None:
        return None
    try:
        return frame.call(capture.capture_context, series_id=series_id)
    except PermissionDenied as exc:  # e.g. a blinded rater of an open study with this series
        st.error(str(exc), icon=":material/visibility_off:")
        return None


def _pick_session(ctx: capture.CaptureContext) -> int | None:
    session_id = None
    if ctx.sessions:
        session_id = widgets.pick_session(ctx.sessions, key="capture_session_id")
    if not ctx.open_for_sessions:
        st.info(
            f"This series is {series_status_label(ctx.status).lower()}: it takes no new sessions. Set it "
            "back to active on the Patient record page to add one.",
            icon=":material/lock:",
        )
    else:
        with st.expander(
            f"Start session {len(ctx.sessions) + 1}",
            expanded=not ctx.sessions,
            icon=":material/add:",
        ):
            performed_on = st.date_input("Session date", value=date.today(), key="capture_new_date")
            if st.button("Start session", key="capture_start_session"):
                try:
                    new_id = frame.call(
                        capture.start_next_session,
                        series_id=ctx.series_id,
                        performed_on=performed_on,
                    )
                except FieldError as exc:
                    label = "Session date" if exc.field == "performed_on" else "Series"
                    st.error(f"{label}: {exc}")
                else:
                    st.session_state["capture_session_id"] = new_id
                    st.rerun()
    if session_id is None and ctx.open_for_sessions:
        st.info("Start the first session to capture its (baseline) photos.")
    return session_id


def _required_views(ctx: capture.CaptureContext, session_id: int) -> None:
    missing = ctx.missing_views(session_id)
    have = ctx.session(session_id).views
    cols = st.columns(max(1, len(ctx.required_views)))
    for col, view in zip(cols, ctx.required_views, strict=False):
        with col:
            if view in have:
                st.markdown(f":green[:material/check_circle:] {widgets.view_label(view)}")
            else:
                st.markdown(
                    f":orange[:material/radio_button_unchecked:] {widgets.view_label(view)}"
                )
    if not missing:
        st.caption("Every view the protocol requires is on file for this session.")


def _collect(files: list[Any], default_view: str) -> None:
    uploads: dict[str, dict[str, Any]] = st.session_state[UPLOADS]
    for f in files or []:
        data = f.getvalue()
        sha = hashlib.sha256(data).hexdigest()
        if sha in uploads or sha in st.session_state[HANDLED]:
            continue
        uploads[sha] = {
            "name": f.name,
            "data": data,
            "view": default_view,
            "view_set": False,
            "assessment": None,
        }


def _baseline(ctx: capture.CaptureContext, view: str) -> tuple[Any, int | None]:
    """The baseline's measurement and id; ``(None, id)`` when it exists but cannot be read."""
    stored = ctx.baseline_for(view)
    if stored is None:
        return None, None
    data = widgets.fetch_photo(stored.photo_id, quiet=True)
    if data is None:
        return None, stored.photo_id
    display = st.session_state[DISPLAY]
    if ("photo", stored.photo_id) not in display:
        display[("photo", stored.photo_id)] = viewing.decode_for_display(data)
    measurement = capture.measure_bytes(data, view=view, cache=widgets.measurement_cache())
    return measurement, stored.photo_id


def _analyse_pending(ctx: capture.CaptureContext) -> None:
    """Grade every upload whose grading is missing or stale: its view, the series or the view's
    baseline changed (e.g. another upload was just saved as the baseline). Measurements are cached,
    so re-grading is cheap."""
    uploads: dict[str, dict[str, Any]] = st.session_state[UPLOADS]
    todo = [
        sha for sha, item in uploads.items() if item.get("graded_for") != _grading_key(ctx, item)
    ]
    if not todo:
        return
    bar = st.progress(0.0, text=f"Analysing {len(todo)} photo(s)…")
    for done, sha in enumerate(todo, start=1):
        item = uploads[sha]
        bar.progress(
            (done - 0.5) / len(todo), text=f"Analysing {item['name']} ({done}/{len(todo)})"
        )
        _assess(ctx, item)
        suggested = item["assessment"].suggested_view
        if (
            not item["view_set"]
            and suggested
            and suggested != item["view"]
            and item["assessment"].readable
        ):
            item["view"] = suggested
            _assess(ctx, item)
    bar.progress(1.0, text=f"Analysed {len(todo)} photo(s)")


def _grading_key(ctx: capture.CaptureContext, item: dict[str, Any]) -> tuple[Any, ...]:
    stored = ctx.baseline_for(item["view"])
    return ctx.series_id, item["view"], stored.photo_id if stored else None


def _assess(ctx: capture.CaptureContext, item: dict[str, Any]) -> None:
    item["graded_for"] = _grading_key(ctx, item)
    baseline, baseline_id = _baseline(ctx, item["view"])
    unavailable = (
        "access to it was refused or it is missing"
        if (baseline is None and baseline_id is not None)
        else None
    )
    item["assessment"] = capture.assess_upload(
        item["data"],
        view=item["view"],
        baseline=baseline,
        baseline_photo_id=baseline_id,
        tolerances=ctx.tolerances,
        target_area=ctx.target_area,
        cache=widgets.measurement_cache(),
        baseline_unavailable=unavailable,
    )


def _preview(ctx: capture.CaptureContext, sha: str, item: dict[str, Any]) -> None:
    a: capture.Assessment = item["assessment"]
    display = st.session_state[DISPLAY]
    # The upload is shown from the worker's small copy: its bytes are never decoded in this process.
    new_rgb: np.ndarray | None = a.measurement.thumb
    if new_rgb is None:
        st.info("No preview: the photo could not be analysed.")
        return
    stored = ctx.baseline_for(item["view"])
    base_rgb = display.get(("photo", stored.photo_id)) if stored else None
    if base_rgb is None or stored is None or a.baseline_photo_id is None:
        caption = (
            "New photo (no baseline for this view yet)"
            if a.baseline_photo_id is None
            else "New photo (the baseline photo could not be shown)"
        )
        st.image(new_rgb, caption=caption, width="stretch")
        return
    opacity = st.slider("Baseline ghost opacity", 0.0, 1.0, 0.4, 0.05, key=f"ghost_{sha}")
    cache = widgets.measurement_cache()
    base_meas = cache.get(stored.sha256, capture.cache_view(item["view"]))
    pair = viewing.align_pair(
        new_rgb,
        base_rgb,
        reference_landmarks=viewing.landmarks_for(
            a.measurement.landmarks_px,
            original_width_px=a.measurement.width_px,
            display_width_px=new_rgb.shape[1],
        ),
        moving_landmarks=viewing.landmarks_for(
            base_meas.landmarks_px if base_meas else None,
            original_width_px=base_meas.width_px if base_meas else None,
            display_width_px=base_rgb.shape[1],
        ),
    )
    st.image(
        viewing.blend(pair.reference, pair.moving, alpha=opacity),
        width="stretch",
        caption=f"New photo with the baseline (session {stored.session_number}) as a ghost; "
        f"{pair.note}",
    )


def _item(
    ctx: capture.CaptureContext,
    session_id: int,
    tags: tuple[str, ...],
    sha: str,
    item: dict[str, Any],
) -> None:
    a: capture.Assessment = item["assessment"]
    with st.container(border=True):
        left, right = st.columns([3, 2])
        with right:
            st.markdown(f"**{item['name']}**")
            view = st.selectbox(
                "View",
                list(_views(ctx)),
                key=f"view_{sha}",
                index=list(_views(ctx)).index(item["view"]),
                format_func=widgets.view_label,
            )
            if view != item["view"]:
                item["view"], item["view_set"] = view, True
                st.rerun()
            if a.suggested_view:
                st.caption(f"Suggested from head pose: {widgets.view_label(a.suggested_view)}")
            widgets.verdict_badge(a.verdict)
            if a.verdict == "baseline":
                st.write("No baseline of this view yet: this photo becomes the series baseline.")
            for line in a.guidance:
                st.markdown(f"- {line}")
            with st.expander("Check values"):
                widgets.show_checks(a.checks_json())
            site = (
                trichoscopy.site_input(f"site_{sha}")
                if view == trichoscopy.TRICHOSCOPY_VIEW
                else ""
            )
            reason = st.text_input(
                "Reason to keep it anyway" if a.verdict == "fail" else "Note (optional)",
                key=f"reason_{sha}",
                placeholder="e.g. patient could not tilt head",
            )
            save_col, retake_col = st.columns(2)
            save = save_col.button(
                "Save photo", key=f"save_{sha}", type="primary", icon=":material/save:"
            )
            retake = retake_col.button(
                "Retake (discard)", key=f"discard_{sha}", icon=":material/delete:"
            )
        with left:
            _preview(ctx, sha, item)
    if retake:
        _forget(sha)
        st.session_state[FLASH] = f"Discarded {item['name']}: take the photo again and upload it."
        st.rerun()
    if save:
        try:
            photo_id = frame.call(
                capture.save_capture,
                session_id=session_id,
                data=item["data"],
                assessment=a,
                override_reason=reason,
                condition_tags=tags,
                site=site,
            )
        except FieldError as exc:
            what = (
                "Photo consent"
                if exc.field == "consent"
                else exc.field.replace("_", " ").capitalize()
            )
            st.error(f"{what}: {exc}", icon=":material/error:")
        else:
            _forget(sha)
            st.session_state[FLASH] = (
                f"Saved {item['name']} as {widgets.view_label(a.view)} (photo {photo_id})."
            )
            st.rerun()


def _save_all(session_id: int, tags: tuple[str, ...], shas: list[str]) -> None:
    """Save each comparable upload in its own transaction: one refusal never loses the others."""
    saved, problems = [], []
    for sha in shas:
        item = st.session_state[UPLOADS][sha]
        try:
            frame.call(
                capture.save_capture,
                session_id=session_id,
                data=item["data"],
                assessment=item["assessment"],
                condition_tags=tags,
                override_reason=st.session_state.get(f"reason_{sha}", ""),
                site=st.session_state.get(f"site_{sha}") or "",
            )
        except FieldError as exc:
            problems.append(f"{item['name']}: {exc}")
        else:
            saved.append(item["name"])
            _forget(sha)
    if problems:
        st.session_state[FLASH_ERRORS] = problems
    if saved:
        st.session_state[FLASH] = f"Saved {len(saved)} photo(s): {', '.join(saved)}."
    st.rerun()


def _forget(sha: str) -> None:
    st.session_state[UPLOADS].pop(sha, None)
    st.session_state[HANDLED].add(sha)
    if not st.session_state[UPLOADS]:
        st.session_state[NONCE] += 1  # empties the uploader
        st.session_state[HANDLED] = set()


def _views(ctx: capture.CaptureContext) -> tuple[str, ...]:
    first = SCALP_VIEWS if "scalp" in ctx.target_area.lower() else FACE_VIEWS
    rest = tuple(v for v in ALL_VIEWS if v not in first)
    return first + rest


def _conditions() -> tuple[str, ...]:
    with st.expander("Conditions of this photo set", icon=":material/checklist:"):
        selected = st.multiselect(
            "Conditions",
            list(capture.CONDITION_TAGS),
            format_func=capture.CONDITION_TAGS.__getitem__,
            key="capture_conditions",
        )
        days = None
        if st.checkbox("Recent procedure in the area", key="capture_recent"):
            days = int(
                st.number_input(
                    "Days since the last procedure in the area", 0, 3650, 14, key="capture_days"
                )
            )
    return capture.condition_tag_list(selected=selected, days_since_last_procedure=days)


def page() -> None:
    frame.require_page("photo.capture")
    start_standby()  # a warm analysis worker, so even the first upload does not wait for one
    _state()
    st.title("Capture photos")
    ctx = _pick_series()
    if ctx is None:
        return
    session_id = _pick_session(ctx)
    if session_id is None:
        return
    if not ctx.consent_ok:
        st.error(
            "This patient has not consented to clinical photography. Record the consent "
            "on the Patient record page before saving photos.",
            icon=":material/no_photography:",
        )
    st.subheader("Required views")
    _required_views(ctx, session_id)
    if message := st.session_state.pop(FLASH, None):
        st.success(message)
    for problem in st.session_state.pop(FLASH_ERRORS, []):
        st.error(f"Not saved — {problem}", icon=":material/error:")
    tags = _conditions()
    missing = ctx.missing_views(session_id)
    default_view = missing[0] if missing else (ctx.required_views or _views(ctx))[0]
    files = st.file_uploader(
        "Photos (JPEG, PNG or HEIC)",
        type=["jpg", "jpeg", "png", "heic", "heif"],
        accept_multiple_files=True,
        key=f"capture_uploader_{st.session_state[NONCE]}",
    )
    _collect(files, default_view)
    _analyse_pending(ctx)
    uploads: dict[str, dict[str, Any]] = st.session_state[UPLOADS]
    bad = {sha: item for sha, item in uploads.items() if not item["assessment"].readable}
    for sha, item in bad.items():
        st.error(
            f"**{item['name']}** cannot be used: {item['assessment'].error}",
            icon=":material/broken_image:",
        )
        again, remove = st.columns(2)
        # a busy server or a time-out is not the file's fault: analyse it once more on request
        if again.button("Analyse again", key=f"again_{sha}"):
            item.pop("graded_for", None)
            st.rerun()
        if remove.button("Remove from the list", key=f"remove_{sha}"):
            _forget(sha)
            st.rerun()
    good, new_baselines = [], set()
    for sha, item in uploads.items():  # passing photos, and at most one new baseline per view
        verdict = item["assessment"].verdict
        if (
            sha in bad
            or verdict not in ("baseline", "pass")
            or (verdict == "baseline" and item["view"] in new_baselines)
        ):
            continue
        good.append(sha)
        if verdict == "baseline":
            new_baselines.add(item["view"])
    if len(good) > 1 and st.button(
        f"Save all {len(good)} comparable photos",
        type="primary",
        icon=":material/done_all:",
        key="capture_save_all",
    ):
        _save_all(session_id, tags, good)
    for sha, item in list(uploads.items()):
        if sha not in bad:
            _item(ctx, session_id, tags, sha, item)
    trichoscopy.count_panel(ctx.session(session_id).photos)


page()
