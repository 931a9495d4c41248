"""Reminder timing: relative to the last activity, never after an order, never backwards."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.commerce.carts import CartState, apply
from services.commerce.events import CartEvent, CartEventKind, Product
from services.commerce.reminders import (
    DEFAULT_SCHEDULE,
    may_send_reminder,
    next_reminder,
    reminders_due,
    validate_schedule,
)
from tests.services.commerce.strategies import START, cart_event, cart_events

H = timedelta(hours=1)
MUG = Product(id="mug", price=Decimal(20), quantity=1)


def ev(event_id: str, kind: CartEventKind, at: datetime, **fields: object) -> CartEvent:
    return CartEvent.model_validate({"event_id": event_id, "kind": kind, "at": at, "cart_id": "c1"} | fields)


def fold(*events: CartEvent) -> CartState:
    state: CartState | None = None
    for event in events:
        state = apply(state, event)
    assert state is not None
    return state


LEFT = fold(ev("a1", "product_added", START, product=MUG))


def test_default_schedule_is_one_day_and_three_days_after_the_first_hour() -> None:
    assert list(DEFAULT_SCHEDULE) == [H, 24 * H, 72 * H]
    assert reminders_due(LEFT, DEFAULT_SCHEDULE, set(), START + 59 * timedelta(minutes=1)) == []
    assert reminders_due(LEFT, DEFAULT_SCHEDULE, set(), START + H) == [0]
    assert next_reminder(LEFT, DEFAULT_SCHEDULE, set(), START) == (0, START + H)
    assert next_reminder(LEFT, DEFAULT_SCHEDULE, {0}, START + 2 * H) == (1, START + 24 * H)


def test_new_activity_pushes_pending_reminders_out() -> None:
    viewed = apply(LEFT, ev("v", "cart_viewed", START + 2 * H))
    assert reminders_due(viewed, DEFAULT_SCHEDULE, {0}, START + 24 * H) == []
    assert next_reminder(viewed, DEFAULT_SCHEDULE, {0}, START + 24 * H) == (1, START + 26 * H)


def test_a_sent_step_is_not_repeated_and_an_earlier_step_never_follows_a_later_one() -> None:
    late = START + 100 * H
    assert reminders_due(LEFT, DEFAULT_SCHEDULE, set(), late) == [0, 1, 2]
    assert reminders_due(LEFT, DEFAULT_SCHEDULE, {1}, late) == [2]
    assert reminders_due(LEFT, DEFAULT_SCHEDULE, {2}, late) == []
    assert next_reminder(LEFT, DEFAULT_SCHEDULE, {0, 1, 2}, START) is None


def test_checkout_then_order_sends_no_reminder() -> None:
    state = fold(
        ev("a1", "product_added", START, product=MUG),
        ev("k", "checkout_started", START + H, checkout_id="k1"),
        ev("o", "order_completed", START + 2 * H, checkout_id="k1", order_id="o1"),
    )
    assert reminders_due(state, DEFAULT_SCHEDULE, set(), START + 200 * H) == []
    assert next_reminder(state, DEFAULT_SCHEDULE, set(), START) is None
    assert not may_send_reminder(state, None, START + 200 * H)


def test_an_emptied_or_empty_cart_gets_no_reminder() -> None:
    emptied = apply(LEFT, ev("x", "cart_emptied", START + H))
    viewed_only = fold(ev("v", "cart_viewed", START))
    for state in (emptied, viewed_only, None):
        assert reminders_due(state, DEFAULT_SCHEDULE, set(), START + 200 * H) == []
        assert not may_send_reminder(state, None, START + 200 * H)


def test_the_same_lead_ordering_after_the_cart_started_stops_reminders() -> None:
    now = START + 2 * H
    assert may_send_reminder(LEFT, None, now)
    assert may_send_reminder(LEFT, START - H, now)
    assert not may_send_reminder(LEFT, START, now)
    assert not may_send_reminder(LEFT, START + H, now)
    assert not may_send_reminder(LEFT, START + 5 * H, now)  # stamped after now: still a purchase


def test_naive_now_and_bad_schedules_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        reminders_due(LEFT, DEFAULT_SCHEDULE, set(), datetime(2026, 11, 23, 12))  # noqa: DTZ001
    validate_schedule(DEFAULT_SCHEDULE)
    with pytest.raises(ValueError, match="increasing"):
        validate_schedule([24 * H, H])
    with pytest.raises(ValueError, match="positive"):
        validate_schedule([timedelta(0)])


@given(st.data(), cart_events(max_size=10), st.integers(0, 24 * 30))
def test_no_reminder_is_ever_due_once_an_order_is_in_the_set(
    data: st.DataObject, events: list[CartEvent], hours_later: int
) -> None:
    order = data.draw(cart_event("order", kinds=["order_completed"]))
    arrival = data.draw(st.permutations([*events, order]))
    now = START + timedelta(hours=hours_later)
    state: CartState | None = None
    for n, event in enumerate(arrival, start=1):
        state = apply(state, event)
        if order in arrival[:n]:
            sent = data.draw(st.sets(st.integers(0, 2), max_size=2))
            assert reminders_due(state, DEFAULT_SCHEDULE, sent, now) == []
            assert next_reminder(state, DEFAULT_SCHEDULE, sent, now) is None
            assert not may_send_reminder(state, None, now)


@given(cart_events(min_size=1), st.sets(st.integers(0, 2)), st.integers(0, 24 * 10))
def test_due_steps_are_due_and_the_next_one_is_in_the_future(
    events: list[CartEvent], sent: set[int], hours: int
) -> None:
    state: CartState | None = None
    for event in events:
        state = apply(state, event)
    assert state is not None
    now = START + timedelta(hours=hours)
    due = reminders_due(state, DEFAULT_SCHEDULE, sent, now)
    if due:
        assert state.last_activity_at is not None
        assert all(state.last_activity_at + DEFAULT_SCHEDULE[i] <= now and i not in sent for i in due)
        assert min(due) > max(sent, default=-1)
    upcoming = next_reminder(state, DEFAULT_SCHEDULE, sent, now)
    if upcoming is not None:
        assert upcoming[1] > now and upcoming[0] not in due
    if state.status in ("ordered", "emptied") or not state.lines:
        assert due == [] and upcoming is None


def test_other_time_zones_compare_by_instant() -> None:
    tokyo = START.astimezone(ZoneInfo("Asia/Tokyo"))
    assert reminders_due(LEFT, DEFAULT_SCHEDULE, set(), tokyo + H) == [0]
