"""Series review: timeline, photo grid with comparability, aligned comparisons, endpoint charts, PDF."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st

from analysis.services import capture, trichoscopy, viewing
from analysis.services.analytics import build_series_report, report_photos
from analysis.services.common import PermissionDenied, series_status_label
from analysis.services.photo_access import audited_export, visible_photo_ids
from analysis.services.series import SeriesOverview, series_overview, spans
from ui import charts, frame, interop, widgets

MODES = ["Side by side", "Slider", "Overlay", "Difference"]
TABS = ["Photos", "Compare", "Endpoints", "Record", "Report"]
TRICHOSCOPY_TAB = "Trichoscopy"  # only for a series with trichoscopy photos
TRICHOSCOPY_VIEW = "scalp_trichoscopy"
GRID_COLUMNS = 6  # sessions per row of the photo grid


def _header(o: SeriesOverview) -> None:
    p, pr, s = o.patient, o.protocol, o.series
    st.markdown(
        f"**{p['code']}** · {p['age_band']} · {p['sex']} · Fitzpatrick {p['fitzpatrick']}"
        f" — **{pr['name']}** ({pr['modality']}, {pr['target_area']}) · "
        f"{len(o.sessions)}/{pr['planned_sessions']} sessions · {series_status_label(s['status'])}"
    )
    if o.red_flags:
        st.error(
            f"{o.red_flags} red-flag event(s) recorded in this series — see Reactions.",
            icon=":material/emergency:",
        )
    for note in o.notes:
        st.caption(note)


def _visible(o: SeriesOverview) -> set[int]:
    """Photo ids the patient's current consent (and the role) allow to show; one notice if none."""
    visible = set(frame.call(visible_photo_ids, patient_id=int(o.patient["patient_id"])))
    if len(o.photos) and not visible:
        st.warning(
            "This patient's consent to clinical photography is not active (never given or "
            "withdrawn): photos are not shown. Comparability results still are.",
            icon=":material/no_photography:",
        )
    return visible


def _grid(o: SeriesOverview) -> None:
    if o.photos.empty:
        st.info("No photos in this series yet.")
        return
    visible = _visible(o)
    # every visible thumbnail of the grid in one audited transaction (one event per photo)
    thumbs = widgets.fetch_thumbnails([int(i) for i in o.photos["photo_id"] if int(i) in visible])
    numbers = [int(n) for n in o.sessions["number"]]
    per_row = min(GRID_COLUMNS, max(len(numbers), 1))
    for view in o.photo_grid.index:
        st.markdown(f"**{widgets.view_label(view)}**")
        cols = [c for start in range(0, len(numbers), per_row) for c in st.columns(per_row)]
        for col, number in zip(cols, numbers, strict=False):
            cell = o.photos[(o.photos["view"] == view) & (o.photos["session_number"] == number)]
            with col:
                st.caption(f"Session {number}")
                if cell.empty:
                    st.caption("— no photo —")
                for row in cell.sort_values("photo_id").itertuples():
                    thumb = thumbs.get(int(row.photo_id))
                    if thumb is not None:
                        st.image(thumb, width="stretch")
                    widgets.verdict_badge(str(row.verdict), short=True)
                    if row.override_reason:
                        lead = "Kept because" if row.verdict == "fail" else "Note"
                        st.caption(f"{lead}: {row.override_reason}")


def _compare(o: SeriesOverview, ctx: capture.CaptureContext) -> None:
    views = [v for v in o.photo_grid.index if (o.photos["view"] == v).sum() >= 2]
    if not views:
        st.info("Comparisons need two sessions with a photo of the same view.")
        return
    c1, c2, c3 = st.columns([2, 1, 1])
    view = c1.selectbox("View", views, format_func=widgets.view_label, key="review_view")
    photos = o.photos[o.photos["view"] == view].sort_values("session_number")
    options = photos["photo_id"].astype(int).tolist()
    repeated = photos["session_number"].duplicated(keep=False)
    label = {
        int(r.photo_id): f"Session {int(r.session_number)}"
        + (f" · photo {int(r.photo_id)}" if again else "")
        for r, again in zip(photos.itertuples(), repeated, strict=True)
    }
    first = c2.selectbox(
        "Earlier", options, index=0, format_func=widgets.labeller(label), key="review_a"
    )
    second = c3.selectbox(
        "Later",
        options,
        index=len(options) - 1,
        format_func=widgets.labeller(label),
        key="review_b",
    )
    if first == second:
        st.info("Choose two different sessions.")
        return
    if not {first, second} <= _visible(o):
        return
    pair_bytes = widgets.fetch_pair(first, second)
    if pair_bytes is None:
        return
    a_bytes, b_bytes = pair_bytes
    with st.spinner("Measuring and aligning the two photos…"):
        pair = viewing.pair_view(
            a_bytes,
            b_bytes,
            view=view,
            tolerances=ctx.tolerances,
            cache=widgets.measurement_cache(),
        )
    verdict = pair.comparison.verdict
    if verdict == "fail":
        st.error(
            "**Not comparable** — these two photos differ in how they were taken, so a "
            "difference between them is not evidence of a treatment effect:\n\n"
            + "\n".join(f"- {r}" for r in pair.comparison.reasons),
            icon=":material/block:",
        )
    elif verdict == "warn":
        st.warning(
            "**Check before comparing:**\n\n"
            + "\n".join(f"- {r}" for r in pair.comparison.reasons),
            icon=":material/warning:",
        )
    else:
        widgets.verdict_badge("pass")
    between = _confounders_between(o, photos, first, second)
    if between:
        st.warning(
            "Between these sessions: " + ", ".join(between) + " — a change may not be "
            "the treatment's alone.",
            icon=":material/report:",
        )
    with st.expander("Check values"):
        widgets.show_checks([c.to_json_dict() for c in pair.comparison.checks])
    m1, m2 = st.columns([3, 1])
    mode = m1.segmented_control("Mode", MODES, default=MODES[0], key="review_mode") or MODES[0]
    aligned = m2.toggle(
        "Aligned",
        value=True,
        key="review_aligned",
        help="Off shows the original later photo, unwarped",
    )
    later = (
        pair.later_aligned
        if aligned
        else viewing.align_pair(
            pair.earlier, pair.later_original, reference_landmarks=None, moving_landmarks=None
        ).moving
    )
    names = (label[first], label[second])
    caption = (
        f"{names[0]} → {names[1]} · "
        f"{pair.note if aligned else 'original (not aligned), resized to the same frame'}"
        + (" · NOT COMPARABLE" if verdict == "fail" else "")
    )
    if mode == "Side by side":
        st.image(viewing.side_by_side(pair.earlier, later), caption=caption, width="stretch")
    elif mode == "Slider":
        pos = st.slider(f"Wipe: {names[0]} ◀ ▶ {names[1]}", 0.0, 1.0, 0.5, 0.01, key="review_wipe")
        st.image(viewing.wipe(pair.earlier, later, position=pos), caption=caption, width="stretch")
    elif mode == "Overlay":
        alpha = st.slider(f"Opacity of {names[1]}", 0.0, 1.0, 0.5, 0.05, key="review_alpha")
        st.image(viewing.blend(pair.earlier, later, alpha=alpha), caption=caption, width="stretch")
    else:
        st.image(
            viewing.difference_map(pair.earlier, later),
            width="stretch",
            caption=caption + " · difference in lightness (bright = changed)",
        )


def _confounders_between(
    o: SeriesOverview, photos: pd.DataFrame, first: int, second: int
) -> list[str]:
    """Confounders active at any time between the sessions of two photos (plain words)."""
    number = dict(
        zip(photos["photo_id"].astype(int), photos["session_number"].astype(int), strict=True)
    )
    on = dict(zip(o.sessions["number"].astype(int), o.sessions["performed_on"], strict=True))
    a, b = sorted((on[number[first]], on[number[second]]))
    return [
        str(c.kind).replace("_", " ")
        for c in o.confounders.itertuples()
        if spans(
            c.started_on,
            None if c.ended_on is None or c.ended_on != c.ended_on else c.ended_on,
            from_on=a,
            to_on=b,
        )
    ]


def _endpoints(o: SeriesOverview) -> None:
    if o.measurements.empty:
        st.info("No endpoint values recorded yet.")
        return
    names = dict(zip(o.endpoints["endpoint_code"], o.endpoints["name"], strict=False))
    units = dict(zip(o.endpoints["endpoint_code"], o.endpoints["unit"], strict=False))
    codes = list(dict.fromkeys(o.measurements["endpoint_code"]))
    primary = o.protocol.get("primary_endpoint")
    codes.sort(key=lambda c: c != primary)
    for code in codes:
        fig = charts.endpoint_figure(
            o.measurements,
            code=code,
            name=names.get(code, code),
            unit=widgets.text_or_blank(units.get(code)),
            comparisons=o.comparisons,
        )
        st.plotly_chart(fig, key=f"endpoint_{code}", width="stretch")


def _trichoscopy(series_id: int) -> None:
    try:
        review = frame.call(trichoscopy.trichoscopy_review, series_id)
    except (LookupError, PermissionDenied) as exc:
        st.error(str(exc))
        return
    st.plotly_chart(
        charts.density_figure(
            review.densities,
            review.manual,
            rel_error=review.rel_error,
            manual_name=review.manual_name,
        ),
        key="trichoscopy_density",
        width="stretch",
    )
    versions = sorted(set(review.densities["version"].dropna()))
    st.caption(
        f"Band: the automated count's stated error, ±{100 * review.rel_error:.1f} % (median "
        "absolute relative count error on held-out subjects, benchmarks/hair_counts.py, engine "
        f"version {review.error_version})."
        + (
            f" Counts here were made by version(s) {', '.join(versions)}: the stated error "
            "may not apply."
            if versions and versions != [review.error_version]
            else ""
        )
    )
    table = review.densities.rename(
        columns={
            "session_number": "session",
            "auto_count": "automatic count",
            "confirmed_count": "confirmed count",
            "auto_density": "automated density",
            "recorded_density": "recorded density",
        }
    )
    st.dataframe(
        table[
            [
                "session",
                "photo_id",
                "site",
                "automatic count",
                "confirmed count",
                "automated density",
                "recorded density",
                "calibration",
                "method",
                "version",
            ]
        ],
        hide_index=True,
        width="stretch",
    )
    st.subheader("Same spot? Baseline against each follow-up, per site")
    if not review.comparisons:
        st.info("No follow-up trichoscopy photo of a site with a baseline yet.")
    for c in review.comparisons:
        change = (
            ""
            if c.change_pct is None
            else f" · density {c.baseline_density:.0f} → {c.followup_density:.0f} hairs/cm² "
            f"({c.change_pct:+.0f} %"
            + (", within the count's stated error" if c.within_stated_error else "")
            + ")"
        )
        head = (
            f"**{c.site or 'no site label'}** · session {c.baseline_session} → "
            f"{c.followup_session} (photos {c.baseline_photo_id} → {c.followup_photo_id}){change}"
        )
        body = "\n".join(f"- {r}" for r in c.reasons)
        if c.verdict == "fail":
            st.error(
                f"{head}\n\n**Not comparable** — a density change here is not evidence of a "
                f"treatment effect:\n\n{body}",
                icon=":material/block:",
            )
        elif c.verdict == "warn":
            st.warning(
                f"{head}\n\n**Check before comparing:**\n\n{body}", icon=":material/warning:"
            )
        else:
            st.success(
                f"{head}\n\nComparable: same site, scale and focus.", icon=":material/check:"
            )
        with st.expander("Checks"):
            for check in c.checks:
                st.markdown(f"- **{check.name}** ({check.status}): {check.message}")


def _tables(o: SeriesOverview) -> None:
    for title, df in (
        ("Treatments", o.treatments),
        ("Reactions and adverse events", o.reactions),
        ("Confounders", o.confounders),
    ):
        with st.expander(f"{title} ({len(df)})"):
            if len(df):
                st.dataframe(df, hide_index=True, width="stretch")
            else:
                st.caption("None recorded.")


def _export(o: SeriesOverview, series_id: int) -> None:
    key = f"report_pdf_{series_id}"
    if st.button("Prepare PDF progress report", icon=":material/picture_as_pdf:"):
        try:
            frame.call(
                audited_export,
                action="report.export",
                patient_id=int(o.patient["patient_id"]),
                object_type="series",
                object_id=series_id,
                details={"format": "pdf"},
            )
        except PermissionDenied as exc:
            st.error(f"The report cannot be exported: {exc}")
            return
        photos = report_photos(
            o.photos,
            fetch=lambda pid: widgets.fetch_photo(pid, thumbnail=True, max_side=640, quiet=True),
        )
        st.session_state[key] = build_series_report(o, photos=photos)
    if key in st.session_state:
        st.download_button(
            "Download PDF",
            st.session_state[key],
            type="primary",
            file_name=f"candor-series-{series_id}.pdf",
            mime="application/pdf",
            icon=":material/download:",
        )
    st.subheader("Export for other systems")
    interop.export_panel(key=f"interop_series_{series_id}", series_id=series_id)


def page() -> None:
    frame.require_page("series.read")
    st.title("Series review")
    series_id = widgets.pick_series()
    if series_id is None:
        return
    try:
        o = frame.call(series_overview, series_id)
    except (LookupError, PermissionDenied) as exc:  # PermissionDenied: e.g. a blinded rater
        st.error(str(exc))
        return
    ctx = frame.call(capture.capture_context, series_id=series_id)
    _header(o)
    st.plotly_chart(
        charts.timeline_figure(o.sessions, o.treatments, o.reactions, o.confounders),
        key="timeline",
        width="stretch",
    )
    # Only the open tab runs: photos are fetched (and audited) and measured only when looked at.
    names = list(TABS)
    sections: tuple[Callable[[], None], ...] = (
        lambda: _grid(o),
        lambda: _compare(o, ctx),
        lambda: _endpoints(o),
        lambda: _tables(o),
        lambda: _export(o, series_id),
    )
    if (o.photos["view"] == TRICHOSCOPY_VIEW).any() if len(o.photos) else False:
        names.insert(3, TRICHOSCOPY_TAB)
        sections = (*sections[:3], lambda: _trichoscopy(series_id), *sections[3:])
    tabs = st.tabs(names, key="review_tab", on_change="rerun")
    for tab, show in zip(tabs, sections, strict=True):
        if tab.open:
            with tab:
                show()


page()
