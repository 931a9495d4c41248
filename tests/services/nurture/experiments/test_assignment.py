"""Deterministic assignment: a lead's variant depends only on the experiment and the lead."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from services.nurture.experiments.assignment import assign
from services.nurture.sequences.definition import Definition

LEADS = [uuid.UUID(int=i * 7919 + 13) for i in range(20_000)]


@given(st.uuids(), st.text(min_size=1, max_size=40))
def test_the_same_lead_always_gets_the_same_variant(lead: uuid.UUID, key: str) -> None:
    weights = [("a", 1.0), ("b", 2.0), ("c", 0.5)]
    assert assign(key, lead, weights) == assign(key, lead, list(weights))


def test_traffic_follows_the_weights_and_a_zero_weight_gets_none() -> None:
    counts = Counter(assign("exp-1", lead, [("a", 1.0), ("b", 3.0), ("off", 0.0)]) for lead in LEADS)
    assert counts["off"] == 0
    assert counts["a"] / len(LEADS) == pytest.approx(0.25, abs=0.015)


def test_two_experiments_split_the_same_leads_independently() -> None:
    weights = [("a", 1.0), ("b", 1.0)]
    same = sum(assign("exp-1", lead, weights) == assign("exp-2", lead, weights) for lead in LEADS)
    assert same / len(LEADS) == pytest.approx(0.5, abs=0.02)


def test_no_positive_weight_is_refused() -> None:
    with pytest.raises(ValueError, match="positive weight"):
        assign("exp", LEADS[0], [("a", 0.0)])


def test_definitions_check_variants_and_split_paths() -> None:
    ok = Definition.model_validate(
        {
            "trigger": {"kind": "event", "event": "Signed Up"},
            "steps": [
                {"id": "pick", "type": "split",
                 "paths": [{"key": "short", "next": "mail"}, {"key": "none", "next": "exit"}]},
                {"id": "mail", "type": "send_email", "template_id": "t0",
                 "variants": [{"key": "a", "template_id": "t1"}, {"key": "b", "template_id": "t2", "weight": 3}]},
            ],
        }
    )  # fmt: skip
    assert ok.steps[1].type == "send_email" and len(ok.steps[1].variants) == 2
    paths = [{"key": "a", "next": "nowhere"}, {"key": "b", "next": "exit"}]
    bad_target = {"id": "pick", "type": "split", "paths": paths}
    with pytest.raises(ValidationError, match="unknown step 'nowhere'"):
        Definition.model_validate({"trigger": {"kind": "event", "event": "x"}, "steps": [bad_target]})
    one_variant = {"id": "m", "type": "send_email", "template_id": "t", "variants": [{"key": "a", "template_id": "t"}]}
    with pytest.raises(ValidationError, match="at least two variants"):
        Definition.model_validate({"trigger": {"kind": "event", "event": "x"}, "steps": [one_variant]})
    repeated = [{"key": "a", "template_id": "t"}, {"key": "a", "template_id": "u"}]
    with pytest.raises(ValidationError, match="variant keys repeat"):
        Definition.model_validate(
            {"trigger": {"kind": "event", "event": "x"},
             "steps": [{"id": "m", "type": "send_email", "template_id": "t", "variants": repeated}]}
        )  # fmt: skip
