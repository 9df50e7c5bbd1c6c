"""The clinic record: SQLAlchemy 2 typed models.

One module, read top to bottom: people (users, patients, consent), the treatment plan (protocols,
series, screening, confounders), what happens at a visit (sessions, treatments, lots, photos,
endpoint measurements, reactions) and the audit trail.

Conventions: times are timezone-aware UTC (``*_at`` columns, stored as UTC); dates are clinic-local
calendar dates (``*_on``); units are in column names where they matter (``volume_ml``).
Schema changes go through alembic (``analysis/store/migrations``), never ``create_all`` in production.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

ROLES = ("clinician", "medical_director", "consult_staff", "admin")
CONSENT_SCOPES = ("clinical_record", "consult_display", "teaching", "marketing")
SEXES = ("female", "male", "other", "unknown")
SERIES_STATUSES = ("active", "completed", "dropped_out", "paused")
SCREENING_ITEMS = (
    "pregnancy_or_breastfeeding",
    "active_infection_at_site",
    "uncontrolled_systemic_illness",
    "allergies",
    "anticoagulants_or_antiplatelets",
    "prior_injectable_reactions",
    "recent_procedures_in_area",
    "filler_history",
)
CONFOUNDER_KINDS = (
    "retinoid",
    "energy_based_device",
    "recent_filler",
    "hair_dye",
    "hair_cut",
    "hair_product",
    "weight_change",
    "makeup_at_photo",
    "minoxidil_or_finasteride_change",
    "other",
)
ENDPOINT_KINDS = ("numeric", "ordinal", "count", "text")
REACTION_KINDS = ("expected", "adverse")
SEVERITIES = ("mild", "moderate", "severe")
PHOTO_VERDICTS = ("baseline", "pass", "warn", "fail")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where UTC is required")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _enum_check(column: str, values: tuple[str, ...], name: str) -> CheckConstraint:
    quoted = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({quoted})", name=name)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


# --- people ------------------------------------------------------------------------------------


class User(Base):
    __tablename__ = "users"
    __table_args__ = (_enum_check("role", ROLES, "ck_users_role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    display_name: Mapped[str] = mapped_column(String(120))
    role: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Patient(Base):
    """A pseudonymous patient: no names are stored, only a clinic code."""

    __tablename__ = "patients"
    __table_args__ = (
        _enum_check("sex", SEXES, "ck_patients_sex"),
        CheckConstraint("fitzpatrick BETWEEN 1 AND 6", name="ck_patients_fitzpatrick"),
        CheckConstraint("birth_year BETWEEN 1900 AND 2100", name="ck_patients_birth_year"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    birth_year: Mapped[int] = mapped_column(Integer)
    sex: Mapped[str] = mapped_column(String(16))
    fitzpatrick: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    consents: Mapped[list[Consent]] = relationship(back_populates="patient")
    series: Mapped[list[Series]] = relationship(back_populates="patient")


class Consent(Base):
    """Photo consent for one scope; withdrawal sets ``withdrawn_at`` (rows are never deleted)."""

    __tablename__ = "consents"
    __table_args__ = (_enum_check("scope", CONSENT_SCOPES, "ck_consents_scope"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    scope: Mapped[str] = mapped_column(String(32))
    given_at: Mapped[datetime]
    withdrawn_at: Mapped[datetime | None]
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    patient: Mapped[Patient] = relationship(back_populates="consents")


# --- the plan ----------------------------------------------------------------------------------


class EndpointDefinition(Base):
    """What can be measured: numeric with unit, ordinal scale with anchors, count, or free text.

    ``mcid`` is the minimal clinically important change (in the endpoint's units, signed by
    ``higher_is_better``); ``noise_sd`` the measurement's repeatability SD (same units).
    ``neutral`` is set for a rating made *against* the baseline (GAIS, a global photographic score
    vs baseline, satisfaction): its "no change" anchor, which then serves as the baseline (the
    rating's change is ``value - neutral``). None for measures taken at every session.
    ``retired_at`` (UTC) set: no longer offered for new protocols; its values and the protocols
    that list it keep working.
    """

    __tablename__ = "endpoint_definitions"
    __table_args__ = (_enum_check("kind", ENDPOINT_KINDS, "ck_endpoint_kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(160))
    kind: Mapped[str] = mapped_column(String(16))
    unit: Mapped[str | None] = mapped_column(String(32))
    scale_min: Mapped[float | None] = mapped_column(Float)
    scale_max: Mapped[float | None] = mapped_column(Float)
    anchors: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    higher_is_better: Mapped[bool] = mapped_column(Boolean, default=True)
    mcid: Mapped[float | None] = mapped_column(Float)
    noise_sd: Mapped[float | None] = mapped_column(Float)
    neutral: Mapped[float | None] = mapped_column(Float)
    patient_reported: Mapped[bool] = mapped_column(Boolean, default=False)
    retired_at: Mapped[datetime | None] = mapped_column(default=None)


class Protocol(Base):
    """A treatment protocol: what is done, how often, which photos and endpoints it requires.

    ``tolerances`` overrides the photo comparability defaults (keys of
    ``analysis.photos.compare.Tolerances``); ``expected_course`` maps an endpoint code to the expected
    change from baseline by session number (reference lines on charts).
    """

    __tablename__ = "protocols"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(160), unique=True)
    modality: Mapped[str] = mapped_column(String(64))
    target_area: Mapped[str] = mapped_column(String(64))
    planned_sessions: Mapped[int] = mapped_column(Integer)
    interval_days: Mapped[int] = mapped_column(Integer)
    required_views: Mapped[list[Any]] = mapped_column(JSON, default=list)
    endpoint_codes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    primary_endpoint: Mapped[str | None] = mapped_column(String(64))
    tolerances: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    expected_course: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    description: Mapped[str] = mapped_column(Text, default="")


class Series(Base):
    __tablename__ = "series"
    __table_args__ = (_enum_check("status", SERIES_STATUSES, "ck_series_status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    protocol_id: Mapped[int] = mapped_column(ForeignKey("protocols.id"), index=True)
    goal: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="active")
    started_on: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    patient: Mapped[Patient] = relationship(back_populates="series")
    protocol: Mapped[Protocol] = relationship()
    sessions: Mapped[list[Session]] = relationship(
        back_populates="series", order_by="Session.number"
    )
    screenings: Mapped[list[ScreeningAnswer]] = relationship(back_populates="series")
    confounders: Mapped[list[Confounder]] = relationship(back_populates="series")


class ScreeningAnswer(Base):
    """One contraindication-screening item answered for a series (``present`` True = flag)."""

    __tablename__ = "screening_answers"
    __table_args__ = (_enum_check("item", SCREENING_ITEMS, "ck_screening_item"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    item: Mapped[str] = mapped_column(String(48))
    present: Mapped[bool] = mapped_column(Boolean)
    details: Mapped[str] = mapped_column(Text, default="")
    screened_on: Mapped[date] = mapped_column(Date)
    screened_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    series: Mapped[Series] = relationship(back_populates="screenings")


class Confounder(Base):
    """Something besides the treatment that can change the result or the photo, over a period."""

    __tablename__ = "confounders"
    __table_args__ = (_enum_check("kind", CONFOUNDER_KINDS, "ck_confounder_kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    session_id: Mapped[int | None] = mapped_column(ForeignKey("sessions.id"))
    kind: Mapped[str] = mapped_column(String(48))
    started_on: Mapped[date] = mapped_column(Date)
    ended_on: Mapped[date | None] = mapped_column(Date)
    details: Mapped[str] = mapped_column(Text, default="")

    series: Mapped[Series] = relationship(back_populates="confounders")


# --- visits ------------------------------------------------------------------------------------


class Session(Base):
    """One treatment visit of a series (``number`` 1 = first treatment, photos = baseline)."""

    __tablename__ = "sessions"
    __table_args__ = (UniqueConstraint("series_id", "number", name="uq_session_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    performed_on: Mapped[date] = mapped_column(Date)
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    condition_tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    notes: Mapped[str] = mapped_column(Text, default="")

    series: Mapped[Series] = relationship(back_populates="sessions")
    operator: Mapped[User | None] = relationship()
    treatments: Mapped[list[Treatment]] = relationship(back_populates="session")
    photos: Mapped[list[Photo]] = relationship(back_populates="session")
    measurements: Mapped[list[EndpointMeasurement]] = relationship(back_populates="session")
    reactions: Mapped[list[Reaction]] = relationship(back_populates="session")


class ProductLot(Base):
    __tablename__ = "product_lots"
    __table_args__ = (UniqueConstraint("product", "lot_number", name="uq_product_lot"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    product: Mapped[str] = mapped_column(String(160))
    lot_number: Mapped[str] = mapped_column(String(64))
    expiry_on: Mapped[date] = mapped_column(Date)
    recalled: Mapped[bool] = mapped_column(Boolean, default=False)
    recall_note: Mapped[str] = mapped_column(Text, default="")


class Treatment(Base):
    """What was injected/applied at a session. ``expired_at_use`` is set at entry, never later."""

    __tablename__ = "treatments"
    __table_args__ = (
        CheckConstraint("volume_ml IS NULL OR volume_ml >= 0", name="ck_treatment_volume"),
        CheckConstraint("units IS NULL OR units >= 0", name="ck_treatment_units"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"), index=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("product_lots.id"), index=True)
    preparation: Mapped[str] = mapped_column(Text, default="")
    mixed: Mapped[bool] = mapped_column(Boolean, default=False)
    sites: Mapped[list[Any]] = mapped_column(JSON, default=list)
    depth_intent: Mapped[str] = mapped_column(String(64), default="")
    volume_ml: Mapped[float | None] = mapped_column(Float)
    units: Mapped[float | None] = mapped_column(Float)
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    expired_at_use: Mapped[bool] = mapped_column(Boolean, default=False)
    override_reason: Mapped[str] = mapped_column(Text, default="")

    session: Mapped[Session] = relationship(back_populates="treatments")
    lot: Mapped[ProductLot] = relationship()


class Photo(Base):
    """A stored photo. ``sha256`` names the metadata-stripped blob in the image store;
    ``original_sha256`` is the hash of the bytes as uploaded (kept, the bytes are not)."""

    __tablename__ = "photos"
    __table_args__ = (
        _enum_check("verdict", PHOTO_VERDICTS, "ck_photo_verdict"),
        # covering index of the per-session photo figures (migration 0005); serves session_id too
        Index("ix_photos_session_verdict_view", "session_id", "verdict", "view"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"))
    view: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    original_sha256: Mapped[str] = mapped_column(String(64))
    media_type: Mapped[str] = mapped_column(String(32))
    width_px: Mapped[int] = mapped_column(Integer)
    height_px: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(Integer)
    taken_at: Mapped[datetime | None]
    uploaded_at: Mapped[datetime] = mapped_column(default=utcnow)
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    measurements: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    verdict: Mapped[str] = mapped_column(String(16))
    checks: Mapped[list[Any]] = mapped_column(JSON, default=list)
    override_reason: Mapped[str] = mapped_column(Text, default="")
    condition_tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # Demo/synthetic photos record the perturbation that made them (ground truth), else {}.
    truth: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The scalp site of a trichoscopy close-up ("vertex", "frontal"... or free text; migration
    # 0010): required when one is captured, "" for every other view.
    site: Mapped[str] = mapped_column(String(64), default="", server_default="")

    session: Mapped[Session] = relationship(back_populates="photos")


class EndpointMeasurement(Base):
    __tablename__ = "endpoint_measurements"
    __table_args__ = (
        # covering index of the analytics loader (migration 0005); serves session_id too
        Index(
            "ix_endpoint_measurements_session_endpoint_value",
            "session_id",
            "endpoint_id",
            "value_num",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"))
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("endpoint_definitions.id"), index=True)
    value_num: Mapped[float | None] = mapped_column(Float)
    value_text: Mapped[str] = mapped_column(Text, default="")
    site: Mapped[str] = mapped_column(String(64), default="")
    rater_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    rated_by_patient: Mapped[bool] = mapped_column(Boolean, default=False)
    blinded: Mapped[bool] = mapped_column(Boolean, default=False)
    measured_at: Mapped[datetime] = mapped_column(default=utcnow)

    session: Mapped[Session] = relationship(back_populates="measurements")
    endpoint: Mapped[EndpointDefinition] = relationship()


class Reaction(Base):
    """An expected reaction (erythema, oedema, bruising...) or an adverse event after a session."""

    __tablename__ = "reactions"
    __table_args__ = (
        _enum_check("kind", REACTION_KINDS, "ck_reaction_kind"),
        _enum_check("severity", SEVERITIES, "ck_reaction_severity"),
        CheckConstraint("onset_day >= 0", name="ck_reaction_onset"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    term: Mapped[str] = mapped_column(String(64))
    onset_day: Mapped[int] = mapped_column(Integer, default=0)
    severity: Mapped[str] = mapped_column(String(16))
    duration_days: Mapped[float | None] = mapped_column(Float)
    resolved: Mapped[bool] = mapped_column(Boolean, default=True)
    escalation: Mapped[str] = mapped_column(Text, default="")
    red_flag: Mapped[bool] = mapped_column(Boolean, default=False)
    notes: Mapped[str] = mapped_column(Text, default="")

    session: Mapped[Session] = relationship(back_populates="reactions")


# --- audit -------------------------------------------------------------------------------------


class AuditEvent(Base):
    """Append-only, hash-chained audit trail (updates and deletes are rejected by triggers)."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor_email: Mapped[str] = mapped_column(String(254))
    actor_role: Mapped[str] = mapped_column(String(32), default="")
    action: Mapped[str] = mapped_column(String(64), index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    patient_id: Mapped[int | None] = mapped_column(Integer, index=True)
    object_type: Mapped[str] = mapped_column(String(32), default="")
    object_id: Mapped[str] = mapped_column(String(64), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(
        String(64), unique=True
    )  # one successor per event: a linear chain
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: How ``hash`` was made: ``hmac-sha256`` (keyed with the audit key, every event written since
    #: migration 0006) or ``sha256`` (the unkeyed digest of events written before it).
    chain_scheme: Mapped[str] = mapped_column(
        String(16), default="hmac-sha256", server_default="sha256"
    )


# --- sign-in sessions ----------------------------------------------------------------------------


class SignInSession(Base):
    """A server-side sign-in session. Only the SHA-256 of the bearer token is stored; the session
    ends (``ended_at`` set, with ``end_reason``) on sign-out, idle timeout or deactivation, after
    which the token no longer validates."""

    __tablename__ = "sign_in_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    method: Mapped[str] = mapped_column(String(16), default="password")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str] = mapped_column(String(32), default="")


# --- sign-in back-off ----------------------------------------------------------------------------


class SignInThrottle(Base):
    """Failed sign-in counters, one row per key (``account:<email>``, ``pair:<email>|<address>``,
    ``address:<address>``), claimed by one atomic UPDATE ... RETURNING per attempt
    (:mod:`analysis.auth.throttle`). Times are epoch seconds so the back-off arithmetic runs in SQL
    on SQLite and PostgreSQL alike."""

    __tablename__ = "sign_in_throttle"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[float] = mapped_column(Float, default=0.0)
    locked_until: Mapped[float] = mapped_column(Float, default=0.0)


# --- blinded rating studies ----------------------------------------------------------------------

RATING_STUDY_STATUSES = ("open", "closed")


class RatingStudy(Base):
    """A blinded rating study: baseline/follow-up photo pairs shown to invited raters, masked.

    ``protocol_ids`` and ``views`` choose the pairs; the follow-up is session ``followup_session``
    or, with ``followup_days``, the session closest to that many days after session 1 (within
    ``window_days``). ``inclusion`` holds the further rules (series statuses, confounders) and
    ``exclusions`` every series left out with its reason, frozen when the study was created.
    ``seed`` and the stored assignments reproduce the randomisation.
    """

    __tablename__ = "rating_studies"
    __table_args__ = (
        _enum_check("status", RATING_STUDY_STATUSES, "ck_rating_study_status"),
        CheckConstraint("repeat_share >= 0 AND repeat_share <= 1", name="ck_rating_repeat_share"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(160))
    endpoint_code: Mapped[str] = mapped_column(String(64))
    protocol_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    views: Mapped[list[Any]] = mapped_column(JSON, default=list)
    followup_session: Mapped[int | None] = mapped_column(Integer)
    followup_days: Mapped[int | None] = mapped_column(Integer)
    window_days: Mapped[int] = mapped_column(Integer, default=21)
    inclusion: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    exclusions: Mapped[list[Any]] = mapped_column(JSON, default=list)
    repeat_share: Mapped[float] = mapped_column(Float, default=0.2)
    seed: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]

    raters: Mapped[list[RatingRater]] = relationship(back_populates="study")
    pairs: Mapped[list[RatingPair]] = relationship(
        back_populates="study", order_by="RatingPair.position"
    )


class RatingRater(Base):
    """A clinician or director invited to rate a study."""

    __tablename__ = "rating_raters"
    __table_args__ = (UniqueConstraint("study_id", "user_id", name="uq_rating_rater"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("rating_studies.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)

    study: Mapped[RatingStudy] = relationship(back_populates="raters")
    user: Mapped[User] = relationship()


class RatingPair(Base):
    """One baseline/follow-up photo pair of a study (both photos passed the comparability gate)."""

    __tablename__ = "rating_pairs"
    __table_args__ = (UniqueConstraint("study_id", "position", name="uq_rating_pair_position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("rating_studies.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    view: Mapped[str] = mapped_column(String(32))
    baseline_photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id"))
    followup_photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id"))

    study: Mapped[RatingStudy] = relationship(back_populates="pairs")


class RatingAssignment(Base):
    """One showing of a pair to a rater: its place in the rater's order, which photo is on the
    left, whether it is the blinded repeat, and (once rated) the rating.

    For an endpoint rated against baseline (``neutral`` set) the rater picks the photo that looks
    better (``better_side`` ``left``/``right``/``none``) and grades it on the scale's improving half
    (``grade``); for a stand-alone scale each photo gets its own score (``left_score``,
    ``right_score``). ``change`` is the derived blinded change, follow-up versus baseline, signed so
    that positive is better.
    """

    __tablename__ = "rating_assignments"
    __table_args__ = (
        UniqueConstraint("rater_id", "pair_id", "repeat", name="uq_rating_assignment"),
        UniqueConstraint("study_id", "rater_id", "order_index", name="uq_rating_order"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("rating_studies.id"), index=True)
    rater_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    pair_id: Mapped[int] = mapped_column(ForeignKey("rating_pairs.id"), index=True)
    order_index: Mapped[int] = mapped_column(Integer)
    left_is_baseline: Mapped[bool] = mapped_column(Boolean)
    repeat: Mapped[bool] = mapped_column(Boolean, default=False)
    better_side: Mapped[str | None] = mapped_column(String(8))
    grade: Mapped[float | None] = mapped_column(Float)
    left_score: Mapped[float | None] = mapped_column(Float)
    right_score: Mapped[float | None] = mapped_column(Float)
    change: Mapped[float | None] = mapped_column(Float)
    rated_at: Mapped[datetime | None]

    pair: Mapped[RatingPair] = relationship()


# --- trichoscopy -------------------------------------------------------------------------------


class DeviceCalibration(Base):
    """A trichoscope's pixel pitch at one magnification, set by the medical director.

    ``mm_per_px`` is millimetres per image pixel (full resolution) for images from ``device`` at
    ``magnification`` (e.g. 70 for 70x); it turns a follicle count into a density per cm².
    """

    __tablename__ = "device_calibrations"
    __table_args__ = (
        UniqueConstraint("device", "magnification", name="uq_device_calibration"),
        CheckConstraint("mm_per_px > 0", name="ck_calibration_mm_per_px"),
        CheckConstraint("magnification > 0", name="ck_calibration_magnification"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    device: Mapped[str] = mapped_column(String(80))
    magnification: Mapped[float] = mapped_column(Float)
    mm_per_px: Mapped[float] = mapped_column(Float)
    set_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    set_at: Mapped[datetime] = mapped_column(default=utcnow)


class PhotoFollicleCount(Base):
    """The follicle count of one trichoscopy photo: the engine's automatic count beside the
    clinician's confirmed or corrected one.

    ``auto_count``, ``points_px`` ([x, y] full-resolution pixels), ``method`` and ``version`` are
    what :func:`analysis.hair.count.count_follicles` returned; ``mm_per_px`` and ``calibration_id``
    the scale it was counted with (``density_per_cm2`` is None without one). ``confirmed_count`` is
    set when a clinician confirms (equal to ``auto_count``) or corrects it, with who and when.
    ``measurement_id`` is the ``follicle_density_auto`` endpoint value recorded from it: the
    density of the confirmed count once there is one (``confirmed_density_per_cm2``), else the
    automatic ``density_per_cm2``. ``area_cm2`` is the scalp area the count was made over (the frame
    minus masked device overlays; None without a calibration). Migration 0010 added both.
    """

    __tablename__ = "follicle_counts"
    __table_args__ = (
        CheckConstraint("auto_count >= 0", name="ck_follicle_auto_count"),
        CheckConstraint(
            "confirmed_count IS NULL OR confirmed_count >= 0", name="ck_follicle_confirmed_count"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id"), unique=True)
    auto_count: Mapped[int] = mapped_column(Integer)
    points_px: Mapped[list[Any]] = mapped_column(JSON, default=list)
    density_per_cm2: Mapped[float | None] = mapped_column(Float)
    mm_per_px: Mapped[float | None] = mapped_column(Float)
    calibration_id: Mapped[int | None] = mapped_column(ForeignKey("device_calibrations.id"))
    method: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(16))
    counted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    counted_at: Mapped[datetime] = mapped_column(default=utcnow)
    confirmed_count: Mapped[int | None] = mapped_column(Integer)
    confirmed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    confirmed_at: Mapped[datetime | None]
    measurement_id: Mapped[int | None] = mapped_column(ForeignKey("endpoint_measurements.id"))
    area_cm2: Mapped[float | None] = mapped_column(Float)
    confirmed_density_per_cm2: Mapped[float | None] = mapped_column(Float)


# --- background jobs -----------------------------------------------------------------------------

JOB_STATES = ("queued", "running", "done", "failed")


class Job(Base):
    """One unit of background work (e.g. measuring one stored photo), shared by every replica.

    A worker *claims* a queued job (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, one atomic
    ``UPDATE ... RETURNING`` on SQLite; :mod:`analysis.store.jobs`), holds it under a lease
    (``locked_by``, ``locked_until``, epoch seconds, renewed while it works) and finishes it
    ``done`` (``result``) or, after ``max_attempts`` claims, ``failed`` (``error``). A lease that
    runs out (the worker died) makes the job claimable again. ``payload`` carries record ids
    only, never a patient identifier.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        _enum_check("state", JOB_STATES, "ck_job_state"),
        CheckConstraint("attempts >= 0", name="ck_job_attempts"),
        CheckConstraint("max_attempts >= 1", name="ck_job_max_attempts"),
        # the claim's scan: oldest claimable job of a kind
        Index("ix_jobs_state_kind_id", "state", "kind", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    locked_by: Mapped[str | None] = mapped_column(String(200))
    locked_until: Mapped[float | None] = mapped_column(Float)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(320), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
