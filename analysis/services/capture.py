"""The capture service: what the Capture photos page asks of the clinic record and the photo engine.

The flow for one upload
-----------------------
1. :func:`capture_context` reads the series: protocol, required views, sessions, which views each
   session already has, the baseline photo of every view and whether photo consent is on file.
2. :func:`assess_upload` analyses the upload in the sandboxed worker
   (:func:`analysis.photos.worker.analyse_in_worker`) and grades it against the baseline of the same
   view (:func:`analysis.photos.compare.compare`) **before** anything is stored.
3. :func:`save_capture` stores the metadata-free original
   (:func:`analysis.photos.ingest.clean_original`, run in the worker by ``clean_in_worker``, then
   :func:`analysis.services.records.store_photo`), with the measurements, the checks, the verdict and
   the photographer's reason when a failing photo is kept anyway.

The baseline of a view is the stored photo of that view from the earliest session that has one
(normally session 1). Its measurement is re-computed from the stored blob (landmarks are not stored)
and kept in a :class:`MeasurementCache` keyed by the blob's SHA-256, which the caller owns (the page
keeps one per browser session, so nothing is shared between users).

View naming: ``face_oblique_left`` / ``face_lateral_left`` show the **patient's left** side of the
face, i.e. the head is turned to the patient's right and the nose points to the image's left
(``yaw_deg < 0``, see :mod:`analysis.photos.types`).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session as DbSession

from analysis import config
from analysis.photos.compare import Tolerances, compare
from analysis.photos.types import (
    ALL_VIEWS,
    Comparison,
    PhotoMeasurement,
    is_scalp_view,
    is_trichoscopy_view,
)
from analysis.services import records
from analysis.store import blinding, db
from analysis.store.access import Actor, require
from analysis.store.images import ImageStore, default_store
from analysis.store.models import Patient, Photo, Protocol, Series, Session

#: Yaw magnitudes (degrees) from which an upload is suggested as an oblique / a lateral view.
OBLIQUE_FROM_DEG = 25.0
LATERAL_FROM_DEG = 60.0

#: Condition tags a photo set can carry (stored on each photo).
CONDITION_TAGS: dict[str, str] = {
    "makeup": "Make-up on",
    "eyewear": "Eyewear on",
    "hair_washed_dry": "Hair washed and dry",
    "hair_product": "Hair product in",
}


@dataclass(frozen=True)
class SeriesChoice:
    """One series as a picker shows it (no names: patients are pseudonymous codes)."""

    series_id: int
    patient_code: str
    protocol_name: str
    status: str
    sessions_done: int
    planned_sessions: int

    @property
    def label(self) -> str:
        return (
            f"{self.patient_code} · {self.protocol_name} · "
            f"{self.sessions_done}/{self.planned_sessions} sessions · {self.status}"
        )


@dataclass(frozen=True)
class StoredPhoto:
    photo_id: int
    session_id: int
    session_number: int
    view: str
    sha256: str
    verdict: str
    override_reason: str = ""
    site: str = ""  # the scalp site of a trichoscopy close-up


@dataclass(frozen=True)
class SessionInfo:
    session_id: int
    number: int
    performed_on: date
    photos: tuple[StoredPhoto, ...] = ()

    @property
    def views(self) -> tuple[str, ...]:
        return tuple(sorted({p.view for p in self.photos}))

    @property
    def label(self) -> str:
        return f"Session {self.number} · {self.performed_on.isoformat()}"


@dataclass(frozen=True)
class CaptureContext:
    """Everything the capture page needs about one series (read in one transaction)."""

    series_id: int
    patient_id: int
    patient_code: str
    protocol_name: str
    target_area: str
    planned_sessions: int
    interval_days: int
    required_views: tuple[str, ...]
    tolerances: dict[str, Any]
    sessions: tuple[SessionInfo, ...]
    consent_ok: bool
    baselines: dict[str, StoredPhoto] = field(default_factory=dict)
    status: str = "active"

    @property
    def open_for_sessions(self) -> bool:
        """Only an active series takes new sessions (see :func:`start_next_session`)."""
        return self.status == "active"

    def session(self, session_id: int) -> SessionInfo:
        for info in self.sessions:
            if info.session_id == session_id:
                return info
        raise KeyError(f"session {session_id} is not part of series {self.series_id}")

    def missing_views(self, session_id: int) -> list[str]:
        """Required views the session has no photo of yet, in protocol order."""
        have = set(self.session(session_id).views)
        return [v for v in self.required_views if v not in have]

    def baseline_for(self, view: str) -> StoredPhoto | None:
        """The baseline photo of ``view`` (the first stored photo of the view, by session number);
        ``None`` when none is stored (the upload then becomes the baseline)."""
        return self.baselines.get(view)


def series_choices(
    session: DbSession,
    actor: Actor,
    *,
    search: str = "",
    limit: int | None = None,
    include: int | None = None,
) -> list[SeriesChoice]:
    """Series for the picker, ordered by patient code then start date.

    ``search`` keeps series whose patient code or protocol name contains it (case-insensitive);
    ``limit`` caps the rows (a clinic of 10,000 patients is searched, not scrolled); ``include``
    adds that series (the one already chosen) even when the search or the cap leaves it out, so
    a picker never loses its current value. Two statements at most, whatever the clinic's size.
    """
    require(actor, "series.read", session)
    done = (
        select(Session.series_id, func.count(Session.id).label("n"))
        .group_by(Session.series_id)
        .subquery()
    )
    base = (
        select(
            Series.id,
            Series.status,
            Patient.code,
            Protocol.name,
            Protocol.planned_sessions,
            func.coalesce(done.c.n, 0),
        )
        .join(Patient, Patient.id == Series.patient_id)
        .join(Protocol, Protocol.id == Series.protocol_id)
        .outerjoin(done, done.c.series_id == Series.id)
    )
    match = db.matches_text(search, Patient.code, Protocol.name)
    stmt = base if match is None else base.where(match)
    stmt = stmt.order_by(Patient.code, Series.started_on, Series.id)
    rows = list(session.execute(stmt if limit is None else stmt.limit(limit)).all())
    if include is not None and all(r[0] != include for r in rows):
        rows = list(session.execute(base.where(Series.id == include)).all()) + rows
    return [
        SeriesChoice(
            series_id=sid,
            patient_code=code,
            protocol_name=name,
            status=status,
            sessions_done=int(n),
            planned_sessions=planned,
        )
        for sid, status, code, name, planned, n in rows
    ]


def capture_context(session: DbSession, actor: Actor, *, series_id: int) -> CaptureContext:
    """Read the series for capture; raises ``records.FieldError('series_id')`` if it does not exist."""
    require(actor, "series.read", session, object_type="series", object_id=series_id)
    blinding.require_not_blinded(session, actor, series_id=series_id, action="series.read")
    series = session.get(Series, series_id)
    if series is None:
        raise records.FieldError("series_id", f"no series with id {series_id}")
    protocol = series.protocol
    infos: list[SessionInfo] = []
    baselines: dict[str, StoredPhoto] = {}
    for visit in sorted(series.sessions, key=lambda s: s.number):
        photos = tuple(
            StoredPhoto(
                photo_id=p.id,
                session_id=visit.id,
                session_number=visit.number,
                view=p.view,
                sha256=p.sha256,
                verdict=p.verdict,
                override_reason=p.override_reason,
                site=p.site or "",
            )
            for p in sorted(visit.photos, key=lambda p: p.id)
        )
        for p in photos:
            baselines.setdefault(p.view, p)
        infos.append(
            SessionInfo(
                session_id=visit.id,
                number=visit.number,
                performed_on=visit.performed_on,
                photos=photos,
            )
        )
    return CaptureContext(
        series_id=series.id,
        patient_id=series.patient_id,
        patient_code=series.patient.code,
        protocol_name=protocol.name,
        target_area=protocol.target_area,
        planned_sessions=protocol.planned_sessions,
        interval_days=protocol.interval_days,
        required_views=tuple(v for v in protocol.required_views if v in ALL_VIEWS),
        tolerances=dict(protocol.tolerances or {}),
        sessions=tuple(infos),
        consent_ok="clinical_record" in records.consent_scopes(session, series.patient_id),
        baselines=baselines,
        status=series.status,
    )


def start_next_session(
    session: DbSession,
    actor: Actor,
    *,
    series_id: int,
    performed_on: date,
    operator_id: int | None = None,
) -> int:
    """Add the series' next session and return its id (validation as ``records.add_session``).

    Only an active series takes a new session: a paused, completed or dropped-out one must be set
    back to active first (Patient record page), so a closed series is not extended by a mis-click.
    """
    require(actor, "visit.record", session)
    status = session.scalar(select(Series.status).where(Series.id == series_id))
    if status is not None and status != "active":
        raise records.FieldError(
            "series_id",
            f"this series is {status.replace('_', ' ')}: set it back to active on the "
            "Patient record page before adding a session",
        )
    visit = records.add_session(
        session,
        actor,
        series_id=series_id,
        performed_on=performed_on,
        operator_id=operator_id if operator_id is not None else actor.user_id,
    )
    return visit.id


# --- measuring ---------------------------------------------------------------------------------


class MeasurementCache:
    """Measurements by ``(sha256 of the bytes, view)``, least recently used dropped first.

    Owned by the caller (one per browser session); it holds measurements (landmarks and a small
    thumbnail included), never the photo bytes.
    """

    def __init__(self, max_items: int = 32) -> None:
        self.max_items = max_items
        self._items: OrderedDict[tuple[str, str | None], PhotoMeasurement] = OrderedDict()

    def get(self, sha256: str, view: str | None) -> PhotoMeasurement | None:
        """The cached measurement; ``view`` is the cache key part (see :func:`cache_view`)."""
        key = (sha256, view)
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        return None

    def put(self, sha256: str, view: str | None, measurement: PhotoMeasurement) -> None:
        self._items[(sha256, view)] = measurement
        self._items.move_to_end((sha256, view))
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


def measure_bytes(
    data: bytes,
    *,
    view: str | None,
    cache: MeasurementCache | None = None,
    timeout_s: float = 60.0,
    memory_mb: int = 2048,
) -> PhotoMeasurement:
    """Measure a photo's bytes in the sandboxed worker (cached by SHA-256 and view). Never raises.

    A worker failure (bad file, timeout, crash) comes back as ``ok=False`` with the worker's
    plain-language message in ``error``.
    """
    from analysis.photos.worker import analyse_in_worker

    sha = hashlib.sha256(data).hexdigest()
    key = cache_view(view)
    if cache is not None:
        hit = cache.get(sha, key)
        if hit is not None:
            return replace(hit, view=view)
    result = analyse_in_worker(
        data, view=view, timeout_s=timeout_s, memory_mb=memory_mb, **worker_turns()
    )
    if result.ok and isinstance(result.measurement, PhotoMeasurement):
        measurement = result.measurement
    else:
        measurement = PhotoMeasurement(
            ok=False, view=view, error=result.error or "the photo could not be analysed"
        )
    if cache is not None and result.outcome in ("ok", "rejected"):
        cache.put(sha, key, measurement)  # timeouts and crashes may succeed on a retry
    return measurement


def cache_view(view: str | None) -> str:
    """The cache key part for ``view``: every face view (and ``None``) is measured the same way
    (face mesh), each scalp view is its own key."""
    return view if is_scalp_view(view) else "face"


def suggest_view(measurement: PhotoMeasurement, *, target_area: str = "face") -> str | None:
    """The face view the measured head pose suggests, or ``None`` when it cannot tell.

    ``|yaw| < OBLIQUE_FROM_DEG`` suggests frontal, ``< LATERAL_FROM_DEG`` oblique, beyond it lateral;
    the side follows the patient (``yaw < 0``: nose toward the image left, the patient's left side
    faces the camera -> ``*_left``). Scalp views are never suggested (they are chosen by hand).
    """
    if "scalp" in target_area.lower() or not measurement.face_found or measurement.yaw_deg is None:
        return None
    yaw = float(measurement.yaw_deg)
    if abs(yaw) < OBLIQUE_FROM_DEG:
        return "face_frontal"
    side = "left" if yaw < 0 else "right"
    kind = "oblique" if abs(yaw) < LATERAL_FROM_DEG else "lateral"
    return f"face_{kind}_{side}"


@dataclass(frozen=True)
class Assessment:
    """An upload analysed and graded against its baseline, not yet stored.

    ``verdict`` is ``"baseline"`` when no baseline exists yet for the view and the photo could be
    measured (it becomes the baseline), else the comparison's verdict (``"fail"`` when the upload
    could not be measured at all).
    """

    view: str
    measurement: PhotoMeasurement
    verdict: str
    comparison: Comparison | None
    baseline_photo_id: int | None
    suggested_view: str | None
    guidance: tuple[str, ...]

    @property
    def readable(self) -> bool:
        """False when the file itself was refused (not a photo, damaged, too large...)."""
        return self.measurement.width_px is not None

    @property
    def error(self) -> str | None:
        return self.measurement.error

    def checks_json(self) -> list[dict[str, Any]]:
        if self.comparison is None:
            return []
        return [c.to_json_dict() for c in self.comparison.checks]


def assess_upload(
    data: bytes,
    *,
    view: str,
    baseline: PhotoMeasurement | None = None,
    baseline_photo_id: int | None = None,
    tolerances: dict[str, Any] | None = None,
    target_area: str = "face",
    cache: MeasurementCache | None = None,
    timeout_s: float = 60.0,
    baseline_unavailable: str | None = None,
) -> Assessment:
    """Analyse an upload in the worker and grade it against the view's baseline measurement.

    Parameters
    ----------
    data : bytes
        The upload as received.
    view : str
        The view it is assigned to (one of ``ALL_VIEWS``).
    baseline : PhotoMeasurement, optional
        The baseline photo's measurement for ``view``; ``None`` when there is no baseline yet.
    tolerances : dict, optional
        The protocol's overrides of :class:`analysis.photos.compare.Tolerances`.
    baseline_unavailable : str, optional
        Why a baseline that exists could not be read (e.g. access refused). The upload is then
        graded ``fail`` with that reason, never treated as a new baseline.
    """
    if view not in ALL_VIEWS:
        raise records.FieldError("view", f"unknown view {view!r}")
    measurement = measure_bytes(data, view=view, cache=cache, timeout_s=timeout_s)
    suggested = (
        suggest_view(measurement, target_area=target_area) if not is_scalp_view(view) else None
    )
    if baseline is None and baseline_unavailable:
        reason = (
            f"the baseline photo of this view could not be read ({baseline_unavailable}), "
            "so this photo cannot be checked against it"
        )
        return Assessment(view, measurement, "fail", None, baseline_photo_id, suggested, (reason,))
    if baseline is None:
        if measurement.ok:
            return Assessment(view, measurement, "baseline", None, None, suggested, ())
        reason = measurement.error or "the photo could not be measured"
        return Assessment(view, measurement, "fail", None, None, suggested, (reason,))
    comparison = compare(baseline, measurement, tolerances=Tolerances.from_dict(tolerances))
    return Assessment(
        view,
        measurement,
        comparison.verdict,
        comparison,
        baseline_photo_id,
        suggested,
        tuple(comparison.reasons),
    )


def save_capture(
    session: DbSession,
    actor: Actor,
    *,
    session_id: int,
    data: bytes,
    assessment: Assessment,
    override_reason: str = "",
    condition_tags: tuple[str, ...] = (),
    store: ImageStore | None = None,
    site: str = "",
) -> int:
    """Store an assessed upload; returns the new photo's id.

    A trichoscopy close-up (``scalp_trichoscopy``) needs its scalp ``site`` (e.g. "vertex"; see
    :data:`analysis.services.trichoscopy.SITES`), stored with the photo (one ``photo.site`` event)
    so that follow-up counts are compared at the same spot.

    Raises
    ------
    analysis.errors.FieldError
        ``consent`` when the patient has no clinical-photography consent, ``override_reason`` when a
        failing photo is kept without a reason, ``photo`` when the file cannot be cleaned,
        ``site`` when a trichoscopy photo has no site label.
    """
    from analysis.photos.ingest import IngestError
    from analysis.photos.worker import clean_in_worker
    from analysis.services import trichoscopy

    if not assessment.readable:
        raise records.FieldError("photo", assessment.error or "this file is not a usable photo")
    label = trichoscopy.clean_site(site) if is_trichoscopy_view(assessment.view) else ""
    try:
        clean = clean_in_worker(data, **worker_turns())  # clean_original, isolated likewise
    except IngestError as exc:
        raise records.FieldError("photo", str(exc)) from exc
    m = assessment.measurement
    photo = records.PhotoInput(
        data=clean.data,
        original_sha256=clean.original_sha256,
        media_type=clean.media_type,
        width_px=clean.width_px,
        height_px=clean.height_px,
        view=assessment.view,
        verdict=assessment.verdict,
        measurements=m.to_json_dict(),
        checks=assessment.checks_json(),
        taken_at=m.taken_at_utc if m.taken_at_utc is not None and m.taken_at_utc.tzinfo else None,
        override_reason=override_reason,
        condition_tags=tuple(condition_tags),
    )
    row = records.store_photo(
        session, actor, store or default_store(), session_id=session_id, photo=photo
    )
    if label:
        trichoscopy.set_site(session, actor, row.id, label)
    return row.id


def condition_tag_list(
    *, selected: tuple[str, ...] | list[str] = (), days_since_last_procedure: int | None = None
) -> tuple[str, ...]:
    """Condition tags of a photo set: known tag keys plus ``last_procedure_days:N`` when given."""
    unknown = [t for t in selected if t not in CONDITION_TAGS]
    if unknown:
        raise records.FieldError(
            "condition_tags", f"unknown condition tag(s): {', '.join(unknown)}"
        )
    tags = list(selected)
    if days_since_last_procedure is not None:
        if days_since_last_procedure < 0:
            raise records.FieldError("days_since_last_procedure", "cannot be negative")
        tags.append(f"last_procedure_days:{int(days_since_last_procedure)}")
    return tuple(tags)


def stored_photo(session: DbSession, actor: Actor, *, photo_id: int) -> StoredPhoto:
    """Metadata of one stored photo (no bytes)."""
    require(actor, "series.read", session)
    photo = session.get(Photo, photo_id)
    if photo is None:
        raise records.FieldError("photo_id", f"no photo with id {photo_id}")
    visit: Session = photo.session
    return StoredPhoto(
        photo_id=photo.id,
        session_id=visit.id,
        session_number=visit.number,
        view=photo.view,
        sha256=photo.sha256,
        verdict=photo.verdict,
        override_reason=photo.override_reason,
        site=photo.site or "",
    )


def worker_turns() -> dict[str, Any]:
    """How many photo-analysis children this process runs at once and how long an upload waits
    for a turn (``CANDOR_PHOTO_WORKERS``, ``CANDOR_PHOTO_QUEUE_WAIT_S``), as keyword arguments of
    :func:`analysis.photos.worker.analyse_in_worker`."""
    settings = config.photo_workers()
    return {"slots": settings.slots, "queue_wait_s": settings.queue_wait_s}


def start_standby() -> None:
    """Warm one analysis worker now, so even the first upload of a session does not wait for one."""
    from analysis.photos.worker import start_standby as start

    start()
