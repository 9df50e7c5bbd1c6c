"""Keeping a blinded rater blind: while a rating study is open, its invited raters cannot open
the clinic record (photos, endpoint values, comparisons) of the series whose pairs they rate.

The blinded rating screen (:mod:`analysis.services.rating`) shows them the pairs masked; the record
would show dates, session numbers and the clinic's own scores. A rater who needs a patient's
record for care asks the medical director to close the study (or to rate without them). Every
refusal is audited as a ``denied`` event naming the study.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from analysis.store import audit
from analysis.store.access import Actor, PermissionDenied
from analysis.store.models import RatingPair, RatingRater, RatingStudy


class BlindedRater(PermissionDenied):
    """The signed-in user rates an open study that includes this series."""


def open_studies_rating(
    session: DbSession, user_id: int | None, series_id: int
) -> list[tuple[int, str]]:
    """``(study id, title)`` of the open studies ``user_id`` rates that include ``series_id``."""
    if user_id is None:
        return []
    rows = session.execute(
        select(RatingStudy.id, RatingStudy.title)
        .distinct()
        .join(RatingRater, RatingRater.study_id == RatingStudy.id)
        .join(RatingPair, RatingPair.study_id == RatingStudy.id)
        .where(
            RatingStudy.status == "open",
            RatingRater.user_id == user_id,
            RatingPair.series_id == series_id,
        )
        .order_by(RatingStudy.id)
    ).all()
    return [(int(i), str(t)) for i, t in rows]


def require_not_blinded(
    session: DbSession, actor: Actor, *, series_id: int, action: str, patient_id: int | None = None
) -> None:
    """Raise (and audit) :class:`BlindedRater` when ``actor`` rates an open study that includes
    ``series_id``."""
    studies = open_studies_rating(session, actor.user_id, series_id)
    if not studies:
        return
    names = ", ".join(f"study {i}" for i, _ in studies)
    error = BlindedRater(
        f"you are a blinded rater in {names}, which is still open and includes this series: its "
        "record stays hidden from you until the study is closed (the medical director closes "
        "it on Blinded rating)"
    )
    raise audit.record_denial(
        session,
        actor,
        action,
        error,
        patient_id=patient_id,
        object_type="series",
        object_id=series_id,
        details={"rule": "blinded rater", "studies": [i for i, _ in studies]},
    )
