"""Agreement statistics and the randomisation of blinded rating studies (pure: no database).

Statistics, each returned as an :class:`Estimate` with its 95 % interval and how it was obtained:

* :func:`weighted_kappa`: Cohen's weighted kappa for two raters on an ordinal scale
  (``statsmodels.stats.inter_rater.cohens_kappa``; linear or quadratic weights over the whole
  scale; analytic interval from the asymptotic standard error, as SAS PROC FREQ gives it).
* :func:`icc_2_1`: ICC(2,1) of Shrout & Fleiss (1979), two-way random effects, absolute
  agreement, single rater (``pingouin.intraclass_corr``, row ``ICC(A,1)``, which is ICC2 in older releases; its F-based interval).
* :func:`krippendorff_alpha`: Krippendorff's alpha for any number of raters with missing values
  (``krippendorff.alpha``; percentile bootstrap over the rated units, seeded).
* :func:`wilson`: a share with its Wilson score interval
  (``statsmodels.stats.proportion.proportion_confint``).
* :func:`bootstrap_mean`: a mean (or a mean difference) with its percentile bootstrap interval.

:func:`plan_assignments` is the study's randomisation: from the stored seed it reproduces, for
each rater, the order of the pairs, which photo is on the left, and which pairs are shown twice.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

BOOTSTRAP_REPS = 1000


@dataclass(frozen=True)
class Estimate:
    """A statistic with its 95 % interval. ``value`` is None when it cannot be computed (too few
    data, or no variation to agree on); ``note`` then says why."""

    value: float | None
    low: float | None
    high: float | None
    n: int
    method: str
    note: str = ""

    def label(self, digits: int = 2) -> str:
        if self.value is None:
            return f"not computable ({self.note})" if self.note else "not computable"
        if self.low is None or self.high is None:
            return f"{self.value:.{digits}f}"
        return f"{self.value:.{digits}f} ({self.low:.{digits}f} to {self.high:.{digits}f})"


def _none(n: int, method: str, note: str) -> Estimate:
    return Estimate(None, None, None, n, method, note)


def contingency_table(
    a: Sequence[float], b: Sequence[float], categories: Sequence[float]
) -> np.ndarray:
    """Counts of (rating of ``a``, rating of ``b``) over the ordered ``categories``."""
    index = {float(c): i for i, c in enumerate(categories)}
    table = np.zeros((len(categories), len(categories)))
    for x, y in zip(a, b, strict=True):
        try:
            table[index[float(x)], index[float(y)]] += 1
        except KeyError as exc:
            raise ValueError(f"rating {exc.args[0]} is not one of the scale's categories") from None
    return table


def weighted_kappa(
    a: Sequence[float], b: Sequence[float], *, categories: Sequence[float], weights: str = "linear"
) -> Estimate:
    """Cohen's kappa of two raters' ratings of the same units.

    ``weights``: ``"linear"`` (Cicchetti-Allison), ``"quadratic"`` (Fleiss-Cohen) or ``"none"``
    (simple kappa); distances are in steps of ``categories`` (the whole scale, in order).
    """
    from statsmodels.stats.inter_rater import cohens_kappa

    if weights not in ("linear", "quadratic", "none"):
        raise ValueError("weights must be 'linear', 'quadratic' or 'none'")
    n = len(a)
    method = (
        f"Cohen's kappa, {weights} weights" if weights != "none" else "Cohen's kappa"
    ) + "; 95 % CI from the asymptotic standard error"
    if n < 2:
        return _none(n, method, "fewer than 2 units rated by both")
    table = contingency_table(a, b, categories)
    rows, cols = table.sum(axis=1) / n, table.sum(axis=0) / n
    if np.count_nonzero(rows) <= 1 and np.count_nonzero(cols) <= 1:
        return _none(n, method, "every rating in one category")
    with warnings.catch_warnings():  # its z-test under H0 divides by 0 on some tables; unused
        warnings.simplefilter("ignore", RuntimeWarning)
        result = cohens_kappa(table, wt=None if weights == "none" else weights)
    value = float(result.kappa)
    if not math.isfinite(value):
        return _none(n, method, "chance agreement is complete")
    se = float(result.std_kappa)
    if not math.isfinite(se):
        return Estimate(value, None, None, n, method)
    half = 1.959963984540054 * se  # the Wald interval, clipped to kappa's range
    return Estimate(value, max(-1.0, value - half), min(1.0, value + half), n, method)


def icc_2_1(matrix: np.ndarray) -> Estimate:
    """ICC(2,1) of a ``units x raters`` matrix (units with a missing rating are left out)."""
    import pandas as pd
    import pingouin

    method = "ICC(2,1), two-way random, absolute agreement, single rater; F-based 95 % CI"
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2 or m.shape[1] < 2:
        return _none(0, method, "needs at least 2 raters")
    m = m[~np.isnan(m).any(axis=1)]
    n = int(m.shape[0])
    if n < 3:
        return _none(n, method, "fewer than 3 units rated by every rater")
    if np.allclose(m, m.flat[0]):
        return _none(n, method, "every rating is the same")
    long = pd.DataFrame(
        [(i, j, m[i, j]) for i in range(n) for j in range(m.shape[1])],
        columns=["unit", "rater", "score"],
    )
    with warnings.catch_warnings():  # pingouin 0.7 on pandas 3.1: an internal deprecation notice
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        table = pingouin.intraclass_corr(data=long, targets="unit", raters="rater", ratings="score")
    types = table.set_index("Type")
    row = types.loc["ICC(A,1)" if "ICC(A,1)" in types.index else "ICC2"]
    low, high = (float(x) for x in row["CI95"])
    return Estimate(float(row["ICC"]), low, high, n, method)


#: the distance metrics krippendorff.alpha knows
AlphaLevel = Literal["nominal", "ordinal", "interval", "ratio"]


def krippendorff_alpha(
    data: np.ndarray, *, level: AlphaLevel = "ordinal", reps: int = BOOTSTRAP_REPS, seed: int = 0
) -> Estimate:
    """Krippendorff's alpha of a ``raters x units`` matrix (NaN = not rated), with a percentile
    bootstrap interval over units (``reps`` resamples, ``seed``)."""
    import krippendorff

    method = (
        f"Krippendorff's alpha, {level} metric; 95 % CI from {reps} bootstrap resamples of units"
    )
    d = np.asarray(data, dtype=float)
    pairable = d[:, (~np.isnan(d)).sum(axis=0) >= 2]
    n = int(pairable.shape[1])
    if n < 2:
        return _none(n, method, "fewer than 2 units rated twice or more")
    values = pairable[~np.isnan(pairable)]
    if np.unique(values).size < 2:
        return _none(n, method, "every rating is the same")

    def alpha_of(x: np.ndarray) -> float:
        return float(krippendorff.alpha(reliability_data=x, level_of_measurement=level))

    value = alpha_of(pairable)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(reps):
        sample = pairable[:, rng.integers(0, n, size=n)]
        if np.unique(sample[~np.isnan(sample)]).size >= 2:
            draws.append(alpha_of(sample))
    if len(draws) < reps // 2:
        return Estimate(value, None, None, n, method)
    low, high = np.percentile(draws, [2.5, 97.5])
    return Estimate(value, float(low), float(high), n, method)


def wilson(successes: int, n: int) -> Estimate:
    """The share ``successes / n`` with its Wilson score 95 % interval."""
    from statsmodels.stats.proportion import proportion_confint

    method = "share with Wilson score 95 % CI"
    if n <= 0:
        return _none(0, method, "no units")
    low, high = proportion_confint(successes, n, alpha=0.05, method="wilson")
    return Estimate(successes / n, float(low), float(high), n, method)


def bootstrap_mean(
    values: Sequence[float], *, reps: int = BOOTSTRAP_REPS, seed: int = 0
) -> Estimate:
    """Mean of ``values`` with a percentile bootstrap 95 % interval."""
    method = f"mean; 95 % CI from {reps} bootstrap resamples"
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    n = int(v.size)
    if n < 2:
        return _none(n, method, "fewer than 2 values")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, n, size=(reps, n))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return Estimate(float(v.mean()), float(low), float(high), n, method)


# --- the randomisation -------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedShowing:
    rater_id: int
    pair_index: int  # index into the study's pair list
    order_index: int  # 0-based place in this rater's sequence
    left_is_baseline: bool
    repeat: bool


def plan_assignments(
    seed: int, *, n_pairs: int, rater_ids: Sequence[int], repeat_share: float
) -> list[PlannedShowing]:
    """Each rater's showings: every pair once, plus ``round(repeat_share * n_pairs)`` pairs
    (at least 1 when the share is above 0 and there are 2 or more pairs) shown a second time.

    The order is a fresh permutation per rater; left/right is drawn per showing, so a repeat can
    be mirrored; a repeat always comes after the first showing of its pair, with another pair in
    between whenever the first showing is not the last. Seeded by ``(seed, rater_id)``, so the same seed gives the same plan whatever the order of
    the raters.
    """
    if not 0.0 <= repeat_share <= 1.0:
        raise ValueError("repeat_share must be between 0 and 1")
    out: list[PlannedShowing] = []
    for rater in sorted(set(int(r) for r in rater_ids)):
        rng = np.random.default_rng([int(seed), rater])
        n_repeat = 0
        if repeat_share > 0 and n_pairs >= 2:
            n_repeat = min(n_pairs, max(1, round(repeat_share * n_pairs)))
        repeated = sorted(int(i) for i in rng.choice(n_pairs, size=n_repeat, replace=False))
        first = [int(i) for i in rng.permutation(n_pairs)]
        sequence: list[tuple[int, bool]] = [(i, False) for i in first]
        for i in repeated:  # after the first showing, with at least one pair in between
            slots = list(range(sequence.index((i, False)) + 2, len(sequence) + 1))
            at = int(rng.choice(slots)) if slots else len(sequence)
            sequence.insert(at, (i, True))
        for order, (i, again) in enumerate(sequence):
            out.append(PlannedShowing(rater, i, order, bool(rng.random() < 0.5), again))
    return out


# --- what a rating means --------------------------------------------------------------------------


def change_from_better_side(
    *, better_side: str, grade: float | None, left_is_baseline: bool, neutral: float, best: float
) -> float:
    """Blinded change (follow-up vs baseline, positive = better, in scale steps) of a rating made
    against the other photo: the rater chose the photo that looks better (``left``, ``right`` or
    ``none``) and graded it on the scale's improving half (``neutral`` = no change, ``best`` = the
    scale's best end). Choosing the baseline as the better photo is a worsening of that size."""
    if better_side == "none":
        return 0.0
    if better_side not in ("left", "right"):
        raise ValueError("better_side must be 'left', 'right' or 'none'")
    if grade is None:
        raise ValueError("a grade is needed when one photo looks better")
    size = abs(float(grade) - float(neutral))
    lo, hi = sorted((float(neutral), float(best)))
    if not lo <= float(grade) <= hi or size == 0:
        raise ValueError("the grade must be on the improving half of the scale, beyond no change")
    chose_followup = (better_side == "right") == left_is_baseline
    return size if chose_followup else -size


def change_from_scores(
    *, left_score: float, right_score: float, left_is_baseline: bool, higher_is_better: bool
) -> float:
    """Blinded change of two stand-alone scores (each photo rated on its own)."""
    baseline, followup = (
        (left_score, right_score) if left_is_baseline else (right_score, left_score)
    )
    diff = float(followup) - float(baseline)
    return diff if higher_is_better else -diff
