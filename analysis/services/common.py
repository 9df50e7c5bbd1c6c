"""Names a page needs besides the actions: who is acting, the errors an action raises, the vocabularies.

Pages import from :mod:`analysis.services` only; these are re-exported from the floors that define
them (access rules in :mod:`analysis.store.access`, record vocabularies in
:mod:`analysis.store.models`, photo views in :mod:`analysis.photos.types`).
"""

from __future__ import annotations

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

__all__ = [
    "ALL_VIEWS", "CONFOUNDER_KINDS", "CONSENT_SCOPES", "FACE_VIEWS", "MIN_N", "ROLES",
    "SCALP_VIEWS", "SCREENING_ITEMS", "SERIES_STATUSES", "SEVERITIES", "SEXES", "Actor",
    "AuditWriteError", "BlobCorruptError", "BlobMissingError", "ExpiredLotError", "FieldError",
    "PermissionDenied", "allowed", "open_problem",
]
