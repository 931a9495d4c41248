"""The pure parts of the scoring admin API: paging cursors and resolving sales decisions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.exceptions import RequestValidationError
from hypothesis import given
from hypothesis import strategies as st

from services.admin.scoring_schemas import SalesDecision
from services.admin.scoring_service import decision_event, decision_properties, decode_cursor, encode_cursor
from services.scoring.engine import SALES_DECISION
from services.scoring.rules import default_rule_set

RULES = default_rule_set()


@given(
    st.datetimes(timezones=st.just(UTC)),
    st.floats(allow_nan=False, allow_infinity=False),
    st.uuids(),
)
def test_a_cursor_gives_back_exactly_the_sort_key_it_was_made_from(at: datetime, score: float, lead: uuid.UUID) -> None:
    assert decode_cursor(encode_cursor(at.isoformat(), score, lead), datetime, float, uuid.UUID) == (at, score, lead)


@given(st.text(max_size=60))
def test_anything_else_as_a_cursor_is_a_400_naming_after(token: str) -> None:
    try:
        decode_cursor(token, datetime, float, uuid.UUID)
    except RequestValidationError as exc:
        assert exc.errors()[0]["loc"] == ("body", "after")


def field_of(exc: pytest.ExceptionInfo[RequestValidationError]) -> str:
    return ".".join(str(p) for p in exc.value.errors()[0]["loc"][1:])


@pytest.mark.parametrize(("current", "expected"), [("mql", "sal"), ("lead", "sal"), ("sal", "sql")])
def test_accept_without_a_stage_moves_to_the_next_stage_only_sales_enters(current: str, expected: str) -> None:
    props = decision_properties(RULES, {"b2b": current}, SalesDecision(decision="accept"))
    assert props == {"decision": "accept", "model": "b2b", "stage": expected}


def test_reject_without_a_stage_leaves_the_target_to_the_engine() -> None:
    body = SalesDecision.model_validate({"decision": "reject", "reason": "no budget", "bant": {"budget": False}})
    props = decision_properties(RULES, {"b2b": "mql"}, body)
    assert props == {"decision": "reject", "model": "b2b", "reason": "no budget", "bant": {"budget": False}}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"decision": "set"}, "stage"),
        ({"decision": "accept", "model": "saas"}, "model"),
        ({"decision": "set", "stage": "purchase"}, "stage"),  # an e-commerce stage, not a B2B one
    ],
)
def test_decisions_the_rules_cannot_carry_out_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(RequestValidationError) as exc:
        decision_properties(RULES, {"b2b": "mql"}, SalesDecision.model_validate(body))
    assert field_of(exc) == field


def test_accept_at_the_last_sales_stage_needs_a_stage() -> None:
    with pytest.raises(RequestValidationError) as exc:
        decision_properties(RULES, {"b2b": "customer"}, SalesDecision(decision="accept"))
    assert field_of(exc) == "stage"


def test_the_decision_event_is_a_track_event_on_the_leads_key() -> None:
    at = datetime(2026, 11, 23, 12, tzinfo=UTC)
    first = decision_event("user-42", {"decision": "accept"}, at)
    second = decision_event("user-42", {"decision": "accept"}, at)
    assert (first.type, first.event, first.lead_key, first.timestamp) == ("track", SALES_DECISION, "user-42", at)
    assert first.source_id == second.source_id and first.event_id != second.event_id
