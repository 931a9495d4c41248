"""The prediction wherever a score is used: stage criteria of the rules and sequence branches."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from services.nurture.sequences.definition import Branch
from services.nurture.sequences.service import LeadView, branch_holds
from services.scoring.engine import Effects, Scorer
from services.scoring.rules import RuleSet

AT = datetime(2026, 6, 1, tzinfo=UTC)
RULES = RuleSet.model_validate({
    "models": [{"name": "b2b", "stages": [
        {"name": "visitor"},
        {"name": "likely", "entry": {"all": [{"kind": "prediction", "gte": 0.6}]},
         "exit": {"all": [{"kind": "prediction", "lt": 0.3}]}},
    ]}],
})  # fmt: skip


def test_a_stage_is_entered_and_left_on_the_prediction() -> None:
    scorer = Scorer(RULES, 1)
    assert scorer.uses_prediction
    state = scorer.new_state(user_id="u")
    fx = Effects()
    scorer.evaluate(state, AT, None, fx)
    assert state.stages["b2b"] == "visitor"  # no prediction: the criterion fails
    state.predictions["b2b"] = 0.7
    scorer.evaluate(state, AT, None, fx)
    assert state.stages["b2b"] == "likely"
    state.predictions["b2b"] = 0.4  # between the thresholds: stays
    scorer.evaluate(state, AT, None, fx)
    assert state.stages["b2b"] == "likely"
    state.predictions["b2b"] = 0.2
    scorer.evaluate(state, AT, None, fx)
    assert [(c.from_stage, c.to_stage, c.kind) for c in fx.stage_changes] == [
        ("visitor", "likely", "entry"),
        ("likely", "visitor", "exit"),
    ]
    assert state.to_json()["predictions"] == {"b2b": 0.2}


def test_a_sequence_branch_tests_the_prediction() -> None:
    branch = Branch.model_validate(
        {"id": "b", "type": "branch", "all": [{"prediction_gte": 0.5, "model": "b2b"}], "then": "x"}
    )
    lead = LeadView(uuid.uuid4(), "u", None, None)
    assert not branch_holds(branch, lead, lambda _: False)
    assert branch_holds(branch, LeadView(uuid.uuid4(), "u", None, None, predictions={"b2b": 0.8}), lambda _: False)
    assert not branch_holds(branch, LeadView(uuid.uuid4(), "u", None, None, predictions={"b2b": 0.3}), lambda _: False)


def test_a_sequence_trigger_fires_when_the_prediction_crosses_upward() -> None:
    from decimal import Decimal

    from services.nurture.sequences.definition import Definition
    from services.nurture.sequences.service import triggered
    from shared.events import LeadScoreChanged

    definition = Definition.model_validate({
        "trigger": {"kind": "prediction_crossed", "model": "b2b", "gte": 0.6},
        "steps": [{"id": "w", "type": "wait", "duration": "PT1H"}],
    })  # fmt: skip

    def change(before: dict[str, float], after: dict[str, float]) -> LeadScoreChanged:
        return LeadScoreChanged(
            event_id=uuid.uuid4(), lead_id=uuid.uuid4(), score=Decimal(1), fit=Decimal(0), engagement=Decimal(1),
            grade="D4", rule_set_version=1, occurred_at=AT, predictions=after, previous_predictions=before,
        )  # fmt: skip

    assert triggered(definition.trigger, change({}, {"b2b": 0.7}))
    assert triggered(definition.trigger, change({"b2b": 0.5}, {"b2b": 0.6}))
    assert not triggered(definition.trigger, change({"b2b": 0.7}, {"b2b": 0.8}))  # already above: no new crossing
    assert not triggered(definition.trigger, change({"b2b": 0.7}, {"b2b": 0.5}))
    assert not triggered(definition.trigger, change({}, {"ecommerce": 0.9}))
