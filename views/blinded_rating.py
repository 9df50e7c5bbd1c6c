"""Blinded rating: raters score masked, randomised photo pairs; the director creates and closes
studies and reads the agreement and the blinded-versus-unblinded results.

The rater's screen shows only what :class:`analysis.services.rating.BlindedShowing` carries (no date,
session number, patient code or file name) and the two photos as re-encoded pixels.
"""

from __future__ import annotations

from functools import partial

import pandas as pd
import streamlit as st

from analysis.services import rating
from analysis.services.analytics import Estimate
from analysis.services.common import (
    SERIES_STATUSES,
    Actor,
    FieldError,
    PermissionDenied,
    allowed,
)
from ui import frame, widgets

FLASH = "rating_flash"
IMAGES = "rating_images"
FIELD_LABELS = {
    "title": "Title",
    "endpoint_code": "Endpoint",
    "protocol_ids": "Protocols",
    "views": "Views",
    "followup": "Time point",
    "followup_session": "Follow-up session",
    "followup_days": "Days after baseline",
    "window_days": "Window",
    "repeat_share": "Repeats",
    "statuses": "Series status",
    "max_pairs": "At most this many pairs",
    "rater_ids": "Raters",
    "pairs": "Pairs",
    "study_id": "Study",
    "assignment_id": "Pair",
    "better_side": "Which photo looks better",
    "grade": "How much better",
    "left_score": "Left photo",
    "right_score": "Right photo",
}
SIDES = {
    "left": "Left photo",
    "right": "Right photo",
    rating.NO_DIFFERENCE: "No visible difference",
}


def _flash() -> None:
    message = st.session_state.pop(FLASH, None)
    if message:
        st.success(message)


def _done(message: str) -> None:
    st.session_state[FLASH] = message
    st.rerun()


# --- the rater's screen ------------------------------------------------------------------------


def _images(showing: rating.BlindedShowing) -> rating.BlindedImages | None:
    """The showing's photos, fetched (and audited) once per showing in this browser session."""
    cached = st.session_state.get(IMAGES)
    if cached is not None and cached[0] == showing.assignment_id:
        images: rating.BlindedImages = cached[1]
        return images
    try:
        with st.spinner("Preparing the pair…"):
            images = frame.call(
                rating.showing_images,
                assignment_id=showing.assignment_id,
                cache=widgets.measurement_cache(),
            )
    except (PermissionDenied, FieldError, OSError, ValueError) as exc:
        st.error(f"This pair cannot be shown: {exc}")
        return None
    st.session_state[IMAGES] = (showing.assignment_id, images)
    return images


def _rate_form(showing: rating.BlindedShowing) -> None:
    labels = dict(showing.choices)
    values = [v for v, _ in showing.choices]
    with st.form(f"rate_{showing.assignment_id}", clear_on_submit=False):
        if showing.mode == "against_other":
            side = st.radio(
                "Which photo looks better?",
                list(SIDES),
                format_func=widgets.labeller(SIDES),
                index=None,
                horizontal=True,
                key=f"side_{showing.assignment_id}",
            )
            grade = st.radio(
                "How much better (the better photo against the other)",
                values,
                format_func=widgets.labeller(labels),
                index=None,
                key=f"grade_{showing.assignment_id}",
                help="Leave empty when there is no visible difference.",
            )
            kwargs = {"better_side": side, "grade": grade}
        else:
            c1, c2 = st.columns(2)
            left = c1.radio(
                "Left photo",
                values,
                format_func=widgets.labeller(labels),
                index=None,
                key=f"left_{showing.assignment_id}",
            )
            right = c2.radio(
                "Right photo",
                values,
                format_func=widgets.labeller(labels),
                index=None,
                key=f"right_{showing.assignment_id}",
            )
            kwargs = {"left_score": left, "right_score": right}
        sent = st.form_submit_button("Save rating", type="primary", icon=":material/check:")
    if not sent:
        return
    try:
        frame.call(rating.submit_rating, assignment_id=showing.assignment_id, **kwargs)
    except FieldError as exc:
        widgets.field_error(exc, FIELD_LABELS)
        return
    st.session_state.pop(IMAGES, None)
    _done(f"Rating saved ({showing.number} of {showing.total}).")


def rate_tab() -> None:
    studies = [
        s for s in frame.call(rating.list_studies) if s.status == "open" and s.my_total is not None
    ]
    if not studies:
        st.info(
            "You have no open rating study. The medical director invites raters when a study "
            "is created."
        )
        return
    names = {s.study_id: s.title for s in studies}
    study_id = st.selectbox(
        "Study", list(names), format_func=widgets.labeller(names), key="rate_study"
    )
    mine = next(s for s in studies if s.study_id == study_id)
    st.caption(f"You have rated {mine.my_done} of {mine.my_total} showings of this study.")
    try:
        showing = frame.call(rating.next_showing, study_id=study_id)
    except FieldError as exc:
        widgets.field_error(exc, FIELD_LABELS)
        return
    if showing is None:
        st.success("You have rated every pair of this study. Thank you.")
        return
    st.subheader(f"Pair {showing.number} of {showing.total}")
    st.caption(
        f"{widgets.view_label(showing.view)} · {showing.endpoint_name}. Dates, session "
        "numbers and patient details are hidden and the order is random; you may see a "
        "pair again. Other raters' scores are not shown while the study is open."
    )
    images = _images(showing)
    if images is None:
        return
    c1, c2 = st.columns(2)
    c1.image(images.left_png, caption="Left photo", width="stretch")
    c2.image(images.right_png, caption="Right photo", width="stretch")
    st.caption(f"Photos {images.note}.")
    st.markdown(f"**{showing.question}**")
    _rate_form(showing)


# --- studies (director) ------------------------------------------------------------------------


def _spec(options: rating.SetupOptions) -> rating.StudySpec:
    protocols = dict(options.protocols)
    endpoints = dict(options.endpoints)
    raters = dict(options.raters)
    title = st.text_input(
        "Title", key="ns_title", placeholder="e.g. Booster: baseline vs session 4"
    )
    c1, c2 = st.columns(2)
    chosen = c1.multiselect(
        "Protocols", list(protocols), format_func=widgets.labeller(protocols), key="ns_protocols"
    )
    endpoint = c2.selectbox(
        "Endpoint",
        list(endpoints),
        format_func=widgets.labeller(endpoints),
        index=None,
        key="ns_endpoint",
        placeholder="GAIS, global photo score, a scale…",
    )
    views = c1.multiselect(
        "Views", list(options.views), format_func=widgets.view_label, key="ns_views"
    )
    by = c2.radio(
        "Time point", ["Session number", "Days after baseline"], horizontal=True, key="ns_by"
    )
    c3, c4 = st.columns(2)
    if by == "Session number":
        session_n = c3.number_input(
            "Baseline (session 1) against session",
            min_value=2,
            max_value=60,
            value=4,
            step=1,
            key="ns_session",
        )
        days, window = None, 21
    else:
        session_n = None
        days = c3.number_input(
            "Days after baseline", min_value=1, max_value=2000, value=90, step=1, key="ns_days"
        )
        window = c4.number_input(
            "Window (± days)", min_value=0, max_value=120, value=21, step=1, key="ns_window"
        )
    rater_ids = st.multiselect(
        "Raters (clinicians or directors)",
        list(raters),
        format_func=widgets.labeller(raters),
        key="ns_raters",
    )
    c5, c6 = st.columns(2)
    repeat = c5.slider(
        "Pairs shown twice (blinded repeat)", 0, 50, 20, 5, format="%d%%", key="ns_repeat"
    )
    statuses = c6.multiselect(
        "Series status (all when empty)",
        list(SERIES_STATUSES),
        format_func=lambda s: s.replace("_", " "),
        key="ns_statuses",
    )
    confounders = st.toggle(
        "Leave out series with a confounder between the two photos", key="ns_confounders"
    )
    sample = st.number_input(
        "At most this many pairs (a random sample when more pass the gate)",
        min_value=2,
        max_value=rating.MAX_PAIRS,
        value=60,
        step=1,
        key="ns_max_pairs",
    )
    return rating.StudySpec(
        title=title,
        endpoint_code=endpoint or "",
        protocol_ids=tuple(chosen),
        views=tuple(views),
        rater_ids=tuple(rater_ids),
        followup_session=int(session_n) if session_n else None,
        followup_days=int(days) if days else None,
        window_days=int(window),
        repeat_share=repeat / 100,
        statuses=tuple(statuses),
        exclude_confounders=confounders,
        max_pairs=int(sample),
    )


def new_study_tab() -> None:
    options = frame.call(rating.setup_options)
    if not options.protocols:
        st.info("No protocols yet.")
        return
    spec = _spec(options)
    c1, c2 = st.columns(2)
    preview = c1.button("Preview pairs", icon=":material/preview:")
    create = c2.button("Create study", type="primary", icon=":material/add:")
    if preview:
        try:
            selection = frame.call(rating.preview_pairs, spec)
        except FieldError as exc:
            widgets.field_error(exc, FIELD_LABELS)
            return
        st.info(
            f"{len(selection.pairs)} pairs pass the comparability gate; "
            f"{len(selection.excluded)} left out (listed below)."
        )
        if selection.excluded:
            st.dataframe(pd.DataFrame(selection.excluded), hide_index=True)
    if create:
        try:
            study_id = frame.call(rating.create_study, spec)
        except FieldError as exc:
            widgets.field_error(exc, FIELD_LABELS)
            return
        for key in [k for k in st.session_state if str(k).startswith("ns_")]:
            del st.session_state[key]
        _done(f"Study {study_id} created; its raters see it under Rate.")


def _pretty(df: pd.DataFrame) -> pd.DataFrame:
    return df.round(2).rename(columns=lambda c: str(c).replace("_", " ").capitalize())


def _share(value: float, low: float, high: float, n: int) -> str:
    if pd.isna(value):
        return f"n/a (n={n})"
    return f"{value:.0%} ({low:.0%}–{high:.0%}, n={n})"


def _estimate_row(name: str, e: Estimate) -> tuple[str, str, int, str]:
    return (name, e.label(), e.n, e.method)


def _signed_in() -> Actor:
    actor = frame.current_actor()
    assert actor is not None  # the page is only served to a signed-in actor
    return actor


def _results(study: rating.StudyRow) -> None:
    key = f"rating_results_{study.study_id}"  # a closed study never changes: read (audited) once
    try:
        if key not in st.session_state:
            st.session_state[key] = frame.call(rating.study_results, study_id=study.study_id)
    except FieldError as exc:
        widgets.field_error(exc, FIELD_LABELS)
        return
    r = st.session_state[key]
    st.markdown(f"**Results: {r.title}** · {r.endpoint_name}")
    st.caption(
        "Blinded change: follow-up against baseline from the rater's masked rating, "
        "positive = better, in scale steps."
    )
    st.markdown("Per rater")
    st.dataframe(_pretty(r.per_rater), hide_index=True)
    viewed = r.per_rater[r.per_rater["record_views_while_open"] > 0]
    if not viewed.empty:
        st.warning(
            "Opened the clinic record (Series review) of a series in this study while it "
            "was open, so their ratings may not be blind: "
            + ", ".join(f"{x.rater} ({x.record_views_while_open}×)" for x in viewed.itertuples()),
            icon=":material/visibility:",
        )
    st.markdown("Agreement between raters (first showings)")
    st.dataframe(
        _pretty(r.pairwise_kappa.rename(columns={"kappa": "weighted_kappa"})), hide_index=True
    )
    st.dataframe(
        pd.DataFrame(
            [
                _estimate_row("ICC(2,1)", r.icc),
                _estimate_row("Krippendorff's alpha", r.alpha),
                _estimate_row("Intra-rater, pooled (blinded repeats)", r.intra_pooled),
                _estimate_row("Blinded vs unblinded gap", r.gap),
            ],
            columns=["statistic", "value (95 % CI)", "n", "method"],
        ),
        hide_index=True,
    )
    st.markdown("Intra-rater agreement on the blinded repeats")
    st.dataframe(
        _pretty(
            r.intra.rename(
                columns={"same_rating": "share_rated_the_same", "kappa": "weighted_kappa"}
            )
        ),
        hide_index=True,
    )
    st.markdown("Responders by protocol: blinded against unblinded (same pairs)")
    st.dataframe(
        pd.DataFrame(
            [
                (
                    x.protocol,
                    _share(x.unblinded_share, x.unblinded_low, x.unblinded_high, x.unblinded_pairs),
                    _share(x.blinded_share, x.blinded_low, x.blinded_high, x.pairs),
                )
                for x in r.responders.itertuples()
            ],
            columns=["Protocol", "Unblinded (clinic-recorded)", "Blinded"],
        ),
        hide_index=True,
    )
    st.caption(r.responder_rule + " " + r.methods["responders"] + ".")
    with st.expander("Pairs: blinded and clinic-recorded change"):
        st.dataframe(_pretty(r.pairs), hide_index=True)
    st.download_button(
        "Ratings (CSV)",
        file_name=f"rating_study_{study.study_id}.csv",
        mime="text/csv",
        on_click="ignore",
        icon=":material/table:",
        key=f"dl_ratings_{study.study_id}",
        data=partial(rating.export_ratings_bytes, _signed_in(), study_id=study.study_id),
    )


def studies_tab() -> None:
    studies = frame.call(rating.list_studies)
    if not studies:
        st.info("No rating studies yet. Create one under New study.")
        return
    st.dataframe(
        pd.DataFrame(
            [
                (
                    s.study_id,
                    s.title,
                    s.status,
                    s.pairs,
                    s.excluded,
                    ", ".join(f"{n}: {d}/{t}" for n, (d, t) in s.progress.items()),
                )
                for s in studies
            ],
            columns=["id", "title", "status", "pairs", "left out", "progress (showings rated)"],
        ),
        hide_index=True,
    )
    names = {s.study_id: f"{s.title} ({s.status})" for s in studies}
    study_id = st.selectbox(
        "Study", list(names), format_func=widgets.labeller(names), key="manage_study"
    )
    study = next(s for s in studies if s.study_id == study_id)
    with st.expander(f"Left out: {study.excluded} series, with their reasons"):
        st.dataframe(frame.call(rating.study_exclusions, study_id=study_id), hide_index=True)
    if study.status == "open":
        st.caption("Scores stay hidden until the study is closed; only progress is shown.")
        if st.button("Close study", icon=":material/lock:", key=f"close_{study_id}"):
            try:
                frame.call(rating.close_study, study_id=study_id)
            except FieldError as exc:
                widgets.field_error(exc, FIELD_LABELS)
                return
            _done("Study closed; its results are below.")
    else:
        _results(study)


def page() -> None:
    actor = frame.require_page("rating.rate")
    st.title("Blinded rating")
    st.caption(
        "Masked, randomised photo pairs scored by invited raters, with inter- and "
        "intra-rater agreement and the gap between blinded and clinic-recorded results."
    )
    _flash()
    if allowed(actor, "rating.manage"):
        studies, new, rate = st.tabs(["Studies", "New study", "Rate"])
        with studies:
            studies_tab()
        with new:
            new_study_tab()
    else:
        (rate,) = st.tabs(["Rate"])
    with rate:
        rate_tab()


try:
    page()
except PermissionDenied as exc:
    st.error(f"Not allowed: {exc}")
