"""Agreement statistics against published worked examples, and the study randomisation."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.outcomes import agreement as ag

NAN = np.nan


def _expand(table: list[list[int]]) -> tuple[list[int], list[int]]:
    a, b = [], []
    for i, row in enumerate(table):
        for j, count in enumerate(row):
            a += [i] * count
            b += [j] * count
    return a, b


#: SAS/STAT PROC FREQ "Agreement Study": two dermatologists rate 88 patients' skin condition
#: (terrible, poor, marginal, clear). Published: simple kappa 0.3449, 95 % CI 0.2030 to 0.4868.
SKIN = [[10, 4, 1, 0], [5, 10, 12, 2], [2, 4, 12, 5], [0, 2, 6, 13]]


def test_simple_kappa_matches_the_sas_skin_condition_example() -> None:
    a, b = _expand(SKIN)
    e = ag.weighted_kappa(a, b, categories=[0, 1, 2, 3], weights="none")
    assert e.n == 88
    assert e.value == pytest.approx(0.3449, abs=5e-5)
    assert e.low == pytest.approx(0.2030, abs=5e-5) and e.high == pytest.approx(0.4868, abs=5e-5)


@pytest.mark.parametrize("weights,power", [("linear", 1), ("quadratic", 2)])
def test_weighted_kappa_equals_its_definition(weights: str, power: int) -> None:
    """1 - sum(w*observed)/sum(w*expected) with disagreement weights |i-j|^power (Cohen 1968),
    computed here by hand on the same table."""
    t = np.array(SKIN, dtype=float)
    p = t / t.sum()
    expected = np.outer(p.sum(axis=1), p.sum(axis=0))
    i, j = np.indices(t.shape)
    w = np.abs(i - j) ** power
    by_hand = 1 - (w * p).sum() / (w * expected).sum()
    a, b = _expand(SKIN)
    e = ag.weighted_kappa(a, b, categories=[0, 1, 2, 3], weights=weights)
    assert e.value == pytest.approx(by_hand, abs=1e-12)
    assert e.low is not None and e.value is not None and e.high is not None
    assert e.low < e.value < e.high
    # ordered disagreements count less than in simple kappa on this table
    assert e.value is not None
    unweighted = ag.weighted_kappa(a, b, categories=[0, 1, 2, 3], weights="none").value
    assert unweighted is not None
    assert e.value > unweighted


def test_kappa_of_identical_and_of_constant_ratings() -> None:
    assert ag.weighted_kappa([0, 1, 2, 2], [0, 1, 2, 2], categories=[0, 1, 2]).value == 1.0
    e = ag.weighted_kappa([1, 1, 1], [1, 1, 1], categories=[0, 1, 2])
    assert e.value is None and "one category" in e.note
    with pytest.raises(ValueError, match="not one of the scale"):
        ag.weighted_kappa([0, 5], [0, 1], categories=[0, 1, 2])


def test_icc_2_1_matches_shrout_and_fleiss_1979() -> None:
    """Shrout & Fleiss (1979), Table 2: 6 targets x 4 judges; published ICC(2,1) = 0.29."""
    data = np.array(
        [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]],
        dtype=float,
    )
    e = ag.icc_2_1(data)
    assert e.n is not None and e.value is not None
    assert e.n == 6 and round(e.value, 2) == 0.29
    assert e.low is not None and e.value is not None and e.high is not None
    assert e.low < e.value < e.high
    # a unit with a missing rating is left out, not guessed
    with_gap = np.vstack([data, [[1, NAN, 3, 4]]])
    assert ag.icc_2_1(with_gap).value == pytest.approx(e.value)
    assert ag.icc_2_1(data[:2]).value is None


#: Krippendorff (2011) "Computing Krippendorff's alpha-reliability", the 4 observers x 12 units
#: example with missing values. Published: nominal 0.743, ordinal 0.815, interval 0.849.
KRIPPENDORFF = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
        [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
    ]
)


@pytest.mark.parametrize(
    "level,published", [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)]
)
def test_krippendorff_alpha_matches_the_published_example(
    level: ag.AlphaLevel, published: float
) -> None:
    e = ag.krippendorff_alpha(KRIPPENDORFF, level=level, reps=200, seed=1)
    assert e.value is not None
    assert round(e.value, 3) == published
    assert e.n == 11  # unit 12 has one rating: not pairable
    assert e.low is not None and e.value is not None and e.high is not None
    assert e.low <= e.value <= e.high
    assert ag.krippendorff_alpha(KRIPPENDORFF, level=level, reps=200, seed=1) == e  # seeded


def test_wilson_interval_matches_newcombe_1998() -> None:
    """Newcombe (1998) Statistics in Medicine 17:857, examples 81/263 and 15/148."""
    e = ag.wilson(81, 263)
    assert e.low is not None and e.high is not None
    assert (round(e.low, 4), round(e.high, 4)) == (0.2553, 0.3662)
    e = ag.wilson(15, 148)
    assert e.low is not None and e.high is not None
    assert (round(e.low, 4), round(e.high, 4)) == (0.0624, 0.1605)
    assert ag.wilson(0, 0).value is None


def test_bootstrap_mean_brackets_the_mean_and_is_seeded() -> None:
    values = [1.0, 2.0, 2.0, 3.0, 4.0, 0.0]
    e = ag.bootstrap_mean(values, seed=3)
    assert e.value is not None and e.low is not None and e.high is not None
    assert e.value == pytest.approx(2.0) and e.low < 2.0 < e.high
    assert ag.bootstrap_mean(values, seed=3) == e
    assert ag.bootstrap_mean([1.0]).value is None


def test_plan_shows_every_pair_once_plus_repeats_in_a_random_order_per_rater() -> None:
    plan = ag.plan_assignments(42, n_pairs=10, rater_ids=[7, 3, 5], repeat_share=0.2)
    assert plan == ag.plan_assignments(42, n_pairs=10, rater_ids=[5, 3, 7], repeat_share=0.2)
    assert plan != ag.plan_assignments(43, n_pairs=10, rater_ids=[5, 3, 7], repeat_share=0.2)
    orders = {}
    for rater in (3, 5, 7):
        mine = sorted((p for p in plan if p.rater_id == rater), key=lambda p: p.order_index)
        assert [p.order_index for p in mine] == list(range(12))
        firsts = [p.pair_index for p in mine if not p.repeat]
        assert sorted(firsts) == list(range(10))
        repeats = [p for p in mine if p.repeat]
        assert len(repeats) == 2
        for r in repeats:
            first = next(p for p in mine if p.pair_index == r.pair_index and not p.repeat)
            assert r.order_index >= first.order_index + 2  # later, never straight after
        orders[rater] = firsts
    assert len({tuple(o) for o in orders.values()}) == 3  # each rater has their own order
    sides = [p.left_is_baseline for p in plan]
    assert 0 < sum(sides) < len(sides)
    assert not [
        p for p in ag.plan_assignments(1, n_pairs=5, rater_ids=[1], repeat_share=0.0) if p.repeat
    ]
    with pytest.raises(ValueError):
        ag.plan_assignments(1, n_pairs=5, rater_ids=[1], repeat_share=1.5)


def test_a_rating_becomes_a_change_whichever_side_the_follow_up_was_on() -> None:
    # GAIS-like: 1 = much improved, 3 = no change (best end 1)
    kw = dict(neutral=3.0, best=1.0)
    assert (
        ag.change_from_better_side(better_side="right", grade=1, left_is_baseline=True, **kw) == 2
    )
    assert (
        ag.change_from_better_side(better_side="left", grade=1, left_is_baseline=False, **kw) == 2
    )
    assert (
        ag.change_from_better_side(better_side="left", grade=2, left_is_baseline=True, **kw) == -1
    )
    assert (
        ag.change_from_better_side(better_side="none", grade=None, left_is_baseline=True, **kw) == 0
    )
    with pytest.raises(ValueError):
        ag.change_from_better_side(better_side="right", grade=4, left_is_baseline=True, **kw)
    # a stand-alone severity scale (lower is better)
    assert (
        ag.change_from_scores(
            left_score=3, right_score=1, left_is_baseline=True, higher_is_better=False
        )
        == 2
    )
    assert (
        ag.change_from_scores(
            left_score=3, right_score=1, left_is_baseline=False, higher_is_better=False
        )
        == -2
    )
