"""Confidence intervals, quartiles and the minimum-n rule against published or hand-computed values;
coverage of the mean-change CI on simulated clinics with a known truth."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.outcomes.cohorts import trajectory
from analysis.outcomes.simulate import ProtocolSpec, simulate_frames
from analysis.outcomes.stats import (
    mean_ci,
    mean_estimate,
    poisson_ci,
    proportion,
    quartiles,
    rate_per_100,
    wilson_ci,
)


# Newcombe, Stat Med 1998;17:857-72, Table I, method 3 (Wilson score, no continuity correction).
@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0000, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_interval_matches_newcombe_table(k: int, n: int, low: float, high: float) -> None:
    got = wilson_ci(k, n)
    assert got == pytest.approx((low, high), abs=5e-5)


def test_wilson_hand_computed_seven_of_ten() -> None:
    # p = 0.7, z = 1.959964: centre = (0.7 + 0.19207)/1.38415 = 0.64449,
    # half = 1.959964 * sqrt(0.021 + 0.0096037)/1.38415 = 0.24770
    assert wilson_ci(7, 10) == pytest.approx((0.39679, 0.89219), abs=1e-4)


def test_wilson_rejects_impossible_counts() -> None:
    with pytest.raises(ValueError, match="between 0 and n"):
        wilson_ci(11, 10)
    with pytest.raises(ValueError, match="n >= 1"):
        wilson_ci(0, 0)


def test_exact_poisson_interval_matches_tables() -> None:
    # Garwood limits: 0 -> (0, -ln 0.025 = 3.689); 1 -> (0.0253, 5.572); 5 -> (1.623, 11.668)
    assert poisson_ci(0) == pytest.approx((0.0, 3.6889), abs=1e-4)
    assert poisson_ci(1) == pytest.approx((0.0253, 5.5716), abs=1e-4)
    assert poisson_ci(5) == pytest.approx((1.6235, 11.6683), abs=1e-4)


def test_rate_per_100_sessions_scales_counts_and_interval() -> None:
    est = rate_per_100(3, 60, patients=12)
    assert est.value == pytest.approx(5.0)
    low, high = poisson_ci(3)
    assert (est.low, est.high) == pytest.approx((low * 100 / 60, high * 100 / 60))
    assert est.n == 60 and est.unit == "sessions"
    assert "n=60" in est.label()


def test_minimum_n_rule_replaces_numbers_with_marker() -> None:
    assert proportion(2, 3).insufficient
    assert proportion(2, 3).label() == "insufficient data (n=3)"
    assert proportion(2, 3).value is None
    assert not proportion(3, 5).insufficient
    assert rate_per_100(1, 40, patients=4).label() == "insufficient data (n=40)"
    assert mean_estimate([1.0, 2.0, 3.0, 4.0]).insufficient
    assert mean_estimate([1.0, 2.0, 3.0, 4.0], min_n=4).value == pytest.approx(2.5)
    assert quartiles([1, 2]).label() == "insufficient data (n=2)"


def test_quartiles_use_linear_interpolation() -> None:
    q = quartiles([0, 0.5, 1, 1, 2, 3])
    # positions 1.25, 2.5, 3.75 of the sorted values
    assert (q.q1, q.median, q.q3) == pytest.approx((0.625, 1.0, 1.75))
    assert q.n == 6
    assert quartiles([7, np.nan, 1, 3, 5, 9]).median == pytest.approx(5.0)


def test_mean_ci_hand_computed() -> None:
    # mean -0.9, sd sqrt(0.55), se 0.33166, t(0.975, 4) = 2.776445
    m, low, high = mean_ci([-2, -1, -1, 0, -0.5])
    assert m == pytest.approx(-0.9)
    assert (low, high) == pytest.approx((-1.82085, 0.02085), abs=1e-4)


def test_mean_change_ci_covers_truth_about_95_percent_of_simulated_clinics() -> None:
    """200 simulated clinics of 12 courses (one protocol each, independent draws);
    the truth at session 3 is offset + 2 * slope = 3.5."""
    specs = [ProtocolSpec(f"clinic {i}", 12, offset=0.5, slope=1.5, sessions=3) for i in range(200)]
    f = simulate_frames(specs, seed=7, noise_sd=2.0, patient_sd=1.0)
    covered = 0
    for _pid, g in f.series.groupby("protocol_id"):
        t = trajectory(f, set(g["series_id"]), endpoint_code="score", by="session_number")
        row = t[t["session_number"] == 3].iloc[0]
        assert row["n"] == 12
        covered += int(row["ci_low"] <= 3.5 <= row["ci_high"])
    assert 180 <= covered <= 198, covered
