"""Who may do what: the role x action matrix, enforced in analysis/ service functions.

Pages hide what a role cannot use, but the rule lives here: every service function that reads or
writes clinical data calls :func:`require` first, with its session, so a page (or a script) that
forgets to hide a button still cannot do what the role does not allow, and the refused attempt is
audited (``tests/services/test_refusals_audited.py`` checks that every call in ``analysis/`` passes one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from analysis.store.models import ROLES


@dataclass(frozen=True)
class Actor:
    """The signed-in user as the analysis layer sees it."""

    user_id: int | None
    email: str
    role: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown role {self.role!r}; expected one of {ROLES}")


#: Used by the demo seeder and maintenance commands, never by a signed-in person.
SYSTEM = Actor(user_id=None, email="system@candor.local", role="admin")

CLINICAL = frozenset({"clinician", "medical_director"})

#: action -> roles allowed. Identifiable clinical data (series, photos, visits) is for clinicians
#: and the medical director; consult staff see de-identified aggregates and consented photos only;
#: admins manage accounts and read the audit log but not patient records.
PERMISSIONS: dict[str, frozenset[str]] = {
    "patient.read": CLINICAL,
    "patient.write": CLINICAL,
    "consent.write": CLINICAL,
    "series.read": CLINICAL,
    "series.write": CLINICAL,
    "photo.view": CLINICAL,
    "photo.capture": CLINICAL,
    "visit.record": CLINICAL,
    "report.export": CLINICAL,
    "cohort.read": frozenset({"medical_director"}),
    "cohort.export": frozenset({"medical_director"}),
    "lot.trace": frozenset({"medical_director"}),
    "protocol.write": frozenset({"medical_director"}),
    "timeline.read": frozenset({"consult_staff", "medical_director", "clinician"}),
    "timeline.export": frozenset({"consult_staff", "medical_director", "clinician"}),
    "rating.manage": frozenset({"medical_director"}),
    "rating.rate": CLINICAL,
    "audit.read": frozenset({"admin", "medical_director"}),
    "audit.export": frozenset({"admin", "medical_director"}),
    "users.manage": frozenset({"admin"}),
    "demo.seed": frozenset({"admin"}),
}


class PermissionDenied(PermissionError):
    """The actor's role does not allow the action."""


def allowed(actor: Actor, action: str) -> bool:
    try:
        return actor.role in PERMISSIONS[action]
    except KeyError:
        raise ValueError(f"unknown action {action!r}") from None


def require(
    actor: Actor,
    action: str,
    session: Any = None,
    *,
    patient_id: int | None = None,
    object_type: str = "",
    object_id: str | int = "",
) -> None:
    """Raise :class:`PermissionDenied` unless the actor's role allows ``action``.

    Service functions pass their database ``session``: a refusal then leaves one ``denied`` audit
    event, written in a transaction of its own so that it survives the caller's rollback
    (:func:`analysis.store.audit.record_denial`). Without a session (a page deciding what to show)
    nothing is written.
    """
    if allowed(actor, action):
        return
    error = PermissionDenied(
        f"{actor.role.replace('_', ' ')} accounts may not {action.replace('.', ' ')}"
    )
    if session is not None:
        from analysis.store import audit

        audit.record_denial(
            session,
            actor,
            action,
            error,
            patient_id=patient_id,
            object_type=object_type,
            object_id=object_id,
        )
    raise error
