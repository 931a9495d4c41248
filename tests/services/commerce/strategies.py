"""Hypothesis strategies for carts: small product and time domains, so collisions and ties happen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import strategies as st

from services.commerce.events import CartEvent, CartEventKind, Product

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

products = st.builds(
    Product,
    id=st.sampled_from(["p1", "p2", "p3"]),
    name=st.none() | st.sampled_from(["Mug", "Tea"]),
    price=st.none() | st.sampled_from([Decimal("0.99"), Decimal("12.50"), Decimal(40), Decimal("199.90")]),
    quantity=st.integers(0, 4),
)

ACTIVITY_KINDS: list[CartEventKind] = [
    "product_added",
    "product_removed",
    "cart_viewed",
    "checkout_started",
    "cart_emptied",
]


@st.composite
def cart_event(draw: st.DrawFn, event_id: str, kinds: list[CartEventKind] | None = None) -> CartEvent:
    kind = draw(st.sampled_from(kinds or [*ACTIVITY_KINDS, "order_completed"]))
    at = START + timedelta(minutes=draw(st.integers(0, 600)))
    product = draw(products) if kind in ("product_added", "product_removed") else None
    snapshot = None
    if kind in ("cart_viewed", "checkout_started"):
        snapshot = draw(st.none() | st.lists(products, max_size=3).map(tuple))
    return CartEvent(
        event_id=event_id,
        kind=kind,
        at=at,
        cart_id="c1",
        lead=draw(st.none() | st.just("lead-1")),
        product=product,
        removes_line=kind == "product_removed" and draw(st.booleans()),
        products=snapshot,
        currency=draw(st.none() | st.sampled_from(["EUR", "USD"])),
        order_id="o1" if kind == "order_completed" else None,
    )


@st.composite
def cart_events(draw: st.DrawFn, min_size: int = 0, max_size: int = 12) -> list[CartEvent]:
    """Distinct events (unique ids) for one cart."""
    size = draw(st.integers(min_size, max_size))
    return [draw(cart_event(f"e{i}")) for i in range(size)]
