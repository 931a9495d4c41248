"""Cart events: what a shop webhook or a Segment e-commerce (spec v2) event says about a cart."""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

CartEventKind = Literal[
    "product_added", "product_removed", "cart_viewed", "checkout_started", "order_completed", "cart_emptied"
]

SEGMENT_KINDS: dict[str, CartEventKind] = {
    "Product Added": "product_added",
    "Product Removed": "product_removed",
    "Cart Viewed": "cart_viewed",
    "Checkout Started": "checkout_started",
    "Order Completed": "order_completed",
    # Shopify webhooks (services/ingest/shopify.py) send the whole cart or checkout on every update.
    "Cart Updated": "cart_viewed",
    "Checkout Updated": "checkout_started",
}
_URL_FIELDS = ("checkout_url", "cart_url", "abandoned_checkout_url")


class Product(BaseModel):
    """One product line as an event reports it; `quantity` is what was added or removed, or held."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str | None = None
    price: Decimal | None = None
    quantity: int = 1
    image_url: str | None = None
    url: str | None = None


class CartEvent(BaseModel):
    """One thing that happened to a cart (keyed by `cart_id` or `checkout_id`), at an explicit time.

    `product` is set for product_added/removed: a delta of `product.quantity`, or, with `removes_line`
    (a removal that states no quantity), the whole line goes. `products`, when not None, is the cart's
    full contents at that moment (a snapshot: cart_viewed or checkout_started with a product list) or
    what was bought (order_completed).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str
    kind: CartEventKind
    at: datetime
    cart_id: str | None = None
    checkout_id: str | None = None
    lead: str | None = None
    product: Product | None = None
    removes_line: bool = False
    products: tuple[Product, ...] | None = None
    currency: str | None = None
    order_id: str | None = None
    order_total: Decimal | None = None
    # Where the shopper can return to this cart or checkout (checkout_url, cart_url, or the page `url`
    # of a cart or checkout event); unchecked here, the recovery link checks it.
    checkout_url: str | None = None

    @field_validator("at")
    @classmethod
    def _aware(cls, at: datetime) -> datetime:
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("event time must be timezone-aware")
        return at

    @model_validator(mode="after")
    def _keyed(self) -> CartEvent:
        if self.cart_id is None and self.checkout_id is None and not (self.kind == "order_completed" and self.lead):
            raise ValueError("a cart event needs a cart_id or checkout_id (an order may have a lead instead)")
        if self.kind in ("product_added", "product_removed") and self.product is None:
            raise ValueError(f"{self.kind} needs a product")
        return self


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text or None


def _money(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    return amount if amount.is_finite() and amount >= 0 else None


def _quantity(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        quantity = int(Decimal(str(value)))
    except (InvalidOperation, ValueError, OverflowError):
        return None
    return quantity if quantity >= 0 else None


def _product(properties: dict[str, Any]) -> Product | None:
    product_id = _text(properties.get("product_id")) or _text(properties.get("sku"))
    if product_id is None:
        return None
    quantity = _quantity(properties.get("quantity"))
    return Product(
        id=product_id,
        name=_text(properties.get("name")),
        price=_money(properties.get("price")),
        quantity=1 if quantity is None else quantity,
        image_url=_text(properties.get("image_url")),
        url=_text(properties.get("url")),
    )


def _derived_id(name: str, properties: dict[str, Any], at: datetime) -> str:
    # Deterministic, so a replayed message without an id is still recognised as a duplicate.
    digest = hashlib.sha256(f"{name}\x00{sorted(properties.items())!r}\x00{at.isoformat()}".encode())
    return digest.hexdigest()[:32]


def cart_event_from_segment(
    name: str, properties: dict[str, Any], at: datetime, *, event_id: str | None = None, lead: str | None = None
) -> CartEvent | None:
    """Map a Segment e-commerce v2 track event to a `CartEvent`; None if it is not a cart event or has no key.

    `event_id` should be Segment's `messageId` (a hash of the event is used without one); `lead` is the
    caller's lead key (userId, or the anonymousId's lead).
    """
    kind = SEGMENT_KINDS.get(name)
    if kind is None:
        return None
    cart_id = _text(properties.get("cart_id"))
    checkout_id = _text(properties.get("checkout_id"))
    if cart_id is None and checkout_id is None and not (kind == "order_completed" and lead):
        return None
    product: Product | None = None
    removes_line = False
    if kind in ("product_added", "product_removed"):
        product = _product(properties)
        if product is None:
            return None
        removes_line = kind == "product_removed" and _quantity(properties.get("quantity")) is None
    products: tuple[Product, ...] | None = None
    raw_products = properties.get("products")
    if kind in ("checkout_started", "order_completed", "cart_viewed") and isinstance(raw_products, list):
        products = tuple(p for p in (_product(raw) for raw in raw_products if isinstance(raw, dict)) if p is not None)
    total = properties.get("total")
    url = next((_text(properties.get(f)) for f in _URL_FIELDS if _text(properties.get(f))), None)
    if url is None and kind in ("checkout_started", "cart_viewed"):
        url = _text(properties.get("url"))
    return CartEvent(
        event_id=event_id or _derived_id(name, properties, at),
        kind=kind,
        at=at,
        cart_id=cart_id,
        checkout_id=checkout_id,
        lead=lead,
        product=product,
        removes_line=removes_line,
        products=products,
        currency=(_text(properties.get("currency")) or "").upper() or None,
        order_id=_text(properties.get("order_id")),
        order_total=_money(total if total is not None else properties.get("revenue")),
        checkout_url=url,
    )
