"""Seed the demo clinic: write a :class:`~analysis.demo.plan.ClinicPlan` into an empty database.

Accounts come from ``analysis.auth.accounts`` and the catalogue (endpoints, protocols, lots) is
written row by row; the clinic's record (patients to photos, with the audit events the record's
services would write, acting as the clinician who did the work) is written in bulk by
:mod:`analysis.demo.bulk`, so 10,000 patients seed in minutes. Photos of the first ``photo_pool``
tracks are rendered, measured and compared by a process pool
(:func:`analysis.demo.photo_jobs.render_track`); larger clinics reuse those images by content hash
(see :mod:`analysis.demo.bulk`). The database is the same for a given seed and date. The whole
clinic is one transaction: a failure leaves the database empty (and at most some unreferenced
image blobs, which ``python -m analysis sweep`` removes).
"""

from __future__ import annotations

import multiprocessing
import time as _time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session as DbSession

from analysis.demo import DEFAULT_PATIENTS, DEFAULT_PHOTO_POOL, DEFAULT_SEED, bulk
from analysis.demo.catalogue import ENDPOINTS, PROTOCOLS, RECALL_NOTE, RECALLED_LOT
from analysis.demo.plan import OPERATORS, ClinicPlan, PhotoTrack, plan_clinic
from analysis.processes import main_module_hidden
from analysis.services import records
from analysis.store import audit, db
from analysis.store.access import SYSTEM
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


def _render_all(
    tracks: list[PhotoTrack], workers: int
) -> tuple[Iterator[tuple[int, Any]], Callable[[], None]]:
    """Start rendering; returns an iterator of ``(index into tracks, photos)`` in the order they
    finish, and a shutdown function."""
    from analysis.demo.photo_jobs import render_track

    if workers <= 1 or len(tracks) <= 1:
        return ((i, render_track(t)) for i, t in enumerate(tracks)), lambda: None
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    # longest tracks first keeps both workers busy to the end
    order = sorted(range(len(tracks)), key=lambda i: -len(tracks[i].shots))
    with main_module_hidden():  # children start during submit; see analysis.processes
        futures = {pool.submit(render_track, tracks[i]): i for i in order}

    def results() -> Iterator[tuple[int, Any]]:
        for done in as_completed(futures):
            yield futures[done], done.result()

    return results(), lambda: pool.shutdown(wait=True, cancel_futures=True)


def seed_demo_clinic(
    *,
    n_patients: int = DEFAULT_PATIENTS,
    seed: int = DEFAULT_SEED,
    photos: bool = True,
    workers: int = 2,
    photo_pool: int = DEFAULT_PHOTO_POOL,
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
    photo_pool : int
        Photo tracks (one view of one series) rendered for real; further tracks reuse their images
        (:func:`analysis.demo.bulk.pool_sources`). The default, 80 of the default clinic's 185
        tracks, keeps its seeding under 45 s on 2 cores.
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
        return SeedReport(
            False,
            f"the database already holds {n} patients; nothing seeded "
            "(the demo clinic is only seeded into an empty database)",
        )
    from analysis.auth.accounts import DEMO_ACCOUNTS

    with db.session_scope(engine) as session:
        own = session.scalars(
            select(User.email).where(User.email.not_in(list(DEMO_ACCOUNTS)))
        ).all()
    if own:
        return SeedReport(
            False,
            f"the database has {len(own)} account(s) of a real clinic; nothing "
            "seeded (the demo clinic is only seeded into an empty database)",
        )
    today = today or date.today()
    if photos:
        missing = _photo_engine_available()
        if missing:
            progress(f"{missing}: seeding without photos")
            photos = False
    plan = plan_clinic(n_patients=n_patients, seed=seed, today=today, photos=photos)
    rendered_ix = bulk.choose_pool(plan, photo_pool) if photos else []
    progress(
        f"planned {len(plan.patients)} patients, {len(plan.series)} series, "
        f"{sum(len(s.sessions) for s in plan.series)} sessions, "
        f"{sum(len(t.shots) for t in plan.tracks)} photos "
        f"({sum(len(plan.tracks[i].shots) for i in rendered_ix)} distinct images) "
        f"({_time.monotonic() - t0:.0f} s)"
    )
    store = store or default_store()
    rendered: dict[int, list[Any]] = {}
    if rendered_ix:
        progress(
            f"rendering, measuring and comparing {len(rendered_ix)} photo tracks with "
            f"{max(workers, 1)} process(es)"
        )
        results, shutdown = _render_all([plan.tracks[i] for i in rendered_ix], workers)
        try:
            for n, (k, photos_k) in enumerate(results, start=1):
                rendered[rendered_ix[k]] = photos_k
                if n % 25 == 0 or n == len(rendered_ix):
                    progress(
                        f"rendered {n}/{len(rendered_ix)} photo tracks "
                        f"({_time.monotonic() - t0:.0f} s)"
                    )
        finally:
            shutdown()
    sources = bulk.pool_sources(plan, rendered_ix) if photos else []
    with db.session_scope(engine) as session:
        ctx = _write_catalogue_and_accounts(session, plan)
        counts = bulk.write_plan(
            session,
            plan,
            ctx,
            rendered=rendered,
            sources=sources,
            store=store,
            progress=lambda line: progress(f"{line} ({_time.monotonic() - t0:.0f} s)"),
        )
        progress(
            f"committing {counts.audit_events} audit events and the record "
            f"({_time.monotonic() - t0:.0f} s)"
        )
    if photos:
        from analysis.demo.rating_study import seed_demo_rating_study

        with db.session_scope(engine) as session:
            progress(
                seed_demo_rating_study(session, ctx.director) + f" ({_time.monotonic() - t0:.0f} s)"
            )
        from analysis.demo.trichoscopy_seed import seed_demo_trichoscopy

        t_tri = _time.monotonic()
        note = seed_demo_trichoscopy(
            lambda: db.session_scope(engine), ctx.director, ctx.actors[0], store, seed=seed
        )
        progress(f"{note} ({_time.monotonic() - t_tri:.1f} s of {_time.monotonic() - t0:.0f} s)")
    seconds = _time.monotonic() - t0
    return SeedReport(
        True,
        f"seeded the demo clinic in {seconds:.0f} s",
        patients=counts.patients,
        series=counts.series,
        sessions=counts.sessions,
        photos=counts.photos,
        retakes=counts.retakes,
        overrides=counts.overrides,
        seconds=seconds,
    )


def _write_catalogue_and_accounts(session: DbSession, plan: ClinicPlan) -> bulk.Context:
    from analysis.auth.accounts import actor_for
    from analysis.services.users import create_user, seed_demo_accounts

    seed_demo_accounts(session)
    actors = []
    for email, name, _habit in OPERATORS:
        user = session.scalar(select(User).where(User.email == email))
        if user is None:
            user = create_user(
                session, SYSTEM, email=email, display_name=name, role="clinician", password=None
            )
        actors.append(actor_for(user))
    director_user = session.scalar(select(User).where(User.role == "medical_director"))
    director = actor_for(director_user) if director_user is not None else actors[0]
    _write_catalogue(session, plan.today)
    return bulk.Context.load(session, actors, director)


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
            records.get_or_create_lot(
                session,
                product=p.product.name,
                lot_number=lot,
                expiry_on=today + timedelta(days=offset),
            )
    session.flush()
    recalled = session.scalar(
        select(ProductLot).where(
            ProductLot.product == RECALLED_LOT[0], ProductLot.lot_number == RECALLED_LOT[1]
        )
    )
    if recalled is not None:
        recalled.recalled = True
        recalled.recall_note = RECALL_NOTE
        session.flush()
    audit.record(
        session,
        SYSTEM,
        "demo.catalogue",
        details={
            "endpoints": len(ENDPOINTS),
            "protocols": len(PROTOCOLS),
            "recalled_lot": RECALLED_LOT[1],
        },
    )
