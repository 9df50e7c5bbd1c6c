"""The demo clinic's trichoscopy: synthetic close-ups of the vertex site with known follicles.

After the record is written, :func:`seed_demo_trichoscopy` takes the first ``max_series`` series of
the scalp protocols (the shortest course first; a fixed number whatever the clinic's size, so a
10,000-patient seed pays the same few seconds) and, for their first ``MAX_SESSIONS`` sessions,
acting as the clinician who ran each session, stores one close-up per session at the site ``"vertex"`` (:mod:`analysis.demo.trichoscopy_synth`, the session's true hair
density from the plan), measured and compared with the site's baseline like a capture. The medical
director sets the demo trichoscope's calibration; each photo is counted by the real engine
(:func:`analysis.services.trichoscopy.count_photo`, through the audited photo door) and confirmed.
On the first series the clinician corrects every count to the known number of follicles in the
frame (the correction flow), and the second series' last close-up is shot out of focus and kept
with a reason (the same-spot check flags it on Series review).

Every step goes through the services (role checks, audit events). The counts commit as they go
(the photo door commits each read), so this runs after the clinic's own transaction.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from analysis.demo.synth import encode_jpeg
from analysis.demo.trichoscopy_synth import (
    DEMO_DEVICE,
    DEMO_MAGNIFICATION,
    DEMO_MM_PER_PX,
    synth_trichoscopy,
    tricho_scene,
)
from analysis.services import records, trichoscopy
from analysis.store.access import Actor
from analysis.store.images import ImageStore
from analysis.store.models import Protocol, Series, Session, User

MAX_SERIES = 3
MAX_SESSIONS = 4  # close-ups of sessions 1-4 of a series (at most 12 photos in all)
SITE = "vertex"
VIEW = "scalp_trichoscopy"
OUT_OF_FOCUS_SIGMA_PX = 6.0
OVERRIDE = "Demo: the close-up was out of focus and kept to show the same-spot check."


def _true_density(visit: Session, fallback: float) -> float:
    for p in visit.photos:
        d = (p.truth or {}).get("density_per_cm2")
        if p.view == "scalp_vertex" and d is not None:
            return float(np.clip(float(d), 20.0, 300.0))
    for m in visit.measurements:
        if m.endpoint.code == "hair_density" and m.value_num is not None:
            return float(np.clip(float(m.value_num), 20.0, 300.0))
    return fallback


def _actor(session: DbSession, visit: Session, fallback: Actor) -> Actor:
    from analysis.auth.accounts import actor_for

    user = None if visit.operator_id is None else session.get(User, visit.operator_id)
    return actor_for(user) if user is not None and user.role == "clinician" else fallback


def seed_demo_trichoscopy(
    open_session: Any,
    director: Actor,
    clinician: Actor,
    store: ImageStore,
    *,
    seed: int,
    max_series: int = MAX_SERIES,
) -> str:
    """Seed the close-ups, counts and confirmations; returns a one-line note.

    ``open_session`` is a context-manager factory of database sessions (``db.session_scope``
    bound to the engine); each series is written in its own transactions.
    """
    from analysis.photos.compare import Tolerances, compare
    from analysis.photos.ingest import clean_original, read_photo
    from analysis.photos.measure import measure_photo

    with open_session() as session:
        cal = trichoscopy.set_calibration(
            session,
            director,
            device=DEMO_DEVICE,
            magnification=DEMO_MAGNIFICATION,
            mm_per_px=DEMO_MM_PER_PX,
        ).calibration_id
        picked = [
            (s.id, dict(s.protocol.tolerances or {}))
            for s in session.scalars(
                select(Series)
                .join(Protocol, Protocol.id == Series.protocol_id)
                .where(Protocol.target_area == "scalp")
                .order_by(Protocol.planned_sessions, Series.id)  # the monthly PRP course first
                .limit(8 * max_series)
            )
            if len(s.sessions) >= 2
            and "clinical_record" in records.consent_scopes(session, s.patient_id)
        ][:max_series]
    photos = counted = corrected = 0
    for k, (series_id, tolerances) in enumerate(picked):
        rng = np.random.default_rng([seed, series_id, 16])
        scene = tricho_scene(rng)
        baseline = None
        with open_session() as session:
            visits = sorted(
                session.scalars(select(Session).where(Session.series_id == series_id)),
                key=lambda v: v.number,
            )[:MAX_SESSIONS]
            ids = []
            fallback = 130.0
            for i, visit in enumerate(visits):
                density = _true_density(visit, fallback)
                fallback = density
                blur = OUT_OF_FOCUS_SIGMA_PX if (k == 1 and i == len(visits) - 1) else 0.8
                shift = (float(rng.normal(0, 20)), float(rng.normal(0, 20)))
                rgb, truth = synth_trichoscopy(
                    scene, density_per_cm2=density, rng=rng, shift_px=shift, blur_sigma_px=blur
                )
                jpeg = encode_jpeg(rgb, quality=92)
                clean = clean_original(jpeg)
                m = measure_photo(read_photo(jpeg), view=VIEW)
                checks: list[Any] = []
                if baseline is None:
                    baseline, verdict = m, "baseline"
                else:
                    comparison = compare(baseline, m, tolerances=Tolerances.from_dict(tolerances))
                    verdict = comparison.verdict
                    checks = comparison.to_json_dict()["checks"]
                actor = _actor(session, visit, clinician)
                row = records.store_photo(
                    session,
                    actor,
                    store,
                    session_id=visit.id,
                    photo=records.PhotoInput(
                        data=clean.data,
                        original_sha256=clean.original_sha256,
                        media_type=clean.media_type,
                        width_px=clean.width_px,
                        height_px=clean.height_px,
                        view=VIEW,
                        verdict=verdict,
                        measurements=m.to_json_dict(),
                        checks=checks,
                        override_reason=OVERRIDE if verdict == "fail" else "",
                        truth=truth,
                    ),
                )
                trichoscopy.set_site(session, actor, row.id, SITE)
                ids.append((row.id, actor, int(truth["follicles"])))
                photos += 1
        for photo_id, actor, known in ids:
            with open_session() as session:
                trichoscopy.count_photo(session, actor, photo_id, calibration_id=cal, store=store)
                counted += 1
            with open_session() as session:
                done = trichoscopy.confirm_count(
                    session, actor, photo_id, known if k == 0 else None
                )
                corrected += int(done.corrected)
    if not picked:
        return "no demo trichoscopy (no scalp series with two sessions and photo consent)"
    return (
        f"trichoscopy: {photos} synthetic close-ups of the {SITE} in {len(picked)} series, "
        f"counted ({counted}) and confirmed, {corrected} corrected to the known follicles"
        f" ({DEMO_DEVICE}, {DEMO_MAGNIFICATION:g}x)"
    )
