"""A cart's state as a pure fold of its events, independent of the order they arrive in.

The rule: `apply` keeps the set of distinct events (by `event_id`; a repeated id is ignored) and
derives everything by replaying that set sorted by (event time, event id). Two deliveries of the same
events in any order, with any duplicates, therefore give equal states. During the replay:

- product_added adds `quantity` to the line, product_removed subtracts it (a line never goes below
  zero) or, with `removes_line`, drops the line; a snapshot (cart_viewed or checkout_started with a
  product list) and cart_emptied replace the contents outright; the newest event naming a product
  supplies its name, price, image and url.
- An order_completed closes the cart for good, whenever it is stamped and whenever it arrives: the
  status stays `ordered`, and `ordered_at`/`order_id` come from the earliest order event. Contents
  keep following the rule above (so they too are order-independent) but no longer matter.
- `last_activity_at` is the latest time of any cart activity (everything but the order).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, computed_field

from services.commerce.events import CartEvent, Product

CartStatus = Literal["open", "checkout", "ordered", "emptied"]

_CONTENT_KINDS = frozenset({"product_added", "product_removed", "cart_emptied"})


class CartLine(BaseModel):
    """One product in the cart with its current quantity (always > 0)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    product_id: str
    quantity: int
    name: str | None = None
    price: Decimal | None = None
    image_url: str | None = None
    url: str | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def line_total(self) -> Decimal:
        """Price × quantity; a line without a known price counts as zero."""
        return (self.price or Decimal(0)) * self.quantity


class CartState(BaseModel):
    """Everything known about one cart; build it with `apply`, never by hand."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    events: tuple[CartEvent, ...]
    cart_id: str | None = None
    checkout_id: str | None = None
    lead: str | None = None
    currency: str | None = None
    lines: tuple[CartLine, ...] = ()
    total: Decimal = Decimal(0)
    status: CartStatus = "open"
    started_at: datetime | None = None
    last_activity_at: datetime | None = None
    ordered_at: datetime | None = None
    order_id: str | None = None
    order_total: Decimal | None = None
    checkout_url: str | None = None

    @property
    def item_count(self) -> int:
        """How many items the cart holds (sum of line quantities)."""
        return sum(line.quantity for line in self.lines)


def _key(event: CartEvent) -> tuple[datetime, str]:
    return (event.at, event.event_id)


def apply(state: CartState | None, event: CartEvent) -> CartState:
    """The cart after `event`: unchanged for a duplicate id, otherwise re-derived from the event set."""
    if state is not None and any(seen.event_id == event.event_id for seen in state.events):
        return state
    events = tuple(sorted((*(state.events if state else ()), event), key=_key))
    return _derive(events)


def restore(stored: dict[str, Any]) -> CartState:
    """A cart from its stored JSON (`model_dump(mode="json")`): re-derived from its event set, so a stored
    state always follows the current rules."""
    events = sorted((CartEvent.model_validate(e) for e in stored.get("events", ())), key=_key)
    if not events:
        raise ValueError("a stored cart has at least one event")
    return _derive(tuple(events))


def _merge(details: dict[str, Product], product: Product) -> None:
    # Newer non-empty details win; a later event that omits the price keeps the known one.
    old = details.get(product.id)
    if old is None:
        details[product.id] = product
        return
    details[product.id] = Product(
        id=product.id,
        name=product.name or old.name,
        price=product.price if product.price is not None else old.price,
        quantity=product.quantity,
        image_url=product.image_url or old.image_url,
        url=product.url or old.url,
    )


def _derive(events: tuple[CartEvent, ...]) -> CartState:
    quantities: dict[str, int] = {}
    details: dict[str, Product] = {}
    status: CartStatus = "open"
    cart_id = checkout_id = lead = currency = checkout_url = None
    started_at: datetime | None = None
    last_activity_at: datetime | None = None
    order: CartEvent | None = None
    for event in events:
        cart_id = event.cart_id or cart_id
        checkout_id = event.checkout_id or checkout_id
        lead = event.lead or lead
        currency = event.currency or currency
        checkout_url = event.checkout_url or checkout_url
        if event.kind == "order_completed":
            order = order or event
            continue
        started_at = started_at or event.at
        last_activity_at = event.at if last_activity_at is None else max(last_activity_at, event.at)
        if event.products is not None and event.kind in ("cart_viewed", "checkout_started"):
            quantities = {}
            for product in event.products:
                quantities[product.id] = quantities.get(product.id, 0) + product.quantity
                _merge(details, product)
        elif event.kind == "cart_emptied":
            quantities = {}
        elif event.product is not None:
            product = event.product
            _merge(details, product)
            held = quantities.get(product.id, 0)
            if event.kind == "product_added":
                quantities[product.id] = held + product.quantity
            else:
                quantities[product.id] = 0 if event.removes_line else max(0, held - product.quantity)
        if event.kind == "checkout_started":
            status = "checkout"
        elif event.kind in _CONTENT_KINDS or event.products is not None:
            if not any(quantities.values()):
                status = "emptied"
            elif status == "emptied":
                status = "open"
    lines = tuple(
        CartLine(
            product_id=pid,
            quantity=quantity,
            name=details[pid].name,
            price=details[pid].price,
            image_url=details[pid].image_url,
            url=details[pid].url,
        )
        for pid, quantity in sorted(quantities.items())
        if quantity > 0
    )
    return CartState(
        events=events,
        cart_id=cart_id,
        checkout_id=checkout_id,
        lead=lead,
        currency=currency,
        lines=lines,
        total=sum((line.line_total for line in lines), Decimal(0)),
        status="ordered" if order is not None else status,
        started_at=started_at,
        last_activity_at=last_activity_at,
        ordered_at=order.at if order else None,
        order_id=order.order_id if order else None,
        order_total=order.order_total if order else None,
        checkout_url=checkout_url,
    )
