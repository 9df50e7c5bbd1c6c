"""Background work any replica can hand off: queue it, and a pool of workers runs each job once.

``python -m analysis worker`` runs a worker (start one or more per server, on any replica's
machine: they share the ``jobs`` table, :mod:`analysis.store.jobs`). The one job kind today is
:data:`MEASURE_PHOTO`: re-measure a stored photo (pose, distance, lighting, sharpness) in the
sandboxed analysis child, e.g. a whole visit or series after an engine update, without holding a
browser session. Its result (the measurement's scalar fields and the fields that differ from the
measurement stored at capture) stays on the job; the photo record is not changed.

Uploads are still measured inline at capture (the verdict is shown before the photo is kept).

A job carries record ids and the account that queued it, never a patient identifier. The worker
acts *as that account*: the photo is read through the audited photo door
(:func:`analysis.services.photo_access.photo_bytes`), so role and consent are checked again when
it runs and the read is audited in that account's name. A refused or missing photo fails the job
at once (retrying cannot help); a crash or time-out of the analysis child is retried up to the
job's ``max_attempts`` (so is a job that got no turn at the analysis children of a busy replica).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session as DbSession

from analysis.store import audit, db
from analysis.store import jobs as queue
from analysis.store.access import Actor, require
from analysis.store.models import Photo
from analysis.store.models import Session as Visit

log = logging.getLogger(__name__)

MEASURE_PHOTO = "photo.measure"

#: A batch larger than this is refused (queue several visits instead).
MAX_BATCH = 5000


class PermanentJobError(RuntimeError):
    """The job cannot succeed on a retry (refused, missing input): fail it now."""


Handler = Callable[[Engine, dict[str, Any]], dict[str, Any]]


# --- queuing (services: role check, audit) ------------------------------------------------------


def enqueue_photo_measurements(
    session: DbSession,
    actor: Actor,
    *,
    visit_id: int | None = None,
    photo_ids: list[int] | None = None,
) -> list[int]:
    """Queue one :data:`MEASURE_PHOTO` job per photo of visit ``visit_id`` (or per ``photo_ids``);
    the job ids. Commits the jobs with one audit event (``jobs.enqueue``)."""
    require(actor, "photo.view", session, object_type="session", object_id=visit_id or "")
    if (visit_id is None) == (photo_ids is None):
        raise ValueError("give visit_id or photo_ids, not both")
    if visit_id is not None:
        if session.get(Visit, visit_id) is None:
            from analysis.errors import FieldError

            raise FieldError("visit_id", f"no visit with id {visit_id}")
        ids = list(session.scalars(select(Photo.id).where(Photo.session_id == visit_id)))
    else:
        ids = sorted({int(i) for i in photo_ids or []})
    if len(ids) > MAX_BATCH:
        from analysis.errors import FieldError

        raise FieldError("photo_ids", f"at most {MAX_BATCH} photos per batch, got {len(ids)}")
    behalf = {"user_id": actor.user_id, "email": actor.email, "role": actor.role}
    job_ids = queue.enqueue(
        session,
        MEASURE_PHOTO,
        [{"photo_id": pid, "on_behalf_of": behalf} for pid in ids],
        created_by=actor.email,
    )
    audit.record(
        session,
        actor,
        "jobs.enqueue",
        object_type="session" if visit_id is not None else "photo",
        object_id=visit_id if visit_id is not None else "",
        details={"kind": MEASURE_PHOTO, "jobs": len(job_ids), "photo_ids": ids[:50]},
    )
    session.commit()
    return job_ids


@dataclass(frozen=True)
class JobStatus:
    id: int
    kind: str
    state: str
    attempts: int
    result: dict[str, Any] | None
    error: str


def job_statuses(session: DbSession, actor: Actor, *, job_ids: list[int]) -> list[JobStatus]:
    """Where the jobs ``job_ids`` stand (queued, running, done with a result, failed with why)."""
    require(actor, "photo.view", session)
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    return [
        JobStatus(v.id, v.kind, v.state, v.attempts, v.result, v.error)
        for v in queue.jobs_by_id(engine, list(job_ids))
    ]


# --- handlers ------------------------------------------------------------------------------------


def _behalf(payload: Mapping[str, Any]) -> Actor:
    who = payload.get("on_behalf_of") or {}
    try:
        return Actor(user_id=who.get("user_id"), email=str(who["email"]), role=str(who["role"]))
    except (KeyError, ValueError, TypeError) as exc:
        raise PermanentJobError(f"the job names no valid account to act for ({exc})") from exc


def _differences(stored: Mapping[str, Any], fresh: Mapping[str, Any]) -> list[str]:
    out = []
    for name, value in fresh.items():
        if name in ("path", "error"):
            continue
        old = stored.get(name)
        if isinstance(value, float) and isinstance(old, int | float):
            if abs(value - float(old)) > 1e-6 * max(1.0, abs(value)):
                out.append(name)
        elif name in stored and old != value:
            out.append(name)
    return sorted(out)


def measure_photo(engine: Engine, payload: dict[str, Any]) -> dict[str, Any]:
    """:data:`MEASURE_PHOTO`: read the photo as the queuing account (audited), measure it in the
    sandboxed child, return its measurement and what differs from the stored one."""
    from analysis.photos.worker import analyse_in_worker
    from analysis.services.capture import worker_turns
    from analysis.services.photo_access import PhotoNotFound, photo_bytes
    from analysis.store.access import PermissionDenied
    from analysis.store.images import BlobCorruptError, BlobMissingError

    actor = _behalf(payload)
    try:
        photo_id = int(payload["photo_id"])
    except (KeyError, ValueError, TypeError) as exc:
        raise PermanentJobError(f"the job names no photo ({exc})") from exc
    with db.session_scope(engine) as session:
        try:
            data = photo_bytes(session, actor, photo_id=photo_id)
        except (PermissionDenied, PhotoNotFound, BlobMissingError, BlobCorruptError) as exc:
            raise PermanentJobError(str(exc)) from exc
        photo = session.get(Photo, photo_id)
        assert photo is not None  # photo_bytes found it
        view, stored = photo.view, dict(photo.measurements or {})
    result = analyse_in_worker(data, view=view, **worker_turns())
    if result.outcome in ("busy", "timeout", "crashed", "out_of_memory", "failed"):
        raise RuntimeError(result.error or f"the analysis child {result.outcome}")
    measurement = result.measurement
    if measurement is None or not hasattr(measurement, "to_json_dict"):
        fresh: dict[str, Any] = {"ok": False, "error": result.error or "not measured"}
    else:
        fresh = measurement.to_json_dict()
        fresh.pop("path", None)
    return {
        "photo_id": photo_id,
        "ok": bool(fresh.get("ok")),
        "error": fresh.get("error") or "",
        "measurement": fresh,
        "differs_from_stored": _differences(stored, fresh),
        "elapsed_s": round(result.elapsed_s, 3),
    }


HANDLERS: dict[str, Handler] = {MEASURE_PHOTO: measure_photo}


# --- the worker ----------------------------------------------------------------------------------


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class WorkerStats:
    done: int = 0
    failed: int = 0
    retried: int = 0
    lost: int = 0


def _heartbeat(
    engine: Engine, job: queue.Claimed, worker_id: str, lease_s: float, stop: threading.Event
) -> None:
    while not stop.wait(lease_s / 3):
        try:
            if not queue.renew(engine, job, worker_id, lease_s=lease_s):
                log.warning("lost the lease of job %s", job.id, extra={"job_id": job.id})
                return
        except Exception:  # the database blinked: try again at the next beat
            log.exception("could not renew the lease of job %s", job.id)


def run_one(
    engine: Engine,
    job: queue.Claimed,
    worker_id: str,
    handlers: Mapping[str, Handler],
    *,
    lease_s: float,
    stats: WorkerStats,
) -> None:
    """Run a claimed job under a renewed lease and record its outcome."""
    stop = threading.Event()
    beat = threading.Thread(
        target=_heartbeat, args=(engine, job, worker_id, lease_s, stop), daemon=True
    )
    beat.start()
    extra = {"job_id": job.id, "job_kind": job.kind, "attempt": job.attempt}
    started = time.perf_counter()
    try:
        handler = handlers.get(job.kind)
        if handler is None:
            raise PermanentJobError(f"this worker has no handler for job kind {job.kind!r}")
        result = handler(engine, job.payload)
    except Exception as exc:
        stop.set()
        beat.join()
        permanent = isinstance(exc, PermanentJobError)
        state = queue.fail(
            engine, job, worker_id, str(exc) or type(exc).__name__, permanent=permanent
        )
        if state is None:
            stats.lost += 1
        elif state == "failed":
            stats.failed += 1
        else:
            stats.retried += 1
        log.warning("job %s %s: %s", job.id, state or "lost its lease", exc, extra=extra)
        return
    stop.set()
    beat.join()
    if queue.finish(engine, job, worker_id, result):
        stats.done += 1
        log.info("job %s done in %.2f s", job.id, time.perf_counter() - started, extra=extra)
    else:
        stats.lost += 1
        log.warning("job %s finished after its lease was lost; result dropped", job.id, extra=extra)


def run_worker(
    engine: Engine,
    *,
    worker_id: str | None = None,
    handlers: Mapping[str, Handler] | None = None,
    lease_s: float = queue.DEFAULT_LEASE_S,
    poll_s: float = 1.0,
    drain: bool = False,
    max_jobs: int | None = None,
    stop: threading.Event | None = None,
) -> WorkerStats:
    """Claim and run jobs until ``stop`` is set (or, with ``drain``, until none is claimable, or
    after ``max_jobs``). Returns what it did."""
    worker_id = worker_id or default_worker_id()
    handlers = HANDLERS if handlers is None else handlers
    kinds = tuple(handlers)
    stop = stop or threading.Event()
    stats = WorkerStats()
    log.info("worker %s started (kinds: %s)", worker_id, ", ".join(kinds))
    ran = 0
    while not stop.is_set() and (max_jobs is None or ran < max_jobs):
        queue.expire_abandoned(engine)
        job = queue.claim(engine, worker_id, kinds, lease_s=lease_s)
        if job is None:
            if drain:
                break
            stop.wait(poll_s)
            continue
        ran += 1
        run_one(engine, job, worker_id, handlers, lease_s=lease_s, stats=stats)
    log.info(
        "worker %s stopped: %d done, %d failed, %d retried, %d lost",
        worker_id,
        stats.done,
        stats.failed,
        stats.retried,
        stats.lost,
    )
    return stats
