"""Cart reminders from signed Shopify webhooks: the shopper's consent as Shopify states it, the checkout
as the cart, the shop's cart URL pattern for the recovery link, the order stopping the rest."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from services.ingest.shopify import hmac_header
from tests.helpers import eventually
from tests.services.commerce.shop import Shop, html_of, links, running_shop
from tests.smtp import SmtpSink


async def post_shopify(shop: Shop, secret: str, topic: str, payload: dict[str, Any]) -> None:
    body = orjson.dumps(payload)
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": "acme.myshopify.com",
        "X-Shopify-Webhook-Id": str(uuid.uuid4()),
        "X-Shopify-Hmac-Sha256": hmac_header(secret, body),
    }
    r = await shop.client.post(
        f"{shop.stack.base_url}/webhooks/shopify/{shop.source_id}", content=body, headers=headers
    )
    assert r.status_code == 200, r.text


def checkout(email: str, token: str, *, accepts: bool) -> dict[str, Any]:
    return {
        "id": 981820079255243537, "token": f"chk-{token}", "cart_token": token, "email": email,
        "buyer_accepts_marketing": accepts, "currency": "EUR", "total_price": "64.00", "subtotal_price": "64.00",
        "created_at": datetime.now(UTC).isoformat(), "updated_at": datetime.now(UTC).isoformat(),
        "line_items": [
            {"product_id": 632910392, "title": "IPod Nano", "price": "32.00", "quantity": 2, "sku": "IPOD2008"}
        ],
    }  # fmt: skip


async def test_shopify_checkout_with_stated_consent_gets_a_reminder_and_its_order_stops_the_rest(
    settings_kwargs: dict[str, Any], smtp_sink: SmtpSink
) -> None:
    async with running_shop(settings_kwargs, smtp_sink) as shop:
        r = await shop.configure(schedule=(1, 3600), cart_url_pattern="https://acme.example/cart/{cart_id}")
        assert r.status_code == 200, r.text
        r = await shop.client.post(
            f"{shop.stack.base_url}/api/sources/{shop.source_id}/webhook-secrets", json=None, headers=shop.admin
        )
        secret = r.json()["secret"]
        to = smtp_sink.address("shopify")
        await post_shopify(shop, secret, "checkouts/create", checkout(to, "tok-1", accepts=True))
        cart = await shop.cart_where("tok-1", "checkout stored", lambda c: c["status"] == "checkout")
        assert cart["total"] == "64.00" and cart["item_count"] == 2
        await shop.later(5)
        (mail,) = await smtp_sink.wait_for(to, 1)
        assert "IPod Nano" in html_of(mail) and "Total: 64.00 EUR" in html_of(mail)
        click = await shop.client.get(links(mail)["Back to your cart"])
        back = await shop.client.get(click.headers["location"])
        assert back.status_code == 303 and back.headers["location"] == "https://acme.example/cart/tok-1"

        # stamped after the reminder, which the round above sent "5 s from now"
        at = (datetime.now(UTC) + timedelta(seconds=10)).isoformat()
        order = {
            **checkout(to, "tok-1", accepts=True),
            "id": 450789469,
            "checkout_token": "chk-tok-1",
            "created_at": at,
        }
        await post_shopify(shop, secret, "orders/create", order)
        await shop.cart_where("tok-1", "order stored", lambda c: c["status"] == "ordered")
        await shop.later(2 * 86_400)
        assert len(smtp_sink.received(to)) == 1

        async def recovered() -> list[dict[str, Any]] | None:
            r = await shop.client.get(shop.api("/recoveries"), headers=shop.admin)
            return r.json() or None

        (recovery,) = await eventually(recovered, what="the order attributed")
        assert recovery["order_id"] == "450789469" and recovery["amount"] == "64.00"


async def test_shopify_checkout_without_consent_gets_no_reminder(
    settings_kwargs: dict[str, Any], smtp_sink: SmtpSink
) -> None:
    async with running_shop(settings_kwargs, smtp_sink) as shop:
        await shop.configure(schedule=(1,), cart_url_pattern="https://acme.example/cart/{cart_id}")
        r = await shop.client.post(
            f"{shop.stack.base_url}/api/sources/{shop.source_id}/webhook-secrets", json=None, headers=shop.admin
        )
        to = smtp_sink.address("shopify-no")
        await post_shopify(shop, r.json()["secret"], "checkouts/create", checkout(to, "tok-2", accepts=False))
        await shop.cart_where("tok-2", "checkout stored", lambda c: c["next_reminder_at"] is not None)
        await shop.later(5)
        cart = await shop.cart("tok-2")
        assert cart is not None and [(x["outcome"], x["reason"]) for x in cart["reminders"]] == [
            ("suppressed", "no-consent")
        ]
        assert smtp_sink.received(to) == []
