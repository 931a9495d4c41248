"""Judging a model on later leads against the active rules: AUC, precision at the top decile,
calibration, and the bootstrap lower bound of the AUC gain that decides activation. Pure numpy.

The gain is paired: every bootstrap sample draws the same test leads for the model and the rules,
so what varies is only which leads were drawn. The lower bound at confidence c is the (1 − c)
quantile of the sampled gains. A percentile bootstrap is slightly optimistic with few positives, so
a model must also beat chance (AUC − 0.5) at the same confidence; on data without signal the two
together activate in fewer than 1 − c of trainings (tests/services/predictive/test_no_signal.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.stats import rankdata  # type: ignore[import-untyped]

Vector = NDArray[np.float64]


def _aucs(scores: NDArray[np.float64], labels: NDArray[np.float64]) -> Vector:
    """AUC per row (Mann–Whitney with tied scores counted half); NaN where a row has one class only."""
    ranks = rankdata(scores, axis=1)
    pos = labels.sum(axis=1)
    neg = labels.shape[1] - pos
    with np.errstate(invalid="ignore", divide="ignore"):
        result: Vector = ((ranks * labels).sum(axis=1) - pos * (pos + 1) / 2) / (pos * neg)
    result[(pos == 0) | (neg == 0)] = np.nan
    return result


def auc(scores: Vector, labels: NDArray[np.int_]) -> float:
    """Area under the ROC curve: the chance a random positive outranks a random negative."""
    return float(_aucs(scores[None, :], labels[None, :].astype(np.float64))[0])


def precision_at_top(scores: Vector, labels: NDArray[np.int_], share: float = 0.1) -> float:
    """Share of positives among the highest-scored `share` of leads (ties broken by order)."""
    n = max(1, round(len(scores) * share))
    top = np.argsort(-scores, kind="stable")[:n]
    return float(labels[top].mean()) if len(scores) else float("nan")


def reliability(probs: Vector, labels: NDArray[np.int_], bins: int = 10) -> list[dict[str, float]]:
    """Predicted against observed rate per probability bin (only bins with leads)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(probs, edges[1:-1]), 0, bins - 1)
    out = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            out.append({
                "from": round(float(edges[b]), 2),
                "to": round(float(edges[b + 1]), 2),
                "leads": int(mask.sum()),
                "predicted": round(float(probs[mask].mean()), 4),
                "observed": round(float(labels[mask].mean()), 4),
            })  # fmt: skip
    return out


def brier(probs: Vector, labels: NDArray[np.int_]) -> float:
    return float(np.mean((probs - labels) ** 2))


def lower_bounds(
    model: Vector, rules: Vector, labels: NDArray[np.int_], confidence: float, samples: int, seed: int
) -> tuple[float, float]:
    """(1 − confidence) quantiles of AUC(model) − AUC(rules) and of AUC(model) − 0.5 over paired,
    stratified bootstrap samples (positives and negatives resampled apart, so each sample keeps the
    test's class counts and every AUC is defined)."""
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    if len(pos) == 0 or len(neg) == 0:
        return float("-inf"), float("-inf")
    y = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    n = len(y)
    gains: list[Vector] = []
    over_chance: list[Vector] = []
    chunk = max(1, min(samples, 2_000_000 // n))
    for start in range(0, samples, chunk):
        size = min(chunk, samples - start)
        idx = np.concatenate(
            [
                pos[rng.integers(0, len(pos), size=(size, len(pos)))],
                neg[rng.integers(0, len(neg), size=(size, len(neg)))],
            ],
            axis=1,
        )
        ys = np.broadcast_to(y, idx.shape)
        model_auc = _aucs(model[idx], ys)
        gains.append(model_auc - _aucs(rules[idx], ys))
        over_chance.append(model_auc - 0.5)
    q = 1.0 - confidence
    return float(np.quantile(np.concatenate(gains), q)), float(np.quantile(np.concatenate(over_chance), q))


@dataclass(frozen=True)
class Decision:
    activate: bool
    reason: str


def decide(
    train_positives: int,
    test_positives: int,
    gain_bound: float,
    chance_bound: float,
    min_positives: int,
    confidence: float,
) -> Decision:
    """Activate only with enough positives on both sides, an AUC gain over the rules that holds up and
    a model that beats chance at the same confidence."""
    if train_positives < min_positives or test_positives < min_positives:
        return Decision(
            False,
            f"too few positives: {train_positives} to train on and {test_positives} to test on, "
            f"{min_positives} needed for each",
        )
    if not gain_bound > 0:
        return Decision(
            False,
            f"no reliable gain over the rules: the {confidence:.0%} lower bound of the AUC gain is {gain_bound:.4f}",
        )
    if not chance_bound > 0:
        return Decision(
            False,
            f"not reliably better than chance: the {confidence:.0%} lower bound of AUC − 0.5 is {chance_bound:.4f}",
        )
    return Decision(True, f"the {confidence:.0%} lower bound of the AUC gain over the rules is {gain_bound:.4f} > 0")


def report(probs: Vector, rule_scores: Vector, labels: NDArray[np.int_]) -> dict[str, Any]:
    """The model and the rules side by side on the same test leads."""

    def rounded(value: float) -> float | None:
        return None if np.isnan(value) else round(value, 4)

    return {
        "model": {
            "auc": rounded(auc(probs, labels)),
            "precision_top_decile": rounded(precision_at_top(probs, labels)),
            "brier": rounded(brier(probs, labels)),
            "reliability": reliability(probs, labels),
        },
        "rules": {
            "auc": rounded(auc(rule_scores, labels)),
            "precision_top_decile": rounded(precision_at_top(rule_scores, labels)),
        },
        "base_rate": rounded(float(labels.mean())) if len(labels) else None,
    }
