"""Trichoscopy panels: follicle counts on Capture photos, device calibrations on Protocol setup.

Layout only: :mod:`analysis.services.trichoscopy` checks the role, reads the photo through the
audited door, counts, stores and audits.
"""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from analysis.services import trichoscopy
from analysis.services.capture import StoredPhoto
from analysis.services.common import (
    BlobCorruptError,
    BlobMissingError,
    FieldError,
    PermissionDenied,
    format_clinic_time,
)
from analysis.services.photo_access import PhotoNotFound
from ui import frame, widgets

FLASH = "trichoscopy_flash"
CAL_FLASH = "trichoscopy_calibration_flash"
TRICHOSCOPY_VIEW = "scalp_trichoscopy"
REFUSALS = (FieldError, PermissionDenied, PhotoNotFound, BlobMissingError, BlobCorruptError)


def _cal_label(cals: dict[int, trichoscopy.Calibration], cal_id: int | None) -> str:
    return "No calibration (count only, no density)" if cal_id is None else cals[cal_id].label


def site_input(key: str, *, current: str = "") -> str:
    """The required scalp site of a trichoscopy photo: a suggested site or any typed label."""
    options = list(trichoscopy.SITES)
    if current and current not in options:
        options.append(current)
    value = st.selectbox(
        "Scalp site (required)",
        options,
        index=options.index(current) if current else None,
        key=key,
        accept_new_options=True,
        placeholder="Choose or type the site, e.g. vertex",
        help="Follow-up counts are compared with the baseline photo of the same site: mark the "
        "spot (tattoo dot, distance from a landmark) and use the same label every session.",
    )
    return str(value or "")


def count_panel(photos: Sequence[StoredPhoto]) -> None:
    """For each trichoscopy photo: the image with the detected points, the count (and density when
    calibrated), and a number input with a button to confirm or correct it."""
    mine = [p for p in photos if p.view == TRICHOSCOPY_VIEW]
    if not mine:
        return
    st.subheader("Trichoscopy counts")
    if message := st.session_state.pop(FLASH, None):
        st.success(message, icon=":material/check_circle:")
    cals = {c.calibration_id: c for c in frame.call(trichoscopy.calibrations)}
    for photo in mine:
        _one(photo, cals)


def _one(photo: StoredPhoto, cals: dict[int, trichoscopy.Calibration]) -> None:
    pid = photo.photo_id
    record = frame.call(trichoscopy.photo_count, pid)
    with st.container(border=True):
        left, right = st.columns([3, 2])
        with right:
            st.markdown(
                f"**Photo {pid}** · {widgets.view_label(photo.view)} · "
                + (f"site **{photo.site}**" if photo.site else ":orange[no site label]")
            )
            if not photo.site:
                _label_site(photo)
            options: list[int | None] = [None, *cals]
            current = record.calibration_id if record is not None else None
            cal_id = st.selectbox(
                "Device calibration",
                options,
                key=f"tri_cal_{pid}",
                index=options.index(current) if current in options else 0,
                format_func=lambda i: _cal_label(cals, i),
            )
            if not cals:
                st.caption(
                    "No device calibration is set yet: the medical director sets one on "
                    "Protocol setup, and the count then gives a density per cm²."
                )
            label = "Count follicles" if record is None else "Count again"
            if st.button(label, key=f"tri_count_{pid}", icon=":material/grain:"):
                try:
                    done = frame.call(trichoscopy.count_photo, pid, calibration_id=cal_id)
                except REFUSALS as exc:
                    st.error(f"Not counted: {exc}", icon=":material/error:")
                else:
                    st.session_state[FLASH] = f"Photo {pid}: {done.auto_count} follicles counted."
                    st.rerun()
            if record is not None:
                _result(record)
        with left:
            data = widgets.fetch_photo(pid, quiet=False)
            if data is not None:
                points = record.points_px if record is not None else ()
                caption = (
                    f"{len(points)} detected follicles marked"
                    if record is not None
                    else "Not counted yet"
                )
                st.image(trichoscopy.draw_points(data, points), caption=caption, width="stretch")


def _label_site(photo: StoredPhoto) -> None:
    """A photo stored without its site (before sites were required): label it."""
    site = site_input(f"tri_site_{photo.photo_id}")
    if st.button("Save site", key=f"tri_site_save_{photo.photo_id}", icon=":material/place:"):
        try:
            label = frame.call(trichoscopy.set_site, photo.photo_id, site)
        except REFUSALS as exc:
            st.error(f"Not saved: {exc}", icon=":material/error:")
        else:
            st.session_state[FLASH] = f"Photo {photo.photo_id}: site set to {label}."
            st.rerun()


def _result(record: trichoscopy.CountRecord) -> None:
    pid = record.photo_id
    cols = st.columns(2)
    cols[0].metric("Automatic count", record.auto_count)
    if record.density_per_cm2 is not None:
        cols[1].metric("Density, automated", f"{record.density_per_cm2:.0f} hairs/cm²")
    else:
        cols[1].caption("No density: counted without a device calibration.")
    st.caption(
        f"Method {record.method} {record.version} · counted {format_clinic_time(record.counted_at)}"
    )
    start = record.confirmed_count if record.confirmed_count is not None else record.auto_count
    value = st.number_input(
        "Confirmed count (correct it if the automatic count is wrong)",
        min_value=0,
        max_value=trichoscopy.MAX_COUNT,
        value=start,
        step=1,
        key=f"tri_value_{pid}_{record.counted_at.timestamp():.0f}",
    )
    if st.button(
        "Confirm count", key=f"tri_confirm_{pid}", type="primary", icon=":material/task_alt:"
    ):
        corrected = None if int(value) == record.auto_count else int(value)
        try:
            done = frame.call(trichoscopy.confirm_count, pid, corrected)
        except REFUSALS as exc:
            st.error(f"Not saved: {exc}", icon=":material/error:")
        else:
            what = "corrected to" if done.corrected else "confirmed at"
            st.session_state[FLASH] = f"Photo {pid}: count {what} {done.confirmed_count}."
            st.rerun()
    if record.confirmed_count is not None:
        what = "corrected" if record.corrected else "confirmed"
        st.markdown(
            f":green[:material/check_circle:] {what.capitalize()}: "
            f"**{record.confirmed_count}** (automatic {record.auto_count}), "
            f"{format_clinic_time(record.confirmed_at)}"
        )
        if record.confirmed_density_per_cm2 is not None and record.density_per_cm2 is not None:
            st.markdown(
                f"Density recorded: **{record.confirmed_density_per_cm2:.0f} hairs/cm²** "
                f"({what} count) · automated {record.density_per_cm2:.0f} hairs/cm² "
                f"({record.method} {record.version})"
            )


CAL_LABELS = {"device": "Device", "magnification": "Magnification", "mm_per_px": "mm per pixel"}


def calibration_form() -> None:
    """The medical director's device calibrations: list, and add or replace one."""
    if message := st.session_state.pop(CAL_FLASH, None):
        st.success(message, icon=":material/check_circle:")
    cals = frame.call(trichoscopy.calibrations)
    if cals:
        st.dataframe(
            [
                {
                    "device": c.device,
                    "magnification": f"{c.magnification:g}x",
                    "mm per pixel": c.mm_per_px,
                    "set": format_clinic_time(c.set_at),
                }
                for c in cals
            ],
            hide_index=True,
        )
    else:
        st.caption(
            "No device calibration yet: trichoscopy counts have no density until one is set."
        )
    with st.form("tri_calibration"):
        device = st.text_input(
            "Device", key="tri_cal_device", placeholder="e.g. FotoFinder, 70x lens"
        )
        c1, c2 = st.columns(2)
        magnification = c1.number_input(
            "Magnification", min_value=0.0, value=70.0, step=10.0, key="tri_cal_mag"
        )
        mm_per_px = c2.number_input(
            "mm per pixel",
            min_value=0.0,
            value=0.0027,
            step=0.0001,
            format="%.5f",
            key="tri_cal_mm",
        )
        if st.form_submit_button("Save calibration"):
            try:
                cal = frame.call(
                    trichoscopy.set_calibration,
                    device=device,
                    magnification=float(magnification),
                    mm_per_px=float(mm_per_px),
                )
            except FieldError as exc:
                widgets.field_error(exc, CAL_LABELS)
            else:
                st.session_state[CAL_FLASH] = f"Saved the calibration {cal.label}."
                st.rerun()
