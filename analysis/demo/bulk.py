"""Write a :class:`~analysis.demo.plan.ClinicPlan` in bulk: the same rows and audit events the
record's service functions (:mod:`analysis.services.records`) would write, in a handful of statements.

The record's write path checks, flushes and audits one row at a time (about 75 series a minute),
which is right for a clinician saving a visit and far too slow for seeding 10,000 patients. Here
every row of the plan is built in Python with its id allocated up front (after the largest id
already in each table), inserted with one ``executemany`` per table and chunk, and every audit
event the record path would have written for it (same action, actor, patient, object and details)
is appended to the hash chain in one batch (:func:`analysis.store.audit.record_many`). The plan is
the demo's own, already valid by construction; ``tests/demo/test_demo_clinic.py`` checks the written
record against the plan, and the shared rules (a reaction's stored term and red flag) come from
:mod:`analysis.services.records` itself.

Photos: the photo *records* of every series are written, but their images may come from a pool:
the first ``pool`` photo tracks of the plan are rendered, measured and compared for real
(:mod:`analysis.demo.photo_jobs`); every further track reuses the rendered track of the same
protocol and view (chosen by the track's seed) photo by photo, with its verdict, measurements and
checks, so each record stays true to the image it points at. The content-addressed store keeps one
blob per distinct image, as a real store deduplicates. ``truth["pooled_from"]`` names the source.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Table, func, insert, select, text
from sqlalchemy.orm import Session as DbSession

from analysis.demo.catalogue import PROTOCOLS
from analysis.demo.plan import ClinicPlan
from analysis.services.records import reaction_term
from analysis.store import audit
from analysis.store.access import Actor
from analysis.store.images import ImageStore
from analysis.store.models import (
    SCREENING_ITEMS,
    Confounder,
    Consent,
    EndpointDefinition,
    EndpointMeasurement,
    Patient,
    Photo,
    ProductLot,
    Protocol,
    Reaction,
    ScreeningAnswer,
    Series,
    Session,
    Treatment,
    utcnow,
)

#: Rows per INSERT statement batch (keeps each executemany's parameter list small in memory).
CHUNK_ROWS = 5000


@dataclass
class _Table:
    table: Table
    next_id: int
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, **row: Any) -> int:
        row["id"] = self.next_id
        self.next_id += 1
        self.rows.append(row)
        return int(row["id"])


@dataclass
class BulkCounts:
    patients: int = 0
    series: int = 0
    sessions: int = 0
    photos: int = 0
    retakes: int = 0
    overrides: int = 0
    audit_events: int = 0


class BulkWriter:
    """Collects rows and audit events, then writes them with :meth:`flush` (caller commits)."""

    MODELS = (
        Patient,
        Consent,
        Series,
        ScreeningAnswer,
        Session,
        Treatment,
        EndpointMeasurement,
        Reaction,
        Confounder,
        Photo,
    )

    def __init__(self, session: DbSession) -> None:
        self.session = session
        self.tables: dict[str, _Table] = {}
        for model in self.MODELS:
            table: Table = model.__table__  # type: ignore[assignment]
            top = session.scalar(select(func.max(table.c.id))) or 0
            self.tables[table.name] = _Table(table, int(top) + 1)
        self.events: list[tuple[Actor, dict[str, Any]]] = []

    def add(self, model: type[Any], **row: Any) -> int:
        return self.tables[model.__tablename__].add(**row)

    def audit(
        self,
        actor: Actor,
        action: str,
        *,
        patient_id: int | None,
        object_type: str,
        object_id: int | str = "",
        details: dict[str, Any] | None = None,
    ) -> None:
        self.events.append(
            (
                actor,
                dict(
                    action=action,
                    patient_id=patient_id,
                    object_type=object_type,
                    object_id=str(object_id),
                    details=details or {},
                ),
            )
        )

    def flush(self) -> int:
        """Insert every collected row (parents first) and append the audit events; returns the
        number of audit events written."""
        for t in self.tables.values():
            for start in range(0, len(t.rows), CHUNK_ROWS):
                self.session.execute(insert(t.table), t.rows[start : start + CHUNK_ROWS])
            t.rows.clear()
        n = len(self.events)
        audit.record_many(self.session, self.events)
        self.events.clear()
        return n

    def advance_sequences(self) -> None:
        """PostgreSQL: move each id sequence past the explicitly inserted ids, so the record's
        own writes after seeding get new ids (SQLite needs nothing). Once, after the last flush."""
        if self.session.get_bind().dialect.name != "postgresql":
            return
        for name in self.tables:
            self.session.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                    f"COALESCE((SELECT MAX(id) FROM {name}), 0) + 1, false)"
                )
            )


@dataclass(frozen=True)
class Context:
    """Ids and actors the bulk writer needs (accounts and catalogue are written before it)."""

    actors: list[Actor]
    director: Actor
    protocol_ids: dict[str, int]
    endpoint_ids: dict[str, int]
    lots: dict[
        tuple[str, str], tuple[int, Any, bool]
    ]  # (product, lot) -> (id, expiry_on, recalled)

    @classmethod
    def load(cls, session: DbSession, actors: list[Actor], director: Actor) -> Context:
        return cls(
            actors=actors,
            director=director,
            protocol_ids={
                p.name: session.scalars(select(Protocol.id).where(Protocol.name == p.name)).one()
                for p in PROTOCOLS
            },
            endpoint_ids=dict(
                session.execute(select(EndpointDefinition.code, EndpointDefinition.id)).all()
            ),
            lots={
                (p, n): (i, e, bool(r))
                for i, p, n, e, r in session.execute(
                    select(
                        ProductLot.id,
                        ProductLot.product,
                        ProductLot.lot_number,
                        ProductLot.expiry_on,
                        ProductLot.recalled,
                    )
                ).all()
            },
        )


def write_plan(
    session: DbSession,
    plan: ClinicPlan,
    ctx: Context,
    *,
    rendered: dict[int, list[Any]],
    sources: list[int],
    store: ImageStore,
    progress: Callable[[str], None] = lambda _: None,
    chunk_patients: int = 1000,
) -> BulkCounts:
    """Write every patient of ``plan`` with everything recorded about them, ``chunk_patients``
    patients per flush (bounded memory), in the caller's transaction.

    ``rendered`` maps a rendered track's index to its photos; ``sources`` (from
    :func:`pool_sources`) names the rendered track each track takes its images from.
    """
    counts = BulkCounts()
    shas = {
        j: {p.session_number: (store.put(p.data), p) for p in photos}
        for j, photos in rendered.items()
    }
    series_of: dict[int, list[Any]] = defaultdict(list)
    for sp in plan.series:
        series_of[sp.patient].append(sp)
    tracks_of: dict[int, list[int]] = defaultdict(list)
    for i, t in enumerate(plan.tracks):
        tracks_of[t.series_index].append(i)
    w = BulkWriter(session)
    for start in range(0, len(plan.patients), chunk_patients):
        stop = min(start + chunk_patients, len(plan.patients))
        for i in range(start, stop):
            pid = _patient_rows(w, plan, ctx, i, series_of[i])
            for sp in series_of[i]:
                sessions = _series_rows(w, ctx, pid, sp)
                for ti in tracks_of[sp.index]:
                    _photo_rows(
                        w, plan, ti, shas[sources[ti]], sources[ti], ctx, sessions, pid, counts
                    )
                counts.series += 1
                counts.sessions += len(sp.sessions)
        counts.patients = stop
        counts.audit_events += w.flush()
        progress(
            f"wrote {stop}/{len(plan.patients)} patients, {counts.series} series, "
            f"{counts.photos} photos"
        )
    w.advance_sequences()
    return counts


def _patient_rows(w: BulkWriter, plan: ClinicPlan, ctx: Context, i: int, series: list[Any]) -> int:
    pp = plan.patients[i]
    first = series[0] if series else None
    actor = ctx.actors[first.sessions[0].operator] if first and first.sessions else ctx.actors[0]
    pid = w.add(
        Patient, code=pp.code, birth_year=pp.birth_year, sex=pp.sex, fitzpatrick=pp.fitzpatrick
    )
    w.audit(actor, "patient.create", patient_id=pid, object_type="patient", object_id=pid)
    withdrawn = dict(pp.withdrawals)
    for scope, at in pp.consents:
        cid = w.add(
            Consent,
            patient_id=pid,
            scope=scope,
            given_at=at,
            withdrawn_at=withdrawn.get(scope),
            recorded_by_id=actor.user_id,
        )
        w.audit(
            actor,
            "consent.give",
            patient_id=pid,
            object_type="consent",
            object_id=cid,
            details={"scope": scope},
        )
    for scope, _at in pp.withdrawals:
        w.audit(
            actor,
            "consent.withdraw",
            patient_id=pid,
            object_type="consent",
            details={"scope": scope, "withdrawn": 1},
        )
    return pid


def _series_rows(w: BulkWriter, ctx: Context, pid: int, sp: Any) -> dict[int, int]:
    """Rows of one series; returns its session ids by session number."""
    proto = PROTOCOLS[sp.protocol]
    actor = ctx.actors[sp.sessions[0].operator] if sp.sessions else ctx.actors[0]
    sid = w.add(
        Series,
        patient_id=pid,
        protocol_id=ctx.protocol_ids[proto.name],
        started_on=sp.started_on,
        goal=sp.goal.strip(),
        status=sp.status,
    )
    w.audit(actor, "series.create", patient_id=pid, object_type="series", object_id=sid)
    for item in SCREENING_ITEMS:
        w.add(
            ScreeningAnswer,
            series_id=sid,
            item=item,
            present=bool(sp.screening[item]),
            details=sp.screening_details.get(item, ""),
            screened_on=sp.started_on,
            screened_by_id=actor.user_id,
        )
    w.audit(
        actor,
        "screening.record",
        patient_id=pid,
        object_type="series",
        object_id=sid,
        details={"flags": [k for k in SCREENING_ITEMS if sp.screening[k]]},
    )
    sessions: dict[int, int] = {}
    for visit in sp.sessions:
        op = ctx.actors[visit.operator]
        vid = w.add(
            Session,
            series_id=sid,
            number=visit.number,
            performed_on=visit.performed_on,
            operator_id=op.user_id,
            condition_tags=list(visit.condition_tags),
            notes=visit.notes,
        )
        sessions[visit.number] = vid
        w.audit(
            op,
            "session.create",
            patient_id=pid,
            object_type="session",
            object_id=vid,
            details={"number": visit.number},
        )
        _visit_rows(w, ctx, op, pid, vid, visit)
    for c in sp.confounders:
        at_visit = sessions.get(c["session_number"]) if c["session_number"] else None
        cid = w.add(
            Confounder,
            series_id=sid,
            kind=c["kind"],
            started_on=c["started_on"],
            ended_on=c["ended_on"],
            details=c["details"],
            session_id=at_visit,
        )
        w.audit(
            actor,
            "confounder.add",
            patient_id=pid,
            object_type="confounder",
            object_id=cid,
            details={"kind": c["kind"]},
        )
    return sessions


def _visit_rows(w: BulkWriter, ctx: Context, op: Actor, pid: int, vid: int, visit: Any) -> None:
    t = visit.treatment
    lot_id, expiry_on, recalled = ctx.lots[(t["product"], t["lot"])]
    expired = expiry_on < visit.performed_on
    override = ""
    if t.get("expired_use"):
        override = (
            "Expired vial used in error: expiry missed at preparation, noticed while "
            "documenting. Patient informed the same day; incident report filed; medical "
            "director notified."
        )
    tid = w.add(
        Treatment,
        session_id=vid,
        lot_id=lot_id,
        preparation=t["preparation"],
        mixed=t["mixed"],
        sites=list(t["sites"]),
        depth_intent=t["depth_intent"],
        volume_ml=t["volume_ml"],
        units=None,
        operator_id=op.user_id,
        expired_at_use=expired,
        override_reason=override,
    )
    w.audit(
        op,
        "treatment.record",
        patient_id=pid,
        object_type="treatment",
        object_id=tid,
        details={"lot": t["lot"], "expired_at_use": expired, "recalled": recalled},
    )
    for m in visit.measurements:
        rater = {"director": ctx.director, "operator": op}.get(m["rater"])
        mid = w.add(
            EndpointMeasurement,
            session_id=vid,
            endpoint_id=ctx.endpoint_ids[m["code"]],
            value_num=m["value"],
            value_text="",
            site=m.get("site", ""),
            rater_id=rater.user_id if rater else None,
            rated_by_patient=m["rater"] == "patient",
            blinded=bool(m.get("blinded")),
            measured_at=m["at"],
        )
        w.audit(
            op,
            "measurement.record",
            patient_id=pid,
            object_type="measurement",
            object_id=mid,
            details={"endpoint": m["code"]},
        )
    for r in visit.reactions:
        term, red = reaction_term(r["term"])
        kind = "adverse" if red else r["kind"]
        rid = w.add(
            Reaction,
            session_id=vid,
            kind=kind,
            term=term,
            severity=r["severity"],
            onset_day=r.get("onset_day", 0),
            duration_days=r.get("duration_days"),
            resolved=r.get("resolved", True),
            escalation=r.get("escalation", "").strip(),
            red_flag=red,
            notes=r.get("notes", ""),
        )
        w.audit(
            op,
            "reaction.record",
            patient_id=pid,
            object_type="reaction",
            object_id=rid,
            details={"kind": kind, "term": term, "red_flag": red},
        )


def choose_pool(plan: ClinicPlan, pool: int) -> list[int]:
    """Indexes of the tracks to render: the first ``pool`` tracks of the plan, plus the first track
    of any protocol and view they miss (so every track has a source of its kind)."""
    chosen = list(range(min(pool, len(plan.tracks))))
    seen = {
        (plan.series[plan.tracks[i].series_index].protocol, plan.tracks[i].view) for i in chosen
    }
    for i in range(len(chosen), len(plan.tracks)):
        key = (plan.series[plan.tracks[i].series_index].protocol, plan.tracks[i].view)
        if key not in seen:
            seen.add(key)
            chosen.append(i)
    return chosen


def pool_sources(plan: ClinicPlan, rendered: list[int]) -> list[int]:
    """For each track of ``plan``, the index of the rendered track whose images it uses: itself
    when rendered, else a rendered track of the same protocol and view (one with at least as many
    sessions when there is one), chosen by the track's own seed."""
    tracks = plan.tracks
    key = [(plan.series[t.series_index].protocol, t.view) for t in tracks]
    by_key: dict[tuple[int, str], list[int]] = defaultdict(list)
    for i in rendered:
        by_key[key[i]].append(i)
    own = set(rendered)
    out = []
    for i, t in enumerate(tracks):
        if i in own:
            out.append(i)
            continue
        options = by_key[key[i]]
        enough = [j for j in options if len(tracks[j].shots) >= len(t.shots)] or options
        out.append(enough[int(np.random.default_rng(t.seed).integers(len(enough)))])
    return out


def _photo_rows(
    w: BulkWriter,
    plan: ClinicPlan,
    ti: int,
    source: dict[int, tuple[str, Any]],
    source_index: int,
    ctx: Context,
    sessions: dict[int, int],
    pid: int,
    counts: BulkCounts,
) -> None:
    """Photo rows (and ``photo.store`` events) of track ``ti`` from the rendered ``source``."""
    track = plan.tracks[ti]
    series = plan.series[track.series_index]
    own = source_index == ti
    src_track = plan.tracks[source_index]
    for shot in track.shots:
        sha, p = source.get(shot.session_number) or source[max(source)]
        actor = ctx.actors[series.sessions[shot.session_number - 1].operator]
        truth = dict(p.truth)
        if not own:
            truth["pooled_from"] = {
                "series_index": src_track.series_index,
                "view": src_track.view,
                "session_number": p.session_number,
            }
        phid = w.add(
            Photo,
            session_id=sessions[shot.session_number],
            view=track.view,
            sha256=sha,
            original_sha256=p.original_sha256,
            media_type=p.media_type,
            width_px=p.width_px,
            height_px=p.height_px,
            size_bytes=len(p.data),
            taken_at=p.taken_at if own else shot.taken_at,
            uploaded_at=utcnow(),
            uploaded_by_id=actor.user_id,
            measurements=p.measurements,
            verdict=p.verdict,
            checks=p.checks,
            override_reason=p.override_reason.strip(),
            condition_tags=list(p.condition_tags if own else shot.condition_tags),
            truth=truth,
        )
        w.audit(
            actor,
            "photo.store",
            patient_id=pid,
            object_type="photo",
            object_id=phid,
            details={"view": track.view, "verdict": p.verdict},
        )
        counts.photos += 1
        counts.retakes += int(p.retaken)
        counts.overrides += int(bool(p.override_reason))
