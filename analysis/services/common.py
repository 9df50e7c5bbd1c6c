"""Names a page needs besides the actions: who is acting, the errors an action raises, the vocabularies.

Pages import from :mod:`analysis.services` only; these are re-exported from the floors that define
them (access rules in :mod:`analysis.store.access`, record vocabularies in
:mod:`analysis.store.models`, photo views in :mod:`analysis.photos.types`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from analysis import config
from analysis.errors import ExpiredLotError, FieldError
from analysis.outcomes.stats import MIN_N
from analysis.photos.types import ALL_VIEWS, FACE_VIEWS, SCALP_VIEWS
from analysis.store.access import Actor, PermissionDenied, allowed
from analysis.store.audit import AuditWriteError
from analysis.store.db import open_problem
from analysis.store.images import BlobCorruptError, BlobMissingError
from analysis.store.models import (
    CONFOUNDER_KINDS,
    CONSENT_SCOPES,
    ROLES,
    SCREENING_ITEMS,
    SERIES_STATUSES,
    SEVERITIES,
    SEXES,
)

#: How a series status reads to a person (the stored codes stay as they are).
SERIES_STATUS_LABELS: dict[str, str] = {
    "active": "Active",
    "paused": "Paused",
    "completed": "Completed",
    "dropped_out": "Dropped out",
}


def series_status_label(status: str) -> str:
    return SERIES_STATUS_LABELS.get(status, status.replace("_", " ").capitalize())


def clinic_zone() -> ZoneInfo:
    """The clinic's time zone for display (``CANDOR_TIMEZONE``; stored times stay UTC)."""
    return config.clinic_timezone()


def clinic_time(when: datetime) -> datetime:
    """``when`` (UTC; a naive value is taken as UTC) in the clinic's time zone."""
    aware = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    return aware.astimezone(clinic_zone())


def format_clinic_time(when: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """``when`` in the clinic's time zone with the zone's abbreviation (``"—"`` for None)."""
    if when is None:
        return "—"
    local = clinic_time(when)
    return f"{local.strftime(fmt)} {local.tzname() or clinic_zone().key}"


__all__ = [
    "SERIES_STATUS_LABELS",
    "clinic_time",
    "clinic_zone",
    "format_clinic_time",
    "series_status_label",
    "ALL_VIEWS",
    "CONFOUNDER_KINDS",
    "CONSENT_SCOPES",
    "FACE_VIEWS",
    "MIN_N",
    "ROLES",
    "SCALP_VIEWS",
    "SCREENING_ITEMS",
    "SERIES_STATUSES",
    "SEVERITIES",
    "SEXES",
    "Actor",
    "AuditWriteError",
    "BlobCorruptError",
    "BlobMissingError",
    "ExpiredLotError",
    "FieldError",
    "PermissionDenied",
    "allowed",
    "open_problem",
]
