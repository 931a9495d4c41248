"""Pure decisions around stored carts: closing orders, next due time, recovery targets, the template's
cart, attribution, Shopify consent, shop settings and recovery tokens."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from pydantic import ValidationError

from services.commerce.carts import CartState, apply, restore
from services.commerce.events import CartEvent, Product, cart_event_from_segment
from services.commerce.incentives import IncentivePolicy, Tier, incentive_for
from services.commerce.links import read_recovery_token, recovery_url
from services.commerce.schemas import ShopConfig
from services.commerce.service import (
    Order,
    SentReminder,
    attributed_reminder,
    cart_key,
    closing_order,
    next_due,
    recovery_target,
    reminder_extra,
    shopify_consent,
)
from shared.tokens import InvalidToken
from tests.services.commerce.strategies import cart_events

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
LEAD = uuid.UUID(int=1)
SOURCE = uuid.UUID(int=2)
HOUR = timedelta(hours=1)


def cart(*events: CartEvent) -> CartState:
    state = None
    for event in events:
        state = apply(state, event)
    assert state is not None
    return state


def add(n: int, at: datetime, price: str = "10", cart_id: str = "c1", **more: Any) -> CartEvent:
    product = Product(id=f"p{n}", name=f"Product {n}", price=Decimal(price), image_url=f"https://s.example/{n}.png")
    return CartEvent(event_id=f"e{n}-{at.isoformat()}", kind="product_added", at=at, cart_id=cart_id, product=product,
                     currency="EUR", **more)  # fmt: skip


@given(cart_events(min_size=1))
def test_a_stored_cart_reads_back_equal(events: list[CartEvent]) -> None:
    state = cart(*events)
    assert restore(state.model_dump(mode="json")) == state


def test_cart_key_prefers_the_cart_id_then_the_checkout_id() -> None:
    both = CartEvent(event_id="1", kind="checkout_started", at=T0, cart_id="c", checkout_id="k")
    only_checkout = CartEvent(event_id="2", kind="checkout_started", at=T0, checkout_id="k")
    lead_order = CartEvent(event_id="3", kind="order_completed", at=T0, lead="l", order_id="o")
    assert [cart_key(SOURCE, e) for e in (both, only_checkout, lead_order)] == [
        f"{SOURCE}:c",
        f"{SOURCE}:k",
        f"{SOURCE}:order:o",
    ]


def test_an_order_by_the_same_lead_after_the_cart_started_closes_it() -> None:
    state = cart(add(1, T0))
    before = Order("x:early", LEAD, T0 - HOUR)
    other_lead = Order("x:other", uuid.UUID(int=9), T0 + HOUR)
    after = Order("x:later", LEAD, T0 + HOUR)
    assert closing_order("x:c1", LEAD, state, [before, other_lead]) is None
    assert closing_order("x:c1", LEAD, state, [before, other_lead, after]) == after
    assert closing_order("x:later", LEAD, state, [after]) is None  # its own order is not "another cart"


def test_next_due_follows_the_last_activity_and_the_steps_sent() -> None:
    schedule = (HOUR, 24 * HOUR, 72 * HOUR)
    state = cart(add(1, T0), add(2, T0 + HOUR))
    assert next_due(state, schedule, ()) == T0 + 2 * HOUR
    assert next_due(state, schedule, (0,)) == T0 + 25 * HOUR
    assert next_due(state, schedule, (0, 1, 2)) is None
    emptied = cart(add(1, T0), CartEvent(event_id="x", kind="cart_emptied", at=T0 + HOUR, cart_id="c1"))
    assert next_due(emptied, schedule, ()) is None


def test_recovery_target_takes_the_shops_url_and_refuses_other_sites_and_schemes() -> None:
    viewed = cart_event_from_segment(
        "Checkout Started", {"cart_id": "c 1", "checkout_url": "https://shop.example/co/1"}, T0, event_id="v"
    )
    assert viewed is not None and viewed.checkout_url == "https://shop.example/co/1"
    state = cart(add(1, T0), viewed)
    assert recovery_target(state, None) == "https://shop.example/co/1"
    assert recovery_target(state, "https://shop.example/cart/{cart_id}") == "https://shop.example/co/1"
    # With a pattern, an event naming another site is ignored for the pattern.
    assert recovery_target(state, "https://other.example/c/{cart_id}") == "https://other.example/c/c%201"
    evil = cart(add(1, T0), CartEvent(event_id="j", kind="cart_viewed", at=T0, cart_id="c1",
                                      checkout_url="javascript:alert(1)"))  # fmt: skip
    assert recovery_target(evil, None) is None


def test_the_template_gets_items_totals_and_the_incentive() -> None:
    state = cart(add(1, T0, "12.5"), add(1, T0 + HOUR, "12.5"), add(2, T0, "30"))
    policy = IncentivePolicy(tiers=(Tier(min_total=Decimal(50), percent_off=Decimal(5)),), on_step=1)
    incentive = incentive_for(policy, state.total, "EUR", 1)
    extra = reminder_extra(state, step=1, recovery_url="https://fs.example/r/cart/t", incentive=incentive, code="C1")
    assert extra["cart"]["total"] == "55.00" and extra["cart"]["currency"] == "EUR"
    assert extra["cart"]["items"][0] == {
        "product_id": "p1", "name": "Product 1", "quantity": 2, "price": "12.50", "line_total": "25.00",
        "image_url": "https://s.example/1.png", "url": None,
    }  # fmt: skip
    assert extra["incentive"] == {
        "percent_off": "5",
        "free_shipping": False,
        "min_total": "50.00",
        "currency": "EUR",
        "code": "C1",
    }


def test_an_order_goes_to_the_last_reminder_before_it_within_the_window() -> None:
    sent = [SentReminder("a", 0, T0), SentReminder("a", 1, T0 + 24 * HOUR), SentReminder("b", 0, T0 + 50 * HOUR)]
    assert attributed_reminder(sent, T0 + 30 * HOUR, 168 * HOUR) == sent[1]
    assert attributed_reminder(sent, T0 + 30 * HOUR, 2 * HOUR) is None  # outside the window
    assert attributed_reminder(sent, T0 - HOUR, 168 * HOUR) is None  # ordered before any reminder


def test_shopify_consent_counts_only_a_stated_yes() -> None:
    assert shopify_consent({"marketing_consent": {"buyer_accepts_marketing": True}})
    assert shopify_consent({"marketing_consent": {"accepts_marketing": True}})
    assert not shopify_consent({"marketing_consent": {"buyer_accepts_marketing": False}})
    assert not shopify_consent({})
    # The customer's current email consent wins over an older checkbox.
    stated = {"accepts_marketing": True, "email_marketing_consent": {"state": "unsubscribed"}}
    assert not shopify_consent({"marketing_consent": stated})


def test_shopify_cart_and_checkout_updates_replace_the_contents() -> None:
    one = {"product_id": "p1", "quantity": 3, "price": "2"}
    updated = cart_event_from_segment("Cart Updated", {"cart_id": "c", "products": [one]}, T0, event_id="u")
    emptied = cart_event_from_segment("Cart Updated", {"cart_id": "c", "products": []}, T0 + HOUR, event_id="e")
    checkout = cart_event_from_segment("Checkout Updated", {"cart_id": "c", "products": [one]}, T0, event_id="k")
    assert updated is not None and emptied is not None and checkout is not None
    assert cart(updated).item_count == 3 and cart(updated, emptied).status == "emptied"
    assert cart(checkout).status == "checkout"


TEMPLATE = str(uuid.UUID(int=5))


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"templates": [TEMPLATE], "schedule_seconds": [0]}, "schedule_seconds.0"),
        ({"templates": [TEMPLATE], "schedule_seconds": [5, 1]}, "schedule_seconds"),
        ({"templates": [TEMPLATE]}, "templates"),
        ({"templates": [TEMPLATE], "schedule_seconds": [1], "code_source": "pattern"}, "code_pattern"),
        ({"templates": [TEMPLATE], "schedule_seconds": [1], "code_pattern": "NOGROUP"}, "code_pattern"),
        ({"templates": [TEMPLATE], "schedule_seconds": [1], "cart_url_pattern": "ftp://x/{c}"}, "cart_url_pattern"),
        ({"templates": [TEMPLATE], "schedule_seconds": [1], "code_source": "pool",
          "incentive": {"tiers": [{"min_total": 1, "percent_off": 5}], "on_step": 3}}, "incentive.on_step"),
    ],
)  # fmt: skip
def test_shop_settings_are_refused_naming_the_field(config: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ShopConfig.model_validate(config)
    error = caught.value.errors()[0]
    loc = ".".join(str(p) for p in error["loc"])
    assert (loc or str(error["msg"]).removeprefix("Value error, ").split(":")[0]) == field


def test_default_schedule_is_one_day_and_three_days_after_an_hour() -> None:
    config = ShopConfig(templates=(uuid.UUID(int=1),) * 3)
    assert config.schedule == (HOUR, 24 * HOUR, 72 * HOUR) and config.exempt_from_cap


def test_recovery_tokens_name_the_cart_and_refuse_alterations() -> None:
    url = recovery_url("https://fs.example", "secret", "src:c1", 2)
    token = url.rsplit("/", 1)[1]
    found = read_recovery_token("secret", token)
    assert (found.cart_key, found.step) == ("src:c1", 2)
    with pytest.raises(InvalidToken):
        read_recovery_token("other-secret", token)
    with pytest.raises(InvalidToken):
        read_recovery_token("secret", token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1])
