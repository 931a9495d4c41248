"""The stopping rule, simulated: vectorised over seeded runs that look at the results after every batch."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from services.nurture.experiments.stats import Arm, compare, crosses, leaders, probability_best, summarize, winner

ALPHA = 0.05
TOLERANCE = 0.015  # binomial noise of a share near 0.05 over 2,000 runs is about 0.005


def first_decision(decisions: NDArray[np.float64]) -> NDArray[np.float64]:
    """Per run, the sign of the first batch at which the rule stopped (0 if it never did)."""
    stopped = decisions != 0
    first = stopped.argmax(axis=1)
    return np.where(stopped.any(axis=1), decisions[np.arange(len(decisions)), first], 0.0)


def peeking_runs(
    rate_a: float, rate_b: float, *, runs: int, batches: int, per_batch: int, seed: int, min_sample: int = 100
) -> NDArray[np.float64]:
    """Binary outcomes arriving in batches; the rule is checked after every batch, as a marketer looking daily."""
    rng = np.random.default_rng(seed)
    xa = rng.binomial(per_batch, rate_a, (runs, batches)).cumsum(axis=1)
    xb = rng.binomial(per_batch, rate_b, (runs, batches)).cumsum(axis=1)
    n = np.broadcast_to(per_batch * np.arange(1, batches + 1), (runs, batches))
    return first_decision(crosses(n, xa, xa, n, xb, xb, alpha=ALPHA, min_sample=min_sample, binary=True))


@pytest.mark.parametrize(("rate", "seed"), [(0.03, 1), (0.2, 2), (0.5, 3)])
def test_equal_variants_peeked_after_every_batch_rarely_declare_a_winner(rate: float, seed: int) -> None:
    outcome = peeking_runs(rate, rate, runs=2000, batches=100, per_batch=50, seed=seed)
    assert (outcome != 0).mean() <= ALPHA + TOLERANCE


def test_a_fixed_sample_z_test_peeked_the_same_way_would_fail_this_check() -> None:
    """The simulation can tell: the naive rule (|z| > 1.96 at any look) gives far more false winners."""
    rng = np.random.default_rng(4)
    runs, batches, per = 2000, 100, 50
    xa = rng.binomial(per, 0.2, (runs, batches)).cumsum(axis=1)
    xb = rng.binomial(per, 0.2, (runs, batches)).cumsum(axis=1)
    n = per * np.arange(1, batches + 1)
    pooled = (xa + xb) / (2 * n)
    z = (xb - xa) / n / np.sqrt(pooled * (1 - pooled) * 2 / n)
    assert (np.abs(z) > 1.96).any(axis=1).mean() > ALPHA + TOLERANCE


def test_equal_revenue_peeked_after_every_batch_rarely_declares_a_winner() -> None:
    """Revenue per lead: most buy nothing, buyers spend a skewed amount."""
    rng = np.random.default_rng(5)
    runs, batches, per = 1000, 60, 100
    totals, squares = [], []
    for _ in range(2):
        spend = (rng.random((runs, batches, per)) < 0.05) * rng.lognormal(4.0, 0.8, (runs, batches, per))
        totals.append(spend.sum(axis=2).cumsum(axis=1))
        squares.append((spend * spend).sum(axis=2).cumsum(axis=1))
    n = np.broadcast_to(per * np.arange(1, batches + 1), (runs, batches))
    decisions = crosses(n, totals[0], squares[0], n, totals[1], squares[1], alpha=ALPHA, min_sample=200, binary=False)
    assert (first_decision(decisions) != 0).mean() <= ALPHA + 2 * TOLERANCE


def test_a_truly_better_variant_wins_most_seeded_runs_and_the_worse_one_almost_never() -> None:
    outcome = peeking_runs(0.10, 0.13, runs=500, batches=60, per_batch=100, seed=6)
    assert (outcome > 0).mean() >= 0.8
    assert (outcome < 0).mean() <= ALPHA


def three_arm_runs(rates: tuple[float, float, float], *, runs: int, seed: int) -> NDArray[np.int64]:
    """Per run, the first winner of three variants checked after every batch (-1: none)."""
    rng = np.random.default_rng(seed)
    batches, per = 60, 60
    x = rng.binomial(per, rates, (runs, batches, 3)).cumsum(axis=1)
    n = np.broadcast_to(per * np.arange(1, batches + 1)[:, None], x.shape)
    found = leaders(n, x, x, alpha=ALPHA, min_sample=100, binary=True)
    stopped = found >= 0
    return np.where(stopped.any(axis=1), found[np.arange(runs), stopped.argmax(axis=1)], -1)


def test_three_equal_variants_peeked_after_every_batch_rarely_declare_a_winner() -> None:
    assert (three_arm_runs((0.2, 0.2, 0.2), runs=1000, seed=8) >= 0).mean() <= ALPHA + TOLERANCE


def test_of_three_variants_the_truly_better_one_wins_most_seeded_runs() -> None:
    first = three_arm_runs((0.10, 0.14, 0.10), runs=400, seed=9)
    assert (first == 1).mean() >= 0.8 and (first == 0).mean() + (first == 2).mean() <= ALPHA


def test_the_winner_must_beat_every_other_variant_after_the_minimum_sample() -> None:
    arms = [Arm("a", 5000, 500, 500), Arm("b", 5000, 750, 750), Arm("c", 5000, 520, 520)]
    assert winner(arms, alpha=ALPHA, min_sample=100, binary=True) == "b"
    assert winner(arms, alpha=ALPHA, min_sample=6000, binary=True) is None  # not enough yet
    close = [Arm("a", 5000, 500, 500), Arm("b", 5000, 750, 750), Arm("c", 5000, 745, 745)]
    assert winner(close, alpha=ALPHA, min_sample=100, binary=True) is None  # b and c cannot be told apart


def test_the_always_valid_interval_is_wider_than_a_fixed_sample_one_and_holds_the_difference() -> None:
    a, b = Arm("a", 2000, 200, 200), Arm("b", 2000, 300, 300)
    c = compare(a, b, alpha=ALPHA, binary=True)
    assert c.difference == pytest.approx(0.05)
    fixed = 1.96 * np.sqrt(0.1 * 0.9 / 2000 + 0.15 * 0.85 / 2000)
    assert c.interval_high - c.interval_low > 2 * fixed
    assert c.interval_low > 0 and c.significant and c.p_value < ALPHA


def test_probability_best_sums_to_one_and_the_same_data_gives_the_same_answer() -> None:
    arms = [Arm("a", 300, 30, 30), Arm("b", 300, 45, 45)]
    first = probability_best(arms, binary=True, seed=7)
    assert sum(first) == pytest.approx(1.0)
    assert first[1] > 0.9
    assert probability_best(arms, binary=True, seed=7) == first


def test_summaries_give_rates_and_intervals_per_variant() -> None:
    [a, empty] = summarize([Arm("a", 200, 50, 50), Arm("b", 0, 0, 0)], binary=True)
    assert a.rate == 0.25 and a.ci_low < 0.25 < a.ci_high and 0 <= a.ci_low and a.ci_high <= 1
    assert empty.n == 0 and empty.rate == 0.0
    [revenue] = summarize([Arm("r", 4, 100.0, 5000.0)], binary=False)
    assert revenue.rate == 25.0 and revenue.ci_low < 25.0 < revenue.ci_high
