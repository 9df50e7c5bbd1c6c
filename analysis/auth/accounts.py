"""Local accounts for the embedded default deployment.

Passwords are hashed with Argon2id (argon2-cffi's ``PasswordHasher`` defaults). Sign-in attempts,
successful or not, each write one audit event. Production deployments can use OIDC instead
(Streamlit's ``st.login``; see README), in which case these accounts only carry roles.
"""

from __future__ import annotations

import os

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select
from sqlalchemy.orm import Session as DbSession

from analysis.store import audit
from analysis.store.access import Actor, require
from analysis.store.models import ROLES, User
from analysis.store.records import FieldError

#: Demo-only default, used when CANDOR_DEMO_PASSWORD is unset at seeding time. Never for real use.
DEMO_PASSWORD_DEFAULT = "candor-demo"
DEMO_ACCOUNTS: dict[str, tuple[str, str]] = {
    "clinician@demo.candor": ("Dr Demo Clinician", "clinician"),
    "director@demo.candor": ("Dr Demo Director", "medical_director"),
    "consult@demo.candor": ("Demo Consult Staff", "consult_staff"),
    "admin@demo.candor": ("Demo Admin", "admin"),
}
MIN_PASSWORD_LENGTH = 10

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def normalise_email(email: str) -> str:
    return email.strip().lower()


def actor_for(user: User) -> Actor:
    return Actor(user_id=user.id, email=user.email, role=user.role)


def create_user(
    session: DbSession, actor: Actor, *, email: str, display_name: str, role: str,
    password: str | None,
) -> User:
    """Create an account (``password`` None: no local sign-in, e.g. OIDC-only or an operator)."""
    require(actor, "users.manage")
    email = normalise_email(email)
    if "@" not in email or email.startswith("@") or email.endswith("@"):
        raise FieldError("email", "enter a valid email address")
    if role not in ROLES:
        raise FieldError("role", f"role must be one of {', '.join(ROLES)}")
    if session.scalar(select(User.id).where(func.lower(User.email) == email)) is not None:
        raise FieldError("email", f"an account for {email} already exists")
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        raise FieldError("password", f"passwords need at least {MIN_PASSWORD_LENGTH} characters")
    user = User(email=email, display_name=display_name.strip() or email, role=role,
                password_hash=hash_password(password) if password is not None else None)
    session.add(user)
    session.flush()
    audit.record(session, actor, "user.create", object_type="user", object_id=user.id,
                 details={"email": email, "role": role})
    return user


def authenticate(session: DbSession, *, email: str, password: str) -> Actor | None:
    """The actor for valid credentials of an active account, else None. Audits either way."""
    email = normalise_email(email)
    user = session.scalar(select(User).where(func.lower(User.email) == email))
    ok = user is not None and user.active and verify_password(user.password_hash, password)
    who = Actor(user_id=user.id if user else None, email=email or "(empty)",
                role=user.role if user else "clinician")
    audit.record(session, who, "auth.sign_in", outcome="success" if ok else "failure",
                 object_type="user", object_id=user.id if user else "",
                 details={} if ok else {"reason": "bad credentials or inactive account"})
    return actor_for(user) if ok and user is not None else None


def demo_password() -> str:
    return os.environ.get("CANDOR_DEMO_PASSWORD") or DEMO_PASSWORD_DEFAULT


def seed_demo_accounts(session: DbSession, *, password: str | None = None) -> list[User]:
    """Create the four demo-only accounts (one per role) that do not exist yet."""
    from analysis.store.access import SYSTEM

    password = password or demo_password()
    created = []
    for email, (name, role) in DEMO_ACCOUNTS.items():
        if session.scalar(select(User.id).where(User.email == email)) is None:
            created.append(create_user(session, SYSTEM, email=email, display_name=name, role=role,
                                       password=password))
    return created
