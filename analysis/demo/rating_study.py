"""The demo clinic's completed blinded rating study, with raters whose agreement is known.

Seeded after the clinic record, through the real services (``analysis.services.rating``: creation,
randomisation, each rating audited, closing), so the Blinded rating page shows real results.

Ground truth, so the numbers shown can be checked:

* **Study**: the hair protocol "Scalp mesotherapy for hair (8 sessions)", endpoint
  ``global_photo_score`` (rated against baseline, -3..3, 0 = no change), first required view,
  baseline against the session with the most gate-passing pairs whose score the clinic recorded
  (at most :data:`MAX_PAIRS`, a seeded sample), 20 % blinded repeats, seed :data:`STUDY_SEED`.
  A pair without a recorded score has a true change of 0.
* **True blinded change** of a pair: its clinic-recorded score shrunk by one step towards no
  change (``sign(u) * max(|u| - 1, 0)``): the demo's built-in unblinded optimism, so the
  blinded-vs-unblinded gap is about +1 step on improved pairs.
* **Raters**: the first three clinicians. Each reports the true change, except that on a seeded
  share of their first showings (:data:`ERROR_SHARE`: 0 %, 20 %, 40 %) they are one step off
  (direction at random, kept within the scale). On a repeat, rater A repeats exactly; B and C
  repeat their own first rating except on 20 % of repeats, where they are again one step off.
  So rater A agrees exactly with the truth on every pair, A and B on about 80 % of pairs, A and C
  on about 60 %, and weighted kappa, ICC and alpha fall in that order.
"""

from __future__ import annotations

from typing import TypedDict

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from analysis.auth.accounts import actor_for
from analysis.services import rating
from analysis.store.access import Actor
from analysis.store.models import (
    EndpointDefinition,
    Protocol,
    RatingAssignment,
    RatingStudy,
    User,
)

PROTOCOL = "Scalp mesotherapy for hair (8 sessions)"
ENDPOINT = "global_photo_score"
STUDY_SEED = 20_151
MAX_PAIRS = 40
MIN_PAIRS = 8
ERROR_SHARE = (0.0, 0.2, 0.4)
REPEAT_SLIP = (0.0, 0.2, 0.2)
TITLE = "Demo: scalp mesotherapy, global photographic score, blinded"


def seed_demo_rating_study(
    session: DbSession,
    director: Actor,
    *,
    protocol_name: str = PROTOCOL,
    endpoint_code: str = ENDPOINT,
    min_pairs: int = MIN_PAIRS,
) -> str:
    """Create, rate and close the demo study; returns a one-line note (or why it was skipped)."""
    protocol = session.scalar(select(Protocol).where(Protocol.name == protocol_name))
    endpoint = session.scalar(
        select(EndpointDefinition).where(EndpointDefinition.code == endpoint_code)
    )
    raters = list(
        session.scalars(
            select(User)
            .where(User.role == "clinician", User.active.is_(True))
            .order_by(User.id)
            .limit(3)
        )
    )
    if (
        protocol is None
        or endpoint is None
        or endpoint.neutral is None
        or len(raters) < 3
        or not protocol.required_views
    ):
        return "no demo rating study (protocol, endpoint or three clinicians missing)"
    view = str(protocol.required_views[0])
    best: tuple[int, int] | None = None
    for number in range(2, int(protocol.planned_sessions) + 1):
        spec = _spec(protocol.id, endpoint.code, view, number, raters)
        pairs = rating.preview_pairs(session, director, spec).pairs
        n = len(
            rating.recorded_changes(
                session,
                endpoint,
                [(i, c.series_id, c.followup_session) for i, c in enumerate(pairs)],
            )
        )
        if best is None or n > best[1]:
            best = (number, n)
    if best is None or best[1] < min_pairs:
        return "no demo rating study (too few gate-passing photo pairs)"
    study_id = rating.create_study(
        session, director, _spec(protocol.id, endpoint.code, view, best[0], raters)
    )
    study = session.get(RatingStudy, study_id)
    assert study is not None
    unblinded = rating.unblinded_changes(session, study, endpoint)
    truth = {pid: float(np.sign(u) * max(abs(u) - 1.0, 0.0)) for pid, u in unblinded.items()}
    best_end = _best_end(endpoint)
    span = abs(best_end - float(endpoint.neutral))
    for k, user in enumerate(raters):
        actor = actor_for(user)
        rng = np.random.default_rng([STUDY_SEED, k])
        first: dict[int, float] = {}
        mine = list(
            session.scalars(
                select(RatingAssignment)
                .where(RatingAssignment.study_id == study_id, RatingAssignment.rater_id == user.id)
                .order_by(RatingAssignment.order_index)
            )
        )
        for a in mine:
            if a.repeat:
                change = first[a.pair_id]
                if rng.random() < REPEAT_SLIP[k]:
                    change = _off_by_one(change, rng, span)
            else:
                change = truth.get(a.pair_id, 0.0)
                if rng.random() < ERROR_SHARE[k]:
                    change = _off_by_one(change, rng, span)
                first[a.pair_id] = change
            rating.submit_rating(
                session, actor, assignment_id=a.id, **_answer(change, a.left_is_baseline, endpoint)
            )
    rating.close_study(session, director, study_id=study_id)
    return f"demo blinded rating study: {best[1]} pairs at session {best[0]}, 3 raters, closed"


def _spec(
    protocol_id: int, endpoint_code: str, view: str, number: int, raters: list[User]
) -> rating.StudySpec:
    return rating.StudySpec(
        title=TITLE,
        endpoint_code=endpoint_code,
        protocol_ids=(protocol_id,),
        views=(view,),
        rater_ids=tuple(u.id for u in raters),
        followup_session=number,
        repeat_share=0.2,
        seed=STUDY_SEED,
        max_pairs=MAX_PAIRS,
    )


def _off_by_one(change: float, rng: np.random.Generator, span: float) -> float:
    step = 1.0 if rng.random() < 0.5 else -1.0
    moved = change + step
    return moved if abs(moved) <= span else change - step


class _Answer(TypedDict, total=False):
    """The keyword arguments of :func:`rating.submit_rating` a pairwise rating sets."""

    better_side: str
    grade: float


def _best_end(endpoint: EndpointDefinition) -> float:
    best = endpoint.scale_max if endpoint.higher_is_better else endpoint.scale_min
    if best is None:
        raise ValueError(f"endpoint {endpoint.code!r} has no scale bound to rate towards")
    return float(best)


def _answer(change: float, left_is_baseline: bool, endpoint: EndpointDefinition) -> _Answer:
    """The rating (better side and grade) whose blinded change is ``change``."""
    if change == 0:
        return {"better_side": rating.NO_DIFFERENCE}
    neutral = float(endpoint.neutral)  # type: ignore[arg-type]
    best = _best_end(endpoint)
    grade = neutral + np.sign(best - neutral) * abs(change)
    followup_side = "right" if left_is_baseline else "left"
    baseline_side = "left" if left_is_baseline else "right"
    return {"better_side": followup_side if change > 0 else baseline_side, "grade": float(grade)}
