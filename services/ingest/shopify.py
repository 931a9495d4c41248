"""Shopify webhooks as Segment e-commerce events: pure mapping and signature check, no I/O, no clock.

Topics and the events they become (properties follow the Segment e-commerce spec):

    carts/create       Product Added, one per line item (a new cart's items were all just added)
    carts/update       Cart Updated with every line item (Shopify sends the whole cart, not the change)
    checkouts/create   Checkout Started
    checkouts/update   Checkout Updated
    orders/create      Order Completed
    orders/paid        Order Paid
    customers/create   identify

Identity: `userId` is ``shopify:<customer id>`` when the payload names a Shopify customer (prefixed so it
cannot collide with the user ids a website sends); `anonymousId` is the cart token, which Shopify repeats
on the checkout and the order, so the cart, the checkout and the order land on one lead. The email goes in
`context.traits.email` (traits for identify), which attaches the email identity to the lead.

Money stays as Shopify's decimal strings ("199.00"), never floats. Marketing consent is copied as Shopify
states it (`buyer_accepts_marketing`, the customer's `email_marketing_consent` and legacy
`accepts_marketing`) under `marketing_consent`; nothing is inferred from it here.

Event ids are `derived_id(source_id, "shopify", webhook_id, index)`: a redelivered webhook (same
`X-Shopify-Webhook-Id`) yields the same ids, which consumers have already applied.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from shared.events import EventType, TrackedEvent, derived_id

USER_ID_PREFIX = "shopify:"
MAX_PRODUCTS = 100  # keeps one huge cart or order from making an oversized event
MAX_TEXT = 512


def hmac_header(secret: str, body: bytes) -> str:
    """The `X-Shopify-Hmac-Sha256` value Shopify sends for `body`: base64 of HMAC-SHA256."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def signature_valid(header: str | None, body: bytes, secrets: list[str]) -> bool:
    """True when `header` is the HMAC of the raw body under any active secret (constant-time compare)."""
    if not header:
        return False
    given = header.strip().encode()
    return any(hmac.compare_digest(given, hmac_header(s, body).encode()) for s in secrets)


@dataclass(frozen=True)
class Delivery:
    """One verified webhook delivery: its headers' facts and the parsed JSON body."""

    source_id: uuid.UUID
    topic: str
    webhook_id: str
    payload: dict[str, Any]
    received_at: datetime
    shop_domain: str | None = None
    api_version: str | None = None


@dataclass(frozen=True)
class _Draft:
    """An event before ids and context are attached."""

    type: EventType
    event: str | None
    properties: dict[str, Any]
    traits: dict[str, Any]
    at_field: str  # the payload field holding the event time


Mapper = Callable[[dict[str, Any], Delivery], list[_Draft]]


def map_delivery(delivery: Delivery) -> list[TrackedEvent]:
    """The events a delivery becomes; an unknown topic becomes none (check `TOPICS` first to tell)."""
    mapper = TOPICS.get(delivery.topic)
    if mapper is None:
        return []
    payload = delivery.payload
    user_id, anonymous_id = _identity(delivery)
    email = _text(payload.get("email")) or _text(payload.get("contact_email")) or _text(_customer(payload).get("email"))
    context: dict[str, Any] = {
        "integration": {"name": "shopify"},
        "shopify": {
            k: v
            for k, v in {
                "topic": delivery.topic,
                "webhook_id": delivery.webhook_id,
                "shop_domain": delivery.shop_domain,
                "api_version": delivery.api_version,
            }.items()
            if v
        },
    }
    if email:
        context["traits"] = {"email": email}
    events = []
    for index, draft in enumerate(mapper(payload, delivery)):
        message_id = f"shopify-{delivery.webhook_id}-{index}"
        events.append(
            TrackedEvent(
                event_id=derived_id(delivery.source_id, "shopify", delivery.webhook_id, index),
                source_id=delivery.source_id,
                message_id=message_id[:MAX_TEXT],
                type=draft.type,
                event=draft.event,
                user_id=user_id,
                anonymous_id=anonymous_id,
                traits=draft.traits,
                properties=draft.properties,
                context=context,
                timestamp=_time(payload.get(draft.at_field)) or delivery.received_at,
                received_at=delivery.received_at,
            )
        )
    return events


# -- topics ---------------------------------------------------------------------------------------


def _cart_created(payload: dict[str, Any], _d: Delivery) -> list[_Draft]:
    cart_id = _text(payload.get("token")) or _text(payload.get("id"))
    return [
        _Draft("track", "Product Added", _drop_none({"cart_id": cart_id, **product}), {}, "created_at")
        for product in _products(payload)
    ]


def _cart_updated(payload: dict[str, Any], _d: Delivery) -> list[_Draft]:
    cart_id = _text(payload.get("token")) or _text(payload.get("id"))
    properties = _drop_none({"cart_id": cart_id, "products": _products(payload)})
    return [_Draft("track", "Cart Updated", properties, {}, "updated_at")]


def _checkout(name: str, at_field: str) -> Mapper:
    def mapper(payload: dict[str, Any], delivery: Delivery) -> list[_Draft]:
        properties = {
            "checkout_id": _text(payload.get("id")),
            "checkout_token": _text(payload.get("token")),
            "cart_id": _text(payload.get("cart_token")),
            **_totals(payload, delivery),
        }
        properties["value"] = properties.get("total")
        return [_Draft("track", name, _with_consent(_drop_none(properties), payload), {}, at_field)]

    return mapper


def _order(name: str, at_field: str) -> Mapper:
    def mapper(payload: dict[str, Any], delivery: Delivery) -> list[_Draft]:
        properties = {
            "order_id": _text(payload.get("id")),
            "order_name": _text(payload.get("name")),
            "checkout_id": _text(payload.get("checkout_id")),
            "checkout_token": _text(payload.get("checkout_token")),
            "cart_id": _text(payload.get("cart_token")),
            "financial_status": _text(payload.get("financial_status")),
            **_totals(payload, delivery),
        }
        return [_Draft("track", name, _with_consent(_drop_none(properties), payload), {}, at_field)]

    return mapper


def _customer_created(payload: dict[str, Any], _d: Delivery) -> list[_Draft]:
    traits: dict[str, Any] = {
        "email": _text(payload.get("email")),
        "firstName": _text(payload.get("first_name")),
        "lastName": _text(payload.get("last_name")),
        "phone": _text(payload.get("phone")),
        "createdAt": _text(payload.get("created_at")),
        "shopify_customer_id": _text(payload.get("id")),
    }
    consent = _consent(payload, payload)
    if consent:
        traits["marketing_consent"] = consent
    return [_Draft("identify", None, {}, _drop_none(traits), "created_at")]


TOPICS: dict[str, Mapper] = {
    "carts/create": _cart_created,
    "carts/update": _cart_updated,
    "checkouts/create": _checkout("Checkout Started", "created_at"),
    "checkouts/update": _checkout("Checkout Updated", "updated_at"),
    "orders/create": _order("Order Completed", "created_at"),
    "orders/paid": _order("Order Paid", "updated_at"),
    "customers/create": _customer_created,
}


# -- pieces ---------------------------------------------------------------------------------------


def _identity(delivery: Delivery) -> tuple[str | None, str | None]:
    payload = delivery.payload
    if delivery.topic.startswith("customers/"):
        customer_id = _text(payload.get("id"))
    else:
        customer_id = _text(_customer(payload).get("id"))
    user_id = USER_ID_PREFIX + customer_id if customer_id else None
    if delivery.topic.startswith("carts/"):
        anonymous_id = _text(payload.get("token")) or _text(payload.get("id"))
    elif delivery.topic.startswith("checkouts/"):
        anonymous_id = _text(payload.get("cart_token")) or _text(payload.get("token"))
    elif delivery.topic.startswith("orders/"):
        anonymous_id = _text(payload.get("cart_token")) or _text(payload.get("checkout_token"))
    else:
        anonymous_id = None
    if not user_id and not anonymous_id:
        # e.g. a point-of-sale order without a customer: still one lead per order, never a shared one
        anonymous_id = f"shopify-{delivery.topic.partition('/')[0]}:{_text(payload.get('id')) or delivery.webhook_id}"
    return user_id, anonymous_id


def _customer(payload: dict[str, Any]) -> dict[str, Any]:
    customer = payload.get("customer")
    return customer if isinstance(customer, dict) else {}


def _products(payload: dict[str, Any]) -> list[dict[str, Any]]:
    items = payload.get("line_items")
    if not isinstance(items, list):
        return []
    products = []
    for item in items[:MAX_PRODUCTS]:
        if not isinstance(item, dict):
            continue
        quantity = item.get("quantity")
        products.append(
            _drop_none(
                {
                    "product_id": _text(item.get("product_id")),
                    "variant_id": _text(item.get("variant_id")),
                    "sku": _text(item.get("sku")),
                    "name": _text(item.get("title")) or _text(item.get("name")),
                    "variant": _text(item.get("variant_title")),
                    "brand": _text(item.get("vendor")),
                    "price": _money(item.get("price")),
                    "quantity": quantity if isinstance(quantity, int) and not isinstance(quantity, bool) else None,
                }
            )
        )
    return products


def _totals(payload: dict[str, Any], delivery: Delivery) -> dict[str, Any]:
    """Segment's order totals: `revenue` is the subtotal after discounts, without shipping and tax."""
    codes = payload.get("discount_codes")
    coupons = [_text(c.get("code")) for c in codes if isinstance(c, dict)] if isinstance(codes, list) else []
    coupon = ",".join(c for c in coupons if c)
    return {
        "affiliation": delivery.shop_domain,
        "total": _money(payload.get("total_price")),
        "subtotal": _money(payload.get("subtotal_price")),
        "revenue": _money(payload.get("subtotal_price")),
        "tax": _money(payload.get("total_tax")),
        "shipping": _shipping(payload),
        "discount": _money(payload.get("total_discounts")),
        "coupon": coupon or None,
        "currency": _text(payload.get("currency")),
        "email": _text(payload.get("email")) or _text(payload.get("contact_email")),
        "products": _products(payload),
    }


def _shipping(payload: dict[str, Any]) -> str | None:
    price_set = payload.get("total_shipping_price_set")
    if isinstance(price_set, dict) and isinstance(price_set.get("shop_money"), dict):
        return _money(price_set["shop_money"].get("amount"))
    lines = payload.get("shipping_lines")
    if not isinstance(lines, list) or not lines:
        return None
    prices = [_money(line.get("price")) for line in lines if isinstance(line, dict)]
    return _money(sum((Decimal(p) for p in prices if p is not None), Decimal(0)))


def _with_consent(properties: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    consent = _consent(payload, _customer(payload))
    return {**properties, "marketing_consent": consent} if consent else properties


def _consent(payload: dict[str, Any], customer: dict[str, Any]) -> dict[str, Any]:
    """Shopify's own consent fields, verbatim; absent fields stay absent (unknown is not "no")."""
    consent: dict[str, Any] = {}
    if isinstance(payload.get("buyer_accepts_marketing"), bool):
        consent["buyer_accepts_marketing"] = payload["buyer_accepts_marketing"]
    if isinstance(customer.get("accepts_marketing"), bool):
        consent["accepts_marketing"] = customer["accepts_marketing"]
    email_consent = customer.get("email_marketing_consent")
    if isinstance(email_consent, dict):
        consent["email_marketing_consent"] = _drop_none(
            {k: _text(email_consent.get(k)) for k in ("state", "opt_in_level", "consent_updated_at")}
        )
    return consent


def _text(value: Any) -> str | None:
    """Ids and labels as strings (Shopify ids are JSON integers); anything else is absent."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | str):
        text = str(value).strip()
        return text[:MAX_TEXT] or None
    return None


def _money(value: Any) -> str | None:
    """A decimal string, exactly as precise as Shopify sent it; floats go through str() to stay exact."""
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        return None
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return format(amount, "f") if amount.is_finite() else None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}
