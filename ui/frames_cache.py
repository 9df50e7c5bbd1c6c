"""Clinic frames for the analytics pages, cached in the browser session only, per protocol.

A page asks for the protocols it shows and the optional tables the view on screen needs (reactions
only when reactions are shown, and so on); each protocol's tables are read once per session (and
again after :data:`FRAMES_TTL_S` or a reload) and combined. A table asked for later is read then
and joined to the sessions read first. Timelines, which shows one protocol, reads a
quarter of a four-protocol clinic instead of all of it; Protocols reads only a protocol that is
added to the comparison. Nothing is shared between sessions (never a global cache of patient
data); results derived from the frames are kept under :data:`DERIVED_PREFIX` and dropped whenever
the frames are reloaded.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import pandas as pd
import streamlit as st

from analysis.services.analytics import OPTIONAL_TABLES, ClinicFrames, combine_frames, with_tables
from analysis.services.common import Actor
from analysis.services.frames import load_frames, lots_used, record_revision
from ui import frame

FRAMES_TTL_S = 600
DERIVED_PREFIX = "insights.model."
_PREFIX = "insights.frames."


def _key(actor: Actor, purpose: str, protocol_id: int | None) -> str:
    part = "catalogue" if protocol_id is None else str(protocol_id)
    return f"{_PREFIX}{purpose}.{actor.email}.{part}"


def _cached(
    actor: Actor, purpose: str, protocol_id: int | None, tables: frozenset[str]
) -> ClinicFrames:
    key = _key(actor, purpose, protocol_id)
    ids = [] if protocol_id is None else [protocol_id]
    hit = st.session_state.get(key)
    if hit is None or time.monotonic() - hit[0] > FRAMES_TTL_S:
        if hit is not None:  # expired: what was derived from the old frames goes too
            drop_derived()
        read = frame.call(load_frames, purpose=purpose, protocol_ids=ids, tables=tables)
        hit = (time.monotonic(), read)
        st.session_state[key] = hit
    missing = tables - hit[1].loaded
    if missing:
        more = frame.call(load_frames, purpose=purpose, protocol_ids=ids, tables=missing)
        hit = (hit[0], with_tables(hit[1], more, missing))
        st.session_state[key] = hit
    return hit[1]


def catalogue(actor: Actor, *, purpose: str) -> ClinicFrames:
    """Protocols, endpoints, operators and lots only (the per-protocol tables are empty).

    Called first on each run of an analytics page, it also drops this session's frames when the
    record has changed since they were read (a visit recorded anywhere in the clinic): one
    statement of index look-ups per run, :func:`~analysis.services.frames.record_revision`."""
    revision = frame.call(record_revision, purpose=purpose)
    key = f"{_PREFIX}revision.{purpose}.{actor.email}"
    if st.session_state.get(key) not in (None, revision):
        reload(actor, purpose=purpose)
    st.session_state[key] = revision
    return _cached(actor, purpose, None, frozenset())


def protocol_frames(
    actor: Actor,
    protocol_ids: Iterable[int],
    *,
    purpose: str,
    tables: Iterable[str] = OPTIONAL_TABLES,
) -> ClinicFrames:
    """The frames of these protocols' series, each protocol's tables read once per session;
    ``tables``: the optional ones the view needs (patients, series and sessions always come)."""
    ids = sorted({int(p) for p in protocol_ids})
    if not ids:
        return catalogue(actor, purpose=purpose)
    want = frozenset(tables)
    parts = [_cached(actor, purpose, p, want) for p in ids]
    # the combination too is kept while its parts are the same objects (a rerun concatenates
    # nothing); derived, so it goes when the frames are reloaded
    key = f"{DERIVED_PREFIX}frames.{purpose}.{actor.email}.{ids}"
    hit = st.session_state.get(key)
    if (
        hit is None
        or len(hit[0]) != len(parts)
        or any(a is not b for a, b in zip(hit[0], parts, strict=True))
    ):
        hit = (parts, combine_frames(parts))
        st.session_state[key] = hit
    return hit[1]


def protocol_lots(actor: Actor, protocol_ids: Iterable[int], *, purpose: str) -> pd.DataFrame:
    """The lots these protocols' treatments used (``lot_id, product, lot_number``), read once per
    session with the frames."""
    ids = sorted({int(p) for p in protocol_ids})
    key = f"{DERIVED_PREFIX}lots.{purpose}.{actor.email}.{ids}"
    if key not in st.session_state:
        st.session_state[key] = frame.call(lots_used, purpose=purpose, protocol_ids=ids)
    lots: pd.DataFrame = st.session_state[key]
    return lots


def drop_derived() -> None:
    for k in [k for k in st.session_state if str(k).startswith(DERIVED_PREFIX)]:
        del st.session_state[k]


def reload(actor: Actor, *, purpose: str) -> None:
    """Forget this session's frames (and what was derived from them): the next read is fresh."""
    prefix = f"{_PREFIX}{purpose}.{actor.email}."
    for k in [k for k in st.session_state if str(k).startswith(prefix)]:
        del st.session_state[k]
    drop_derived()
