"""Shopify webhook payloads (shaped like Shopify's own examples) mapped to Segment e-commerce events."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from services.ingest.shopify import TOPICS, Delivery, hmac_header, map_delivery, signature_valid
from shared.events import TrackedEvent, decode, derived_id

SOURCE = uuid.UUID("0b7c7d0e-58a5-4c4e-9d38-6f3c1d2a9e11")
RECEIVED = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)

CUSTOMER: dict[str, Any] = {
    "id": 115310627314723954,
    "email": "john@example.com",
    "accepts_marketing": False,
    "created_at": "2026-03-01T10:00:00-05:00",
    "first_name": "John",
    "last_name": "Smith",
    "state": "enabled",
    "verified_email": True,
    "currency": "USD",
    "phone": None,
    "email_marketing_consent": {
        "state": "subscribed",
        "opt_in_level": "single_opt_in",
        "consent_updated_at": "2026-03-01T10:00:00-05:00",
    },
    "sms_marketing_consent": None,
    "admin_graphql_api_id": "gid://shopify/Customer/115310627314723954",
}

LINE_ITEMS: list[dict[str, Any]] = [
    {
        "id": 866550311766439020,
        "product_id": 632910392,
        "variant_id": 808950810,
        "sku": "IPOD2008PINK",
        "title": "IPod Nano - 8GB",
        "variant_title": "Pink",
        "vendor": "Apple",
        "name": "IPod Nano - 8GB - Pink",
        "price": "199.00",
        "quantity": 1,
        "gift_card": False,
        "taxable": True,
    },
    {
        "id": 141249953214522974,
        "product_id": 632910393,
        "variant_id": 808950811,
        "sku": "IPOD2008BLACK",
        "title": "IPod Nano - 8GB",
        "variant_title": "Black",
        "vendor": "Apple",
        "price": "199.00",
        "quantity": 2,
    },
]

ORDER: dict[str, Any] = {
    "id": 820982911946154508,
    "admin_graphql_api_id": "gid://shopify/Order/820982911946154508",
    "buyer_accepts_marketing": True,
    "cart_token": "68778783ad298f1c80c3bafcddeea02f",
    "checkout_id": 901414060,
    "checkout_token": "bd5a8aa1ecd019dd3520ff791ee3a24c",
    "contact_email": "jon@example.com",
    "created_at": "2026-03-02T06:59:30-05:00",
    "updated_at": "2026-03-02T07:01:10-05:00",
    "processed_at": "2026-03-02T06:59:30-05:00",
    "currency": "USD",
    "presentment_currency": "USD",
    "email": "jon@example.com",
    "financial_status": "paid",
    "name": "#1001",
    "order_number": 1001,
    "subtotal_price": "587.00",
    "total_discounts": "10.00",
    "total_line_items_price": "597.00",
    "total_price": "629.95",
    "total_tax": "32.95",
    "total_shipping_price_set": {
        "shop_money": {"amount": "10.00", "currency_code": "USD"},
        "presentment_money": {"amount": "10.00", "currency_code": "USD"},
    },
    "discount_codes": [{"code": "SPRING10", "amount": "10.00", "type": "fixed_amount"}],
    "line_items": LINE_ITEMS,
    "shipping_lines": [{"id": 271878346596884015, "code": "Standard", "price": "10.00", "title": "Standard"}],
    "customer": CUSTOMER,
}

CHECKOUT: dict[str, Any] = {
    "id": 901414060,
    "token": "bd5a8aa1ecd019dd3520ff791ee3a24c",
    "cart_token": "68778783ad298f1c80c3bafcddeea02f",
    "email": "bob.norman@mail.example.com",
    "buyer_accepts_marketing": False,
    "created_at": "2026-03-02T06:40:00-05:00",
    "updated_at": "2026-03-02T06:45:00-05:00",
    "currency": "EUR",
    "presentment_currency": "EUR",
    "completed_at": None,
    "line_items": [{**LINE_ITEMS[0], "line_price": "199.00"}],
    "shipping_lines": [{"code": "Express", "price": "12.50"}, {"code": "Insurance", "price": "2.25"}],
    "abandoned_checkout_url": "https://shop.example/12345/checkouts/bd5a8aa1/recover?key=abc",
    "discount_codes": [],
    "total_discounts": "0.00",
    "total_line_items_price": "199.00",
    "total_price": "213.75",
    "total_tax": "0.00",
    "subtotal_price": "199.00",
    "customer": None,
}

CART: dict[str, Any] = {
    "id": "eeafa272cebfd4b22385bc4b645e762c",
    "token": "eeafa272cebfd4b22385bc4b645e762c",
    "line_items": [
        {
            "id": 704912205188288575,
            "properties": {},
            "quantity": 3,
            "variant_id": 704912205188288575,
            "key": "704912205188288575:33f11f7a1ec7d93b826de33bb54de37b",
            "discounted_price": "19.99",
            "gift_card": False,
            "line_price": "59.97",
            "original_price": "19.99",
            "price": "19.99",
            "product_id": 788032119674292922,
            "sku": "example-shirt-s",
            "title": "Example T-Shirt - Small",
            "vendor": "Acme",
        },
        {"id": 1, "quantity": 1, "product_id": 2, "variant_id": 3, "price": "5", "title": "Sticker"},
    ],
    "note": None,
    "updated_at": "2026-03-02T11:00:00.000Z",
    "created_at": "2026-03-02T10:58:00.000Z",
}

NEW_CUSTOMER: dict[str, Any] = {
    "id": 706405506930370084,
    "email": "bob@biller.com",
    "created_at": "2026-03-02T09:00:00-05:00",
    "updated_at": "2026-03-02T09:00:00-05:00",
    "first_name": "Bob",
    "last_name": "Biller",
    "orders_count": 0,
    "state": "disabled",
    "total_spent": "0.00",
    "verified_email": True,
    "tags": "",
    "currency": "USD",
    "phone": "+16135551111",
    "addresses": [],
    "email_marketing_consent": {"state": "not_subscribed", "opt_in_level": None, "consent_updated_at": None},
    "sms_marketing_consent": None,
}


def deliver(
    topic: str, payload: dict[str, Any], webhook_id: str = "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"
) -> list[TrackedEvent]:
    return map_delivery(
        Delivery(SOURCE, topic, webhook_id, payload, RECEIVED, shop_domain="acme.myshopify.com", api_version="2026-01")
    )


def test_order_created_is_order_completed_with_segment_totals_and_exact_money() -> None:
    [event] = deliver("orders/create", ORDER)
    assert (event.type, event.event) == ("track", "Order Completed")
    p = event.properties
    assert p["order_id"] == "820982911946154508" and p["checkout_id"] == "901414060"
    assert p["cart_id"] == "68778783ad298f1c80c3bafcddeea02f"
    assert (p["total"], p["revenue"], p["subtotal"], p["tax"], p["shipping"], p["discount"]) == (
        "629.95",
        "587.00",
        "587.00",
        "32.95",
        "10.00",
        "10.00",
    )
    assert p["currency"] == "USD" and p["coupon"] == "SPRING10" and p["affiliation"] == "acme.myshopify.com"
    assert p["email"] == "jon@example.com"
    assert p["products"] == [
        {
            "product_id": "632910392",
            "variant_id": "808950810",
            "sku": "IPOD2008PINK",
            "name": "IPod Nano - 8GB",
            "variant": "Pink",
            "brand": "Apple",
            "price": "199.00",
            "quantity": 1,
        },
        {
            "product_id": "632910393",
            "variant_id": "808950811",
            "sku": "IPOD2008BLACK",
            "name": "IPod Nano - 8GB",
            "variant": "Black",
            "brand": "Apple",
            "price": "199.00",
            "quantity": 2,
        },
    ]
    assert event.timestamp == datetime(2026, 3, 2, 11, 59, 30, tzinfo=UTC)


def test_order_identity_is_the_prefixed_customer_id_with_the_cart_token_and_email() -> None:
    [event] = deliver("orders/create", ORDER)
    assert event.user_id == "shopify:115310627314723954"
    assert event.anonymous_id == "68778783ad298f1c80c3bafcddeea02f"
    assert event.context["traits"] == {"email": "jon@example.com"}
    assert event.context["shopify"]["topic"] == "orders/create"
    assert event.lead_key == "shopify:115310627314723954"


def test_consent_is_copied_as_shopify_states_it() -> None:
    [event] = deliver("orders/create", ORDER)
    assert event.properties["marketing_consent"] == {
        "buyer_accepts_marketing": True,
        "accepts_marketing": False,
        "email_marketing_consent": {
            "state": "subscribed",
            "opt_in_level": "single_opt_in",
            "consent_updated_at": "2026-03-01T10:00:00-05:00",
        },
    }
    [declined] = deliver("checkouts/create", CHECKOUT)
    assert declined.properties["marketing_consent"] == {"buyer_accepts_marketing": False}
    silent = {k: v for k, v in ORDER.items() if k not in ("buyer_accepts_marketing", "customer")}
    [unknown] = deliver("orders/create", silent)
    assert "marketing_consent" not in unknown.properties


def test_guest_checkout_is_checkout_started_keyed_by_its_cart_token_with_the_email() -> None:
    [event] = deliver("checkouts/create", CHECKOUT)
    assert (event.type, event.event) == ("track", "Checkout Started")
    assert event.user_id is None and event.anonymous_id == "68778783ad298f1c80c3bafcddeea02f"
    assert event.context["traits"]["email"] == "bob.norman@mail.example.com"
    p = event.properties
    assert p["checkout_id"] == "901414060" and p["cart_id"] == "68778783ad298f1c80c3bafcddeea02f"
    assert (p["value"], p["total"], p["revenue"], p["currency"]) == ("213.75", "213.75", "199.00", "EUR")
    assert p["shipping"] == "14.75"
    assert "coupon" not in p
    [update] = deliver("checkouts/update", CHECKOUT)
    assert update.event == "Checkout Updated" and update.timestamp == datetime(2026, 3, 2, 11, 45, tzinfo=UTC)


def test_new_cart_adds_each_line_item_as_product_added() -> None:
    events = deliver("carts/create", CART)
    assert [e.event for e in events] == ["Product Added", "Product Added"]
    first, second = (e.properties for e in events)
    assert first == {
        "cart_id": "eeafa272cebfd4b22385bc4b645e762c",
        "product_id": "788032119674292922",
        "variant_id": "704912205188288575",
        "sku": "example-shirt-s",
        "name": "Example T-Shirt - Small",
        "brand": "Acme",
        "price": "19.99",
        "quantity": 3,
    }
    assert second["price"] == "5" and second["quantity"] == 1
    assert all(e.anonymous_id == "eeafa272cebfd4b22385bc4b645e762c" and e.user_id is None for e in events)
    assert len({e.event_id for e in events}) == 2
    assert events[0].timestamp == datetime(2026, 3, 2, 10, 58, tzinfo=UTC)


def test_updated_cart_is_one_cart_updated_with_every_product() -> None:
    [event] = deliver("carts/update", CART)
    assert event.event == "Cart Updated"
    assert [p["sku"] for p in event.properties["products"] if "sku" in p] == ["example-shirt-s"]
    assert len(event.properties["products"]) == 2


def test_order_paid_and_customer_created() -> None:
    [paid] = deliver("orders/paid", ORDER)
    assert paid.event == "Order Paid" and paid.properties["financial_status"] == "paid"
    assert paid.timestamp == datetime(2026, 3, 2, 12, 1, 10, tzinfo=UTC)
    [identify] = deliver("customers/create", NEW_CUSTOMER)
    assert identify.type == "identify" and identify.event is None
    assert identify.user_id == "shopify:706405506930370084" and identify.anonymous_id is None
    assert identify.traits == {
        "email": "bob@biller.com",
        "firstName": "Bob",
        "lastName": "Biller",
        "phone": "+16135551111",
        "createdAt": "2026-03-02T09:00:00-05:00",
        "shopify_customer_id": "706405506930370084",
        "marketing_consent": {"email_marketing_consent": {"state": "not_subscribed"}},
    }


def test_event_ids_derive_from_source_webhook_id_and_index_so_a_redelivery_repeats_them() -> None:
    first = deliver("carts/create", CART, webhook_id="w-1")
    again = deliver("carts/create", CART, webhook_id="w-1")
    other = deliver("carts/create", CART, webhook_id="w-2")
    assert [e.event_id for e in first] == [e.event_id for e in again]
    assert first[0].event_id == derived_id(SOURCE, "shopify", "w-1", 0)
    assert not {e.event_id for e in first} & {e.event_id for e in other}


def test_events_survive_the_topic_round_trip() -> None:
    for topic, payload in (("orders/create", ORDER), ("checkouts/create", CHECKOUT), ("carts/create", CART)):
        for event in deliver(topic, payload):
            assert decode(TrackedEvent, event.to_bytes()) == event


def test_odd_payloads_map_without_failing() -> None:
    """Missing ids, numbers as money, junk in line_items: map what is there, never raise."""
    pos_order = {"id": 5, "total_price": 12.5, "line_items": ["junk", {"price": "bad", "quantity": True}], "x": None}
    [event] = deliver("orders/create", pos_order)
    assert event.anonymous_id == "shopify-orders:5" and event.user_id is None
    assert event.properties["total"] == "12.5" and event.properties["products"] == [{}]
    assert event.timestamp == RECEIVED
    assert deliver("carts/create", {"token": "t"}) == []
    assert deliver("refunds/create", ORDER) == []


def test_every_issue_topic_is_mapped() -> None:
    assert set(TOPICS) == {
        "checkouts/create",
        "checkouts/update",
        "carts/create",
        "carts/update",
        "orders/create",
        "orders/paid",
        "customers/create",
    }


def test_hmac_header_is_base64_of_hmac_sha256_over_the_raw_body() -> None:
    body = b'{"id":820982911946154508}'
    expected = base64.b64encode(hmac.new(b"shpss_secret", body, hashlib.sha256).digest()).decode()
    assert hmac_header("shpss_secret", body) == expected


@given(body=st.binary(max_size=512), secret=st.text(min_size=1, max_size=40), flip=st.integers(min_value=0))
def test_shopify_signature_accepts_only_the_exact_body(body: bytes, secret: str, flip: int) -> None:
    header = hmac_header(secret, body)
    assert signature_valid(header, body, ["other-secret-xyz", secret])
    assert not signature_valid(header, body + b" ", [secret])
    if body:
        i = flip % len(body)
        tampered = body[:i] + bytes([body[i] ^ 1]) + body[i + 1 :]
        assert not signature_valid(header, tampered, [secret])
    assert not signature_valid(None, body, [secret]) and not signature_valid(header, body, [])
