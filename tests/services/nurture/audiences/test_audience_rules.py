"""The pure core: who is in an audience at `now`, and the hashed identifiers sent to ad platforms."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from services.nurture.audiences.definition import AudienceDefinition
from services.nurture.audiences.exports import csv_lines
from services.nurture.audiences.identifiers import hashes, phone_digits
from services.nurture.audiences.service import (
    CartFact,
    EventFact,
    LeadFacts,
    LiveAudience,
    is_member,
    membership_changes,
)
from services.nurture.audiences.sync import collapse
from services.nurture.audiences.sync_repository import QueueItem

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
LEAD = uuid.UUID(int=1)


def definition(**raw: Any) -> AudienceDefinition:
    return AudienceDefinition.model_validate(raw)


VIEWED_WEEK = definition(include=[{"kind": "event", "name": "Product Viewed", "days": 7}])
ABANDONED = definition(include=[{"kind": "cart_abandoned", "minutes": 60}])


def facts(**fields: Any) -> LeadFacts:
    return LeadFacts(lead_id=LEAD, **fields)


def cart(status: str = "open", idle: timedelta = timedelta(hours=2), items: int = 1, total: float = 50.0) -> CartFact:
    return CartFact(status, items, total, NOW - idle - timedelta(minutes=5), NOW - idle)


@given(age_hours=st.floats(min_value=0, max_value=24 * 30, allow_nan=False))
def test_event_counts_exactly_while_inside_its_window(age_hours: float) -> None:
    lead = facts(events=(EventFact("Product Viewed", NOW - timedelta(hours=age_hours)),))
    assert is_member(VIEWED_WEEK, lead, NOW) == (age_hours <= 24 * 7)


@given(later_hours=st.floats(min_value=0, max_value=24 * 30, allow_nan=False))
def test_a_member_by_event_leaves_once_the_event_ages_out_and_never_returns_by_itself(later_hours: float) -> None:
    lead = facts(events=(EventFact("product viewed", NOW),))
    assert is_member(VIEWED_WEEK, lead, NOW)
    later = NOW + timedelta(hours=later_hours)
    assert is_member(VIEWED_WEEK, lead, later) == (later_hours <= 24 * 7)


def test_event_property_conditions_and_count_must_hold() -> None:
    rule = definition(
        include=[{
            "kind": "event", "name": "Product Viewed", "days": 3, "count": 2,
            "conditions": [{"field": "properties.category", "op": "eq", "value": "shoes"}],
        }]
    )  # fmt: skip
    shoes = EventFact("Product Viewed", NOW - timedelta(hours=1), {"category": "Shoes"})
    hats = EventFact("Product Viewed", NOW - timedelta(hours=1), {"category": "hats"})
    assert not is_member(rule, facts(events=(shoes, hats)), NOW)
    assert is_member(rule, facts(events=(shoes, shoes)), NOW)


@given(
    idle_minutes=st.floats(min_value=0, max_value=60 * 24 * 10, allow_nan=False),
    status=st.sampled_from(["open", "checkout", "ordered", "emptied"]),
)
def test_cart_is_abandoned_only_when_open_and_idle_long_enough(idle_minutes: float, status: str) -> None:
    lead = facts(carts=(cart(status, timedelta(minutes=idle_minutes)),))
    assert is_member(ABANDONED, lead, NOW) == (status in ("open", "checkout") and idle_minutes >= 60)


def test_an_order_after_the_cart_started_means_not_abandoned_and_a_customer() -> None:
    lead = facts(carts=(cart(),), last_order_at=NOW - timedelta(minutes=10))
    assert not is_member(ABANDONED, lead, NOW)
    keep_customers = definition(include=[{"kind": "cart_abandoned"}], exclude_customers=False)
    assert not is_member(keep_customers, lead, NOW)  # the order came after the cart: not abandoned either
    earlier = facts(carts=(cart(),), last_order_at=NOW - timedelta(days=30))
    assert is_member(keep_customers, earlier, NOW)
    assert not is_member(ABANDONED, earlier, NOW)  # a past buyer is a customer, excluded by default


def test_empty_cart_and_minimum_total() -> None:
    rule = definition(include=[{"kind": "cart_abandoned", "minutes": 30, "min_total": 100}])
    assert not is_member(rule, facts(carts=(cart(items=0, total=500),)), NOW)
    assert not is_member(rule, facts(carts=(cart(total=99.99),)), NOW)
    assert is_member(rule, facts(carts=(cart(total=100),)), NOW)


@given(unsubscribed=st.booleans(), stage=st.sampled_from(["visitor", "lead", "mql", "customer"]))
def test_unsubscribed_and_customers_are_excluded_by_default(unsubscribed: bool, stage: str) -> None:
    rule = definition(include=[{"kind": "score", "gte": 10}])
    lead = facts(score=50, unsubscribed=unsubscribed, stage=stage)
    assert is_member(rule, lead, NOW) == (not unsubscribed and stage != "customer")
    everyone = definition(include=[{"kind": "score", "gte": 10}], exclude_customers=False, exclude_unsubscribed=False)
    assert is_member(everyone, lead, NOW)


@given(score=st.floats(min_value=-100, max_value=200, allow_nan=False), grade=st.sampled_from(["A1", "B2", "D4"]))
def test_score_range_grade_stage_and_trait_conditions(score: float, grade: str) -> None:
    rule = definition(
        include=[
            {"kind": "score", "gte": 20, "lt": 80},
            {"kind": "grade", "in": ["A1", "B2"]},
            {"kind": "stage", "model": "b2b", "stages": ["lead", "mql"]},
            {"kind": "trait", "condition": {"field": "traits.plan", "op": "in", "value": ["pro", "team"]}},
        ]
    )
    lead = facts(score=score, grade=grade, stages={"b2b": "mql"}, traits={"plan": "Pro"})
    assert is_member(rule, lead, NOW) == (20 <= score < 80 and grade in ("A1", "B2"))
    fit = definition(include=[{"kind": "fit", "gte": 10}, {"kind": "engagement", "lt": 5}])
    assert is_member(fit, facts(fit=score, engagement=score), NOW) == (10 <= score < 5)
    assert not is_member(rule, facts(score=50, grade="A1", stages={"b2b": "visitor"}, traits={"plan": "pro"}), NOW)


def test_exclusion_by_any_condition() -> None:
    rule = definition(
        include=[{"kind": "event", "name": "Product Viewed", "days": 7}],
        exclude=[{"kind": "event", "name": "Demo Booked", "days": 30}],
    )
    viewed = EventFact("Product Viewed", NOW - timedelta(days=1))
    assert is_member(rule, facts(events=(viewed,)), NOW)
    assert not is_member(rule, facts(events=(viewed, EventFact("Demo Booked", NOW - timedelta(days=20)))), NOW)


def test_unknown_lead_is_never_a_member_and_changes_are_entered_and_left() -> None:
    audience = LiveAudience(uuid.UUID(int=9), "viewers", VIEWED_WEEK)
    a, b, c = uuid.UUID(int=1), uuid.UUID(int=2), uuid.UUID(int=3)
    found = {
        a: LeadFacts(a, events=(EventFact("Product Viewed", NOW),)),
        b: LeadFacts(b),
    }
    changes = membership_changes([audience], [a, b, c], found, {("viewers", b), ("viewers", c)}, NOW)
    assert [lead for _, lead in changes.entered] == [a]
    assert sorted(lead for _, lead in changes.left) == [b, c]


def test_definition_is_validated() -> None:
    with pytest.raises(ValidationError):
        definition(include=[])
    with pytest.raises(ValidationError):
        definition(include=[{"kind": "score"}])
    with pytest.raises(ValidationError):
        definition(include=[{"kind": "event", "name": "x", "days": 0}])
    with pytest.raises(ValidationError):
        definition(include=[{"kind": "nope"}])


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def test_hashes_follow_the_platforms_normalisation() -> None:
    found = hashes("  Ann.Lee@Example.COM ", "+1 (650) 253-1234")
    assert found == {
        "email": sha("ann.lee@example.com"),
        "phone": sha("16502531234"),  # Meta: digits with country code
        "phone_e164": sha("+16502531234"),  # Google: E.164
    }
    assert hashes(None, "0044 20 7946 0958") == {"phone": sha("442079460958"), "phone_e164": sha("+442079460958")}
    assert hashes("not-an-email", "12") == {}


@given(st.text(max_size=30))
def test_phone_digits_are_digits_only_and_e164_sized(raw: str) -> None:
    digits = phone_digits(raw)
    assert digits is None or (digits.isdigit() and digits.isascii() and 8 <= len(digits) <= 15 and digits[0] != "0")


@given(st.lists(st.tuples(st.integers(0, 4), st.sampled_from(["add", "remove"])), max_size=30))
def test_queued_changes_collapse_to_each_leads_last(changes: list[tuple[int, str]]) -> None:
    items = [QueueItem(i, op, uuid.UUID(int=lead), None) for i, (lead, op) in enumerate(changes)]
    adds, removes, erased = collapse(items)
    last = {uuid.UUID(int=lead): op for lead, op in changes}
    assert set(adds) == {lead for lead, op in last.items() if op == "add"}
    assert set(removes) == {lead for lead, op in last.items() if op == "remove"}
    assert erased == [] and not set(adds) & set(removes)


def test_csv_export_lines_skip_members_without_identifiers() -> None:
    members = [hashes("a@b.example", "+1 650 253 1234"), {}, hashes(None, "+44 20 7946 0958")]
    meta = "".join(csv_lines("meta", members)).splitlines()
    assert meta == ["email,phone", f"{sha('a@b.example')},{sha('16502531234')}", f",{sha('442079460958')}"]
    google = "".join(csv_lines("google", members)).splitlines()
    assert google[0] == "Email,Phone" and google[2] == f",{sha('+442079460958')}"


@given(st.floats(min_value=0, max_value=1, allow_nan=False))
def test_prediction_condition_reads_the_named_or_primary_models_probability(p: float) -> None:
    likely = definition(include=[{"kind": "prediction", "gte": 0.6}], exclude_customers=False)
    named = definition(include=[{"kind": "prediction", "model": "ecommerce", "lt": 0.3}], exclude_customers=False)
    facts = LeadFacts(LEAD, predictions={"b2b": p, "ecommerce": p}, primary_model="b2b")
    assert is_member(likely, facts, NOW) == (p >= 0.6)
    assert is_member(named, facts, NOW) == (p < 0.3)
    assert not is_member(likely, LeadFacts(LEAD, primary_model="b2b"), NOW)  # no prediction: not a member
