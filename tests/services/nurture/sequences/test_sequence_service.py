"""Pure sequence decisions: triggers, exits, waits, branches, re-entry, definitions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from services.nurture.sequences.definition import Branch, Definition
from services.nurture.sequences.service import LeadView, branch_holds, exit_reason, may_enter, triggered, wakes
from shared.events import LeadActivity, LeadScoreChanged, LeadStageChanged

LEAD = uuid.uuid4()
NOW = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


def activity(name: str, **properties: Any) -> LeadActivity:
    return LeadActivity(
        event_id=uuid.uuid4(), lead_id=LEAD, name=name, properties=properties, source_id=uuid.uuid4(),
        cause_event_id=uuid.uuid4(), occurred_at=NOW,
    )  # fmt: skip


def score(before: float | None, after: float, grade: str = "B2", previous_grade: str | None = "B3") -> LeadScoreChanged:
    return LeadScoreChanged(
        event_id=uuid.uuid4(), lead_id=LEAD, score=Decimal(after), fit=Decimal(0), engagement=Decimal(after),
        grade=grade, previous_score=None if before is None else Decimal(before), previous_grade=previous_grade,
        rule_set_version=1, occurred_at=NOW,
    )  # fmt: skip


def stage(to: str, before: str | None, kind: str = "entry") -> LeadStageChanged:
    return LeadStageChanged(
        event_id=uuid.uuid4(), lead_id=LEAD, model="b2b", stage=to, previous_stage=before, kind=kind,
        rule_set_version=1, occurred_at=NOW,
    )  # fmt: skip


CART = Definition.model_validate(
    {
        "trigger": {"kind": "event", "event": "Checkout Started",
                    "conditions": [{"field": "properties.total", "op": "gte", "value": 20}]},
        "steps": [
            {"id": "wait-order", "type": "wait_for_event", "event": "Order Completed", "timeout": "PT1H",
             "on_event": "exit"},
            {"id": "remind", "type": "send_email", "template_id": "t-1"},
        ],
        "exit": [{"kind": "event", "event": "Order Completed"}, {"kind": "unsubscribed"}],
    }
)  # fmt: skip


def test_event_triggers_match_name_case_insensitively_and_property_conditions() -> None:
    assert triggered(CART.trigger, activity("checkout started", total=50))
    assert not triggered(CART.trigger, activity("Checkout Started", total=5))
    assert not triggered(CART.trigger, activity("Product Added", total=50))


def test_score_and_grade_triggers_fire_on_crossing_only() -> None:
    crossed = Definition.model_validate({"trigger": {"kind": "score_crossed", "gte": 50},
                                         "steps": [{"id": "s", "type": "wait", "duration": 60}]})  # fmt: skip
    assert triggered(crossed.trigger, score(40, 55))
    assert not triggered(crossed.trigger, score(55, 60))  # already above
    assert triggered(crossed.trigger, score(None, 50))
    graded = Definition.model_validate({"trigger": {"kind": "grade_reached", "in": ["A1", "A2"]},
                                        "steps": [{"id": "s", "type": "wait", "duration": 60}]})  # fmt: skip
    assert triggered(graded.trigger, score(1, 2, grade="A2", previous_grade="B2"))
    assert not triggered(graded.trigger, score(1, 2, grade="A1", previous_grade="A2"))


def test_stage_triggers_ignore_rescores() -> None:
    mql = Definition.model_validate({"trigger": {"kind": "stage_entered", "stage": "mql"},
                                     "steps": [{"id": "s", "type": "wait", "duration": 60}]})  # fmt: skip
    assert triggered(mql.trigger, stage("mql", "lead"))
    assert not triggered(mql.trigger, stage("mql", "lead", kind="rescore"))
    assert not triggered(mql.trigger, stage("sal", "mql"))


def test_exit_rules_and_waits() -> None:
    assert exit_reason(CART.exit, activity("Order Completed")) == "event Order Completed"
    assert exit_reason(CART.exit, activity("Unsubscribed")) == "unsubscribed"
    assert exit_reason(CART.exit, activity("Product Viewed")) is None
    waiting = {"step": 0, "event": "Order Completed", "conditions": []}
    assert wakes(waiting, activity("order completed"))
    assert not wakes(waiting, activity("Product Viewed")) and not wakes(None, activity("Order Completed"))


def test_branches_look_at_traits_score_stage_and_past_events() -> None:
    tests = [{"trait": {"field": "traits.plan", "op": "eq", "value": "pro"}}, {"score_gte": 30}, {"has_event": "Demo"}]
    branch = Branch.model_validate({"id": "b", "type": "branch", "then": "x", "all": tests})
    lead = LeadView(LEAD, "u", None, "u@x.io", {"plan": "Pro"}, score=35)
    assert branch_holds(branch, lead, {"Demo"}.__contains__)
    assert not branch_holds(branch, lead, set().__contains__)
    assert not branch_holds(branch, LeadView(LEAD, "u", None, None, {"plan": "free"}, score=35), {"Demo"}.__contains__)


@pytest.mark.parametrize(
    ("policy", "active", "ever", "allowed"),
    [("never", 0, 1, False), ("never", 0, 0, True), ("after_exit", 1, 1, False), ("after_exit", 0, 3, True),
     ("always", 2, 5, True)],
)  # fmt: skip
def test_reentry_policies(policy: str, active: int, ever: int, allowed: bool) -> None:
    assert may_enter(policy, active, ever) is allowed


def test_definitions_refuse_unknown_step_targets_and_repeated_ids() -> None:
    with pytest.raises(ValidationError, match="unknown step 'nope'"):
        Definition.model_validate({"trigger": {"kind": "event", "event": "X"},
                                   "steps": [{"id": "a", "type": "wait", "duration": 5, "next": "nope"}]})  # fmt: skip
    with pytest.raises(ValidationError, match="ids repeat"):
        Definition.model_validate({"trigger": {"kind": "event", "event": "X"}, "steps": [
            {"id": "a", "type": "wait", "duration": 5}, {"id": "a", "type": "wait", "duration": 5}]})  # fmt: skip
    assert CART.after(0, "exit") is None and CART.after(0, None) == 1 and CART.after(1, None) is None
