"""The demo clinic: what `python -m analysis demo` writes is a plausible, consistent clinic record
whose photos went through the real engine and carry their ground truth."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session as DbSession

from analysis.cli import main
from analysis.demo import DEFAULT_PATIENTS, DEFAULT_SEED
from analysis.demo.catalogue import ENDPOINTS_BY_CODE, PROTOCOLS, RECALLED_LOT
from analysis.demo.plan import ClinicPlan, plan_clinic
from analysis.store import audit, db
from analysis.store.images import default_store
from analysis.store.models import (
    AuditEvent,
    Consent,
    EndpointMeasurement,
    Patient,
    Photo,
    PhotoFollicleCount,
    ProductLot,
    Protocol,
    Reaction,
    Series,
    Session,
    Treatment,
    User,
)

TODAY = date(2026, 11, 22)


def _non_responder_shares(plan: ClinicPlan) -> dict[str, tuple[float, int]]:
    """Per endpoint: share of series whose last rating falls short of the MCID in the better
    direction, against session 1 (baseline-anchored endpoints, the dashboard's responder rule) or
    against the no-change anchor (relative ratings: GAIS, global photo score, satisfaction)."""
    counts: dict[str, list[int]] = {}
    for s in plan.series:
        values: dict[str, dict[int, float]] = {}
        for v in s.sessions:
            for m in v.measurements:
                if m.get("value") is not None:
                    values.setdefault(m["code"], {})[v.number] = m["value"]
        for code, by_session in values.items():
            e = ENDPOINTS_BY_CODE[code]
            later = [k for k in by_session if k > 1]
            if e.mcid is None or not later or (not e.relative and 1 not in by_session):
                continue
            reference = e.neutral if e.relative else by_session[1]
            assert reference is not None  # a relative endpoint has its neutral value
            improvement = (by_session[max(later)] - reference) * (1 if e.higher_is_better else -1)
            tally = counts.setdefault(code, [0, 0])
            tally[0] += improvement < e.mcid
            tally[1] += 1
    return {code: (non / n, n) for code, (non, n) in counts.items()}


def test_default_clinic_has_responders_and_10_to_30_percent_non_responders() -> None:
    plan = plan_clinic(n_patients=DEFAULT_PATIENTS, seed=DEFAULT_SEED, today=TODAY, photos=False)
    shares = _non_responder_shares(plan)
    primary = {p.primary_endpoint for p in PROTOCOLS}
    assert primary <= set(shares)
    assert sum(shares[code][1] for code in primary) >= 50
    for code, (share, n) in shares.items():  # responders and 10-30% non-responders everywhere
        assert 0.10 <= share <= 0.30, (code, share, n)
    statuses = Counter(s.status for s in plan.series)
    assert statuses["dropped_out"] >= 0.05 * len(plan.series)
    assert statuses["completed"] > 0 and statuses["active"] > 0
    assert {s.protocol for s in plan.series} == set(range(len(PROTOCOLS)))
    assert len(plan.patients) >= 60


def test_plan_is_deterministic_and_never_in_the_future() -> None:
    a = plan_clinic(n_patients=10, seed=5, today=TODAY)
    b = plan_clinic(n_patients=10, seed=5, today=TODAY)
    c = plan_clinic(n_patients=10, seed=6, today=TODAY)
    assert a == b
    assert a != c
    assert all(v.performed_on < TODAY for s in a.series for v in s.sessions)
    assert all(shot.taken_at.date() < TODAY for t in a.tracks for shot in t.shots)
    assert all(at.date() < TODAY for p in a.patients for _, at in p.consents + p.withdrawals)


def test_seeded_clinic_record_photos_and_idempotency(
    candor_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--patients", "4", "--workers", "2"]) == 0
    first = capsys.readouterr().out
    assert "seeded the demo clinic" in first

    store = default_store()
    with db.session_scope() as s:
        counts = {
            m.__name__: s.scalar(select(func.count()).select_from(m))
            for m in (
                Patient,
                Series,
                Session,
                Photo,
                Treatment,
                EndpointMeasurement,
                Reaction,
                AuditEvent,
                Consent,
            )
        }
        assert counts["Patient"] == 4
        assert {p.name for p in s.scalars(select(Protocol))} == {p.name for p in PROTOCOLS}
        # accounts: the four demo logins plus the operators, one per photo habit
        emails = set(s.scalars(select(User.email)))
        assert {
            "clinician@demo.candor",
            "director@demo.candor",
            "consult@demo.candor",
            "admin@demo.candor",
        } <= emails
        assert s.scalars(select(func.count()).where(User.role == "clinician")).one() >= 3
        # traceability: one recalled lot with its note, one expired-at-use treatment with a reason
        recalled = s.scalars(select(ProductLot).where(ProductLot.recalled)).all()
        assert [(lot.product, lot.lot_number) for lot in recalled] == [RECALLED_LOT]
        assert "FSN" in recalled[0].recall_note
        expired = s.scalars(select(Treatment).where(Treatment.expired_at_use)).all()
        assert len(expired) == 1 and expired[0].override_reason
        assert expired[0].lot.expiry_on < expired[0].session.performed_on
        # every consented patient has a clinical-record consent given before their first session
        for patient in s.scalars(select(Patient)):
            scopes = {c.scope for c in patient.consents}
            assert "clinical_record" in scopes
        # every series was screened on every item
        for series in s.scalars(select(Series)):
            assert len(series.screenings) == 8
        # photos: every required view of every session, real engine output, truth recorded
        # (the trichoscopy close-ups are checked below)
        photos = s.scalars(select(Photo).where(Photo.view != "scalp_trichoscopy")).all()
        assert photos
        for photo in photos:
            visit = photo.session
            proto = visit.series.protocol
            assert photo.view in proto.required_views
            assert store.verify(photo.sha256), "blob missing or does not re-hash"
            assert photo.truth.get("kind") == (
                "scalp" if photo.view.startswith("scalp") else "face"
            )
            assert {"exposure_ev", "roll_deg", "scale", "habit"} <= set(photo.truth)
            assert photo.measurements.get("view") == photo.view
            if visit.number == 1:
                assert photo.verdict == "baseline" and photo.checks == []
            else:
                assert photo.verdict in ("pass", "warn", "fail")
                assert {c["name"] for c in photo.checks} >= {"measurement", "exposure"}
                if photo.verdict == "fail":
                    assert photo.override_reason
            if photo.view == "scalp_vertex":
                assert photo.truth["density_per_cm2"] > 0
        for visit in s.scalars(select(Session)):
            assert {p.view for p in visit.photos if p.view != "scalp_trichoscopy"} == set(
                visit.series.protocol.required_views
            )
        assert audit.verify_chain(s) == []

    # idempotent: a second run (and the --if-empty form) adds nothing and says so
    assert main(["demo", "--patients", "4"]) == 0
    assert main(["demo", "--if-empty"]) == 0
    second = capsys.readouterr().out
    assert second.count("nothing seeded") == 2
    with db.session_scope() as s:
        again = {
            m.__name__: s.scalar(select(func.count()).select_from(m))
            for m in (
                Patient,
                Series,
                Session,
                Photo,
                Treatment,
                EndpointMeasurement,
                Reaction,
                AuditEvent,
                Consent,
            )
        }
    assert again == counts
    with db.session_scope() as s:  # after the count comparison: the review is an audited read
        _check_demo_trichoscopy(s)


def test_record_without_photos_matches_the_plan(candor_env: Path) -> None:
    from analysis.demo.clinic import seed_demo_clinic

    report = seed_demo_clinic(
        n_patients=6, seed=11, photos=False, today=TODAY, progress=lambda _line: None
    )
    plan = plan_clinic(n_patients=6, seed=11, today=TODAY, photos=False)
    assert report.seeded and report.photos == 0
    with db.session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Photo)) == 0
        assert s.scalar(select(func.count()).select_from(Series)) == len(plan.series)
        stored = sorted(
            (m.session.series.patient.code, m.session.number, m.endpoint.code, m.value_num)
            for m in s.scalars(select(EndpointMeasurement))
        )
        withdrawn = s.scalars(select(Consent).where(Consent.withdrawn_at.is_not(None))).all()
        adverse = s.scalars(select(Reaction).where(Reaction.kind == "adverse")).all()
    planned = sorted(
        (plan.patients[sp.patient].code, v.number, m["code"], m["value"])
        for sp in plan.series
        for v in sp.sessions
        for m in v.measurements
    )
    assert stored == planned
    assert len(withdrawn) == sum(len(p.withdrawals) for p in plan.patients) >= 1
    assert all(c.withdrawn_at is not None and c.withdrawn_at > c.given_at for c in withdrawn)
    assert adverse and all(r.escalation or r.severity != "severe" for r in adverse)


def test_cli_refuses_a_too_small_clinic(
    candor_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--patients", "2", "--no-photos"]) == 2
    assert "at least 4" in capsys.readouterr().err


@pytest.mark.parametrize("code", sorted(ENDPOINTS_BY_CODE))
def test_endpoint_definitions_are_complete(code: str) -> None:
    e = ENDPOINTS_BY_CODE[code]
    if e.kind == "ordinal":
        assert e.anchors, "ordinal scales need anchors"
        assert e.scale_min is not None and e.scale_max is not None
    if e.mcid is not None:
        assert e.noise_sd is not None and 0 < e.noise_sd < 2 * e.mcid


def _check_demo_trichoscopy(s: DbSession) -> None:
    """Synthetic close-ups at the vertex of the scalp series: known follicles, counted by the
    engine with the demo calibration, confirmed; the first series corrected to the known count,
    the second's last close-up out of focus and flagged by the same-spot check."""
    from analysis.auth.accounts import actor_for
    from analysis.demo.trichoscopy_seed import MAX_SERIES, MAX_SESSIONS
    from analysis.services import trichoscopy

    tri = s.scalars(select(Photo).where(Photo.view == "scalp_trichoscopy")).all()
    series_ids = sorted({p.session.series_id for p in tri})
    assert 1 <= len(series_ids) <= MAX_SERIES
    assert len(tri) <= MAX_SERIES * MAX_SESSIONS
    corrected_to_truth: dict[int, bool] = {}
    blurred: set[int] = set()
    for p in tri:
        assert p.session.series.protocol.target_area == "scalp"
        assert p.site == "vertex" and p.truth["kind"] == "trichoscopy"
        assert p.truth["follicles"] == len(p.truth["follicles_px"]) > 0
        count = s.scalar(select(PhotoFollicleCount).where(PhotoFollicleCount.photo_id == p.id))
        assert count is not None and count.density_per_cm2 is not None
        assert count.confirmed_count is not None and count.measurement_id is not None
        value = s.get(EndpointMeasurement, count.measurement_id)
        assert value is not None and value.value_num == count.confirmed_density_per_cm2
        sid = p.session.series_id
        to_truth = count.confirmed_count == p.truth["follicles"]
        assert to_truth or count.confirmed_count == count.auto_count
        corrected_to_truth[sid] = corrected_to_truth.get(sid, True) and to_truth
        if p.truth["blur_sigma_px"] > 2:
            blurred.add(sid)
    # one series has every count corrected to the known follicles (the correction flow)
    assert any(corrected_to_truth.values())
    director = s.scalar(select(User).where(User.role == "medical_director"))
    assert director is not None
    if len(series_ids) >= 2:
        (sid,) = blurred
        review = trichoscopy.trichoscopy_review(s, actor_for(director), sid, measure_scale=False)
        last = review.comparisons[-1]
        assert last.verdict == "fail" and "out of focus" in " ".join(last.reasons)
        assert all(c.verdict != "fail" for c in review.comparisons[:-1])
