"""Segment e-commerce v2 events mapped to cart events."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from services.commerce.events import CartEvent, Product, cart_event_from_segment

AT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_product_added_maps_every_product_field() -> None:
    event = cart_event_from_segment(
        "Product Added",
        {
            "cart_id": "c1",
            "product_id": "p1",
            "sku": "SKU-1",
            "name": "Mug",
            "price": 12.5,
            "quantity": 2,
            "image_url": "https://shop.example/mug.png",
            "url": "https://shop.example/mug",
            "currency": "eur",
        },
        AT,
        event_id="m1",
        lead="lead-1",
    )
    assert event == CartEvent(
        event_id="m1",
        kind="product_added",
        at=AT,
        cart_id="c1",
        lead="lead-1",
        product=Product(
            id="p1",
            name="Mug",
            price=Decimal("12.5"),
            quantity=2,
            image_url="https://shop.example/mug.png",
            url="https://shop.example/mug",
        ),
        currency="EUR",
    )


def test_sku_stands_in_for_a_missing_product_id_and_quantity_defaults_to_one() -> None:
    event = cart_event_from_segment("Product Added", {"cart_id": "c1", "sku": "SKU-1", "price": "3.10"}, AT)
    assert event is not None and event.product == Product(id="SKU-1", price=Decimal("3.10"), quantity=1)


def test_removal_without_quantity_removes_the_whole_line() -> None:
    whole = cart_event_from_segment("Product Removed", {"cart_id": "c1", "product_id": "p1"}, AT)
    one = cart_event_from_segment("Product Removed", {"cart_id": "c1", "product_id": "p1", "quantity": 1}, AT)
    assert whole is not None and whole.removes_line
    assert one is not None and not one.removes_line and one.product is not None and one.product.quantity == 1


def test_checkout_started_carries_the_products_list_as_a_snapshot() -> None:
    event = cart_event_from_segment(
        "Checkout Started",
        {
            "checkout_id": "k1",
            "cart_id": "c1",
            "currency": "USD",
            "products": [{"product_id": "p1", "price": 10, "quantity": 3}, {"sku": "s2", "price": "4.5"}, "junk"],
        },
        AT,
    )
    assert event is not None
    assert (event.kind, event.cart_id, event.checkout_id) == ("checkout_started", "c1", "k1")
    assert event.products == (
        Product(id="p1", price=Decimal(10), quantity=3),
        Product(id="s2", price=Decimal("4.5"), quantity=1),
    )


def test_order_completed_takes_total_or_else_revenue() -> None:
    with_total = cart_event_from_segment(
        "Order Completed", {"checkout_id": "k1", "order_id": "o1", "total": "27.50", "revenue": "25"}, AT
    )
    with_revenue = cart_event_from_segment("Order Completed", {"checkout_id": "k1", "revenue": 25}, AT)
    assert with_total is not None and (with_total.order_id, with_total.order_total) == ("o1", Decimal("27.50"))
    assert with_revenue is not None and with_revenue.order_total == Decimal(25)


def test_an_order_without_cart_or_checkout_id_is_kept_when_the_lead_is_known() -> None:
    assert cart_event_from_segment("Order Completed", {"order_id": "o1"}, AT) is None
    event = cart_event_from_segment("Order Completed", {"order_id": "o1"}, AT, lead="lead-1")
    assert event is not None and event.lead == "lead-1" and event.cart_id is None


def test_cart_viewed_without_a_products_list_is_activity_only() -> None:
    event = cart_event_from_segment("Cart Viewed", {"cart_id": "c1"}, AT)
    assert event is not None and event.products is None


@pytest.mark.parametrize(
    ("name", "properties"),
    [
        ("Product Viewed", {"cart_id": "c1", "product_id": "p1"}),
        ("Product Added", {"product_id": "p1"}),
        ("Product Added", {"cart_id": "c1"}),
    ],
)
def test_events_that_say_nothing_about_a_known_cart_map_to_none(name: str, properties: dict[str, object]) -> None:
    assert cart_event_from_segment(name, properties, AT) is None


def test_bad_price_and_quantity_are_dropped_not_raised() -> None:
    event = cart_event_from_segment(
        "Product Added", {"cart_id": "c1", "product_id": "p1", "price": "abc", "quantity": "-2"}, AT
    )
    assert event is not None and event.product == Product(id="p1", price=None, quantity=1)


def test_a_replayed_message_without_id_gets_the_same_id() -> None:
    properties = {"cart_id": "c1", "product_id": "p1", "quantity": 1}
    first = cart_event_from_segment("Product Added", properties, AT)
    again = cart_event_from_segment("Product Added", dict(properties), AT)
    other = cart_event_from_segment("Product Added", {**properties, "quantity": 2}, AT)
    assert first is not None and again is not None and other is not None
    assert first.event_id == again.event_id != other.event_id


def test_naive_event_times_are_refused() -> None:
    with pytest.raises(ValidationError):
        cart_event_from_segment("Cart Viewed", {"cart_id": "c1"}, datetime(2026, 11, 23, 12, 0))  # noqa: DTZ001
