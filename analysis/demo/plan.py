"""The demo clinic as plain data: who, what, when, and every random draw, before anything is written.

:func:`plan_clinic` is pure: given ``n_patients``, ``seed`` and ``today`` it returns the same
:class:`ClinicPlan` every time (one ``numpy.random.Generator``, drawn in a fixed order). The seeder
(:mod:`analysis.demo.clinic`) writes it through the record's service functions; the photo tracks
(:mod:`analysis.demo.photo_jobs`) are rendered and measured in worker processes.

Response model (per series, per endpoint ``e`` of its protocol, session ``k``)::

    non_responder ~ Bernoulli(NON_RESPONDER_P)
    r   = LogNormal(0, 0.2)  (responder)   |  Normal(0.05, 0.12)  (non-responder)
    r_e = r * LogNormal(0, 0.12)           |  r
          (a responder misses one endpoint with ENDPOINT_NON_RESPONDER_P, twice that on relative
          ratings: then r_e ~ Normal(0.05, 0.12))
    true_ek     = baseline_e + course_e[k] * r_e + Normal(0, 0.25 * noise_sd_e)   (biology)
    measured_ek = true_ek + Normal(0, noise_sd_e)        (clipped to the scale, rounded if ordinal)

``baseline_e`` is the neutral anchor for relative endpoints (GAIS, global photographic score,
satisfaction), which are only rated from session 2. Scalp photos show ``true`` hair density.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np

from analysis.demo.catalogue import (
    ADVERSE_EVENTS,
    ENDPOINTS_BY_CODE,
    PROTOCOLS,
    EndpointSpec,
    ProtocolSpec,
)
from analysis.store.models import SCREENING_ITEMS

NON_RESPONDER_P = 0.09
ENDPOINT_NON_RESPONDER_P = 0.06  # a responder who does not respond on one endpoint (x2 on
#                                   relative ratings: expectations colour them more)
DROPOUT_P = 0.15
HISTORY_DAYS = 540
HABITS = ("careful", "drifts_distance_yaw", "inconsistent_lighting")
OPERATORS: tuple[tuple[str, str, str], ...] = (
    # email, display name, photo habit ("clinician@demo.candor" is the demo clinician login)
    ("clinician@demo.candor", "Dr Demo Clinician", "careful"),
    ("r.haddad@demo.candor", "Nurse Rami Haddad", "drifts_distance_yaw"),
    ("m.keller@demo.candor", "Dr Maren Keller", "inconsistent_lighting"),
)
FACE_VIEW_YAW_DEG = {"face_frontal": 0.0, "face_oblique_left": -20.0, "face_oblique_right": 20.0}
SKIN_RGB_BY_FITZPATRICK = {
    1: (232, 196, 182),
    2: (222, 182, 160),
    3: (205, 160, 132),
    4: (176, 128, 98),
    5: (132, 92, 68),
    6: (92, 62, 48),
}
HAIR_RGB = ((40, 30, 26), (62, 44, 32), (98, 74, 52), (150, 118, 80), (120, 116, 112))
OVERRIDE_REASONS = (
    "Patient could not hold the baseline position (neck stiffness); best achievable today.",
    "Photo room unavailable; taken in treatment room 2 under different lighting.",
    "Patient declined a retake (time constraint).",
    "Baseline itself was poorly framed; kept for the record, not for comparison.",
)


@dataclass
class PhotoShot:
    """One required photo of one session, with the draws for a possible retake."""

    session_number: int
    taken_at: datetime
    habit: str
    perturbation: dict[str, Any]
    retake_perturbation: dict[str, Any]
    retake_if_fail: bool
    override_reason: str
    density_per_cm2: float | None = None
    condition_tags: tuple[str, ...] = ()


@dataclass
class PhotoTrack:
    """All photos of one view of one series (rendered and measured together in one worker)."""

    series_index: int
    view: str
    seed: int
    tolerances: dict[str, float]
    shots: list[PhotoShot]
    skin_rgb: tuple[int, int, int] = (214, 170, 150)
    hair_rgb: tuple[int, int, int] = (52, 38, 30)
    periphery_density_per_cm2: float = 210.0


@dataclass
class SessionPlan:
    number: int
    performed_on: date
    operator: int  # index into OPERATORS
    notes: str = ""
    condition_tags: tuple[str, ...] = ()
    true_density_per_cm2: float | None = None
    treatment: dict[str, Any] = field(default_factory=dict)
    measurements: list[dict[str, Any]] = field(default_factory=list)
    reactions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class SeriesPlan:
    index: int
    patient: int  # index into ClinicPlan.patients
    protocol: int  # index into PROTOCOLS
    started_on: date
    status: str
    goal: str
    non_responder: bool
    sessions: list[SessionPlan]
    screening: dict[str, bool]
    screening_details: dict[str, str]
    confounders: list[dict[str, Any]]


@dataclass
class PatientPlan:
    code: str
    birth_year: int
    sex: str
    fitzpatrick: int
    consents: list[tuple[str, datetime]]
    withdrawals: list[tuple[str, datetime]]
    hair_rgb: tuple[int, int, int]
    head_pose: tuple[float, float, float]  # habitual yaw, pitch, roll (deg)


@dataclass
class ClinicPlan:
    seed: int
    today: date
    patients: list[PatientPlan]
    series: list[SeriesPlan]
    tracks: list[PhotoTrack]
    expired_use: tuple[int, int] | None  # (series index, session number)


# --- photo habits ----------------------------------------------------------------------------------


def _baseline_draw(e: EndpointSpec, rng: np.random.Generator) -> float:
    """The true baseline of endpoint ``e`` for one patient (the neutral value when relative)."""
    if e.relative:
        if e.neutral is None:
            raise ValueError(f"relative endpoint {e.code!r} has no neutral value")
        return e.neutral
    if e.baseline_mean is None or e.baseline_sd is None:
        raise ValueError(f"endpoint {e.code!r} has no baseline distribution")
    return float(rng.normal(e.baseline_mean, e.baseline_sd))


def draw_perturbation(
    rng: np.random.Generator,
    habit: str,
    *,
    scalp: bool,
    view_yaw_deg: float = 0.0,
    head_pose: tuple[float, float, float] = (0, 0, 0),
    baseline: bool = False,
) -> dict[str, Any]:
    """Camera/light perturbation for one photo by an operator with ``habit``.

    ``careful``: small jitter everywhere. ``drifts_distance_yaw``: camera distance (scale SD 7 %)
    and head turn (yaw SD 5 deg) drift. ``inconsistent_lighting``: exposure (SD 0.45 EV), side
    light and white balance vary. Baselines are taken with more care (half the spread). About 4 %
    of photos are out of focus (Gaussian sigma 2-3.5 px). Returns ``FacePerturbation`` fields.
    """
    k = 0.5 if baseline else 1.0
    geo = {
        "careful": (1.2, 1.2, 0.8, 0.02, 0.015),
        "drifts_distance_yaw": (5.0, 3.5, 2.0, 0.07, 0.05),
        "inconsistent_lighting": (1.8, 1.5, 1.0, 0.025, 0.02),
    }[habit]
    light = {
        "careful": (0.05, 0.03, 0.08, 0.015),
        "drifts_distance_yaw": (0.07, 0.04, 0.12, 0.02),
        "inconsistent_lighting": (0.3, 0.12, 0.45, 0.06),
    }[habit]
    yaw_sd, pitch_sd, roll_sd, scale_sd, shift_sd = (g * k for g in geo)
    lr_sd, tb_sd, ev_sd, wb_sd = (v * k for v in light)
    blur = (
        float(rng.uniform(2.0, 3.5))
        if (rng.random() < 0.04 and not baseline)
        else float(abs(rng.normal(0, 0.25)))
    )
    out: dict[str, Any] = dict(
        yaw_deg=0.0 if scalp else float(view_yaw_deg + head_pose[0] + rng.normal(0, yaw_sd)),
        pitch_deg=0.0 if scalp else float(head_pose[1] + rng.normal(0, pitch_sd)),
        roll_deg=float(
            (0 if scalp else head_pose[2]) + rng.normal(0, roll_sd * (2 if scalp else 1))
        ),
        scale=float(np.clip(rng.normal(1.0, scale_sd), 0.8, 1.25)),
        shift_x_frac=float(rng.normal(0, shift_sd)),
        shift_y_frac=float(rng.normal(0, shift_sd)),
        light_lr=float(rng.normal(0, lr_sd)),
        light_tb=float(rng.normal(0, tb_sd)),
        exposure_ev=float(rng.normal(0, ev_sd)),
        wb_gains=(float(rng.normal(1, wb_sd)), 1.0, float(rng.normal(1, wb_sd))),
        blur_sigma_px=blur,
        noise_sd=0.004,
        jpeg_quality=int(rng.integers(85, 96)),
    )
    return out


# --- helpers ---------------------------------------------------------------------------------------


def _at(
    day: date, rng: np.random.Generator, *, start_h: float = 8.5, end_h: float = 18.0
) -> datetime:
    hours = float(rng.uniform(start_h, end_h))
    return datetime.combine(day, time(0, 0), tzinfo=UTC) + timedelta(hours=hours)


def _schedule(rng: np.random.Generator, proto: ProtocolSpec, start: date) -> list[date]:
    dense = bool(proto.first_intervals_days) and rng.random() < 0.5
    days, d = [start], start
    for k in range(1, proto.planned_sessions):
        base = (
            proto.first_intervals_days[k - 1]
            if dense and k - 1 < len(proto.first_intervals_days)
            else proto.interval_days
        )
        gap = max(5, int(round(base * (1 + rng.normal(0, 0.1)))))
        if rng.random() < 0.08:
            gap += int(rng.integers(7, 22))  # holiday, illness, rescheduled
        d = d + timedelta(days=gap)
        days.append(d)
    return days


def _value(spec_code: str, latent: float, rng: np.random.Generator) -> float:
    e = ENDPOINTS_BY_CODE[spec_code]
    v = latent + (rng.normal(0, e.noise_sd) if e.noise_sd else 0.0)
    lo = e.scale_min if e.scale_min is not None else -np.inf
    hi = e.scale_max if e.scale_max is not None else np.inf
    v = float(np.clip(v, lo, hi))
    if e.integer:
        return float(int(np.clip(round(v), lo, hi)))
    return round(v, 3 if e.unit == "ratio" else 1)


# --- the plan --------------------------------------------------------------------------------------


def plan_clinic(*, n_patients: int, seed: int, today: date, photos: bool = True) -> ClinicPlan:
    """Draw the whole demo clinic (see the module docstring for the response model).

    Parameters
    ----------
    n_patients : int
        Number of patients (>= 4 so every protocol has a series).
    seed : int
        Seed of the one ``numpy.random.Generator`` behind every draw.
    today : date
        The seeding date: series start within the previous ``HISTORY_DAYS`` days; every visit,
        photo, rating and consent change is dated before it (at most yesterday).
    photos : bool
        Plan photo tracks (False: none).
    """
    if n_patients < 4:
        raise ValueError("the demo clinic needs at least 4 patients (one per protocol)")
    rng = np.random.default_rng(seed)
    patients: list[PatientPlan] = []
    series: list[SeriesPlan] = []
    for i in range(n_patients):
        sex = str(rng.choice(["female", "male", "other", "unknown"], p=[0.62, 0.35, 0.02, 0.01]))
        if i < len(PROTOCOLS):
            proto_i = i  # every protocol has at least one series
            if PROTOCOLS[i].target_area == "face" and sex == "male" and rng.random() < 0.7:
                sex = "female"
        else:
            face_p = 0.2 if sex == "male" else 0.58
            area = "face" if rng.random() < face_p else "scalp"
            options = [j for j, p in enumerate(PROTOCOLS) if p.target_area == area]
            weights = np.array([PROTOCOLS[j].share for j in options])
            proto_i = int(rng.choice(options, p=weights / weights.sum()))
        age = (
            int(rng.integers(24, 66))
            if PROTOCOLS[proto_i].target_area == "scalp"
            else int(rng.integers(29, 68))
        )
        fitz = int(rng.choice([1, 2, 3, 4, 5, 6], p=[0.08, 0.3, 0.3, 0.17, 0.1, 0.05]))
        first_start = today - timedelta(days=int(rng.integers(7, HISTORY_DAYS)))
        consent_at = _at(first_start - timedelta(days=int(rng.integers(1, 15))), rng)
        consents = [("clinical_record", consent_at)]
        if rng.random() < 0.7:
            consents.append(("consult_display", consent_at))
        if rng.random() < 0.25:
            consents.append(("teaching", consent_at))
        if rng.random() < 0.12:
            consents.append(("marketing", consent_at))
        patients.append(
            PatientPlan(
                code=f"CND-{i + 1:04d}",
                birth_year=today.year - age,
                sex=sex,
                fitzpatrick=fitz,
                consents=consents,
                withdrawals=[],
                hair_rgb=HAIR_RGB[int(rng.choice(len(HAIR_RGB), p=[0.3, 0.3, 0.2, 0.1, 0.1]))],
                head_pose=(
                    float(rng.normal(0, 1.5)),
                    float(rng.normal(0, 1.5)),
                    float(rng.normal(0, 1.0)),
                ),
            )
        )
        starts = [(proto_i, first_start)]
        if rng.random() < 0.2:  # a second course later (same or another protocol)
            area = PROTOCOLS[proto_i].target_area
            second = (
                proto_i
                if rng.random() < 0.5
                else int(
                    rng.choice(
                        [
                            j
                            for j, p in enumerate(PROTOCOLS)
                            if p.target_area != area or j != proto_i
                        ]
                    )
                )
            )
            span = PROTOCOLS[proto_i].planned_sessions * PROTOCOLS[proto_i].interval_days
            start2 = first_start + timedelta(days=span + int(rng.integers(30, 120)))
            if start2 < today:
                starts.append((second, start2))
        for proto_j, start in starts:
            series.append(_plan_series(rng, len(series), i, proto_j, start, today, patients[i]))
    _plan_withdrawals(rng, patients, today)
    _assign_lots(series, today)
    expired = _choose_expired_use(rng, series, today)
    _plan_adverse_events(rng, series, today)
    tracks = _plan_tracks(rng, series, patients) if photos else []
    return ClinicPlan(
        seed=seed, today=today, patients=patients, series=series, tracks=tracks, expired_use=expired
    )


def _plan_series(
    rng: np.random.Generator,
    index: int,
    patient_i: int,
    proto_i: int,
    start: date,
    today: date,
    patient: PatientPlan,
) -> SeriesPlan:
    proto = PROTOCOLS[proto_i]
    dates = _schedule(rng, proto, start)
    dropout_after = None
    if rng.random() < DROPOUT_P:
        dropout_after = int(rng.integers(1, proto.planned_sessions))  # sessions attended
    done = [d for d in dates if d < today]  # visits up to yesterday: no timestamp is ahead
    if dropout_after is not None:
        done = done[:dropout_after]
    if dropout_after is not None and len(dates) > dropout_after and dates[dropout_after] < today:
        status = "dropped_out"
    elif len(done) == proto.planned_sessions:
        status = "completed"
    else:
        status = "paused" if rng.random() < 0.05 else "active"
    non_responder = bool(rng.random() < NON_RESPONDER_P)
    r = float(rng.normal(0.05, 0.12)) if non_responder else float(rng.lognormal(0.0, 0.2))
    main_op = int(rng.choice(len(OPERATORS), p=[0.4, 0.3, 0.3]))
    # endpoints: baselines and per-endpoint response
    latents: dict[str, tuple[float, float]] = {}
    for code in proto.endpoint_codes:
        e = ENDPOINTS_BY_CODE[code]
        if code not in proto.expected_course:
            continue
        miss_p = ENDPOINT_NON_RESPONDER_P * (2 if e.relative else 1)
        if non_responder or rng.random() < miss_p:
            r_e = r if non_responder else float(rng.normal(0.05, 0.12))
        else:
            r_e = r * float(rng.lognormal(0.0, 0.12))
        base = _baseline_draw(e, rng)
        if code == "hair_density" and patient.sex == "male":
            base -= 10.0
        latents[code] = (base, r_e)
    sessions: list[SessionPlan] = []
    for k, day in enumerate(done, start=1):
        op = main_op if rng.random() < 0.85 else int(rng.integers(0, len(OPERATORS)))
        sp = SessionPlan(number=k, performed_on=day, operator=op)
        sp.treatment = _plan_treatment(rng, proto, k)
        for code in proto.endpoint_codes:
            e = ENDPOINTS_BY_CODE[code]
            when = _at(day, rng)
            if code in ("norwood_stage", "ludwig_stage"):
                wanted = "male" if code == "norwood_stage" else "female"
                if k == 1 and patient.sex == wanted:
                    stage = (
                        int(rng.choice([2, 3, 4, 5], p=[0.2, 0.4, 0.3, 0.1]))
                        if wanted == "male"
                        else int(rng.choice([1, 2, 3], p=[0.5, 0.4, 0.1]))
                    )
                    sp.measurements.append(
                        dict(code=code, value=float(stage), at=when, rater="operator")
                    )
                continue
            if e.relative and k == 1:
                continue
            base, r_e = latents[code]
            course = proto.expected_course[code].get(str(k), 0.0)
            bio = rng.normal(0, 0.25 * (e.noise_sd or 0.0))
            true = base + course * r_e + bio
            if code == "hair_density":
                sp.true_density_per_cm2 = float(np.clip(true, 20.0, 300.0))
            sp.measurements.append(
                dict(
                    code=code,
                    value=_value(code, true, rng),
                    at=when,
                    site=e.site,
                    rater="patient"
                    if e.patient_reported
                    else ("director" if e.blinded else "operator"),
                    blinded=e.blinded,
                )
            )
        for term, p, severity, (lo, hi) in proto.reactions:
            if rng.random() < p:
                sp.reactions.append(
                    dict(
                        kind="expected",
                        term=term,
                        severity=severity,
                        onset_day=0 if term != "bruising" else int(rng.integers(0, 2)),
                        duration_days=round(float(rng.uniform(lo, hi)), 1),
                    )
                )
        if rng.random() < 0.1:
            sp.notes = str(
                rng.choice(
                    [
                        "Tolerated well.",
                        "Anxious about needles; numbing cream 30 min before.",
                        "Asked about combining with topical minoxidil.",
                        "Slightly late; shortened consult.",
                        "Patient pleased with progress so far.",
                        "Reviewed aftercare instructions.",
                    ]
                )
            )
        sessions.append(sp)
    screening = {item: False for item in SCREENING_ITEMS}
    details: dict[str, str] = {}
    flags = [
        (
            "anticoagulants_or_antiplatelets",
            0.06,
            "aspirin 75 mg daily (cardiology); bruising risk discussed",
        ),
        ("allergies", 0.1, "penicillin (rash)"),
        (
            "filler_history",
            0.3 if proto.target_area == "face" else 0.04,
            "HA filler lips and tear troughs 2024, no complications",
        ),
        ("prior_injectable_reactions", 0.03, "prolonged swelling after lip filler 2023"),
        ("recent_procedures_in_area", 0.05, "microneedling 6 weeks ago elsewhere"),
    ]
    for item, p, text in flags:
        if rng.random() < p:
            screening[item] = True
            details[item] = text
    confounders = _plan_confounders(rng, proto, sessions)
    return SeriesPlan(
        index=index,
        patient=patient_i,
        protocol=proto_i,
        started_on=start,
        status=status,
        goal=str(rng.choice(proto.goals)),
        non_responder=non_responder,
        sessions=sessions,
        screening=screening,
        screening_details=details,
        confounders=confounders,
    )


def _plan_treatment(rng: np.random.Generator, proto: ProtocolSpec, k: int) -> dict[str, Any]:
    prod = proto.product
    n_sites = int(rng.integers(2, min(5, len(prod.sites)) + 1))
    sites = [str(s) for s in rng.choice(prod.sites, size=n_sites, replace=False)]
    lo, hi = prod.volume_ml
    return dict(
        product=prod.name,
        preparation=str(rng.choice(prod.preparation)),
        mixed=bool(rng.random() < prod.mixed_share),
        sites=sites,
        depth_intent=prod.depth_intent,
        volume_ml=round(float(rng.uniform(lo, hi)) * 4) / 4,
        lot_pick=float(rng.random()),
    )


def _plan_confounders(
    rng: np.random.Generator, proto: ProtocolSpec, sessions: list[SessionPlan]
) -> list[dict[str, Any]]:
    if len(sessions) < 2 or rng.random() > 0.3:
        return []
    if proto.target_area == "scalp":
        options = [
            ("hair_dye", "Dyed hair darker two days before the session (photo contrast)."),
            ("hair_cut", "Short haircut since the last session."),
            ("minoxidil_or_finasteride_change", "Started topical minoxidil 5% foam daily."),
            ("hair_product", "Uses volumising fibres; washed out before photos."),
        ]
    else:
        options = [
            ("retinoid", "Started tretinoin 0.025% cream nightly."),
            ("energy_based_device", "IPL for facial redness at another clinic."),
            ("recent_filler", "Lip filler elsewhere two weeks before this session."),
            ("makeup_at_photo", "Tinted moisturiser not fully removed before photos."),
            ("weight_change", "Lost ~6 kg since the baseline visit."),
        ]
    kind, text = options[int(rng.integers(0, len(options)))]
    k = int(rng.integers(2, len(sessions) + 1))
    s = sessions[k - 1]
    out = dict(
        kind=kind,
        details=text,
        started_on=s.performed_on - timedelta(days=int(rng.integers(1, 10))),
        ended_on=None,
        session_number=None,
    )
    if kind in ("makeup_at_photo", "hair_dye"):
        out["session_number"] = k
        out["started_on"] = s.performed_on if kind == "makeup_at_photo" else out["started_on"]
        out["ended_on"] = s.performed_on if kind == "makeup_at_photo" else None
        tag = "makeup" if kind == "makeup_at_photo" else "hair_dyed"
        s.condition_tags = tuple(s.condition_tags) + (tag,)
    elif kind == "recent_filler":
        out["ended_on"] = None
    return [out]


def _plan_withdrawals(rng: np.random.Generator, patients: list[PatientPlan], today: date) -> None:
    candidates = [
        p
        for p in patients
        if any(s in ("consult_display", "marketing", "teaching") for s, _ in p.consents)
    ]
    for p in candidates[: max(2, len(patients) // 30)]:
        scopes = [s for s, _ in p.consents if s != "clinical_record"]
        scope = scopes[-1]
        given = dict(p.consents)[scope]
        span = max(1, (datetime.combine(today, time(0), tzinfo=UTC) - given).days - 1)
        p.withdrawals.append(
            (
                scope,
                given
                + timedelta(days=int(rng.integers(1, span + 1)), hours=float(rng.uniform(0, 6))),
            )
        )


def _assign_lots(series: list[SeriesPlan], today: date) -> None:
    """First-expiring unexpired lot in stock (3 times in 4), else the next one."""
    for s in series:
        lots = sorted(PROTOCOLS[s.protocol].product.lots, key=lambda lo: lo[1])
        for sp in s.sessions:
            valid = [
                (lot, off) for lot, off in lots if today + timedelta(days=off) >= sp.performed_on
            ]
            if not valid:
                valid = lots[-1:]
            pick = valid[1] if len(valid) > 1 and sp.treatment["lot_pick"] > 0.75 else valid[0]
            sp.treatment.update(lot=pick[0], expiry_on=today + timedelta(days=pick[1]))


def _choose_expired_use(
    rng: np.random.Generator, series: list[SeriesPlan], today: date
) -> tuple[int, int] | None:
    """The one session that used a lot a few days past its expiry (recorded with a reason)."""
    best: list[tuple[int, int, int]] = []  # (days past expiry, series, session)
    for s in series:
        lots = PROTOCOLS[s.protocol].product.lots
        for sp in s.sessions:
            for _, offset in lots:
                past = (sp.performed_on - (today + timedelta(days=offset))).days
                if past > 0:
                    best.append((past, s.index, sp.number))
    if not best:
        return None
    best.sort()
    close = [b for b in best if b[0] <= 14] or best[:1]
    _, si, number = close[int(rng.integers(0, len(close)))]
    treatment = series[si].sessions[number - 1].treatment
    lots = PROTOCOLS[series[si].protocol].product.lots
    day = series[si].sessions[number - 1].performed_on
    expired = [(lot, off) for lot, off in lots if today + timedelta(days=off) < day]
    lot, off = max(expired, key=lambda lo: lo[1])  # the most recently expired lot
    treatment.update(lot=lot, expiry_on=today + timedelta(days=off), expired_use=True)
    return si, number


def _plan_adverse_events(rng: np.random.Generator, series: list[SeriesPlan], today: date) -> None:
    from analysis.demo.catalogue import RECALLED_LOT

    used: set[tuple[int, int]] = set()
    for event in ADVERSE_EVENTS:
        pool = [
            (s.index, sp.number)
            for s in series
            for sp in s.sessions
            if PROTOCOLS[s.protocol].target_area == event["target_area"]
            and (s.index, sp.number) not in used
        ]
        if event["term"] == "vascular_occlusion":
            pool = [
                (si, n)
                for si, n in pool
                if PROTOCOLS[series[si].protocol].modality == "skin_booster"
            ] or pool
        if event.get("recalled_lot"):
            on_lot = [
                (si, n)
                for si, n in pool
                if series[si].sessions[n - 1].treatment.get("lot") == RECALLED_LOT[1]
            ]
            pool = on_lot or [
                (si, n)
                for si, n in pool
                if PROTOCOLS[series[si].protocol].product.name == RECALLED_LOT[0]
                and not series[si].sessions[n - 1].treatment.get("expired_use")
            ]
        if not pool:
            continue
        si, n = pool[int(rng.integers(0, len(pool)))]
        used.add((si, n))
        fields = {k: v for k, v in event.items() if k not in ("target_area", "recalled_lot")}
        series[si].sessions[n - 1].reactions.append(dict(kind="adverse", **fields))
        if event.get("recalled_lot"):  # the event is why the lot was traced: it was used here
            lots = dict(PROTOCOLS[series[si].protocol].product.lots)
            series[si].sessions[n - 1].treatment.update(
                lot=RECALLED_LOT[1], expiry_on=today + timedelta(days=lots[RECALLED_LOT[1]])
            )


def _plan_tracks(
    rng: np.random.Generator, series: list[SeriesPlan], patients: list[PatientPlan]
) -> list[PhotoTrack]:
    tracks: list[PhotoTrack] = []
    for s in series:
        proto = PROTOCOLS[s.protocol]
        patient = patients[s.patient]
        for view in proto.required_views:
            scalp = view.startswith("scalp_")
            shots = []
            for sp in s.sessions:
                habit = OPERATORS[sp.operator][2]
                kw: dict[str, Any] = dict(
                    scalp=scalp,
                    view_yaw_deg=FACE_VIEW_YAW_DEG.get(view, 0.0),
                    head_pose=patient.head_pose,
                )
                pert = draw_perturbation(rng, habit, baseline=sp.number == 1, **kw)
                retake = draw_perturbation(rng, "careful", baseline=True, **kw)
                density = None
                if scalp:
                    d = sp.true_density_per_cm2 or 130.0
                    density = float(d if view == "scalp_vertex" else min(300.0, d * 1.15))
                tags = tuple(t for t in sp.condition_tags if (t == "makeup") != scalp)
                shots.append(
                    PhotoShot(
                        session_number=sp.number,
                        taken_at=_at(sp.performed_on, rng),
                        habit=habit,
                        perturbation=pert,
                        retake_perturbation=retake,
                        retake_if_fail=bool(rng.random() < 0.6),
                        override_reason=str(rng.choice(OVERRIDE_REASONS)),
                        density_per_cm2=density,
                        condition_tags=tags,
                    )
                )
            if shots:
                tracks.append(
                    PhotoTrack(
                        series_index=s.index,
                        view=view,
                        seed=int(rng.integers(0, 2**31 - 1)),
                        tolerances=dict(proto.tolerances),
                        shots=shots,
                        skin_rgb=SKIN_RGB_BY_FITZPATRICK[patient.fitzpatrick],
                        hair_rgb=patient.hair_rgb,
                        periphery_density_per_cm2=float(rng.uniform(180.0, 230.0)),
                    )
                )
    return tracks
