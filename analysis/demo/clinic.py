"""Seed the demo clinic: write a :class:`~analysis.demo.plan.ClinicPlan` through the record's services.

Everything goes through ``analysis.store.records`` (permission checks, validation, audit events),
acting as the clinician who did the work; accounts come from ``analysis.auth.accounts``. Photos
are rendered and measured by a process pool (:func:`analysis.demo.photo_jobs.render_track`) while
the rest of the record is written, then stored in plan order, so the database is the same for a
given seed and date. The whole clinic is one transaction: a failure leaves the database empty
(and at most some unreferenced image blobs, which ``python -m analysis sweep`` removes).
"""

from __future__ import annotations

import multiprocessing
import time as _time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session as DbSession

from analysis.processes import main_module_hidden
from analysis.demo import DEFAULT_PATIENTS, DEFAULT_SEED
from analysis.demo.catalogue import ENDPOINTS, PROTOCOLS, RECALL_NOTE, RECALLED_LOT
from analysis.demo.plan import OPERATORS, ClinicPlan, PhotoTrack, plan_clinic
from analysis.store import audit, db, records
from analysis.store.access import SYSTEM, Actor
from analysis.store.images import ImageStore, default_store
from analysis.store.models import EndpointDefinition, Patient, ProductLot, Protocol, User



@dataclass(frozen=True)
class SeedReport:
    """What a seeding run did. ``seeded`` is False when the database already held patients or a
    real clinic's own accounts."""

    seeded: bool
    message: str
    patients: int = 0
    series: int = 0
    sessions: int = 0
    photos: int = 0
    retakes: int = 0
    overrides: int = 0
    seconds: float = 0.0


def _photo_engine_available() -> str | None:
    """None when measure/compare can be imported, else why not."""
    try:
        import analysis.photos.compare  # noqa: F401
        import analysis.photos.measure  # noqa: F401
    except ImportError as exc:
        return f"photo engine not available ({exc})"
    return None


def _render_all(tracks: list[PhotoTrack], workers: int) -> tuple[Iterator[Any], Callable[[], None]]:
    """Start rendering; returns an iterator of results in track order and a shutdown function."""
    from analysis.demo.photo_jobs import render_track

    if workers <= 1:
        return (render_track(t) for t in tracks), lambda: None
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    # longest tracks first keeps both workers busy to the end; results are read back in plan order
    order = sorted(range(len(tracks)), key=lambda i: -len(tracks[i].shots))
    with main_module_hidden():  # children start during submit; see analysis.processes
        futures: dict[int, Future[Any]] = {i: pool.submit(render_track, tracks[i]) for i in order}

    def results() -> Iterator[Any]:
        for i in range(len(tracks)):
            yield futures[i].result()

    return results(), lambda: pool.shutdown(wait=True, cancel_futures=True)


def seed_demo_clinic(
    *,
    n_patients: int = DEFAULT_PATIENTS,
    seed: int = DEFAULT_SEED,
    photos: bool = True,
    workers: int = 2,
    today: date | None = None,
    engine: Engine | None = None,
    store: ImageStore | None = None,
    progress: Callable[[str], None] = print,
) -> SeedReport:
    """Migrate the database, then seed the demo clinic if it holds no patients.

    Parameters
    ----------
    n_patients, seed : int
        Clinic size and the seed of every random draw.
    photos : bool
        Render, measure and store photos (False: the record without photos, much faster).
    workers : int
        Processes rendering and measuring photos (1: in this process).
    today : date, optional
        The seeding date (default: today); no session is later than it.
    engine, store : optional
        Database engine and image store (default: the configured ones).
    progress : callable
        Receives one-line progress messages.

    Returns
    -------
    SeedReport
    """
    t0 = _time.monotonic()
    engine = engine or db.get_engine()
    db.upgrade(engine)
    if not db.is_empty(engine):
        with db.session_scope(engine) as session:
            n = session.scalar(select(func.count(Patient.id)))
        return SeedReport(False, f"the database already holds {n} patients; nothing seeded "
                                 "(the demo clinic is only seeded into an empty database)")
    from analysis.auth.accounts import DEMO_ACCOUNTS

    with db.session_scope(engine) as session:
        own = session.scalars(select(User.email).where(User.email.not_in(list(DEMO_ACCOUNTS)))).all()
    if own:
        return SeedReport(False, f"the database has {len(own)} account(s) of a real clinic; nothing "
                                 "seeded (the demo clinic is only seeded into an empty database)")
    today = today or date.today()
    if photos:
        missing = _photo_engine_available()
        if missing:
            progress(f"{missing}: seeding without photos")
            photos = False
    plan = plan_clinic(n_patients=n_patients, seed=seed, today=today, photos=photos)
    progress(f"planned {len(plan.patients)} patients, {len(plan.series)} series, "
             f"{sum(len(s.sessions) for s in plan.series)} sessions, "
             f"{sum(len(t.shots) for t in plan.tracks)} photos")
    results, shutdown = _render_all(plan.tracks, workers) if photos else (iter(()), lambda: None)
    store = store or default_store()
    try:
        with db.session_scope(engine) as session:
            ids = _write_record(session, plan, progress, t0)
            if photos:
                progress(f"rendering, measuring and comparing the photos with {max(workers, 1)} "
                         "process(es); the first stored ones are reported when the longest series "
                         "are done (about 2 minutes on 2 cores)")
            counts = _write_photos(session, plan, results, ids, store, progress, t0)
            progress(f"committing ({_time.monotonic() - t0:.0f} s)")
    finally:
        shutdown()
    seconds = _time.monotonic() - t0
    return SeedReport(True, f"seeded the demo clinic in {seconds:.0f} s", patients=len(plan.patients),
                      series=len(plan.series), sessions=sum(len(s.sessions) for s in plan.series),
                      photos=counts[0], retakes=counts[1], overrides=counts[2], seconds=seconds)


@dataclass
class _Ids:
    actors: list[Actor]
    director: Actor
    sessions: dict[tuple[int, int], int]  # (series index, session number) -> id
    patient_of_series: dict[int, int]


def _write_record(session: DbSession, plan: ClinicPlan, progress: Callable[[str], None],
                  t0: float) -> _Ids:
    from analysis.auth.accounts import actor_for, create_user, seed_demo_accounts

    seed_demo_accounts(session)
    actors = []
    for email, name, habit in OPERATORS:
        user = session.scalar(select(User).where(User.email == email))
        if user is None:
            user = create_user(session, SYSTEM, email=email, display_name=name, role="clinician",
                               password=None)
        actors.append(actor_for(user))
    director_user = session.scalar(select(User).where(User.role == "medical_director"))
    director = actor_for(director_user) if director_user is not None else actors[0]
    _write_catalogue(session, plan.today)
    protocol_ids = {p.name: session.scalar(select(Protocol.id).where(Protocol.name == p.name))
                    for p in PROTOCOLS}
    ids = _Ids(actors=actors, director=director, sessions={}, patient_of_series={})
    patient_ids: list[int] = []
    for i, pp in enumerate(plan.patients):
        first_series = next(s for s in plan.series if s.patient == i)
        actor = actors[first_series.sessions[0].operator] if first_series.sessions else actors[0]
        patient = records.create_patient(session, actor, code=pp.code, birth_year=pp.birth_year,
                                         sex=pp.sex, fitzpatrick=pp.fitzpatrick)
        patient_ids.append(patient.id)
        for scope, at in pp.consents:
            records.give_consent(session, actor, patient_id=patient.id, scope=scope, at=at)
        for scope, at in pp.withdrawals:
            records.withdraw_consent(session, actor, patient_id=patient.id, scope=scope, at=at)
    progress(f"wrote {len(patient_ids)} patients and consents ({_time.monotonic() - t0:.0f} s)")
    for sp in plan.series:
        proto = PROTOCOLS[sp.protocol]
        actor = actors[sp.sessions[0].operator] if sp.sessions else actors[0]
        row = records.create_series(session, actor, patient_id=patient_ids[sp.patient],
                                    protocol_id=protocol_ids[proto.name], started_on=sp.started_on,
                                    goal=sp.goal, status=sp.status)
        ids.patient_of_series[sp.index] = patient_ids[sp.patient]
        records.record_screening(session, actor, series_id=row.id, answers=sp.screening,
                                 details=sp.screening_details, screened_on=sp.started_on)
        for visit in sp.sessions:
            op = actors[visit.operator]
            srow = records.add_session(session, op, series_id=row.id,
                                       performed_on=visit.performed_on, operator_id=op.user_id,
                                       condition_tags=visit.condition_tags, notes=visit.notes,
                                       number=visit.number)
            ids.sessions[(sp.index, visit.number)] = srow.id
            _write_visit(session, op, director, srow.id, visit)
        for c in sp.confounders:
            sid = ids.sessions.get((sp.index, c["session_number"])) if c["session_number"] else None
            records.add_confounder(session, actor, series_id=row.id, kind=c["kind"],
                                   started_on=c["started_on"], ended_on=c["ended_on"],
                                   details=c["details"], session_id=sid)
        if sp.index % 20 == 19:
            progress(f"wrote {sp.index + 1}/{len(plan.series)} series "
                     f"({_time.monotonic() - t0:.0f} s)")
    return ids


def _write_catalogue(session: DbSession, today: date) -> None:
    from datetime import timedelta

    for e in ENDPOINTS:
        if session.scalar(select(EndpointDefinition.id).where(EndpointDefinition.code == e.code)):
            continue
        session.add(EndpointDefinition(**e.row()))
    for p in PROTOCOLS:
        if session.scalar(select(Protocol.id).where(Protocol.name == p.name)) is None:
            session.add(Protocol(**p.row()))
        for lot, offset in p.product.lots:
            records.get_or_create_lot(session, product=p.product.name, lot_number=lot,
                                      expiry_on=today + timedelta(days=offset))
    session.flush()
    recalled = session.scalar(select(ProductLot).where(ProductLot.product == RECALLED_LOT[0],
                                                       ProductLot.lot_number == RECALLED_LOT[1]))
    if recalled is not None:
        recalled.recalled = True
        recalled.recall_note = RECALL_NOTE
        session.flush()
    audit.record(session, SYSTEM, "demo.catalogue", details={
        "endpoints": len(ENDPOINTS), "protocols": len(PROTOCOLS),
        "recalled_lot": RECALLED_LOT[1]})


def _write_visit(session: DbSession, op: Actor, director: Actor, session_id: int,
                 visit: Any) -> None:
    t = visit.treatment
    override = ""
    if t.get("expired_use"):
        override = ("Expired vial used in error: expiry missed at preparation, noticed while "
                    "documenting. Patient informed the same day; incident report filed; medical "
                    "director notified.")
    records.record_treatment(
        session, op, session_id=session_id, product=t["product"], lot_number=t["lot"],
        expiry_on=t["expiry_on"], preparation=t["preparation"], mixed=t["mixed"],
        sites=t["sites"], depth_intent=t["depth_intent"], volume_ml=t["volume_ml"],
        operator_id=op.user_id, override_reason=override)
    for m in visit.measurements:
        rater = {"director": director, "operator": op}.get(m["rater"])
        records.record_measurement(
            session, op, session_id=session_id, endpoint_code=m["code"], value=m["value"],
            site=m.get("site", ""), rated_by_patient=m["rater"] == "patient",
            blinded=bool(m.get("blinded")), rater_id=rater.user_id if rater else None,
            measured_at=m["at"])
    for r in visit.reactions:
        records.record_reaction(session, op, session_id=session_id, **r)


def _write_photos(session: DbSession, plan: ClinicPlan, results: Iterator[Any], ids: _Ids,
                  store: ImageStore, progress: Callable[[str], None], t0: float
                  ) -> tuple[int, int, int]:
    stored = retakes = overrides = 0
    total = sum(len(t.shots) for t in plan.tracks)
    next_report = 100
    for track, rendered in zip(plan.tracks, results):
        series = plan.series[track.series_index]
        for photo in rendered:
            visit = series.sessions[photo.session_number - 1]
            actor = ids.actors[visit.operator]
            records.store_photo(
                session, actor, store, session_id=ids.sessions[(series.index, photo.session_number)],
                photo=records.PhotoInput(
                    data=photo.data, original_sha256=photo.original_sha256,
                    media_type=photo.media_type, width_px=photo.width_px,
                    height_px=photo.height_px, view=photo.view, verdict=photo.verdict,
                    measurements=photo.measurements, checks=photo.checks,
                    taken_at=photo.taken_at, override_reason=photo.override_reason,
                    condition_tags=photo.condition_tags, truth=photo.truth))
            stored += 1
            retakes += int(photo.retaken)
            overrides += int(bool(photo.override_reason))
        if stored >= next_report:
            progress(f"stored {stored}/{total} photos ({_time.monotonic() - t0:.0f} s)")
            next_report += 100
    return stored, retakes, overrides
