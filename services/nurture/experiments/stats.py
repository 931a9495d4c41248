"""Pure statistics of experiments: per-variant summaries, the probability each variant is best, and the
stopping rule.

**The stopping rule is a mixture sequential probability ratio test (mSPRT)** on the difference of two
means (a proportion is the mean of 0/1 outcomes), as in Johari, Pekelis and Walsh, "Always valid
inference" (Optimizely's Stats Engine). With θ̂ the observed difference, V its estimated variance and a
normal mixing distribution N(0, τ²) over the true difference, the likelihood ratio against "no
difference" is

    Λ = sqrt(V / (V + τ²)) · exp(τ² θ̂² / (2 V (V + τ²)))

and, under no difference, Λ is (asymptotically) a non-negative martingale with mean 1. By Ville's
inequality the chance that it *ever* reaches 1/α is at most α — so the marketer may look every day,
every hour or after every send, and stop the first time it crosses, without the error growing with
the number of looks (a fixed-sample z-test checked daily would declare false winners several times
more often than its α). Inverting the same ratio gives always-valid confidence intervals for the
difference. We chose it over a Bayesian "probability to be best > 95 %" rule because that rule is not
calibrated under peeking (its false-winner share grows with the looks) while the mSPRT's guarantee
does not depend on how often anybody looks; its price is a little power, paid in sample size.

τ is set relative to the spread of one observation (τ = ρ·σ, ρ = `TAU_RELATIVE`), so one setting
fits open rates and revenue alike. With more than two variants every pair is tested at α divided by
the number of pairs (Bonferroni) and a winner must beat every other variant. The variance uses
(x + 1) / (n + 2) for a proportion so that an early 0-of-20 does not look certain.

The probability that each variant is best is Bayesian and descriptive (Beta(1 + x, 1 + n − x)
posteriors, or normal ones for revenue, by seeded Monte Carlo): it is shown, never used to stop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
from numpy.typing import NDArray

TAU_RELATIVE = 0.1  # the mixing spread: a tenth of one observation's standard deviation
Z95 = 1.959963984540054
PROB_BEST_DRAWS = 20_000

Floats = NDArray[np.float64]


@dataclass(frozen=True)
class Arm:
    """One variant's exposures `n`, the sum of outcomes and the sum of squared outcomes."""

    key: str
    n: int
    total: float
    total_sq: float


@dataclass(frozen=True)
class Summary:
    key: str
    n: int
    total: float
    rate: float
    ci_low: float
    ci_high: float
    prob_best: float


@dataclass(frozen=True)
class Comparison:
    """`variant` minus `baseline`, with its always-valid interval and p-value at the pair's level."""

    variant: str
    baseline: str
    difference: float
    interval_low: float
    interval_high: float
    likelihood_ratio: float
    p_value: float
    alpha: float
    significant: bool


def moments(n: Any, total: Any, total_sq: Any, binary: bool) -> tuple[Floats, Floats]:
    """Mean and per-observation variance, vectorised; a proportion's variance is regularised."""
    n_ = np.maximum(np.asarray(n, dtype=np.float64), 1.0)
    total_ = np.asarray(total, dtype=np.float64)
    mean = total_ / n_
    if binary:
        p = (total_ + 1.0) / (n_ + 2.0)
        return mean, p * (1.0 - p)
    sq = np.asarray(total_sq, dtype=np.float64)
    var = np.maximum(sq / n_ - mean * mean, 0.0) * n_ / np.maximum(n_ - 1.0, 1.0)
    return mean, var


def _pair(
    n_a: Any, t_a: Any, s_a: Any, n_b: Any, t_b: Any, s_b: Any, binary: bool, tau_relative: float
) -> tuple[Floats, Floats, Floats]:
    """θ̂ = mean_b − mean_a, its variance V and the mixing variance τ²."""
    mean_a, var_a = moments(n_a, t_a, s_a, binary)
    mean_b, var_b = moments(n_b, t_b, s_b, binary)
    na = np.maximum(np.asarray(n_a, dtype=np.float64), 1.0)
    nb = np.maximum(np.asarray(n_b, dtype=np.float64), 1.0)
    variance = var_a / na + var_b / nb
    pooled = (var_a * na + var_b * nb) / (na + nb)
    return mean_b - mean_a, variance, (tau_relative**2) * pooled


def log_likelihood_ratio(diff: Floats, variance: Floats, tau2: Floats) -> Floats:
    """log Λ of the normal-mixture SPRT against 'no difference' (−inf where nothing is known yet)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        value = 0.5 * np.log(variance / (variance + tau2)) + tau2 * diff * diff / (2.0 * variance * (variance + tau2))
    return np.where((variance > 0) & (tau2 > 0), value, -np.inf)


def half_width(variance: Floats, tau2: Floats, alpha: float) -> Floats:
    """Half the always-valid (1 − α) interval around θ̂: every θ whose Λ(θ) stays below 1/α."""
    with np.errstate(divide="ignore", invalid="ignore"):
        log_term = math.log(1.0 / alpha) + 0.5 * np.log((variance + tau2) / variance)
        inside = 2.0 * variance * (variance + tau2) / tau2 * log_term
    return np.where((variance > 0) & (tau2 > 0), np.sqrt(inside), np.inf)


def crosses(
    n_a: Any, t_a: Any, s_a: Any, n_b: Any, t_b: Any, s_b: Any, *, alpha: float, min_sample: int, binary: bool,
    tau_relative: float = TAU_RELATIVE,
) -> Floats:  # fmt: skip
    """Vectorised stopping rule for one pair: +1 where b wins, −1 where a wins, 0 where it goes on."""
    diff, variance, tau2 = _pair(n_a, t_a, s_a, n_b, t_b, s_b, binary, tau_relative)
    enough = (np.asarray(n_a) >= min_sample) & (np.asarray(n_b) >= min_sample)
    hit = enough & (log_likelihood_ratio(diff, variance, tau2) >= math.log(1.0 / alpha))
    return np.where(hit, np.sign(diff), 0.0)


def compare(a: Arm, b: Arm, *, alpha: float, binary: bool, tau_relative: float = TAU_RELATIVE) -> Comparison:
    """b against a: difference, always-valid interval, likelihood ratio and p-value (1/Λ, capped at 1)."""
    diff, variance, tau2 = _pair(a.n, a.total, a.total_sq, b.n, b.total, b.total_sq, binary, tau_relative)
    log_lr = float(log_likelihood_ratio(diff, variance, tau2))
    width = float(half_width(variance, tau2, alpha))
    d = float(diff)
    p_value = 1.0 if log_lr <= 0 else math.exp(-log_lr)
    return Comparison(
        variant=b.key, baseline=a.key, difference=d, interval_low=d - width, interval_high=d + width,
        likelihood_ratio=math.exp(min(log_lr, 700.0)) if log_lr > -math.inf else 0.0, p_value=p_value,
        alpha=alpha, significant=p_value <= alpha,
    )  # fmt: skip


def pair_alpha(alpha: float, variants: int) -> float:
    """The level of each pairwise test: α over the number of pairs (Bonferroni)."""
    pairs = variants * (variants - 1) // 2
    return alpha / max(pairs, 1)


def leaders(
    n: Any, total: Any, total_sq: Any, *, alpha: float, min_sample: int, binary: bool,
    tau_relative: float = TAU_RELATIVE,
) -> NDArray[np.int64]:  # fmt: skip
    """Vectorised winner rule: arms on the last axis; the index of the arm that beats every other one
    (each pair at α / pairs), once every arm has `min_sample`; −1 where there is none yet."""
    n_, t_, s_ = (np.asarray(x, dtype=np.float64) for x in (n, total, total_sq))
    k = n_.shape[-1]
    level = pair_alpha(alpha, k)
    wins = np.zeros(n_.shape, dtype=np.int64)
    for i, j in combinations(range(k), 2):
        sign = crosses(n_[..., i], t_[..., i], s_[..., i], n_[..., j], t_[..., j], s_[..., j], alpha=level,
                       min_sample=min_sample, binary=binary, tau_relative=tau_relative)  # fmt: skip
        wins[..., j] += sign > 0
        wins[..., i] += sign < 0
    best = (wins == k - 1) & (n_ >= min_sample).all(axis=-1, keepdims=True)
    return np.where(best.any(axis=-1), best.argmax(axis=-1), -1)


def winner(
    arms: list[Arm], *, alpha: float, min_sample: int, binary: bool, tau_relative: float = TAU_RELATIVE
) -> str | None:
    """The variant that beats every other one under the always-valid test, once each has `min_sample`."""
    if len(arms) < 2:
        return None
    found = int(
        leaders(
            [a.n for a in arms],
            [a.total for a in arms],
            [a.total_sq for a in arms],
            alpha=alpha,
            min_sample=min_sample,
            binary=binary,
            tau_relative=tau_relative,
        )
    )
    return arms[found].key if found >= 0 else None


def probability_best(arms: list[Arm], *, binary: bool, seed: int = 12, draws: int = PROB_BEST_DRAWS) -> list[float]:
    """Posterior probability that each arm has the highest mean (seeded, so the same data gives the same answer)."""
    if not arms:
        return []
    rng = np.random.default_rng(seed)
    samples = np.empty((draws, len(arms)))
    for i, arm in enumerate(arms):
        if binary:
            samples[:, i] = rng.beta(1.0 + arm.total, 1.0 + max(arm.n - arm.total, 0.0), draws)
        else:
            mean, var = moments(arm.n, arm.total, arm.total_sq, binary=False)
            scale = math.sqrt(float(var) / max(arm.n, 1)) if arm.n > 1 else 1e9
            samples[:, i] = rng.normal(float(mean), scale, draws)
    best = np.bincount(np.argmax(samples, axis=1), minlength=len(arms))
    return [float(b) / draws for b in best]


def summarize(arms: list[Arm], *, binary: bool, seed: int = 12) -> list[Summary]:
    """Per variant: the rate (or mean), a fixed-sample 95 % interval (Wilson for proportions) and P(best)."""
    probabilities = probability_best(arms, binary=binary, seed=seed)
    out = []
    for arm, prob in zip(arms, probabilities, strict=True):
        if arm.n == 0:
            out.append(Summary(arm.key, 0, arm.total, 0.0, 0.0, 1.0 if binary else 0.0, prob))
            continue
        rate = arm.total / arm.n
        if binary:
            z2 = Z95 * Z95
            centre = (rate + z2 / (2 * arm.n)) / (1 + z2 / arm.n)
            spread = Z95 * math.sqrt(rate * (1 - rate) / arm.n + z2 / (4 * arm.n * arm.n)) / (1 + z2 / arm.n)
            low, high = max(0.0, centre - spread), min(1.0, centre + spread)
        else:
            _, var = moments(arm.n, arm.total, arm.total_sq, binary=False)
            spread = Z95 * math.sqrt(float(var) / arm.n)
            low, high = rate - spread, rate + spread
        out.append(Summary(arm.key, arm.n, arm.total, rate, low, high, prob))
    return out
