"""Every photo read and every export goes through here: role, current consent, one audit event.

:func:`photo_bytes` is the only way pages get the bytes of a stored photo. In order it

1. loads the photo row (its patient is the series' patient),
2. checks the actor's role for the purpose (:data:`PURPOSES`: ``clinical_record`` needs
   ``photo.view``; ``consult_display`` needs ``timeline.read``; ``teaching``/``marketing`` need
   ``photo.view``),
3. checks the patient's consent scopes *as of now*, read fresh from the database on every call
   (:func:`analysis.services.records.consent_scopes`): the scope named by the purpose must be active,
   so a withdrawal takes effect on the very next call,
4. writes exactly one audit event (``photo.view`` or ``photo.thumbnail``) with the patient, the
   photo id, the purpose and the outcome, and commits it,
5. and only then returns the bytes (full image, or a downscaled JPEG thumbnail).

A denial (role or consent) is audited with outcome ``denied`` and committed *before* the error is
raised, so it survives the caller's rollback; so is an allowed read that cannot be served (image
missing or corrupt: outcome ``failure``). If the audit event cannot be written,
:class:`~analysis.store.audit.AuditWriteError` propagates and no bytes are returned (fail closed).

Every function here commits the caller's transaction: an access must be on durable record
before the bytes leave. Call them from a read-only transaction (``ui.frame.call`` opens one per
call).

:func:`audited_export` is the same rule for exports (CSV, PDF, downloads): call it *before* handing
the bytes to the user; if it raises, produce nothing. :func:`photo_pair_bytes` serves a
side-by-side comparison with the same checks and one ``photo.compare`` event.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from analysis.store import audit
from analysis.store.access import PERMISSIONS, Actor, PermissionDenied, allowed
from analysis.store.images import ImageStore, default_store
from analysis.store.models import Photo, Series, Session

#: purpose -> (permission the role needs, consent scope the patient must have given).
PURPOSES: Mapping[str, tuple[str, str]] = {
    "clinical_record": ("photo.view", "clinical_record"),
    "consult_display": ("timeline.read", "consult_display"),
    "teaching": ("photo.view", "teaching"),
    "marketing": ("photo.view", "marketing"),
}
THUMBNAIL_QUALITY = 85


class ConsentMissing(PermissionDenied):
    """The patient has not (or no longer) consented to the scope this use needs."""

    def __init__(self, message: str, *, patient_id: int | None, scope: str) -> None:
        super().__init__(message)
        self.patient_id = patient_id
        self.scope = scope


class PhotoNotFound(LookupError):
    """No stored photo has the requested id."""


def _missing_photo(
    session: DbSession, actor: Actor, action: str, photo_id: int, details: dict[str, Any]
) -> PhotoNotFound:
    """Audit a request for a photo that does not exist (outcome ``failure``); the error to raise."""
    audit.record(
        session,
        actor,
        action,
        outcome="failure",
        object_type="photo",
        object_id=photo_id,
        details={**details, "reason": "no such photo"},
    )
    return PhotoNotFound(f"there is no photo with id {photo_id}")


def _patient_of(session: DbSession, photo: Photo) -> int:
    return session.scalars(
        select(Series.patient_id)
        .join(Session, Session.series_id == Series.id)
        .where(Session.id == photo.session_id)
    ).one()


def _deny(
    session: DbSession, actor: Actor, action: str, error: PermissionDenied, **where: Any
) -> PermissionDenied:
    audit.record_denial(session, actor, action, error, **where)
    return error


def _fail(
    session: DbSession,
    actor: Actor,
    action: str,
    error: Exception,
    *,
    details: dict[str, Any],
    **where: Any,
) -> None:
    """Audit an access that was allowed but could not be served (outcome ``failure``), durably."""
    audit.record(
        session,
        actor,
        action,
        outcome="failure",
        details={**details, "reason": str(error)},
        **where,
    )
    session.commit()


def check_consent(session: DbSession, *, patient_id: int, scope: str) -> bool:
    """True when the patient's consent for ``scope`` is active now (read fresh)."""
    from analysis.services.records import consent_scopes

    return scope in consent_scopes(session, patient_id)


def thumbnail_jpeg(data: bytes, *, max_side: int = 320) -> bytes:
    """A JPEG no larger than ``max_side`` pixels on its longer side (aspect ratio kept).

    Parameters
    ----------
    data : bytes
        An encoded image (the stored, metadata-stripped blob).
    max_side : int
        Longest side of the result in pixels (>= 16). Images already smaller are re-encoded, not
        enlarged.
    """
    if max_side < 16:
        raise ValueError(f"max_side must be at least 16 pixels, got {max_side}")
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (max_side, max_side))  # cheap JPEG downscale on decode
        rgb = image.convert("RGB")
    rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    rgb.save(out, format="JPEG", quality=THUMBNAIL_QUALITY)
    return out.getvalue()


def _require_access(
    session: DbSession, actor: Actor, action: str, *, purpose: str, what: str, **where: Any
) -> None:
    """Role for the purpose, then the patient's current consent (``where``: the audit fields,
    including ``patient_id``); a refusal is audited and raised."""
    permission, scope = PURPOSES[purpose]
    patient_id = where["patient_id"]
    if not allowed(actor, permission):
        raise _deny(
            session,
            actor,
            action,
            PermissionDenied(
                f"{actor.role.replace('_', ' ')} accounts may not view photos for "
                f"{purpose.replace('_', ' ')}"
            ),
            **where,
        )
    if not check_consent(session, patient_id=patient_id, scope=scope):
        raise _deny(
            session,
            actor,
            action,
            ConsentMissing(
                f"this patient has not consented to {scope.replace('_', ' ')} use of photos "
                f"(or has withdrawn it); {what} cannot be shown",
                patient_id=patient_id,
                scope=scope,
            ),
            **where,
        )


def photo_bytes(
    session: DbSession,
    actor: Actor,
    *,
    photo_id: int,
    purpose: str = "clinical_record",
    thumbnail: bool = False,
    max_side: int = 320,
    store: ImageStore | None = None,
) -> bytes:
    """The bytes of a stored photo, after the role and consent checks and one audit event.

    Parameters
    ----------
    session, actor
        The transaction (committed by this function) and the signed-in user.
    photo_id : int
        ``Photo.id``.
    purpose : str
        One of :data:`PURPOSES`; decides the permission and the consent scope required.
    thumbnail : bool
        Return a JPEG downscaled to ``max_side`` pixels (longer side) instead of the full blob.
    store : ImageStore, optional
        Defaults to the configured store (``analysis.config.image_dir()``).

    Raises
    ------
    PermissionDenied
        The role may not view photos for this purpose (audited, outcome ``denied``).
    ConsentMissing
        The patient's consent for the purpose's scope is not active now (audited, ``denied``).
    PhotoNotFound
        No photo with this id (audited, outcome ``failure``).
    BlobMissingError, BlobCorruptError
        The stored image is missing or no longer re-hashes (audited, outcome ``failure``).
    AuditWriteError
        The audit event could not be written; nothing is returned.
    """
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}; expected one of {', '.join(PURPOSES)}")
    action = "photo.thumbnail" if thumbnail else "photo.view"
    base = {"purpose": purpose, "photo_id": photo_id}
    photo = session.get(Photo, photo_id)
    if photo is None:
        missing = _missing_photo(session, actor, action, photo_id, base)
        session.commit()
        raise missing
    patient_id = _patient_of(session, photo)
    where: dict[str, Any] = dict(
        patient_id=patient_id, object_type="photo", object_id=photo_id, details=base
    )
    _require_access(session, actor, action, purpose=purpose, what="the photo", **where)
    store = store or default_store()
    try:
        data = store.get(photo.sha256, verify=True)
        out = thumbnail_jpeg(data, max_side=max_side) if thumbnail else data
    except (OSError, ValueError) as exc:  # missing or corrupt blob, undecodable image
        _fail(session, actor, action, exc, **where)
        raise
    audit.record(
        session,
        actor,
        action,
        outcome="success",
        details={**base, **({"max_side": max_side} if thumbnail else {})},
        **{k: v for k, v in where.items() if k != "details"},
    )
    session.commit()  # durable before the bytes leave
    return out


def photo_thumbnails(
    session: DbSession,
    actor: Actor,
    *,
    photo_ids: Sequence[int],
    purpose: str = "clinical_record",
    max_side: int = 320,
    store: ImageStore | None = None,
) -> dict[int, bytes | Exception]:
    """Thumbnails of several photos (a series' photo grid) with the checks of
    :func:`photo_bytes` and one ``photo.thumbnail`` audit event per photo, in one transaction.

    The role and each patient's current consent are checked once per patient, not per photo; a
    refusal is audited (one event naming the photos) and raised as in :func:`photo_bytes`, and
    nothing is returned. A photo that does not exist or whose blob is missing or corrupt gets its
    exception in the result instead of bytes (audited, outcome ``failure``); the others are
    served. Everything is committed, durably, before any bytes leave.
    """
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}; expected one of {', '.join(PURPOSES)}")
    action = "photo.thumbnail"
    ids = list(dict.fromkeys(int(i) for i in photo_ids))
    rows = dict(
        session.execute(
            select(Photo.id, Series.patient_id)
            .join(Session, Session.id == Photo.session_id)
            .join(Series, Series.id == Session.series_id)
            .where(Photo.id.in_(ids))
        ).all()
    )
    for patient_id in sorted(set(rows.values())):
        mine = [i for i in ids if rows.get(i) == patient_id]
        _require_access(
            session,
            actor,
            action,
            purpose=purpose,
            what="the photos",
            patient_id=patient_id,
            object_type="photo",
            object_id=",".join(map(str, mine)),
            details={"purpose": purpose, "photo_ids": mine},
        )
    photos = {p.id: p for p in session.scalars(select(Photo).where(Photo.id.in_(list(rows))))}
    store = store or default_store()
    out: dict[int, bytes | Exception] = {}
    for photo_id in ids:
        base = {"purpose": purpose, "photo_id": photo_id, "max_side": max_side}
        if photo_id not in photos:
            out[photo_id] = _missing_photo(session, actor, action, photo_id, base)
            continue
        where: dict[str, Any] = dict(
            patient_id=rows[photo_id], object_type="photo", object_id=photo_id
        )
        try:
            out[photo_id] = thumbnail_jpeg(
                store.get(photos[photo_id].sha256, verify=True), max_side=max_side
            )
        except (OSError, ValueError) as exc:  # missing or corrupt blob, undecodable image
            audit.record(
                session,
                actor,
                action,
                outcome="failure",
                details={**base, "reason": str(exc)},
                **where,
            )
            out[photo_id] = exc
            continue
        audit.record(session, actor, action, outcome="success", details=base, **where)
    session.commit()  # durable before the bytes leave
    return out


def photo_pair_bytes(
    session: DbSession,
    actor: Actor,
    *,
    baseline_id: int,
    follow_up_id: int,
    purpose: str = "clinical_record",
    thumbnail: bool = False,
    max_side: int = 640,
    store: ImageStore | None = None,
) -> tuple[bytes, bytes]:
    """Both photos of a side-by-side comparison with the checks of :func:`photo_bytes` and exactly
    one audit event (``photo.compare``, both ids in ``details``). Both photos must be of the same
    patient. Raises as :func:`photo_bytes` does; nothing is returned unless the event is written.
    """
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}; expected one of {', '.join(PURPOSES)}")
    action = "photo.compare"
    base: dict[str, Any] = {
        "purpose": purpose,
        "baseline_id": baseline_id,
        "follow_up_id": follow_up_id,
        "thumbnail": thumbnail,
    }
    photos = [session.get(Photo, baseline_id), session.get(Photo, follow_up_id)]
    if photos[0] is None or photos[1] is None:
        error = _missing_photo(
            session, actor, action, baseline_id if photos[0] is None else follow_up_id, base
        )
        session.commit()
        raise error
    patients = {_patient_of(session, p) for p in photos if p is not None}
    if len(patients) != 1:
        audit.record(
            session,
            actor,
            action,
            outcome="failure",
            object_type="photo",
            object_id=baseline_id,
            details={**base, "reason": "different patients"},
        )
        session.commit()
        raise ValueError("a comparison must show two photos of the same patient")
    (patient_id,) = patients
    where: dict[str, Any] = dict(
        patient_id=patient_id, object_type="photo", object_id=baseline_id, details=base
    )
    _require_access(session, actor, action, purpose=purpose, what="the comparison", **where)
    store = store or default_store()
    try:
        blobs = [store.get(p.sha256, verify=True) for p in photos if p is not None]
        if thumbnail:
            blobs = [thumbnail_jpeg(b, max_side=max_side) for b in blobs]
    except (OSError, ValueError) as exc:  # missing or corrupt blob, undecodable image
        _fail(session, actor, action, exc, **where)
        raise
    audit.record(session, actor, action, outcome="success", **where)
    session.commit()  # durable before the bytes leave
    return blobs[0], blobs[1]


def visible_photo_ids(
    session: DbSession, actor: Actor, *, patient_id: int, purpose: str = "clinical_record"
) -> list[int]:
    """Ids of the patient's photos usable for ``purpose`` now: empty when the role may not
    view them or the patient's consent for the purpose's scope is not active now.

    Lists ids only (no bytes), so it writes no audit event; showing a photo goes through
    :func:`photo_bytes`.
    """
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}; expected one of {', '.join(PURPOSES)}")
    permission, scope = PURPOSES[purpose]
    if not allowed(actor, permission) or not check_consent(
        session, patient_id=patient_id, scope=scope
    ):
        return []
    return list(
        session.scalars(
            select(Photo.id)
            .join(Session, Photo.session_id == Session.id)
            .join(Series, Session.series_id == Series.id)
            .where(Series.patient_id == patient_id)
            .order_by(Photo.id)
        )
    )


def audited_export(
    session: DbSession,
    actor: Actor,
    *,
    action: str,
    patient_id: int | None = None,
    object_type: str,
    object_id: str | int,
    details: dict[str, Any] | None = None,
    consent_scope: str | None = None,
) -> None:
    """Record an export (CSV, PDF, download) durably *before* its bytes are handed over.

    ``action`` is the audit action; when it is also a permission in
    :data:`analysis.store.access.PERMISSIONS` (``report.export``, ``cohort.export``,
    ``timeline.export``, ``audit.export``) the role is checked first. With ``consent_scope`` and a
    ``patient_id``, the patient's consent for that scope must be active now.

    Raises :class:`PermissionDenied` / :class:`ConsentMissing` (audited as ``denied``) or
    :class:`~analysis.store.audit.AuditWriteError`; in every case the caller must produce nothing.
    """
    details = dict(details or {})
    where: dict[str, Any] = dict(
        patient_id=patient_id, object_type=object_type, object_id=object_id, details=details
    )
    if action in PERMISSIONS and not allowed(actor, action):
        raise _deny(
            session,
            actor,
            action,
            PermissionDenied(
                f"{actor.role.replace('_', ' ')} accounts may not {action.replace('.', ' ')}"
            ),
            **where,
        )
    if consent_scope is not None:
        if patient_id is None:
            raise ValueError("consent_scope needs the patient_id whose consent to check")
        if not check_consent(session, patient_id=patient_id, scope=consent_scope):
            raise _deny(
                session,
                actor,
                action,
                ConsentMissing(
                    f"this patient has not consented to {consent_scope.replace('_', ' ')} use "
                    "(or has withdrawn it); nothing was exported",
                    patient_id=patient_id,
                    scope=consent_scope,
                ),
                **where,
            )
        details["consent_scope"] = consent_scope
    audit.record(session, actor, action, outcome="success", **where)
    session.commit()
