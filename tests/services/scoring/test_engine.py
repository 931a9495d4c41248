"""The pure scoring engine: decay, caps, ledger, grades, stages, time-driven changes, replay."""

from __future__ import annotations

import math
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.scoring.engine import SALES_DECISION, Activity, Effects, LeadState, Scorer
from services.scoring.replay import rebuild
from services.scoring.repository import HistoryEvent, LeadRow
from services.scoring.rules import RuleSet, default_rule_set

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
DEFAULTS = Scorer(default_rule_set(), 1)


def rules(**overrides: Any) -> RuleSet:
    base: dict[str, Any] = {
        "behaviour": [
            {"id": "demo", "event": "Demo Requested", "points": 30},
            {"id": "pricing", "type": "page", "conditions": [{"field": "properties.path", "op": "contains",
                                                               "value": "/pricing"}], "points": 10},
            {"id": "open", "event": "Email Opened", "points": 1, "cap_per_day": 2},
            {"id": "careers", "type": "page", "conditions": [{"field": "properties.path", "op": "starts_with",
                                                               "value": "/careers"}], "points": -10},
        ],
        "half_life_days": 10,
        "models": default_rule_set().model_dump(by_alias=True)["models"],
    }  # fmt: skip
    base.update(overrides)
    return RuleSet.model_validate(base)


def act(name: str | None, at: datetime, type: str = "track", **kw: Any) -> Activity:
    return Activity(uuid.uuid4(), type, name, at, **kw)


def known(scorer: Scorer, at: datetime = T0, **traits: Any) -> tuple[LeadState, Effects]:
    state, fx = scorer.new_state(), Effects()
    email = traits.get("email")
    scorer.apply(state, act(None, at, "identify", traits=traits, user_id="u1", email=email), fx)
    return state, fx


def ledger_sums(fx: Effects) -> tuple[float, float]:
    fit = sum(e.points for e in fx.ledger if e.kind == "fit")
    return fit, sum(e.points for e in fx.ledger if e.kind != "fit")


def test_engagement_halves_every_half_life_and_the_api_time_decides() -> None:
    scorer = Scorer(rules(), 1)
    state, fx = known(scorer)
    scorer.apply(state, act("Demo Requested", T0), fx)
    assert scorer.engagement_at(state, T0) == 30
    assert scorer.engagement_at(state, T0 + timedelta(days=10)) == pytest.approx(15)
    assert scorer.engagement_at(state, T0 + timedelta(days=20)) == pytest.approx(7.5)


events_strategy = st.lists(
    st.tuples(st.sampled_from(["Demo Requested", "pricing", "careers", "Other"]), st.integers(0, 60 * 24 * 40)),
    max_size=30,
)


def to_activity(name: str, minutes: int) -> Activity:
    at = T0 + timedelta(minutes=minutes)
    if name in {"pricing", "careers"}:
        return act(None, at, "page", properties={"path": f"/{name}/x"})
    return act(name, at)


@settings(max_examples=60, deadline=None)
@given(events_strategy, st.randoms())
def test_without_caps_the_score_does_not_depend_on_arrival_order(
    events: list[tuple[str, int]], rnd: random.Random
) -> None:
    scorer = Scorer(rules(), 1)
    activities = [to_activity(n, m) for n, m in events]
    later = T0 + timedelta(days=60)
    results = []
    for order in (activities, rnd.sample(activities, len(activities))):
        state, fx = known(scorer)
        for a in order:
            scorer.apply(state, a, fx)
        results.append(scorer.engagement_at(state, later))
    assert results[0] == pytest.approx(results[1], abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(events_strategy, st.randoms())
def test_the_ledger_adds_up_to_fit_and_engagement(events: list[tuple[str, int]], rnd: random.Random) -> None:
    scorer = Scorer(rules(fit=[{"id": "vp", "conditions": [{"field": "traits.title", "op": "matches",
                                                             "value": "(?i)vp"}], "points": 20}]), 1)  # fmt: skip
    state, fx = known(scorer, title="VP Marketing")
    for a in rnd.sample([to_activity(n, m) for n, m in events], len(events)):
        scorer.apply(state, a, fx)
    scorer.advance(state, T0 + timedelta(days=90), fx)
    fit, engagement = ledger_sums(fx)
    assert fit == state.fit == 20
    assert engagement == pytest.approx(state.engagement, abs=1e-6)


def test_bot_events_score_nothing_and_change_no_stage() -> None:
    scorer = Scorer(rules(), 1)
    state, fx = known(scorer)
    before = (state.engagement, dict(state.stages), len(fx.ledger))
    for i in range(5):
        scorer.apply(state, act("Demo Requested", T0 + timedelta(minutes=i), bot=True), fx)
    assert (state.engagement, state.stages, len(fx.ledger)) == before


def test_caps_per_day_and_lifetime() -> None:
    scorer = Scorer(rules(behaviour=[
        {"id": "open", "event": "Email Opened", "points": 1, "cap_per_day": 2},
        {"id": "demo", "event": "Demo Requested", "points": 30, "cap_lifetime": 1},
    ], half_life_days=None), 1)  # fmt: skip
    state, fx = known(scorer)
    for day in range(3):
        for i in range(5):
            scorer.apply(state, act("Email Opened", T0 + timedelta(days=day, minutes=i)), fx)
    for i in range(3):
        scorer.apply(state, act("Demo Requested", T0 + timedelta(days=4, minutes=i)), fx)
    assert state.engagement == 3 * 2 + 30
    assert [e.rule_id for e in fx.ledger if e.kind == "behaviour"].count("demo") == 1


def test_fit_and_engagement_give_the_two_axis_grade() -> None:
    scorer = DEFAULTS
    state, fx = known(scorer, title="VP Sales", employees=500, email="vp@acme.io")
    assert state.fit == 40  # senior title 20 + company size 10 + business email 10
    assert state.grade == "A4"
    scorer.apply(state, act("Demo Requested", T0), fx)
    scorer.apply(state, act("Contact Requested", T0), fx)
    scorer.apply(state, act(None, T0, "page", properties={"path": "/pricing"}), fx)
    assert state.grade == "A1"
    student, _ = known(scorer, title="Student", email="kid@gmail.com")
    assert student.fit == -20 and student.grade == "D4"


def test_a_lead_becomes_mql_notifies_sales_and_decays_out_at_a_computed_time() -> None:
    scorer = Scorer(rules(), 1)
    state, fx = known(scorer, email="ann@acme.io")
    assert state.stages["b2b"] == "lead"
    scorer.apply(state, act("Demo Requested", T0), fx)
    scorer.apply(state, act("Demo Requested", T0 + timedelta(minutes=1)), fx)
    assert state.stages["b2b"] == "mql"
    assert [c.to_stage for c in fx.sales_stages] == ["mql"]
    # About 60 points (as of the second event) fall below the exit threshold 40 after 10·log2(60/40) days.
    expected = T0 + timedelta(minutes=1, days=10 * math.log2(state.engagement / 40))
    exits = []
    for tick_every in (timedelta(hours=1), timedelta(days=3)):
        doc = orjson.loads(orjson.dumps(state.to_json()))
        copy = LeadState.from_parts(doc, stages=state.stages, traits=state.traits,
                                    trait_times=state.trait_times, email=state.email, user_id=state.user_id,
                                    fit=state.fit, engagement=state.engagement, grade=state.grade)  # fmt: skip
        out = Effects()
        tick = T0
        while tick < T0 + timedelta(days=30):
            tick += tick_every
            scorer.advance(copy, tick, out)
        exit_change = next(c for c in out.stage_changes if c.kind == "exit")
        assert exit_change.to_stage == "lead"
        exits.append(exit_change.at)
    assert exits[0] == exits[1]
    assert abs((exits[0] - expected).total_seconds()) < 2


def test_inactivity_points_land_at_their_own_time_whatever_the_tick() -> None:
    scorer = Scorer(rules(inactivity=[{"id": "quiet", "days": 14, "points": -5}], half_life_days=None), 1)
    results = []
    for tick in (T0 + timedelta(days=15), T0 + timedelta(days=40)):
        state, fx = known(scorer)
        scorer.apply(state, act("Demo Requested", T0), fx)
        scorer.advance(state, tick, fx)
        scorer.advance(state, tick + timedelta(days=100), fx)  # once per quiet spell
        results.append([(e.rule_id, e.points, e.at) for e in fx.ledger if e.kind == "inactivity"])
    assert results[0] == results[1] == [("quiet", -5.0, T0 + timedelta(days=14))]


def test_sales_rejection_recycles_and_blocks_automatic_requalification() -> None:
    scorer = Scorer(rules(recycle_days=30, half_life_days=None), 1)
    state, fx = known(scorer)
    scorer.apply(state, act("Demo Requested", T0), fx)
    scorer.apply(state, act("Demo Requested", T0), fx)
    assert state.stages["b2b"] == "mql"
    reject = {"decision": "reject", "reason": "student project", "actor": "sam@sales"}
    scorer.apply(state, act(SALES_DECISION, T0 + timedelta(days=1), properties=reject), fx)
    assert state.stages["b2b"] == "lead"
    scorer.apply(state, act("Demo Requested", T0 + timedelta(days=2)), fx)
    assert state.stages["b2b"] == "lead"  # still blocked
    scorer.apply(state, act("Demo Requested", T0 + timedelta(days=32)), fx)
    assert state.stages["b2b"] == "mql"
    accept = {"decision": "accept", "stage": "sal", "bant": {"budget": "50k"}}
    scorer.apply(state, act(SALES_DECISION, T0 + timedelta(days=33), properties=accept), fx)
    sales = [c for c in fx.stage_changes if c.kind == "sales"]
    assert [(c.from_stage, c.to_stage, c.reason) for c in sales] == [
        ("mql", "lead", "student project"),
        ("mql", "sal", None),
    ]
    assert sales[1].details == {"decision": "accept", "bant": {"budget": "50k"}}


def test_ecommerce_funnel_follows_the_shopper() -> None:
    state, fx = DEFAULTS.new_state(), Effects()
    steps = ["Product Viewed", "Product Added", "Order Completed", "Order Completed", "Product Reviewed"]
    seen = []
    for i, name in enumerate(steps):
        DEFAULTS.apply(state, act(name, T0 + timedelta(hours=i)), fx)
        seen.append(state.stages["ecommerce"])
    assert seen == ["interest", "decision", "purchase", "retention", "advocacy"]


def history_of(activities: list[Activity], lead: uuid.UUID) -> list[HistoryEvent]:
    return [
        HistoryEvent(lead, a.event_id or uuid.uuid4(), a.type, a.name,
                     a.traits if a.type == "identify" else a.properties, None, a.at)
        for a in activities
    ]  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(events_strategy)
def test_a_rebuild_from_history_equals_live_scoring_of_ordered_events(events: list[tuple[str, int]]) -> None:
    scorer = Scorer(rules(inactivity=[{"id": "quiet", "days": 7, "points": -3}]), 1)
    identify = act(None, T0 - timedelta(minutes=1), "identify", traits={"title": "CTO"}, user_id="u1")
    ordered = [identify, *sorted((to_activity(n, m) for n, m in events), key=lambda a: a.at)]
    live, fx = scorer.new_state(), Effects()
    for a in ordered:
        scorer.apply(live, a, fx)
    until = T0 + timedelta(days=50)
    scorer.advance(live, until, fx)
    lead = uuid.uuid4()
    row = LeadRow(lead, "u1", None, None, "lead", 0, dict(live.traits), dict(live.trait_times), None, None, 0, 0,  # type: ignore[arg-type]
                  None, "D4", {}, {}, 0)  # fmt: skip
    rebuilt = rebuild(scorer, row, history_of(ordered, lead), until, Effects())
    assert rebuilt.engagement == pytest.approx(live.engagement, abs=1e-6)
    assert rebuilt.fit == live.fit and rebuilt.stages == live.stages and rebuilt.grade == live.grade


@given(st.lists(st.tuples(st.sampled_from(["plan", "name"]), st.text(max_size=3), st.integers(0, 100)), max_size=20))
def test_traits_are_last_write_wins_by_event_time_in_any_order(writes: list[tuple[str, str, int]]) -> None:
    def apply(order: list[tuple[str, str, int]]) -> dict[str, Any]:
        state = DEFAULTS.new_state()
        for key, value, minute in order:
            DEFAULTS.apply(state, act(None, T0 + timedelta(minutes=minute), "identify", traits={key: value}), Effects())
        return state.traits

    expected: dict[str, object] = {}
    for key in {k for k, _, _ in writes}:
        latest = max(m for k, _, m in writes if k == key)
        candidates = {v for k, v, m in writes if k == key and m == latest}
        if len(candidates) == 1:  # ties between different values have no defined winner
            expected[key] = candidates.pop()
    forward, backward = apply(writes), apply(list(reversed(writes)))
    for key, value in expected.items():
        assert forward[key] == backward[key] == value


def test_merging_two_leads_of_one_person_adds_their_engagement() -> None:
    scorer = Scorer(rules(), 1)
    a, fx = known(scorer)
    scorer.apply(a, act("Demo Requested", T0), fx)
    b, fx_b = scorer.new_state(), Effects()
    scorer.apply(b, act(None, T0 + timedelta(days=10), "page", properties={"path": "/pricing"}), fx_b)
    scorer.merge(a, b, T0 + timedelta(days=10), None, fx)
    assert a.engagement == pytest.approx(15 + 10)
    assert a.stages["b2b"] == "lead"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"half_life_days": -1}, "half_life_days"),
        ({"primary_model": "nope"}, "primary_model"),
        ({"behaviour": [{"id": "x", "points": 1, "conditions": [{"field": "properties.n", "op": "gt", "value": "a"}]}]},
         "behaviour"),
        ({"behaviour": [{"id": "x", "points": 1, "conditions": [{"field": "p", "op": "matches", "value": "("}]}]},
         "behaviour"),
        ({"grades": {"fit": [1, 2, 3]}}, "grades"),
    ],
)  # fmt: skip
def test_invalid_rule_sets_are_refused_naming_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        rules(**change)
    error = caught.value.errors()[0]
    assert (error["loc"] and error["loc"][0] == field) or field in error["msg"]
