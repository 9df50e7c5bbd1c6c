"""Glue the Insights pages need that is not a statistic: audited export bytes and the photos of
a representative pair.

:func:`audited_bytes` builds an export, then records it with
:func:`analysis.services.photo_access.audited_export` (role check, one committed audit event carrying
the export's size and SHA-256), and only then returns the bytes. It opens its own transaction, so a
page can hand it to ``st.download_button(data=callable)``: the export is built and audited when the
person actually clicks, not every time the page is drawn.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from analysis.outcomes.pairs import RepresentativePair
from analysis.services.photo_access import PhotoNotFound, audited_export, photo_bytes
from analysis.store import db
from analysis.store.access import Actor, require
from analysis.store.models import Photo, Session


def audited_bytes(
    actor: Actor,
    *,
    make: Callable[[], bytes],
    action: str,
    object_type: str,
    object_id: str | int,
    details: dict[str, Any] | None = None,
) -> bytes:
    """Build an export with ``make()``, audit it, return its bytes.

    Parameters
    ----------
    actor
        The signed-in user the export is recorded against.
    make
        Builds the export (CSV, PDF, HTML bytes). Called first; nothing is returned if auditing
        fails afterwards.
    action
        Audit action, normally a permission (``cohort.export``, ``timeline.export``) so the role
        is checked as well.
    object_type, object_id, details
        What was exported (never patient identifiers in ``details``). Values JSON cannot hold
        (dates, numpy scalars) are stored as their ``str``.

    Raises
    ------
    PermissionDenied
        The role may not perform ``action`` (audited as denied by ``audited_export``).
    AuditWriteError
        The event could not be written; no bytes are returned.
    """
    data = make()
    # the audit column is JSON: dates, tuples and numpy scalars in filters become plain values
    info = json.loads(
        json.dumps(
            {
                **(details or {}),
                "size_bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            },
            default=str,
        )
    )
    with db.session_scope() as session:
        audited_export(
            session,
            actor,
            action=action,
            object_type=object_type,
            object_id=object_id,
            details=info,
        )
    return data


def _photo_id(session: DbSession, *, sha256: str, view: str, session_number: int) -> int:
    ident = session.scalar(
        select(Photo.id)
        .join(Session, Session.id == Photo.session_id)
        .where(Photo.sha256 == sha256, Photo.view == view, Session.number == session_number)
        .order_by(Photo.id)
        .limit(1)
    )
    if ident is None:
        raise PhotoNotFound("the photo of this pair is no longer on file")
    return int(ident)


def pair_photos(
    session: DbSession, actor: Actor, *, pair: RepresentativePair, max_side: int = 480
) -> tuple[bytes, bytes]:
    """JPEG thumbnails ``(baseline, follow-up)`` of a representative pair for consult display.

    Each photo goes through :func:`analysis.services.photo_access.photo_bytes` with purpose
    ``consult_display``: the role and the patient's *current* consent are checked and one audit
    event is committed per photo, every time this is called (call it on every display; do not
    cache the bytes, or a consent withdrawal would not take effect).

    ``RepresentativePair`` carries content hashes, not row ids (it is identifier-free); the photo
    row is found by hash, view and session number.

    Raises
    ------
    PermissionDenied, ConsentMissing, PhotoNotFound, AuditWriteError
        From ``photo_bytes``; show nothing for the pair.
    """
    require(actor, "timeline.read", session)
    out = []
    for sha, number in (
        (pair.baseline_sha256, pair.baseline_session),
        (pair.followup_sha256, pair.followup_session),
    ):
        ident = _photo_id(session, sha256=sha, view=pair.view, session_number=number)
        out.append(
            photo_bytes(
                session,
                actor,
                photo_id=ident,
                purpose="consult_display",
                thumbnail=True,
                max_side=max_side,
            )
        )
    return out[0], out[1]
