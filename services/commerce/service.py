"""Pure decisions around stored carts: keys, which order closes which cart, when to look again, what a
reminder shows, where a recovery link leads, which reminder an order is attributed to. No I/O, no clock."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlsplit

from services.commerce.carts import CartState
from services.commerce.events import CartEvent
from services.commerce.incentives import Incentive
from shared.tokens import check_url


def cart_key(source_id: uuid.UUID, event: CartEvent) -> str:
    """source id + ':' + the shop's cart id (else checkout id); an order naming neither gets its own key."""
    shop_key = event.cart_id or event.checkout_id or f"order:{event.order_id or event.event_id}"
    return f"{source_id}:{shop_key}"


@dataclass(frozen=True)
class Order:
    """An order as it closes carts: the lead's carts started at or before `at` are done."""

    cart_key: str
    lead_id: uuid.UUID
    at: datetime


def closing_order(key: str, lead_id: uuid.UUID, state: CartState, orders: Iterable[Order]) -> Order | None:
    """The earliest order by the same lead on another cart at or after this cart started, if any."""
    if state.status == "ordered" or state.started_at is None:
        return None
    started = state.started_at
    found = [o for o in orders if o.lead_id == lead_id and o.cart_key != key and o.at >= started]
    return min(found, key=lambda o: (o.at, o.cart_key), default=None)


def next_due(state: CartState, schedule: Sequence[timedelta], sent: Iterable[int]) -> datetime | None:
    """When the next unsent step falls due (past or future); None when nothing more will be sent.

    Steps go in order and never back, so the next step is the one after the highest sent."""
    if state.status in ("ordered", "emptied") or not state.lines or state.last_activity_at is None:
        return None
    step = max(sent, default=-1) + 1
    return state.last_activity_at + schedule[step] if step < len(schedule) else None


def recovery_target(state: CartState, pattern: str | None) -> str | None:
    """Where a recovery link sends the shopper: the URL the shop's events named, else the shop's pattern.

    With a pattern, an event URL is only taken on the pattern's host, so a forged browser event cannot
    point reminders at another site. Anything but absolute http(s) is refused."""
    candidates: list[str] = []
    if state.checkout_url and (pattern is None or _host(state.checkout_url) == _host(pattern)):
        candidates.append(state.checkout_url)
    if pattern is not None:
        ids = {"{cart_id}": state.cart_id or state.checkout_id, "{checkout_id}": state.checkout_id or state.cart_id}
        if all(value is not None for name, value in ids.items() if name in pattern):
            url = pattern
            for name, value in ids.items():
                url = url.replace(name, quote(value or "", safe=""))
            candidates.append(url)
    for url in candidates:
        try:
            check_url(url)
        except ValueError:
            continue
        return url
    return None


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def _money(amount: Decimal | None) -> str | None:
    return None if amount is None else format(amount.quantize(Decimal("0.01")), "f")


def reminder_extra(
    state: CartState, *, step: int, recovery_url: str, incentive: Incentive | None, code: str | None
) -> dict[str, Any]:
    """The template's `extra`: the cart (items with names, images, prices, quantities; totals, currency,
    the recovery link) and the incentive with its code, or None."""
    offer: dict[str, Any] | None = None
    if incentive is not None:
        offer = {
            "percent_off": None if incentive.percent_off is None else format(incentive.percent_off.normalize(), "f"),
            "free_shipping": incentive.free_shipping,
            "min_total": _money(incentive.tier.min_total),
            "currency": incentive.currency,
            "code": code,
        }
    return {
        "step": step,
        "cart": {
            "url": recovery_url,
            "currency": state.currency,
            "total": _money(state.total),
            "item_count": state.item_count,
            "items": [
                {
                    "product_id": line.product_id,
                    "name": line.name or line.product_id,
                    "quantity": line.quantity,
                    "price": _money(line.price),
                    "line_total": _money(line.line_total),
                    "image_url": line.image_url,
                    "url": line.url,
                }
                for line in state.lines
            ],
        },
        "incentive": offer,
    }


@dataclass(frozen=True)
class SentReminder:
    cart_key: str
    step: int
    at: datetime


def attributed_reminder(
    reminders: Iterable[SentReminder], ordered_at: datetime, window: timedelta
) -> SentReminder | None:
    """The last reminder sent at or before the order and no longer than `window` before it."""
    eligible = [r for r in reminders if ordered_at - window <= r.at <= ordered_at]
    return max(eligible, key=lambda r: (r.at, r.step), default=None)


def shopify_consent(properties: Mapping[str, Any]) -> bool:
    """Whether the shop states the shopper agreed to marketing email (Shopify's fields, copied by ingest)."""
    consent = properties.get("marketing_consent")
    if not isinstance(consent, dict):
        return False
    email = consent.get("email_marketing_consent")
    if isinstance(email, dict) and email.get("state"):
        return bool(email.get("state") == "subscribed")  # the customer's current email consent wins
    return consent.get("buyer_accepts_marketing") is True or consent.get("accepts_marketing") is True
