"""The adjusted protocol effect (MixedLM) recovers a simulated truth and reports failures."""

from __future__ import annotations

import pytest

from analysis.outcomes.adjusted import adjusted_protocol_effect
from analysis.outcomes.simulate import ProtocolSpec, simulate_frames


def test_mixed_model_recovers_known_protocol_effect_within_its_ci() -> None:
    # B is 2.0 points better than A at every session; same slope.
    f = simulate_frames(
        [ProtocolSpec("A", 30, offset=0.0), ProtocolSpec("B", 30, offset=2.0)],
        seed=3,
        patient_sd=1.0,
        noise_sd=1.5,
    )
    r = adjusted_protocol_effect(f, endpoint="score", protocol_a=1, protocol_b=2)
    assert r.converged, r.warnings
    assert r.ci_low is not None and r.ci_high is not None
    assert r.ci_low <= 2.0 <= r.ci_high
    assert r.estimate == pytest.approx(2.0, abs=1.0)
    assert r.p_value is not None and r.p_value < 0.01
    assert (r.n_patients, r.n_observations) == (60, 180)
    part = adjusted_protocol_effect(
        f, endpoint="score", protocol_a=1, protocol_b=2, series_ids=range(1, 41)
    )  # 30 of A, 10 of B
    assert (part.n_patients, part.n_observations) == (40, 120)
    assert "not a trial" in r.caveat and "B showed a larger improvement" in r.caveat


def test_mixed_model_says_no_difference_when_there_is_none() -> None:
    f = simulate_frames([ProtocolSpec("A", 25), ProtocolSpec("B", 25)], seed=11)
    r = adjusted_protocol_effect(f, endpoint="score", protocol_a=1, protocol_b=2)
    assert r.converged
    assert r.ci_low is not None and r.ci_high is not None
    assert r.ci_low <= 0.0 <= r.ci_high  # truth is 0 (fixed seed)
    assert "compatible with no difference" in r.caveat


def test_lower_is_better_endpoint_reads_direction_from_the_sign() -> None:
    # lower is better: B lowers the score by 2 more than A -> estimate about -2, B better
    f = simulate_frames(
        [ProtocolSpec("A", 30), ProtocolSpec("B", 30, offset=2.0)], seed=5, higher_is_better=False
    )
    r = adjusted_protocol_effect(f, endpoint="score", protocol_a=1, protocol_b=2)
    assert r.estimate == pytest.approx(-2.0, abs=1.0)
    assert "B showed a larger improvement" in r.caveat


def test_degenerate_data_reports_not_converged_with_the_reason() -> None:
    # No variation at all: every change is identical, the design is singular.
    f = simulate_frames(
        [ProtocolSpec("A", 4, slope=0.0), ProtocolSpec("B", 4, slope=0.0)],
        seed=1,
        noise_sd=0.0,
        patient_sd=0.0,
        baseline_sd=0.0,
    )
    r = adjusted_protocol_effect(f, endpoint="score", protocol_a=1, protocol_b=2)
    assert r.converged is False
    assert r.estimate is None and r.warnings
    assert "did not give a usable estimate" in r.caveat


def test_too_few_patients_per_protocol_is_reported_not_fitted() -> None:
    f = simulate_frames([ProtocolSpec("A", 10), ProtocolSpec("B", 1)], seed=2)
    r = adjusted_protocol_effect(f, endpoint="score", protocol_a=1, protocol_b=2)
    assert not r.converged and "at least 2 patients" in r.warnings[0]
    with pytest.raises(ValueError, match="unknown endpoint"):
        adjusted_protocol_effect(f, endpoint="nope", protocol_a=1, protocol_b=2)
