"""Properties of the pure cores the rest of the product trusts, over generated inputs: stages under the
default rule set, decay, time-driven changes whatever the tick, and send scheduling under any quiet hours.
(tests/services/scoring/test_engine.py and tests/services/nurture/sequences/test_timing.py hold the
properties of arrival order, ledger sums, replay and one fixed send policy.)"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.nurture.sequences.timing import SendPolicy, is_quiet, next_send_time, zone
from services.scoring.engine import Activity, Effects, Scorer
from services.scoring.rules import default_rule_set
from tests.services.scoring.test_engine import T0, rules

DEFAULTS = Scorer(default_rule_set(), 1)
MODELS = {m.name: [s.name for s in m.stages] for m in default_rule_set().models}

# Everything the default rules react to, plus noise; minutes after T0 over three months.
KINDS = ["Demo Requested", "Contact Requested", "Form Submitted", "Email Opened", "Email Link Clicked",
         "Product Added", "Checkout Started", "Order Completed", "Unsubscribed", "pricing", "careers", "page",
         "identify-work", "identify-free", "Other"]  # fmt: skip
activities = st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 60 * 24 * 90)), max_size=40)


def activity(kind: str, minutes: int) -> Activity:
    at = T0 + timedelta(minutes=minutes)
    if kind in ("pricing", "careers", "page"):
        return Activity(uuid.uuid4(), "page", None, at, properties={"path": f"/{kind}"})
    if kind.startswith("identify"):
        email = "cto@acme.example" if kind == "identify-work" else "someone@gmail.com"
        traits: dict[str, Any] = {"email": email, "title": "CTO", "company": "Acme"}
        return Activity(uuid.uuid4(), "identify", None, at, traits=traits, user_id="u1", email=email)
    props: dict[str, Any] = {"revenue": "120.00", "currency": "EUR"} if kind == "Order Completed" else {}
    return Activity(uuid.uuid4(), "track", kind, at, properties=props)


@settings(max_examples=80, deadline=None)
@given(activities, st.lists(st.integers(1, 60 * 24 * 30), max_size=5))
def test_stage_changes_form_one_chain_per_model_ending_in_the_leads_stage(
    events: list[tuple[str, int]], pauses: list[int]
) -> None:
    state, fx = DEFAULTS.new_state(), Effects()
    for kind, minutes in sorted(events, key=lambda e: e[1]):
        DEFAULTS.advance(state, T0 + timedelta(minutes=minutes), fx)
        DEFAULTS.apply(state, activity(kind, minutes), fx)
    end = T0 + timedelta(days=90)
    for pause in pauses:
        end += timedelta(minutes=pause)
        DEFAULTS.advance(state, end, fx)
    for model, stages in MODELS.items():
        chain = [c for c in fx.stage_changes if c.model == model]
        for before, after in zip(chain, chain[1:], strict=False):
            assert after.from_stage == before.to_stage, (model, before, after)
            assert after.at >= before.at
        assert all(c.to_stage in stages for c in chain), (model, chain)
        if chain:
            assert state.stages.get(model) == chain[-1].to_stage
            assert chain[0].from_stage in (None, stages[0])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["Demo Requested", "pricing"]), st.integers(0, 60 * 24 * 20)), min_size=1),
    st.lists(st.integers(0, 60 * 24 * 200), min_size=2, max_size=6),
)
def test_without_events_engagement_only_decays_halving_every_half_life(
    events: list[tuple[str, int]], offsets: list[int]
) -> None:
    scorer = Scorer(rules(half_life_days=10), 1)
    state, fx = scorer.new_state(), Effects()
    ordered = sorted(events, key=lambda e: e[1])
    for kind, minutes in ordered:
        scorer.apply(state, activity(kind, minutes), fx)
    last = T0 + timedelta(minutes=ordered[-1][1])
    moments = sorted(last + timedelta(minutes=m) for m in offsets)
    values = [scorer.engagement_at(state, at) for at in moments]
    assert all(later <= earlier + 1e-9 for earlier, later in zip(values, values[1:], strict=False))
    for at, value in zip(moments, values, strict=True):
        assert scorer.engagement_at(state, at + timedelta(days=10)) == pytest.approx(value / 2, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(activities, st.lists(st.integers(1, 60 * 24 * 40), min_size=1, max_size=8))
def test_time_driven_changes_do_not_depend_on_how_often_the_clock_ticks(
    events: list[tuple[str, int]], ticks: list[int]
) -> None:
    scorer = Scorer(rules(inactivity=[{"id": "quiet", "days": 14, "points": -5}]), 1)
    ordered = [activity(kind, minutes) for kind, minutes in sorted(events, key=lambda e: e[1])]
    end = T0 + timedelta(days=200)
    results = []
    for schedule in ([end], sorted({T0 + timedelta(days=90, minutes=t) for t in ticks}) + [end]):
        state, fx = scorer.new_state(), Effects()
        for a in ordered:
            scorer.apply(state, a, fx)
        for at in schedule:
            scorer.advance(state, at, fx)
        results.append((dict(state.stages), round(scorer.engagement_at(state, end), 9),
                        [(c.model, c.to_stage, c.at) for c in fx.stage_changes]))  # fmt: skip
    assert results[0] == results[1]


ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu", "UTC", "Pacific/Chatham"]
policies = st.builds(
    SendPolicy,
    quiet_start=st.times().map(lambda t: t.replace(second=0, microsecond=0)),
    quiet_end=st.times().map(lambda t: t.replace(second=0, microsecond=0)),
    cap=st.timedeltas(timedelta(0), timedelta(days=3)),
)
moments = st.datetimes(datetime(2025, 1, 1), datetime(2028, 12, 31), timezones=st.just(UTC))  # noqa: DTZ001


@settings(max_examples=300, deadline=None)
@given(moments, st.sampled_from(ZONES), policies, st.one_of(st.none(), st.timedeltas(timedelta(0), timedelta(days=4))),
       st.timedeltas(timedelta(0), timedelta(days=2)))  # fmt: skip
def test_any_quiet_hours_a_send_is_allowed_not_early_stable_and_monotone(
    now: datetime, name: str, policy: SendPolicy, since_last: timedelta | None, later: timedelta
) -> None:
    tz = zone(name)
    last = now - since_last if since_last is not None else None
    at = next_send_time(now, tz, policy, last_marketing_at=last)
    assert at >= now
    if policy.quiet_start != policy.quiet_end:
        assert not is_quiet(at.astimezone(tz).time(), policy), (at.astimezone(tz), policy)
    if last is not None:
        assert at >= last + policy.cap
    # A time the scheduler picked is one it would pick again (a retry there does not move further).
    assert next_send_time(at, tz, policy, last_marketing_at=last) == at
    # Asking later never gives an earlier time.
    assert next_send_time(now + later, tz, policy, last_marketing_at=last) >= at


def test_a_policy_without_quiet_hours_sends_at_once() -> None:
    policy = SendPolicy(quiet_start=time(3, 0), quiet_end=time(3, 0))
    now = datetime(2026, 5, 1, 3, 30, tzinfo=UTC)
    assert next_send_time(now, zone("UTC"), policy, last_marketing_at=None) == now
