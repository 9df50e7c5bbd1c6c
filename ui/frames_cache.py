"""Clinic frames for the analytics pages, cached in the browser session only, per protocol.

A page asks for the protocols it shows; each protocol's frames are read once per session (and again
after :data:`FRAMES_TTL_S` or a reload) and combined. Timelines, which shows one protocol, reads a
quarter of a four-protocol clinic instead of all of it; Protocols reads only a protocol that is
added to the comparison. Nothing is shared between sessions (never a global cache of patient
data); results derived from the frames are kept under :data:`DERIVED_PREFIX` and dropped whenever
the frames are reloaded.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import streamlit as st

from analysis.services.analytics import ClinicFrames, combine_frames
from analysis.services.common import Actor
from analysis.services.frames import load_frames
from ui import frame

FRAMES_TTL_S = 600
DERIVED_PREFIX = "insights.model."
_PREFIX = "insights.frames."


def _key(actor: Actor, purpose: str, protocol_id: int | None) -> str:
    part = "catalogue" if protocol_id is None else str(protocol_id)
    return f"{_PREFIX}{purpose}.{actor.email}.{part}"


def _cached(actor: Actor, purpose: str, protocol_id: int | None) -> ClinicFrames:
    key = _key(actor, purpose, protocol_id)
    hit = st.session_state.get(key)
    if hit is None or time.monotonic() - hit[0] > FRAMES_TTL_S:
        if hit is not None:  # expired: what was derived from the old frames goes too
            drop_derived()
        ids = [] if protocol_id is None else [protocol_id]
        hit = (time.monotonic(), frame.call(load_frames, purpose=purpose, protocol_ids=ids))
        st.session_state[key] = hit
    return hit[1]


def catalogue(actor: Actor, *, purpose: str) -> ClinicFrames:
    """Protocols, endpoints, operators and lots only (the per-protocol tables are empty)."""
    return _cached(actor, purpose, None)


def protocol_frames(actor: Actor, protocol_ids: Iterable[int], *, purpose: str) -> ClinicFrames:
    """The frames of these protocols' series, each protocol read once per session."""
    ids = sorted({int(p) for p in protocol_ids})
    if not ids:
        return catalogue(actor, purpose=purpose)
    return combine_frames([_cached(actor, purpose, p) for p in ids])


def drop_derived() -> None:
    for k in [k for k in st.session_state if str(k).startswith(DERIVED_PREFIX)]:
        del st.session_state[k]


def reload(actor: Actor, *, purpose: str) -> None:
    """Forget this session's frames (and what was derived from them): the next read is fresh."""
    prefix = f"{_PREFIX}{purpose}.{actor.email}."
    for k in [k for k in st.session_state if str(k).startswith(prefix)]:
        del st.session_state[k]
    drop_derived()
