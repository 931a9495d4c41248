"""Training and judging a predictive model from lead histories: pure, `now` passed in.

Examples are leads at a snapshot time T: a lead counts if it had a human event by T and had not yet
reached the target stage (or a later one); its label is whether it did within the horizon after T.
The test snapshot is `now − horizon` (the latest whose outcome is fully known); the training
snapshots are one, two, … horizons before it, so every training label is settled before the test
window starts and nothing from the test period leaks into training. The deployed model is the one
evaluated. The active rules' score for the same test leads is their history replayed to T.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from services.predictive import evaluation
from services.predictive.features import Event, extract, traits_at, vocabulary
from services.predictive.model import Artifact, fit, matrix, predict, strongest
from services.scoring.engine import Effects, Scorer
from services.scoring.replay import activity_from_history
from services.scoring.repository import HistoryEvent


@dataclass(frozen=True)
class Params:
    funnel_model: str = "b2b"
    target_stage: str = "customer"
    horizon_days: float = 30
    train_snapshots: int = 3
    min_positives: int = 30
    confidence: float = 0.95
    bootstrap: int = 1000
    min_vocab: int = 10
    c: float = 0.5
    seed: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LeadHistory:
    lead_id: uuid.UUID
    email: str | None
    user_id: str | None
    events: list[HistoryEvent]  # event-time order, bot events included (they are skipped here)
    reached_at: datetime | None  # first entry into the target stage or a later one


@dataclass
class Outcome:
    """One training run: the decision and its reason, the metrics, and the artifact if one was fitted."""

    activate: bool
    reason: str
    metrics: dict[str, Any] = field(default_factory=dict)
    artifact: Artifact | None = None


def feature_events(events: list[HistoryEvent]) -> list[Event]:
    """History rows as feature events: human events only, page paths kept."""
    return [
        Event(e.type, e.name, str(e.properties.get("path") or "") if e.type == "page" else None, e.occurred_at)
        for e in events
        if e.bot is None
    ]


def features_at(lead: LeadHistory, events: list[Event], at: datetime) -> dict[str, float]:
    identifies = [(e.occurred_at, e.properties) for e in lead.events if e.type == "identify" and e.bot is None]
    traits = traits_at(identifies, at)
    email = traits.get("email") if isinstance(traits.get("email"), str) else lead.email
    return extract(traits, email, events, at)


def snapshot(
    leads: list[LeadHistory], at: datetime, horizon: timedelta, events_of: dict[uuid.UUID, list[Event]] | None = None
) -> tuple[list[LeadHistory], list[dict[str, float]], list[int]]:
    """The leads eligible at `at`, their features then, and whether they reached the target in time."""
    chosen, rows, labels = [], [], []
    for lead in leads:
        events = events_of[lead.lead_id] if events_of is not None else feature_events(lead.events)
        if not events or events[0].at > at:
            continue
        if lead.reached_at is not None and lead.reached_at <= at:
            continue
        chosen.append(lead)
        rows.append(features_at(lead, events, at))
        labels.append(int(lead.reached_at is not None and lead.reached_at <= at + horizon))
    return chosen, rows, labels


def rule_score_at(scorer: Scorer, lead: LeadHistory, at: datetime) -> float:
    """The active rules' score of the lead at `at`, from its history up to then."""
    state = scorer.new_state(user_id=lead.user_id, email=lead.email)
    fx = Effects()
    past = [e for e in lead.events if e.occurred_at <= at]
    scorer.refit(state, past[0].occurred_at if past else at, None, fx)
    for event in past:
        scorer.apply(state, activity_from_history(event), fx)
    scorer.advance(state, at, fx)
    fx.ledger.clear()
    return state.fit + scorer.engagement_at(state, at)


def train(leads: list[LeadHistory], scorer: Scorer, now: datetime, params: Params) -> Outcome:
    """Fit on the earlier snapshots, test on the latest settled one, decide whether to activate."""
    horizon = timedelta(days=params.horizon_days)
    test_at = now - horizon
    train_rows: list[dict[str, float]] = []
    train_labels: list[int] = []
    events_of = {lead.lead_id: feature_events(lead.events) for lead in leads}
    for k in range(1, params.train_snapshots + 1):
        _, rows, labels = snapshot(leads, test_at - k * horizon, horizon, events_of)
        train_rows += rows
        train_labels += labels
    test_leads, test_rows, test_labels = snapshot(leads, test_at, horizon, events_of)
    metrics: dict[str, Any] = {
        "train": {"leads": len(train_rows), "positives": sum(train_labels),
                  "snapshots": [(test_at - k * horizon).isoformat() for k in range(1, params.train_snapshots + 1)]},
        "test": {"leads": len(test_rows), "positives": sum(test_labels), "snapshot": test_at.isoformat()},
    }  # fmt: skip
    y_train = np.asarray(train_labels, dtype=np.int_)
    folds = 3
    if min(int(y_train.sum()), len(y_train) - int(y_train.sum())) < folds or not test_rows:
        return Outcome(False, "not enough history: each class needs 3 training leads and the test needs leads", metrics)
    names = vocabulary(train_rows, params.min_vocab)
    artifact = fit(matrix(train_rows, names), y_train, names, c=params.c, folds=folds)
    y_test = np.asarray(test_labels, dtype=np.int_)
    probs = predict(artifact, matrix(test_rows, names))
    rules = np.asarray([rule_score_at(scorer, lead, test_at) for lead in test_leads], dtype=np.float64)
    metrics.update(evaluation.report(probs, rules, y_test))
    gain, chance = evaluation.lower_bounds(probs, rules, y_test, params.confidence, params.bootstrap, params.seed)
    metrics["auc_gain_lower_bound"] = round(gain, 4) if np.isfinite(gain) else None
    metrics["auc_over_chance_lower_bound"] = round(chance, 4) if np.isfinite(chance) else None
    metrics["confidence"] = params.confidence
    metrics["features"] = len(names)
    metrics["strongest"] = strongest(artifact)
    decision = evaluation.decide(
        int(y_train.sum()), int(y_test.sum()), gain, chance, params.min_positives, params.confidence
    )
    return Outcome(decision.activate, decision.reason, metrics, artifact)
