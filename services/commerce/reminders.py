"""When a left cart's reminders are due, and whether one may still go out.

Reminder step i is due at `last_activity_at + schedule[i]`: relative to the cart's LAST activity, so
new activity (an add, a view, a checkout) pushes every pending step out. Steps already sent are never
repeated, and once a later step has gone out an earlier one is never sent (no going back). No step is
ever due for a cart that is ordered, emptied or holds nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from services.commerce.carts import CartState

DEFAULT_SCHEDULE: tuple[timedelta, ...] = (timedelta(hours=1), timedelta(hours=24), timedelta(hours=72))


def validate_schedule(schedule: Sequence[timedelta]) -> None:
    """Raise ValueError unless the delays are positive and strictly increasing (a shop's setting)."""
    if any(delay <= timedelta(0) for delay in schedule):
        raise ValueError("reminder delays must be positive")
    if any(later <= earlier for earlier, later in zip(schedule, schedule[1:], strict=False)):
        raise ValueError("reminder delays must be strictly increasing")


def _aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")


def _pending(state: CartState | None, schedule: Sequence[timedelta], sent: set[int]) -> list[tuple[int, datetime]]:
    if state is None or state.status in ("ordered", "emptied") or not state.lines or state.last_activity_at is None:
        return []
    after = max(sent, default=-1)
    return [(i, state.last_activity_at + delay) for i, delay in enumerate(schedule) if i > after and i not in sent]


def reminders_due(state: CartState | None, schedule: Sequence[timedelta], sent: set[int], now: datetime) -> list[int]:
    """Steps due at `now` and not yet sent, in order.

    After downtime several may be due at once; the caller sends the last one and records them all as
    sent, so a catch-up is one email, not a burst.
    """
    _aware(now)
    return [i for i, due in _pending(state, schedule, sent) if due <= now]


def next_reminder(
    state: CartState | None, schedule: Sequence[timedelta], sent: set[int], now: datetime
) -> tuple[int, datetime] | None:
    """The first pending step due strictly after `now` and its time: when to look at this cart again."""
    _aware(now)
    return next(((i, due) for i, due in _pending(state, schedule, sent) if due > now), None)


def may_send_reminder(state: CartState | None, lead_ordered_after: datetime | None, now: datetime) -> bool:
    """Whether any reminder may go out for this cart at `now` (checked again right before sending).

    `lead_ordered_after` is the time of the lead's latest order on any cart, or None: an order by the
    same lead at or after the cart started stops the reminders, even one stamped later than `now`
    (clock skew), because a reminder must never follow a purchase.
    """
    _aware(now)
    if state is None or state.status in ("ordered", "emptied") or not state.lines or state.started_at is None:
        return False
    return lead_ordered_after is None or lead_ordered_after < state.started_at
