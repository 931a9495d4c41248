"""Without signal in the data, a model must almost never be activated: at most 1 − confidence of
the time, over many generated histories (each seed a new data set, a new bootstrap)."""

from __future__ import annotations

from datetime import UTC, datetime

from services.predictive.service import Params, train
from services.scoring.engine import Scorer
from services.scoring.rules import RuleSet
from tests.services.predictive.generate import generate

NOW = datetime(2026, 11, 1, tzinfo=UTC)
SEEDS = 100
CONFIDENCE = 0.95

# The shipped rules' scoring parts that the generated behaviour touches, with a one-stage funnel:
# the same comparison as the defaults, a fraction of the replay cost per seed.
RULES = RuleSet.model_validate({
    "behaviour": [
        {"id": "pricing", "type": "page", "conditions": [{"field": "properties.path", "op": "contains",
                                                          "value": "/pricing"}], "points": 10},
        {"id": "page", "type": "page", "points": 1, "cap_per_day": 10},
        {"id": "open", "event": "Email Opened", "points": 1, "cap_per_day": 5},
    ],
    "fit": [{"id": "business", "conditions": [{"field": "email", "op": "business_email"}], "points": 10}],
    "models": [{"name": "b2b", "stages": [{"name": "visitor"}]}],
})  # fmt: skip


def test_without_signal_activation_stays_at_or_below_the_error_rate() -> None:
    scorer = Scorer(RULES, 1)
    activated, judged = 0, 0
    for seed in range(SEEDS):
        leads = [g.history() for g in generate(400, 10_000 + seed, NOW, signal=False)]
        params = Params(min_positives=15, bootstrap=300, confidence=CONFIDENCE, seed=seed)
        outcome = train(leads, scorer, NOW, params)
        activated += outcome.activate
        judged += "too few positives" not in outcome.reason and outcome.artifact is not None
    assert judged >= 0.9 * SEEDS  # the decision was made on the AUC, not for want of positives
    assert activated / SEEDS <= 1 - CONFIDENCE, f"{activated} of {SEEDS} trainings on noise were activated"
