"""Pure sequence decisions: which message enrolls, exits or wakes a lead, and where a branch goes."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from services.nurture.sequences.definition import Branch, Definition, ExitRule, Trigger
from services.scoring.conditions import all_hold, holds
from services.scoring.rules import Condition
from shared.events import LeadActivity, LeadChange, LeadScoreChanged, LeadStageChanged

UNSUBSCRIBED = "Unsubscribed"


@dataclass(frozen=True)
class LeadView:
    """What steps and branches may look at."""

    lead_id: uuid.UUID
    user_id: str | None
    anonymous_id: str | None
    email: str | None
    traits: dict[str, Any] = field(default_factory=dict)
    score: float = 0.0
    grade: str = "D4"
    stage: str = "visitor"
    stages: dict[str, str] = field(default_factory=dict)
    referral_code: str | None = None
    predictions: dict[str, float] = field(default_factory=dict)  # funnel model → predicted probability


def _same(a: str, b: str) -> bool:
    return a.casefold() == b.casefold()


def triggered(trigger: Trigger, message: LeadChange) -> bool:
    """Whether `message` enrolls its lead under `trigger`."""
    if trigger.kind == "event":
        return (
            isinstance(message, LeadActivity)
            and _same(message.name, trigger.event)
            and all_hold(trigger.conditions, {"properties": message.properties})
        )
    if trigger.kind == "stage_entered":
        return (
            isinstance(message, LeadStageChanged)
            and message.model == trigger.model
            and message.stage == trigger.stage
            and message.previous_stage != message.stage
            and message.kind != "rescore"
        )
    if trigger.kind == "score_crossed":
        if not isinstance(message, LeadScoreChanged):
            return False
        before = float(message.previous_score) if message.previous_score is not None else float("-inf")
        return before < trigger.gte <= float(message.score)
    if trigger.kind == "grade_reached":
        return (
            isinstance(message, LeadScoreChanged)
            and message.grade in trigger.in_
            and message.previous_grade not in trigger.in_
        )
    if trigger.kind == "prediction_crossed":
        if not isinstance(message, LeadScoreChanged) or trigger.model not in message.predictions:
            return False
        before = message.previous_predictions.get(trigger.model, float("-inf"))
        return before < trigger.gte <= message.predictions[trigger.model]
    return False  # audience_joined: enrolled by the step that adds the lead to the audience


def exit_reason(rules: list[ExitRule], message: LeadChange) -> str | None:
    """Why `message` takes its lead out of a sequence with these exit rules, if it does."""
    for rule in rules:
        if (
            rule.kind == "event"
            and isinstance(message, LeadActivity)
            and rule.event
            and _same(message.name, rule.event)
        ):
            return f"event {message.name}"
        if rule.kind == "unsubscribed" and isinstance(message, LeadActivity) and _same(message.name, UNSUBSCRIBED):
            return "unsubscribed"
        if (
            rule.kind == "stage_reached"
            and isinstance(message, LeadStageChanged)
            and message.model == rule.model
            and message.stage == rule.stage
        ):
            return f"reached {rule.model} stage {rule.stage}"
    return None


def wakes(waiting: dict[str, Any] | None, message: LeadChange) -> bool:
    """Whether `message` is the event a waiting enrollment waits for."""
    if not waiting or not isinstance(message, LeadActivity) or not _same(message.name, waiting["event"]):
        return False
    conditions = [Condition.model_validate(c) for c in waiting.get("conditions", [])]
    return all_hold(conditions, {"properties": message.properties})


def branch_holds(branch: Branch, lead: LeadView, has_event: Callable[[str], bool]) -> bool:
    """Every test of the branch holds for the lead (past events through `has_event`)."""
    for test in branch.all:
        if test.trait is not None and not holds(test.trait, {"traits": lead.traits, "email": lead.email}):
            return False
        if test.score_gte is not None and not lead.score >= test.score_gte:
            return False
        if test.score_lt is not None and not lead.score < test.score_lt:
            return False
        if test.stage is not None and lead.stages.get(test.model, lead.stage) != test.stage:
            return False
        if test.has_event is not None and not has_event(test.has_event):
            return False
        predicted = lead.predictions.get(test.model)
        if test.prediction_gte is not None and not (predicted is not None and predicted >= test.prediction_gte):
            return False
        if test.prediction_lt is not None and not (predicted is not None and predicted < test.prediction_lt):
            return False
    return True


def may_enter(reentry: str, active: int, ever: int) -> bool:
    """The re-entry policy, given how many enrollments of this lead are active and ever were."""
    if reentry == "never":
        return ever == 0
    if reentry == "after_exit":
        return active == 0
    return True


def definition_of(raw: dict[str, Any]) -> Definition:
    return Definition.model_validate(raw)
