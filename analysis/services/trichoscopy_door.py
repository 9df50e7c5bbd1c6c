"""The command line's door to the stored device calibrations (``count-follicles --device``).

``analysis.hair`` is pure (no database); its command-line entry point reaches the clinic's
calibrations through this one function, which opens the configured database
(:func:`analysis.config.database_url`, as every command does), names the account doing it and goes
through :func:`analysis.services.trichoscopy.calibration_for` (role check, audit event).
"""

from __future__ import annotations

from sqlalchemy import select

from analysis.auth.accounts import actor_for, normalise_email
from analysis.errors import FieldError
from analysis.services.trichoscopy import Calibration, calibration_for
from analysis.store import db
from analysis.store.access import PermissionDenied
from analysis.store.models import User


def stored_calibration(*, device: str, magnification: float, as_email: str) -> Calibration:
    """The calibration of ``device`` at ``magnification`` in the configured database.

    Raises ``LookupError`` (no active account ``as_email``), :class:`PermissionDenied` (its role
    may not capture photos) and :class:`FieldError` (no such calibration).
    """
    with db.session_scope() as session:
        user = session.scalar(select(User).where(User.email == normalise_email(as_email)))
        if user is None or not user.active:
            raise LookupError(f"no active Candor account {as_email!r}")
        return calibration_for(session, actor_for(user), device=device, magnification=magnification)


def stored_calibration_or_reason(
    *, device: str, magnification: float, as_email: str
) -> Calibration | str:
    """:func:`stored_calibration`, or the one sentence saying why there is none to use."""
    try:
        return stored_calibration(device=device, magnification=magnification, as_email=as_email)
    except (FieldError, PermissionDenied, LookupError) as exc:
        return str(exc)
