"""Pure experiment decisions: which variants a step offers, the results a marketer reads, and the winner.

The statistics and why the stopping rule stays valid under daily looks are in `stats.py`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.nurture.experiments.stats import Arm, Comparison, compare, pair_alpha, summarize, winner
from services.nurture.sequences.definition import Definition, SendEmail, Split


class ExperimentError(ValueError):
    """A request that cannot become an experiment; `field` names what to fix."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def variants_of(definition: Definition, step_id: str) -> tuple[str, list[dict[str, Any]]]:
    """The experiment kind ('send' or 'path') and the arms of the step, as stored on the experiment."""
    step = next((s for s in definition.steps if s.id == step_id), None)
    if step is None:
        raise ExperimentError(f"the sequence has no step {step_id!r}", "step_id")
    if isinstance(step, SendEmail) and step.variants:
        return "send", [v.model_dump() for v in step.variants]
    if isinstance(step, Split):
        return "path", [p.model_dump() for p in step.paths]
    raise ExperimentError(f"step {step_id!r} is neither a send step with variants nor a split", "step_id")


def binary(metric: str) -> bool:
    """Open, click and conversion are proportions; revenue is a mean per exposed lead."""
    return metric != "revenue"


def _comparison(c: Comparison) -> dict[str, Any]:
    return {
        "variant": c.variant,
        "baseline": c.baseline,
        "difference": c.difference,
        "interval_low": c.interval_low,
        "interval_high": c.interval_high,
        "likelihood_ratio": c.likelihood_ratio,
        "p_value": c.p_value,
        "alpha": c.alpha,
        "significant": c.significant,
    }


def results(experiment: dict[str, Any], arms: list[Arm]) -> dict[str, Any]:
    """Per variant counts, rates, intervals and P(best); each variant against the first; the current leader."""
    is_binary = binary(experiment["metric"])
    level = pair_alpha(experiment["alpha"], len(arms))
    summaries = summarize(arms, binary=is_binary, seed=int(experiment["id"].int % 2**32))
    weights = {v["key"]: v for v in experiment["variants"]}
    return {
        "variants": [
            {
                "key": s.key,
                "weight": weights.get(s.key, {}).get("weight", 0.0),
                "template_id": weights.get(s.key, {}).get("template_id"),
                "next": weights.get(s.key, {}).get("next"),
                "exposures": s.n,
                "total": s.total,
                "rate": s.rate,
                "ci_low": s.ci_low,
                "ci_high": s.ci_high,
                "prob_best": s.prob_best,
            }
            for s in summaries
        ],
        "comparisons": [_comparison(compare(arms[0], arm, alpha=level, binary=is_binary)) for arm in arms[1:]],
        "min_sample_reached": bool(arms) and all(a.n >= experiment["min_sample"] for a in arms),
        "leader": winner(arms, alpha=experiment["alpha"], min_sample=experiment["min_sample"], binary=is_binary),
    }


def decide(experiment: dict[str, Any], arms: list[Arm], now: datetime) -> tuple[str, dict[str, Any]] | None:
    """The winner and the numbers it was chosen on, once the always-valid test has one; else None."""
    found = results(experiment, arms)
    leader = found["leader"]
    if leader is None:
        return None
    return leader, {
        "decided_at": now.isoformat(),
        "metric": experiment["metric"],
        "alpha": experiment["alpha"],
        "min_sample": experiment["min_sample"],
        "rule": "mixture SPRT, always valid; pairs at alpha / number of pairs",
        "variants": found["variants"],
        "comparisons": found["comparisons"],
    }
