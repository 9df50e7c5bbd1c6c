"""Blinded rating studies: the medical director's answer to "is it the treatment or the photo?".

The director (``rating.manage``) creates a study: protocol(s), an endpoint, view(s), the time point
(baseline against session N, or against the session closest to N days after baseline) and the
inclusion rules, and invites raters (clinicians or directors). Only pairs whose two photos pass the
comparability gate are used; every other series is listed with its reason
(:func:`preview_pairs`, stored on the study). Each rater (``rating.rate``) sees one pair at a time
in their own random order, left/right drawn per showing, with a share of the pairs shown a second
time (blinded repeat); the rater's view model (:class:`BlindedShowing`) and the images (pixels
re-encoded as PNG, aligned as in Series review) carry no date, session number, patient code, file
name or photo id. While a study is open nobody sees any scores: the director sees only how many
showings each rater has done; results (:func:`study_results`) exist once the study is closed.

How a rating becomes a number (the "blinded change", positive = better, in scale steps):

* endpoints rated *against baseline* (``neutral`` set: GAIS, a global photographic score): the
  rater picks the photo that looks better (or "no visible difference") and grades it on the
  scale's improving half; picking the baseline is a worsening of that size;
* stand-alone scales (Sinclair, Ludwig, Norwood, a clinic scale): each photo is scored on its
  own, and the change is follow-up minus baseline.

Audit: ``rating.study.create`` (seed, pair and showing counts), ``rating.rate`` (who rated which
showing, when, with the patient in the audit trail only), ``rating.study.close``,
``rating.results``, ``rating.export``; viewing the photos is the usual ``photo.compare`` event.
The seed and every assignment are stored, so :func:`analysis.outcomes.agreement.plan_assignments`
reproduces the randomisation.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session as DbSession

from analysis.errors import FieldError
from analysis.outcomes import agreement
from analysis.outcomes.agreement import Estimate
from analysis.outcomes.frames import GATE_PASSING, to_csv_bytes
from analysis.store import audit
from analysis.store.access import CLINICAL, Actor, allowed, require
from analysis.store.models import (
    SERIES_STATUSES,
    Confounder,
    Consent,
    EndpointDefinition,
    EndpointMeasurement,
    Photo,
    Protocol,
    RatingAssignment,
    RatingPair,
    RatingRater,
    RatingStudy,
    Series,
    Session,
    User,
    utcnow,
)

MAX_PAIRS = 400
NO_DIFFERENCE = "none"


# --- setting a study up ------------------------------------------------------------------------


@dataclass(frozen=True)
class StudySpec:
    """What the director chooses. Exactly one of ``followup_session`` (2 or more) and
    ``followup_days`` (the session closest to that many days after session 1, within
    ``window_days``) is given. ``statuses``: series statuses to include (all when empty);
    ``exclude_confounders``: leave out series with a confounder recorded between the two photos."""

    title: str
    endpoint_code: str
    protocol_ids: tuple[int, ...]
    views: tuple[str, ...]
    rater_ids: tuple[int, ...]
    followup_session: int | None = None
    followup_days: int | None = None
    window_days: int = 21
    repeat_share: float = 0.2
    statuses: tuple[str, ...] = ()
    exclude_confounders: bool = False
    seed: int | None = None
    max_pairs: int | None = None  # a seeded random sample of the gate-passing pairs


@dataclass(frozen=True)
class SetupOptions:
    protocols: tuple[tuple[int, str], ...]
    endpoints: tuple[tuple[str, str], ...]  # rating endpoints (ordinal, count or numeric)
    views: tuple[str, ...]
    raters: tuple[tuple[int, str], ...]  # active clinicians and directors


@dataclass(frozen=True)
class CandidatePair:
    series_id: int
    patient_id: int
    protocol_id: int
    view: str
    baseline_photo_id: int
    followup_photo_id: int
    baseline_session: int
    followup_session: int


@dataclass(frozen=True)
class PairSelection:
    pairs: tuple[CandidatePair, ...]
    excluded: tuple[dict[str, Any], ...]  # {"series_id", "view", "reason"}


def setup_options(session: DbSession, actor: Actor) -> SetupOptions:
    require(actor, "rating.manage", session)
    protocols = tuple(
        (int(i), str(n))
        for i, n in session.execute(select(Protocol.id, Protocol.name).order_by(Protocol.name))
    )
    endpoints = tuple(
        (str(c), str(n))
        for c, n in session.execute(
            select(EndpointDefinition.code, EndpointDefinition.name)
            .where(EndpointDefinition.kind.in_(("ordinal", "count", "numeric")))
            .order_by(EndpointDefinition.name)
        )
    )
    views = tuple(
        str(v) for v in session.scalars(select(Photo.view).distinct().order_by(Photo.view))
    )
    raters = tuple(
        (int(i), f"{n} ({e})")
        for i, n, e in session.execute(
            select(User.id, User.display_name, User.email)
            .where(User.role.in_(sorted(CLINICAL)), User.active.is_(True))
            .order_by(User.display_name)
        )
    )
    return SetupOptions(protocols, endpoints, views, raters)


def _validate(session: DbSession, spec: StudySpec) -> EndpointDefinition:
    if not spec.title.strip():
        raise FieldError("title", "give the study a title")
    if not spec.protocol_ids:
        raise FieldError("protocol_ids", "choose at least one protocol")
    if not spec.views:
        raise FieldError("views", "choose at least one photo view")
    if (spec.followup_session is None) == (spec.followup_days is None):
        raise FieldError("followup", "choose the follow-up either by session number or by days")
    if spec.followup_session is not None and spec.followup_session < 2:
        raise FieldError("followup_session", "the follow-up session must be 2 or later")
    if spec.followup_days is not None and spec.followup_days < 1:
        raise FieldError("followup_days", "the follow-up must be at least 1 day after baseline")
    if spec.window_days < 0:
        raise FieldError("window_days", "the window cannot be negative")
    if spec.max_pairs is not None and not 2 <= spec.max_pairs <= MAX_PAIRS:
        raise FieldError("max_pairs", f"the sample must be between 2 and {MAX_PAIRS} pairs")
    if not 0.0 <= spec.repeat_share <= 0.5:
        raise FieldError("repeat_share", "the share of repeats must be between 0 and 50 %")
    bad = [s for s in spec.statuses if s not in SERIES_STATUSES]
    if bad:
        raise FieldError("statuses", f"unknown series status {bad[0]!r}")
    endpoint = session.scalar(
        select(EndpointDefinition).where(EndpointDefinition.code == spec.endpoint_code)
    )
    if endpoint is None or endpoint.kind == "text":
        raise FieldError("endpoint_code", "choose a scored endpoint (not free text)")
    if endpoint.scale_min is None or endpoint.scale_max is None:
        raise FieldError("endpoint_code", "the endpoint needs a scale (minimum and maximum)")
    return endpoint


def _consenting(session: DbSession, patient_ids: set[int]) -> set[int]:
    if not patient_ids:
        return set()
    now = utcnow()
    return set(
        session.scalars(
            select(Consent.patient_id).where(
                Consent.scope == "clinical_record",
                Consent.given_at <= now,
                or_(Consent.withdrawn_at.is_(None), Consent.withdrawn_at > now),
                Consent.patient_id.in_(sorted(patient_ids)),
            )
        )
    )


def preview_pairs(session: DbSession, actor: Actor, spec: StudySpec) -> PairSelection:
    """The pairs the study would use and every series left out, with its reason."""
    require(actor, "rating.manage", session)
    _validate(session, spec)
    series = session.execute(
        select(Series.id, Series.patient_id, Series.protocol_id, Series.status)
        .where(Series.protocol_id.in_(sorted(spec.protocol_ids)))
        .order_by(Series.id)
    ).all()
    ids = [int(s.id) for s in series]
    sessions: dict[int, list[tuple[int, date]]] = {}
    for sid, number, on in session.execute(
        select(Session.series_id, Session.number, Session.performed_on)
        .where(Session.series_id.in_(ids))
        .order_by(Session.series_id, Session.number)
    ):
        sessions.setdefault(int(sid), []).append((int(number), on))
    photos: dict[tuple[int, int, str], tuple[int, str]] = {}
    for sid, number, view, pid, verdict in session.execute(
        select(Session.series_id, Session.number, Photo.view, Photo.id, Photo.verdict)
        .join(Photo, Photo.session_id == Session.id)
        .where(Session.series_id.in_(ids), Photo.view.in_(sorted(spec.views)))
        .order_by(Photo.id)
    ):
        photos[(int(sid), int(number), str(view))] = (int(pid), str(verdict))  # last one kept
    confounders: dict[int, list[tuple[date, date | None]]] = {}
    if spec.exclude_confounders:
        for sid, start, end in session.execute(
            select(Confounder.series_id, Confounder.started_on, Confounder.ended_on).where(
                Confounder.series_id.in_(ids)
            )
        ):
            confounders.setdefault(int(sid), []).append((start, end))
    consenting = _consenting(session, {int(s.patient_id) for s in series})
    pairs: list[CandidatePair] = []
    excluded: list[dict[str, Any]] = []

    def out(sid: int, view: str, reason: str) -> None:
        excluded.append({"series_id": sid, "view": view, "reason": reason})

    for s in series:
        sid = int(s.id)
        if spec.statuses and s.status not in spec.statuses:
            out(sid, "", f"series status {s.status.replace('_', ' ')} is not included")
            continue
        if int(s.patient_id) not in consenting:
            out(sid, "", "no current clinical-record photo consent")
            continue
        visits = dict(sessions.get(sid, []))
        if 1 not in visits:
            out(sid, "", "no baseline session")
            continue
        target = _followup_number(visits, spec)
        if target is None:
            when = (
                f"session {spec.followup_session}"
                if spec.followup_session is not None
                else f"{spec.followup_days} ± {spec.window_days} days after baseline"
            )
            out(sid, "", f"no session at the time point ({when})")
            continue
        if spec.exclude_confounders and any(
            start <= visits[target] and (end is None or end >= visits[1])
            for start, end in confounders.get(sid, [])
        ):
            out(sid, "", "a confounder was recorded between the two photos")
            continue
        for view in spec.views:
            base = photos.get((sid, 1, view))
            later = photos.get((sid, target, view))
            if base is None:
                out(sid, view, "no baseline photo of this view")
            elif later is None:
                out(sid, view, "no follow-up photo of this view at the time point")
            elif base[1] not in GATE_PASSING:
                out(sid, view, f"baseline photo did not pass the comparability gate ({base[1]})")
            elif later[1] not in GATE_PASSING:
                out(sid, view, f"follow-up photo did not pass the comparability gate ({later[1]})")
            else:
                pairs.append(
                    CandidatePair(
                        sid,
                        int(s.patient_id),
                        int(s.protocol_id),
                        view,
                        base[0],
                        later[0],
                        1,
                        target,
                    )
                )
    return PairSelection(tuple(pairs), tuple(excluded))


def _sampled(selection: PairSelection, max_pairs: int | None, seed: int) -> PairSelection:
    """At most ``max_pairs`` pairs drawn at random (seeded); the others are listed as not sampled."""
    if max_pairs is None or len(selection.pairs) <= max_pairs:
        return selection
    rng = np.random.default_rng([seed, 0])
    keep = set(int(i) for i in rng.choice(len(selection.pairs), size=max_pairs, replace=False))
    dropped = tuple(
        {
            "series_id": c.series_id,
            "view": c.view,
            "reason": f"not in the random sample of {max_pairs} pairs",
        }
        for i, c in enumerate(selection.pairs)
        if i not in keep
    )
    return PairSelection(
        tuple(c for i, c in enumerate(selection.pairs) if i in keep), selection.excluded + dropped
    )


def _followup_number(visits: dict[int, date], spec: StudySpec) -> int | None:
    if spec.followup_session is not None:
        return spec.followup_session if spec.followup_session in visits else None
    assert spec.followup_days is not None
    start = visits[1]
    best = None
    for number, on in visits.items():
        if number == 1:
            continue
        miss = abs((on - start).days - spec.followup_days)
        if miss <= spec.window_days and (best is None or miss < best[0]):
            best = (miss, number)
    return None if best is None else best[1]


def create_study(session: DbSession, actor: Actor, spec: StudySpec) -> int:
    """Create the study, its pairs and every rater's showings (order, sides, repeats)."""
    require(actor, "rating.manage", session)
    _validate(session, spec)
    raters = sorted(set(int(r) for r in spec.rater_ids))
    if not raters:
        raise FieldError("rater_ids", "invite at least one rater")
    found = set(
        session.scalars(
            select(User.id).where(
                User.id.in_(raters), User.role.in_(sorted(CLINICAL)), User.active.is_(True)
            )
        )
    )
    if found != set(raters):
        raise FieldError("rater_ids", "raters must be active clinicians or medical directors")
    seed = int(spec.seed if spec.seed is not None else secrets.randbelow(2**31 - 1))
    selection = _sampled(preview_pairs(session, actor, spec), spec.max_pairs, seed)
    if len(selection.pairs) < 2:
        raise FieldError(
            "pairs",
            f"only {len(selection.pairs)} pair(s) pass the comparability gate "
            "at this time point; a study needs at least 2",
        )
    if len(selection.pairs) > MAX_PAIRS:
        raise FieldError(
            "pairs",
            f"{len(selection.pairs)} pairs; narrow the study to at most "
            f"{MAX_PAIRS} (a sample size)",
        )
    study = RatingStudy(
        title=spec.title.strip(),
        endpoint_code=spec.endpoint_code,
        protocol_ids=sorted(set(spec.protocol_ids)),
        views=list(spec.views),
        followup_session=spec.followup_session,
        followup_days=spec.followup_days,
        window_days=spec.window_days,
        inclusion={
            "statuses": list(spec.statuses),
            "exclude_confounders": spec.exclude_confounders,
            "gate": sorted(GATE_PASSING),
            "max_pairs": spec.max_pairs,
        },
        exclusions=list(selection.excluded),
        repeat_share=float(spec.repeat_share),
        seed=seed,
        status="open",
        created_by_id=actor.user_id,
    )
    session.add(study)
    session.flush()
    pair_rows = []
    for position, c in enumerate(selection.pairs):
        row = RatingPair(
            study_id=study.id,
            position=position,
            series_id=c.series_id,
            view=c.view,
            baseline_photo_id=c.baseline_photo_id,
            followup_photo_id=c.followup_photo_id,
        )
        pair_rows.append(row)
    session.add_all(pair_rows)
    session.add_all([RatingRater(study_id=study.id, user_id=r) for r in raters])
    session.flush()
    plan = agreement.plan_assignments(
        seed, n_pairs=len(pair_rows), rater_ids=raters, repeat_share=spec.repeat_share
    )
    session.add_all(
        [
            RatingAssignment(
                study_id=study.id,
                rater_id=p.rater_id,
                pair_id=pair_rows[p.pair_index].id,
                order_index=p.order_index,
                left_is_baseline=p.left_is_baseline,
                repeat=p.repeat,
            )
            for p in plan
        ]
    )
    session.flush()
    audit.record(
        session,
        actor,
        "rating.study.create",
        object_type="rating_study",
        object_id=study.id,
        details={
            "seed": seed,
            "pairs": len(pair_rows),
            "excluded": len(selection.excluded),
            "raters": raters,
            "showings": len(plan),
            "endpoint": spec.endpoint_code,
            "protocol_ids": study.protocol_ids,
            "views": list(spec.views),
            "repeat_share": spec.repeat_share,
        },
    )
    return int(study.id)


def _study(session: DbSession, study_id: int) -> RatingStudy:
    study = session.get(RatingStudy, study_id)
    if study is None:
        raise FieldError("study_id", f"there is no rating study with id {study_id}")
    return study


def close_study(session: DbSession, actor: Actor, *, study_id: int) -> None:
    """Close the study: no more ratings; results become available."""
    require(actor, "rating.manage", session)
    study = _study(session, study_id)
    if study.status == "closed":
        raise FieldError("study_id", "this study is already closed")
    done, total = session.execute(
        select(func.count(RatingAssignment.rated_at), func.count(RatingAssignment.id)).where(
            RatingAssignment.study_id == study_id
        )
    ).one()
    study.status = "closed"
    study.closed_at = utcnow()
    audit.record(
        session,
        actor,
        "rating.study.close",
        object_type="rating_study",
        object_id=study_id,
        details={"rated": int(done), "showings": int(total)},
    )


# --- the list of studies -------------------------------------------------------------------------


@dataclass(frozen=True)
class StudyRow:
    study_id: int
    title: str
    status: str
    endpoint_code: str
    pairs: int
    excluded: int
    my_done: int | None  # this actor's rated showings, None when not a rater
    my_total: int | None
    progress: dict[str, tuple[int, int]]  # rater name -> (done, total); director only


def _neutral_label(study: RatingStudy, endpoint_name: str) -> str:
    return f"Study {study.id} · {endpoint_name}"


def list_studies(session: DbSession, actor: Actor) -> list[StudyRow]:
    """The director sees every study with each rater's progress (counts, never scores); a rater
    sees the studies they are invited to, with their own progress only, under a neutral label
    (the director's title may name the time point, which the rater must not know)."""
    require(actor, "rating.rate", session)
    manager = allowed(actor, "rating.manage")
    query = select(RatingStudy).order_by(RatingStudy.id.desc())
    if not manager:
        query = query.join(RatingRater, RatingRater.study_id == RatingStudy.id).where(
            RatingRater.user_id == (actor.user_id if actor.user_id is not None else -1)
        )
    counts: dict[tuple[int, int], tuple[int, int]] = {}
    names: dict[int, str] = {}
    for sid, uid, name, done, total in session.execute(
        select(
            RatingAssignment.study_id,
            RatingAssignment.rater_id,
            User.display_name,
            func.count(RatingAssignment.rated_at),
            func.count(RatingAssignment.id),
        )
        .join(User, User.id == RatingAssignment.rater_id)
        .group_by(RatingAssignment.study_id, RatingAssignment.rater_id, User.display_name)
    ):
        counts[(int(sid), int(uid))] = (int(done), int(total))
        names[int(uid)] = str(name)
    pair_counts = dict(
        session.execute(
            select(RatingPair.study_id, func.count(RatingPair.id)).group_by(RatingPair.study_id)
        ).all()
    )
    endpoint_names = dict(
        session.execute(select(EndpointDefinition.code, EndpointDefinition.name)).all()
    )
    rows = []
    for study in session.scalars(query):
        mine = counts.get((study.id, actor.user_id)) if actor.user_id is not None else None
        progress = (
            {names[u]: c for (s, u), c in sorted(counts.items()) if s == study.id}
            if manager
            else {}
        )
        title = (
            study.title
            if manager
            else _neutral_label(study, endpoint_names.get(study.endpoint_code, study.endpoint_code))
        )
        rows.append(
            StudyRow(
                int(study.id),
                title,
                study.status,
                study.endpoint_code,
                int(pair_counts.get(study.id, 0)),
                len(study.exclusions or []),
                mine[0] if mine else None,
                mine[1] if mine else None,
                progress,
            )
        )
    return rows


def study_exclusions(session: DbSession, actor: Actor, *, study_id: int) -> pd.DataFrame:
    """The series left out of the study, with the patient code and the reason (director only)."""
    require(actor, "rating.manage", session)
    from analysis.store.models import Patient

    study = _study(session, study_id)
    rows = list(study.exclusions or [])
    codes = dict(
        session.execute(
            select(Series.id, Patient.code)
            .join(Patient, Patient.id == Series.patient_id)
            .where(Series.id.in_([r["series_id"] for r in rows]))
        ).all()
    )
    return pd.DataFrame(
        [
            (codes.get(r["series_id"], ""), r["series_id"], r["view"] or "all views", r["reason"])
            for r in rows
        ],
        columns=["patient", "series_id", "view", "reason"],
    )


# --- the rater's screen ------------------------------------------------------------------------


@dataclass(frozen=True)
class BlindedShowing:
    """Everything the rater's screen shows, and nothing more: no date, session number, patient
    code, file name, series or photo id. ``assignment_id`` is the opaque handle of this showing."""

    assignment_id: int
    study_label: (
        str  # "Study 3 · <endpoint>": never the director's title, which may name the time point
    )
    number: int  # 1-based place in this rater's sequence
    total: int
    view: str
    endpoint_name: str
    mode: str  # "against_other" or "each_photo"
    choices: tuple[tuple[float, str], ...]  # grades (against_other) or scores (each_photo)
    question: str


def _scale(endpoint: EndpointDefinition) -> list[float]:
    lo, hi = float(endpoint.scale_min or 0), float(endpoint.scale_max or 0)
    if endpoint.kind in ("ordinal", "count") or (hi - lo) <= 20:
        return [float(v) for v in np.arange(lo, hi + 0.5, 1.0)]
    return [float(v) for v in np.linspace(lo, hi, 11)]


def _label(endpoint: EndpointDefinition, value: float) -> str:
    anchors = {str(k): str(v) for k, v in (endpoint.anchors or {}).items()}
    anchor = anchors.get(f"{value:g}") or anchors.get(str(value))
    return f"{value:g} – {anchor}" if anchor else f"{value:g}"


def _best(endpoint: EndpointDefinition) -> float:
    best = endpoint.scale_max if endpoint.higher_is_better else endpoint.scale_min
    if best is None:
        raise ValueError(f"endpoint {endpoint.code!r} has no scale bound to rate towards")
    return float(best)


def _grades(endpoint: EndpointDefinition) -> list[float]:
    """The improving half of a rating made against baseline, beyond no change."""
    neutral, best = float(endpoint.neutral), _best(endpoint)  # type: ignore[arg-type]
    return [
        v
        for v in _scale(endpoint)
        if min(neutral, best) <= v <= max(neutral, best) and v != neutral
    ]


def _endpoint_of(session: DbSession, study: RatingStudy) -> EndpointDefinition:
    endpoint = session.scalar(
        select(EndpointDefinition).where(EndpointDefinition.code == study.endpoint_code)
    )
    if endpoint is None:
        raise FieldError("endpoint_code", f"the study's endpoint {study.endpoint_code} is gone")
    return endpoint


def _my_assignment(session: DbSession, actor: Actor, assignment_id: int) -> RatingAssignment:
    a = session.get(RatingAssignment, assignment_id)
    if a is None or actor.user_id is None or a.rater_id != actor.user_id:
        raise FieldError("assignment_id", "this showing is not one of yours")
    return a


def next_showing(session: DbSession, actor: Actor, *, study_id: int) -> BlindedShowing | None:
    """The rater's next unrated showing of an open study (None when all are done)."""
    require(actor, "rating.rate", session)
    study = _study(session, study_id)
    if (
        actor.user_id is None
        or session.scalar(
            select(RatingRater.id).where(
                RatingRater.study_id == study_id, RatingRater.user_id == actor.user_id
            )
        )
        is None
    ):
        raise FieldError("study_id", "you are not a rater of this study")
    if study.status != "open":
        raise FieldError("study_id", "this study is closed")
    mine = select(RatingAssignment).where(
        RatingAssignment.study_id == study_id, RatingAssignment.rater_id == actor.user_id
    )
    total = int(session.scalar(select(func.count()).select_from(mine.subquery())) or 0)
    a = session.scalar(
        mine.where(RatingAssignment.rated_at.is_(None))
        .order_by(RatingAssignment.order_index)
        .limit(1)
    )
    if a is None:
        return None
    endpoint = _endpoint_of(session, study)
    if endpoint.neutral is not None:
        mode = "against_other"
        choices = tuple((v, _label(endpoint, v)) for v in _grades(endpoint))
        question = (
            f"Which photo looks better? Then grade it against the other photo on {endpoint.name}."
        )
    else:
        mode = "each_photo"
        choices = tuple((v, _label(endpoint, v)) for v in _scale(endpoint))
        question = f"Score each photo on its own on {endpoint.name}."
    return BlindedShowing(
        int(a.id),
        _neutral_label(study, endpoint.name),
        int(a.order_index) + 1,
        total,
        a.pair.view,
        endpoint.name,
        mode,
        choices,
        question,
    )


@dataclass(frozen=True)
class BlindedImages:
    """The two photos as PNG (pixels only: no EXIF, no text chunks), in this showing's order."""

    left_png: bytes
    right_png: bytes
    aligned: bool
    note: str


def showing_images(
    session: DbSession,
    actor: Actor,
    *,
    assignment_id: int,
    align: bool = True,
    cache: object | None = None,
    max_side: int = 900,
    store: Any = None,
) -> BlindedImages:
    """The showing's two photos, the follow-up aligned onto the baseline by landmarks as in Series
    review, placed left/right as randomised. The read goes through the audited photo door
    (``photo.compare``: role, current consent)."""
    from analysis.services import viewing
    from analysis.services.photo_access import photo_pair_bytes

    require(actor, "rating.rate", session)
    a = _my_assignment(session, actor, assignment_id)
    pair = a.pair
    study = _study(session, a.study_id)
    if study.status != "open":
        raise FieldError("study_id", "this study is closed")
    baseline_bytes, followup_bytes = photo_pair_bytes(
        session,
        actor,
        baseline_id=pair.baseline_photo_id,
        follow_up_id=pair.followup_photo_id,
        purpose="clinical_record",
        store=store,
    )
    baseline_rgb, followup_rgb, aligned, note = _aligned_and_cropped(
        baseline_bytes, followup_bytes, view=pair.view, align=align, cache=cache, max_side=max_side
    )
    left, right = (
        (baseline_rgb, followup_rgb) if a.left_is_baseline else (followup_rgb, baseline_rgb)
    )
    return BlindedImages(viewing.to_png(left), viewing.to_png(right), aligned, note)


def inner_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` (end-exclusive) of an axis-aligned rectangle lying wholly
    inside ``mask`` (True = covered): the mask's bounding box, shrunk one edge at a time on the
    side with the most uncovered pixels until none is left."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise ValueError("nothing is covered")
    top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    while top < bottom and left < right:
        gaps = {
            "top": int((~mask[top, left:right]).sum()),
            "bottom": int((~mask[bottom - 1, left:right]).sum()),
            "left": int((~mask[top:bottom, left]).sum()),
            "right": int((~mask[top:bottom, right - 1]).sum()),
        }
        side = max(gaps, key=gaps.__getitem__)
        if gaps[side] == 0:
            return top, bottom, left, right
        if side == "top":
            top += 1
        elif side == "bottom":
            bottom -= 1
        elif side == "left":
            left += 1
        else:
            right -= 1
    raise ValueError("no covered rectangle")


def _aligned_and_cropped(
    baseline_bytes: bytes,
    followup_bytes: bytes,
    *,
    view: str,
    align: bool,
    cache: object | None,
    max_side: int,
) -> tuple[np.ndarray, np.ndarray, bool, str]:
    """Both photos in the baseline's frame, the follow-up aligned by landmarks as in Series review
    (:func:`analysis.services.viewing.align_pair`), then both cropped to the part the warped follow-up
    covers: its black margins would otherwise tell the rater which photo is the follow-up."""
    from analysis.services import viewing

    baseline = viewing.decode_for_display(baseline_bytes, max_side=max_side)
    followup = viewing.decode_for_display(followup_bytes, max_side=max_side)
    marks: tuple[Any, Any] = (None, None)
    if align:
        from analysis.services.capture import measure_bytes

        mb = measure_bytes(baseline_bytes, view=view, cache=cache)  # type: ignore[arg-type]
        mf = measure_bytes(followup_bytes, view=view, cache=cache)  # type: ignore[arg-type]
        marks = (
            viewing.landmarks_for(
                mb.landmarks_px, original_width_px=mb.width_px, display_width_px=baseline.shape[1]
            ),
            viewing.landmarks_for(
                mf.landmarks_px, original_width_px=mf.width_px, display_width_px=followup.shape[1]
            ),
        )
    pair = viewing.align_pair(
        baseline, followup, reference_landmarks=marks[0], moving_landmarks=marks[1]
    )
    if not pair.aligned:
        note = pair.note if align else "shown resized to the same frame"
        return pair.reference, pair.moving, False, note
    covered = (
        viewing.align_pair(
            baseline,
            np.full_like(followup, 255),
            reference_landmarks=marks[0],
            moving_landmarks=marks[1],
        ).moving.min(axis=2)
        >= 250
    )
    top, bottom, left, right = inner_box(covered)
    return (
        pair.reference[top:bottom, left:right],
        pair.moving[top:bottom, left:right],
        True,
        pair.note + ", both cropped to the area they share",
    )


def submit_rating(
    session: DbSession,
    actor: Actor,
    *,
    assignment_id: int,
    better_side: str | None = None,
    grade: float | None = None,
    left_score: float | None = None,
    right_score: float | None = None,
) -> None:
    """Record the rater's rating of one showing (once; the study must be open)."""
    require(actor, "rating.rate", session)
    a = _my_assignment(session, actor, assignment_id)
    study = _study(session, a.study_id)
    if study.status != "open":
        raise FieldError("study_id", "this study is closed; no more ratings are taken")
    if a.rated_at is not None:
        raise FieldError("assignment_id", "this showing is already rated")
    endpoint = _endpoint_of(session, study)
    if endpoint.neutral is not None:
        if better_side not in ("left", "right", NO_DIFFERENCE):
            raise FieldError("better_side", "choose the photo that looks better, or no difference")
        if better_side != NO_DIFFERENCE and (
            grade is None or float(grade) not in _grades(endpoint)
        ):
            raise FieldError("grade", "choose how much better, from the scale")
        change = agreement.change_from_better_side(
            better_side=better_side,
            grade=None if better_side == NO_DIFFERENCE else grade,
            left_is_baseline=a.left_is_baseline,
            neutral=float(endpoint.neutral),
            best=_best(endpoint),
        )
        a.better_side, a.grade = better_side, (None if better_side == NO_DIFFERENCE else grade)
    else:
        scale = _scale(endpoint)
        for name, value in (("left_score", left_score), ("right_score", right_score)):
            if value is None or float(value) not in scale:
                raise FieldError(name, "choose a score from the scale for each photo")
        assert left_score is not None and right_score is not None
        change = agreement.change_from_scores(
            left_score=left_score,
            right_score=right_score,
            left_is_baseline=a.left_is_baseline,
            higher_is_better=bool(endpoint.higher_is_better),
        )
        a.left_score, a.right_score = float(left_score), float(right_score)
    a.change = float(change)
    a.rated_at = utcnow()
    patient_id = session.scalar(select(Series.patient_id).where(Series.id == a.pair.series_id))
    audit.record(
        session,
        actor,
        "rating.rate",
        patient_id=patient_id,
        object_type="rating_assignment",
        object_id=a.id,
        details={
            "study_id": a.study_id,
            "pair_id": a.pair_id,
            "repeat": a.repeat,
            "order_index": a.order_index,
            "left_is_baseline": a.left_is_baseline,
            "better_side": a.better_side,
            "grade": a.grade,
            "left_score": a.left_score,
            "right_score": a.right_score,
            "change": a.change,
        },
    )


# --- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StudyResults:
    study_id: int
    title: str
    endpoint_name: str
    raters: dict[int, str]
    per_rater: pd.DataFrame  # rater, rated, mean_change, improved_share
    pairwise_kappa: pd.DataFrame  # rater_a, rater_b, n, kappa, low, high
    icc: Estimate
    alpha: Estimate
    intra: pd.DataFrame  # rater, n, kappa, low, high (repeats)
    intra_pooled: Estimate
    responders: pd.DataFrame  # protocol_id, protocol, pairs, blinded/unblinded shares with CIs
    gap: Estimate  # mean (unblinded - blinded) change over pairs with both
    pairs: pd.DataFrame  # per pair: blinded (median of raters) and unblinded change
    responder_rule: str
    methods: dict[str, str] = field(default_factory=dict)


def _ratings_frame(session: DbSession, study_id: int) -> pd.DataFrame:
    rows = session.execute(
        select(
            RatingAssignment.id,
            RatingAssignment.rater_id,
            User.display_name,
            RatingAssignment.pair_id,
            RatingPair.position,
            RatingPair.series_id,
            RatingPair.view,
            Series.protocol_id,
            RatingAssignment.order_index,
            RatingAssignment.left_is_baseline,
            RatingAssignment.repeat,
            RatingAssignment.better_side,
            RatingAssignment.grade,
            RatingAssignment.left_score,
            RatingAssignment.right_score,
            RatingAssignment.change,
            RatingAssignment.rated_at,
        )
        .join(User, User.id == RatingAssignment.rater_id)
        .join(RatingPair, RatingPair.id == RatingAssignment.pair_id)
        .join(Series, Series.id == RatingPair.series_id)
        .where(RatingAssignment.study_id == study_id)
        .order_by(RatingAssignment.rater_id, RatingAssignment.order_index)
    ).all()
    return pd.DataFrame(
        rows,
        columns=[
            "assignment_id",
            "rater_id",
            "rater",
            "pair_id",
            "pair_position",
            "series_id",
            "view",
            "protocol_id",
            "order_index",
            "left_is_baseline",
            "repeat",
            "better_side",
            "grade",
            "left_score",
            "right_score",
            "change",
            "rated_at",
        ],
    )


def unblinded_record_views(session: DbSession, study: RatingStudy) -> dict[int, int]:
    """Rater user id -> how many times they opened the clinic record (``series.view``: Series
    review) of a series in the study while it was open, from the audit trail. Those ratings may
    not be blind; the results say so rather than hide it."""
    from analysis.store.models import AuditEvent

    emails = dict(
        session.execute(
            select(User.email, User.id)
            .join(RatingRater, RatingRater.user_id == User.id)
            .where(RatingRater.study_id == study.id)
        ).all()
    )
    series_ids = [
        str(i)
        for i in session.scalars(
            select(RatingPair.series_id).where(RatingPair.study_id == study.id).distinct()
        )
    ]
    if not emails or not series_ids:
        return {}
    query = (
        select(AuditEvent.actor_email, func.count(AuditEvent.id))
        .where(
            AuditEvent.action == "series.view",
            AuditEvent.outcome == "success",
            AuditEvent.actor_email.in_(sorted(emails)),
            AuditEvent.object_type == "series",
            AuditEvent.object_id.in_(series_ids),
            AuditEvent.occurred_at >= study.created_at,
        )
        .group_by(AuditEvent.actor_email)
    )
    if study.closed_at is not None:
        query = query.where(AuditEvent.occurred_at <= study.closed_at)
    return {int(emails[e]): int(n) for e, n in session.execute(query)}


def unblinded_changes(
    session: DbSession, study: RatingStudy, endpoint: EndpointDefinition
) -> dict[int, float]:
    """Pair id -> the clinic-recorded (unblinded) change at the pair's sessions, positive = better."""
    pairs = [
        (int(p), int(sid), int(n))
        for p, sid, n in session.execute(
            select(RatingPair.id, RatingPair.series_id, Session.number)
            .join(Photo, Photo.id == RatingPair.followup_photo_id)
            .join(Session, Session.id == Photo.session_id)
            .where(RatingPair.study_id == study.id)
        )
    ]
    return recorded_changes(session, endpoint, pairs)


def recorded_changes(
    session: DbSession, endpoint: EndpointDefinition, items: Sequence[tuple[Any, int, int]]
) -> dict[Any, float]:
    """``key -> change`` for ``(key, series_id, follow-up session number)`` items: the endpoint's
    clinic-recorded value at the follow-up against its neutral anchor (a rating made against
    baseline) or against session 1, signed so that positive is better. Items with no value are
    left out."""
    series_ids = sorted({int(i[1]) for i in items})
    values: dict[tuple[int, int], float] = {}
    for sid, number, value in session.execute(
        select(Session.series_id, Session.number, EndpointMeasurement.value_num)
        .join(Session, Session.id == EndpointMeasurement.session_id)
        .where(
            Session.series_id.in_(series_ids),
            EndpointMeasurement.endpoint_id == endpoint.id,
            EndpointMeasurement.value_num.is_not(None),
        )
        .order_by(EndpointMeasurement.id)
    ):
        assert value is not None  # the query keeps value_num IS NOT NULL
        values[(int(sid), int(number))] = float(value)  # the last recorded value
    sign = 1.0 if endpoint.higher_is_better else -1.0
    out: dict[Any, float] = {}
    for key, sid, number in items:
        later = values.get((int(sid), int(number)))
        if later is None:
            continue
        if endpoint.neutral is not None:
            out[key] = sign * (later - float(endpoint.neutral)) + 0.0  # + 0.0: never -0.0
        elif (int(sid), 1) in values:
            out[key] = sign * (later - values[(int(sid), 1)]) + 0.0
    return out


def study_results(session: DbSession, actor: Actor, *, study_id: int) -> StudyResults:
    """Per rater and pooled results of a closed study, with agreement and their 95 % intervals."""
    require(actor, "rating.manage", session)
    study = _study(session, study_id)
    if study.status != "closed":
        raise FieldError(
            "study_id",
            "results are shown once the study is closed, so that no "
            "score is seen while raters are still rating",
        )
    results = _results(session, study, agreement_stats=True)
    audit.record(
        session,
        actor,
        "rating.results",
        object_type="rating_study",
        object_id=study_id,
        details={
            "ratings": int(
                results.per_rater["pairs_rated"].sum() + results.per_rater["repeats_rated"].sum()
            )
        },
    )
    return results


_NOT_ASKED = Estimate(None, None, None, 0, "", "not computed here")


def _results(session: DbSession, study: RatingStudy, *, agreement_stats: bool) -> StudyResults:
    study_id = int(study.id)
    endpoint = _endpoint_of(session, study)
    frame = _ratings_frame(session, study_id)
    rated = frame[frame["rated_at"].notna()]
    first = rated[~rated["repeat"].astype(bool)]
    again = rated[rated["repeat"].astype(bool)]
    raters = dict(
        session.execute(
            select(User.id, User.display_name)
            .join(RatingRater, RatingRater.user_id == User.id)
            .where(RatingRater.study_id == study_id)
        ).all()
    )
    raters = {int(k): str(v) for k, v in sorted(raters.items())}
    steps = _change_categories(endpoint)
    ordinal = endpoint.kind in ("ordinal", "count")
    record_views = unblinded_record_views(session, study)
    per_rater = pd.DataFrame(
        [
            (
                raters[r],
                int((first["rater_id"] == r).sum()),
                int((again["rater_id"] == r).sum()),
                float(first.loc[first["rater_id"] == r, "change"].mean())
                if (first["rater_id"] == r).any()
                else np.nan,
                float((first.loc[first["rater_id"] == r, "change"] > 0).mean())
                if (first["rater_id"] == r).any()
                else np.nan,
            )
            for r in raters
        ],
        columns=["rater", "pairs_rated", "repeats_rated", "mean_change", "share_improved"],
    )
    per_rater["record_views_while_open"] = [record_views.get(r, 0) for r in raters]
    wide = first.pivot_table(index="pair_id", columns="rater_id", values="change", aggfunc="first")
    wide = wide.reindex(columns=list(raters))
    kappa_rows = []
    ids = list(raters)
    for i, ra in enumerate(ids if agreement_stats else []):
        for rb in ids[i + 1 :]:
            both = wide[[ra, rb]].dropna()
            est = (
                agreement.weighted_kappa(
                    both[ra].tolist(), both[rb].tolist(), categories=steps, weights="linear"
                )
                if ordinal
                else agreement.icc_2_1(both.to_numpy())
            )
            kappa_rows.append(
                (raters[ra], raters[rb], est.n, est.value, est.low, est.high, est.note)
            )
    pairwise = pd.DataFrame(
        kappa_rows, columns=["rater_a", "rater_b", "n", "kappa", "low", "high", "note"]
    )
    icc = agreement.icc_2_1(wide.to_numpy()) if agreement_stats else _NOT_ASKED
    alpha = (
        agreement.krippendorff_alpha(
            wide.to_numpy().T, level="ordinal" if ordinal else "interval", seed=int(study.seed)
        )
        if agreement_stats
        else _NOT_ASKED
    )
    intra_rows = []
    pooled_a: list[float] = []
    pooled_b: list[float] = []
    for r in ids if agreement_stats else []:
        f = first[first["rater_id"] == r].set_index("pair_id")["change"]
        g = again[again["rater_id"] == r].set_index("pair_id")["change"]
        common = sorted(set(f.index) & set(g.index))
        a_vals, b_vals = [float(f[p]) for p in common], [float(g[p]) for p in common]
        pooled_a += a_vals
        pooled_b += b_vals
        est = (
            agreement.weighted_kappa(a_vals, b_vals, categories=steps)
            if ordinal
            else agreement.icc_2_1(
                np.column_stack([a_vals, b_vals]) if common else np.empty((0, 2))
            )
        )
        exact = float(np.mean(np.array(a_vals) == np.array(b_vals))) if common else np.nan
        intra_rows.append((raters[r], len(common), exact, est.value, est.low, est.high, est.note))
    intra = pd.DataFrame(
        intra_rows, columns=["rater", "repeats", "same_rating", "kappa", "low", "high", "note"]
    )
    intra_pooled = _NOT_ASKED
    if agreement_stats:
        intra_pooled = (
            agreement.weighted_kappa(pooled_a, pooled_b, categories=steps)
            if ordinal
            else agreement.icc_2_1(
                np.column_stack([pooled_a, pooled_b]) if pooled_a else np.empty((0, 2))
            )
        )
    mcid = float(endpoint.mcid) if endpoint.mcid else 1.0
    unblinded = unblinded_changes(session, study, endpoint)
    pair_info = frame.drop_duplicates("pair_id").set_index("pair_id")
    blinded = wide.median(axis=1, skipna=True)
    pairs = pd.DataFrame(
        {
            "pair_id": blinded.index.astype(int),
            "protocol_id": [int(pair_info.loc[p, "protocol_id"]) for p in blinded.index],
            "view": [str(pair_info.loc[p, "view"]) for p in blinded.index],
            "raters": wide.notna().sum(axis=1).astype(int).to_numpy(),
            "blinded_change": blinded.to_numpy(),
            "unblinded_change": [unblinded.get(int(p), np.nan) for p in blinded.index],
        }
    )
    names = dict(session.execute(select(Protocol.id, Protocol.name)).all())
    resp_rows = []
    for pid, d in pairs.groupby("protocol_id"):
        b = agreement.wilson(int((d["blinded_change"] >= mcid).sum()), len(d))
        u_d = d.dropna(subset=["unblinded_change"])
        u = agreement.wilson(int((u_d["unblinded_change"] >= mcid).sum()), len(u_d))
        resp_rows.append(
            (
                int(pid),
                str(names.get(pid, pid)),
                len(d),
                b.value,
                b.low,
                b.high,
                len(u_d),
                u.value,
                u.low,
                u.high,
            )
        )
    responders = pd.DataFrame(
        resp_rows,
        columns=[
            "protocol_id",
            "protocol",
            "pairs",
            "blinded_share",
            "blinded_low",
            "blinded_high",
            "unblinded_pairs",
            "unblinded_share",
            "unblinded_low",
            "unblinded_high",
        ],
    )
    both = pairs.dropna(subset=["unblinded_change", "blinded_change"])
    gap = agreement.bootstrap_mean(
        (both["unblinded_change"] - both["blinded_change"]).tolist(), seed=int(study.seed)
    )
    unit = "scale steps" if ordinal else (endpoint.unit or "units")
    return StudyResults(
        study_id=study_id,
        title=study.title,
        endpoint_name=endpoint.name,
        raters=raters,
        per_rater=per_rater,
        pairwise_kappa=pairwise,
        icc=icc,
        alpha=alpha,
        intra=intra,
        intra_pooled=intra_pooled,
        responders=responders,
        gap=gap,
        pairs=pairs,
        responder_rule=(
            f"A pair is a responder when its blinded change (the median of the raters' "
            f"first showings) is at least {mcid:g} {unit} better than baseline (the "
            f"endpoint's MCID{'' if endpoint.mcid else ', or 1 step when none is set'});"
            " the unblinded share applies the same rule to the clinic-recorded values "
            "of the same pairs."
        ),
        methods={
            "kappa": (
                agreement.weighted_kappa([0, 1], [0, 1], categories=[0, 1]).method
                if ordinal
                else icc.method
            ),
            "icc": icc.method,
            "alpha": alpha.method,
            "responders": agreement.wilson(0, 1).method,
            "gap": gap.method + " of pairs (unblinded minus blinded change)",
        },
    )


def _change_categories(endpoint: EndpointDefinition) -> list[float]:
    lo, hi = float(endpoint.scale_min or 0), float(endpoint.scale_max or 0)
    span = (
        abs(_best(endpoint) - float(endpoint.neutral)) if endpoint.neutral is not None else hi - lo
    )
    return [float(v) for v in np.arange(-span, span + 0.5, 1.0)]


def export_ratings_csv(session: DbSession, actor: Actor, *, study_id: int) -> bytes:
    """Every showing of the study with its randomisation and rating, as CSV (audited first).

    Raters are named; pairs and series by id (the clinic record links them to patients)."""
    from analysis.services.photo_access import audited_export

    require(actor, "rating.manage", session)
    study = _study(session, study_id)
    if study.status != "closed":
        raise FieldError("study_id", "ratings are exported once the study is closed")
    frame = _ratings_frame(session, study_id)
    audited_export(
        session,
        actor,
        action="rating.export",
        object_type="rating_study",
        object_id=study_id,
        details={"rows": int(len(frame)), "seed": study.seed},
    )
    frame = frame.assign(
        rated_at=frame["rated_at"].map(
            lambda t: t.isoformat() if t is not None and not pd.isna(t) else ""
        ),
        seed=study.seed,
    )
    return to_csv_bytes(frame)


# --- what Protocols shows -------------------------------------------------------------------------


def blinded_by_protocol(
    session: DbSession, actor: Actor, protocol_ids: Sequence[int] | None = None
) -> pd.DataFrame:
    """For Protocols: each closed study's responder share by blinded rating per protocol, beside
    the unblinded share of the same pairs, with Wilson 95 % intervals."""
    require(actor, "cohort.read", session)
    rows = []
    for study in session.scalars(
        select(RatingStudy).where(RatingStudy.status == "closed").order_by(RatingStudy.id)
    ):
        r = _results(session, study, agreement_stats=False)
        for x in r.responders.itertuples(index=False):
            if protocol_ids is not None and x.protocol_id not in set(protocol_ids):
                continue
            rows.append(
                (
                    x.protocol_id,
                    x.protocol,
                    r.title,
                    r.endpoint_name,
                    x.pairs,
                    _share(x.unblinded_share, x.unblinded_low, x.unblinded_high, x.unblinded_pairs),
                    _share(x.blinded_share, x.blinded_low, x.blinded_high, x.pairs),
                    r.gap.label(),
                )
            )
    return pd.DataFrame(
        rows,
        columns=[
            "protocol_id",
            "protocol",
            "study",
            "endpoint",
            "pairs",
            "unblinded",
            "blinded",
            "gap",
        ],
    )


def _share(value: float | None, low: float | None, high: float | None, n: int) -> str:
    if value is None or pd.isna(value):
        return f"n/a (n={n})"
    return f"{value:.0%} ({low:.0%}–{high:.0%}, n={n})"


def export_ratings_bytes(actor: Actor, *, study_id: int) -> bytes:
    """:func:`export_ratings_csv` in its own transaction (for a download button's deferred data)."""
    from analysis.store import db

    with db.session_scope() as session:
        return export_ratings_csv(session, actor, study_id=study_id)
