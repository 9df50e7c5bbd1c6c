"""Small-sample statistics for clinic figures: confidence intervals and the minimum-n rule.

Every figure Candor shows carries its ``n``. A figure computed from fewer than ``min_n`` patients
is not shown as a number: :func:`estimate` returns an :class:`Estimate` flagged ``insufficient``
whose label reads ``"insufficient data (n=3)"``.

Methods
-------
* Mean: Student-t interval, ``mean +/- t(0.975, n-1) * sd / sqrt(n)``.
* Proportion: Wilson score interval (Wilson 1927; Newcombe, Stat Med 1998;17:857-72, method 3).
* Rate: exact Poisson (Garwood 1936) interval on the event count, ``chi2(a/2, 2k)/2`` to
  ``chi2(1-a/2, 2k+2)/2``, scaled to events per 100 sessions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

#: Default minimum number of patients behind any figure shown as a number.
MIN_N = 5


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its 95% CI and ``n``; ``value`` is None when ``insufficient``.

    ``n`` counts the unit named by ``unit`` (patients unless stated otherwise).
    """

    value: float | None
    low: float | None
    high: float | None
    n: int
    insufficient: bool = False
    unit: str = "patients"

    def label(self, *, digits: int = 1, percent: bool = False) -> str:
        """Human-readable figure: ``"2.1 (95% CI 1.0 to 3.2; n=12)"`` or the insufficient marker."""
        if self.insufficient or self.value is None:
            return insufficient_label(self.n)
        scale, suffix = (100.0, "%") if percent else (1.0, "")
        v = f"{self.value * scale:.{digits}f}{suffix}"
        if self.low is None or self.high is None:
            return f"{v} (n={self.n})"
        return (
            f"{v} (95% CI {self.low * scale:.{digits}f}{suffix} to "
            f"{self.high * scale:.{digits}f}{suffix}; n={self.n})"
        )


def insufficient_label(n: int) -> str:
    return f"insufficient data (n={n})"


def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    return float(sps.norm.ppf(0.5 + confidence / 2.0))


def wilson_ci(successes: int, n: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion ``successes / n`` (both bounds in [0, 1]).

    Raises
    ------
    ValueError
        When ``n < 1`` or ``successes`` is outside ``0..n``.
    """
    if n < 1:
        raise ValueError("a proportion needs n >= 1")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be between 0 and n={n}, got {successes}")
    z = _z(confidence)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_ci(
    values: Sequence[float] | np.ndarray, *, confidence: float = 0.95
) -> tuple[float, float, float]:
    """Mean and Student-t interval of ``values`` (NaNs dropped): ``(mean, low, high)``.

    With one value the interval is ``(nan, nan)``; with none, everything is ``nan``.
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan, math.nan, math.nan
    m = float(x.mean())
    if x.size < 2:
        return m, math.nan, math.nan
    se = float(x.std(ddof=1)) / math.sqrt(x.size)
    t = float(sps.t.ppf(0.5 + confidence / 2.0, x.size - 1))
    return m, m - t * se, m + t * se


def poisson_ci(events: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Garwood) interval for a Poisson count ``events``, in events."""
    if events < 0:
        raise ValueError("an event count cannot be negative")
    alpha = 1.0 - confidence
    low = 0.0 if events == 0 else float(sps.chi2.ppf(alpha / 2, 2 * events)) / 2
    high = float(sps.chi2.ppf(1 - alpha / 2, 2 * events + 2)) / 2
    return low, high


def rate_per_100(
    events: int, sessions: int, *, patients: int, min_n: int = MIN_N, confidence: float = 0.95
) -> Estimate:
    """Events per 100 sessions with an exact Poisson CI; ``n`` = sessions.

    Insufficient when fewer than ``min_n`` patients contributed sessions.
    """
    if sessions < 0 or events < 0:
        raise ValueError("events and sessions cannot be negative")
    if patients < min_n or sessions == 0:
        return Estimate(None, None, None, n=sessions, insufficient=True, unit="sessions")
    low, high = poisson_ci(events, confidence=confidence)
    scale = 100.0 / sessions
    return Estimate(events * scale, low * scale, high * scale, n=sessions, unit="sessions")


def proportion(successes: int, n: int, *, min_n: int = MIN_N, confidence: float = 0.95) -> Estimate:
    """Share ``successes / n`` with its Wilson CI, or the insufficient marker when ``n < min_n``."""
    if n < min_n or n == 0:
        return Estimate(None, None, None, n=n, insufficient=True)
    low, high = wilson_ci(successes, n, confidence=confidence)
    return Estimate(successes / n, low, high, n=n)


def mean_estimate(
    values: Sequence[float] | np.ndarray, *, min_n: int = MIN_N, confidence: float = 0.95
) -> Estimate:
    """Mean with its t-interval, or the insufficient marker when fewer than ``min_n`` values."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < max(min_n, 1):
        return Estimate(None, None, None, n=int(x.size), insufficient=True)
    m, low, high = mean_ci(x, confidence=confidence)
    return Estimate(
        m, None if math.isnan(low) else low, None if math.isnan(high) else high, n=int(x.size)
    )


@dataclass(frozen=True)
class Quartiles:
    """Median and interquartile range (25th and 75th percentiles, linear interpolation)."""

    median: float | None
    q1: float | None
    q3: float | None
    n: int
    insufficient: bool = False

    def label(self, *, digits: int = 1) -> str:
        if self.insufficient or self.median is None:
            return insufficient_label(self.n)
        return (
            f"{self.median:.{digits}f} (IQR {self.q1:.{digits}f} to {self.q3:.{digits}f}; "
            f"n={self.n})"
        )


def quartiles(values: Sequence[float] | np.ndarray, *, min_n: int = MIN_N) -> Quartiles:
    """Median and IQR (numpy's default linear interpolation, type 7) of the finite values."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < max(min_n, 1):
        return Quartiles(None, None, None, n=int(x.size), insufficient=True)
    q1, med, q3 = np.percentile(x, [25, 50, 75])
    return Quartiles(float(med), float(q1), float(q3), n=int(x.size))
