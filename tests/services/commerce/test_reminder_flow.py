"""Cart abandonment end to end: Segment e-commerce events over HTTP, the real scoring and nurture
consumers, the carts table, the reminder loop, consent, codes and the real SMTP server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.helpers import eventually
from tests.services.commerce.shop import html_of, links, running_shop
from tests.smtp import SmtpSink

MUG = {
    "product_id": "mug",
    "name": "Blue mug",
    "price": 12.5,
    "quantity": 2,
    "image_url": "https://shop.example/mug.png",
}
POSTER = {"product_id": "poster", "name": "Poster", "price": 30, "quantity": 1}


def added(cart: str, product: dict[str, Any]) -> dict[str, Any]:
    return {"cart_id": cart, "currency": "EUR", **product}


async def test_left_cart_gets_reminders_with_items_total_and_a_working_recovery_link(
    settings_kwargs: dict[str, Any], smtp_sink: SmtpSink
) -> None:
    async with running_shop(settings_kwargs, smtp_sink) as shop:
        assert (await shop.configure(schedule=(1, 2))).status_code == 200
        to = smtp_sink.address("cart")
        await shop.track("ann", "Product Added", added("c1", MUG), email=to)
        await shop.track("ann", "Product Added", added("c1", POSTER))
        await shop.track("ann", "Checkout Started", {"cart_id": "c1", "checkout_url": "https://shop.example/co/c1"})
        await shop.subscribe("ann")
        cart = await shop.cart_where("c1", "checkout stored", lambda c: c["status"] == "checkout")
        assert cart["item_count"] == 3 and cart["total"] == "55.00" and cart["currency"] == "EUR"
        shop.start_loop()

        first, second = await smtp_sink.wait_for(to, 2, timeout=30)
        assert [m.message["Subject"] for m in (first, second)] == ["Reminder 1: your cart", "Reminder 2: your cart"]
        html = html_of(first)
        assert "Blue mug" in html and "× 2 at 12.50 EUR" in html and "https://shop.example/mug.png" in html
        assert "Poster" in html and "Total: 55.00 EUR" in html
        tracked = links(first)["Back to your cart"]
        click = await shop.client.get(tracked)  # the click redirect, then the recovery link
        assert click.status_code in (302, 303, 307), click.text
        recovery = click.headers["location"]
        assert recovery.startswith(f"{shop.stack.base_url}/r/cart/")
        back = await shop.client.get(recovery)
        assert back.status_code == 303 and back.headers["location"] == "https://shop.example/co/c1"
        cart = await shop.cart_where("c1", "both steps recorded", lambda c: c["steps_sent"] == [0, 1])
        assert [r["outcome"] for r in cart["reminders"]] == ["sent", "sent"]
        assert cart["next_reminder_at"] is None


async def test_altered_recovery_link_is_refused(settings_kwargs: dict[str, Any], smtp_sink: SmtpSink) -> None:
    async with running_shop(settings_kwargs, smtp_sink) as shop:
        r = await shop.client.get(f"{shop.stack.base_url}/r/cart/eyJrIjoiZXZpbCJ9.forged")
        assert r.status_code == 400 and "location" not in r.headers


async def test_checkout_then_order_sends_no_reminder(settings_kwargs: dict[str, Any], smtp_sink: SmtpSink) -> None:
    async with running_shop(settings_kwargs, smtp_sink) as shop:
        await shop.configure(schedule=(1, 2))
        to = smtp_sink.address("ordered")
        await shop.track("bob", "Product Added", added("c2", MUG), email=to)
        await shop.track("bob", "Checkout Started", {"cart_id": "c2"})
        await shop.subscribe("bob")
        await shop.track("bob", "Order Completed", {"cart_id": "c2", "order_id": "o-1", "total": 25, "currency": "EUR"})
        cart = await shop.cart_where("c2", "order stored", lambda c: c["status"] == "ordered")
        assert cart["next_reminder_at"] is None
        assert await shop.later(3600) == 0  # an hour later nothing is due
        assert smtp_sink.received(to) == []


async def test_order_on_another_cart_after_this_one_started_stops_its_reminders(
    settings_kwargs: dict[str, Any], smtp_sink: SmtpSink
) -> None:
    async with running_shop(settings_kwargs, smtp_sink) as shop:
        await shop.configure(schedule=(1, 2))
        to = smtp_sink.address("other")
        started = datetime.now(UTC)
        await shop.track("cat", "Product Added", added("web-cart", MUG), email=to, at=started)
        await shop.subscribe("cat")
        await shop.cart_where("web-cart", "cart stored", lambda c: c["status"] == "open")
        # The order names only its checkout (a Segment shop's checkout id differs from its cart id).
        order = {"checkout_id": "chk-9", "order_id": "o-9", "total": 25, "currency": "EUR"}
        await shop.track("cat", "Order Completed", order, at=started + timedelta(seconds=1))
        cart = await shop.cart_where("web-cart", "closed by the order", lambda c: c["status"] == "ordered")
        assert cart["closed_by"] == f"{shop.source_id}:chk-9"
        r = await shop.client.get(shop.api("/carts"), params={"status": "ordered"}, headers=shop.admin)
        assert {c["cart_key"] for c in r.json()} == {f"{shop.source_id}:web-cart", f"{shop.source_id}:chk-9"}
        r = await shop.client.get(shop.api("/carts"), params={"status": "open"}, headers=shop.admin)
        assert r.json() == []
        await shop.later(3600)
        assert smtp_sink.received(to) == []


async def test_order_between_steps_stops_the_later_steps(settings_kwargs: dict[str, Any], smtp_sink: SmtpSink) -> None:
    async with running_shop(settings_kwargs, smtp_sink) as shop:
        await shop.configure(schedule=(1, 3600, 7200))
        to = smtp_sink.address("between")
        await shop.track("dan", "Product Added", added("c3", MUG), email=to)
        await shop.subscribe("dan")
        await shop.cart_where("c3", "cart stored", lambda c: c["next_reminder_at"] is not None)
        shop.start_loop()
        await smtp_sink.wait_for(to, 1, timeout=30)
        await shop.cart_where("c3", "first step recorded", lambda c: c["steps_sent"] == [0])
        await shop.track("dan", "Order Completed", {"cart_id": "c3", "order_id": "o-3", "total": 25, "currency": "EUR"})
        await shop.cart_where("c3", "order stored", lambda c: c["status"] == "ordered")
        await shop.stop_loop()
        await shop.later(3 * 86_400)  # days later: every remaining step would be due
        assert len(smtp_sink.received(to)) == 1
        cart = await shop.cart("c3")
        assert cart is not None and [r["step"] for r in cart["reminders"]] == [0]


async def test_duplicate_and_out_of_order_events_give_the_same_cart(
    settings_kwargs: dict[str, Any], smtp_sink: SmtpSink
) -> None:
    async with running_shop(settings_kwargs, smtp_sink) as shop:
        t0 = datetime.now(UTC) - timedelta(minutes=5)
        to = smtp_sink.address("shuffled")
        # Sent newest first, one of them twice: add mug ×2, add poster, remove one mug, view the cart.
        removed = {"cart_id": "c4", "product_id": "mug", "quantity": 1}
        await shop.track("eve", "Product Removed", removed, at=t0 + timedelta(seconds=3), message_id="m3", email=to)
        await shop.track("eve", "Product Added", added("c4", POSTER), at=t0 + timedelta(seconds=2), message_id="m2")
        await shop.track("eve", "Product Added", added("c4", POSTER), at=t0 + timedelta(seconds=2), message_id="m2")
        await shop.track("eve", "Product Added", added("c4", MUG), at=t0 + timedelta(seconds=1), message_id="m1")
        cart = await shop.cart_where("c4", "all three applied", lambda c: c["item_count"] == 2)
        assert {line["product_id"]: line["quantity"] for line in cart["lines"]} == {"mug": 1, "poster": 1}
        assert cart["total"] == "42.50"
        assert cart["last_activity_at"].startswith((t0 + timedelta(seconds=3)).isoformat()[:19])


async def test_emptied_cart_gets_no_reminder(settings_kwargs: dict[str, Any], smtp_sink: SmtpSink) -> None:
    async with running_shop(settings_kwargs, smtp_sink) as shop:
        await shop.configure(schedule=(1, 2))
        to = smtp_sink.address("emptied")
        await shop.track("fay", "Product Added", added("c5", MUG), email=to)
        await shop.track("fay", "Product Removed", {"cart_id": "c5", "product_id": "mug"})
        await shop.subscribe("fay")
        cart = await shop.cart_where("c5", "emptied", lambda c: c["status"] == "emptied")
        assert cart["next_reminder_at"] is None
        await shop.later(3600)
        assert smtp_sink.received(to) == []


async def test_without_consent_no_reminder_is_sent(settings_kwargs: dict[str, Any], smtp_sink: SmtpSink) -> None:
    async with running_shop(settings_kwargs, smtp_sink) as shop:
        await shop.configure(schedule=(1, 2))
        to = smtp_sink.address("noconsent")
        await shop.track("gus", "Product Added", added("c6", MUG), email=to)
        await shop.cart_where("c6", "cart stored", lambda c: c["next_reminder_at"] is not None)
        await shop.later(3600)
        cart = await shop.cart("c6")
        assert cart is not None
        assert [(r["step"], r["outcome"], r["reason"]) for r in cart["reminders"]] == [(1, "suppressed", "no-consent")]
        assert smtp_sink.received(to) == []


async def test_incentive_tiers_by_cart_total_with_unique_pool_codes(
    settings_kwargs: dict[str, Any], smtp_sink: SmtpSink
) -> None:
    async with running_shop(settings_kwargs, smtp_sink) as shop:
        incentive = {"tiers": [{"min_total": 100, "percent_off": 5}, {"min_total": 300, "percent_off": 10}],
                     "on_step": 0, "currency": "EUR"}  # fmt: skip
        r = await shop.configure(schedule=(1,), incentive=incentive, code_source="pool")
        assert r.status_code == 200, r.text
        r = await shop.client.post(shop.api("/codes"), json={"codes": ["A1", "A2", "A2", "A3"]}, headers=shop.admin)
        assert r.json() == {"added": 3, "available": 3, "given": 0}
        totals = {"hal": 150, "ivy": 350, "jon": 50}
        to = {user: smtp_sink.address(user) for user in totals}
        for user, total in totals.items():
            product = {"product_id": "set", "name": "Set", "price": total, "quantity": 1}
            await shop.track(user, "Product Added", added(f"cart-{user}", product), email=to[user])
            await shop.subscribe(user)
        for user in totals:
            await shop.cart_where(f"cart-{user}", "stored", lambda c: c["next_reminder_at"] is not None)
        await shop.later(60)
        mails = {user: html_of((await smtp_sink.wait_for(to[user], 1))[0]) for user in totals}
        assert "5% off with code" in mails["hal"] and "10% off with code" in mails["ivy"]
        assert "off with code" not in mails["jon"]
        codes = {user: mails[user].split("<b>")[1].split("</b>")[0] for user in ("hal", "ivy")}
        assert set(codes.values()) < {"A1", "A2", "A3"} and len(set(codes.values())) == 2
        r = await shop.client.get(shop.api("/codes"), headers=shop.admin)
        assert r.json() == {"added": 0, "available": 1, "given": 2}


async def test_pattern_codes_are_unique_per_cart(settings_kwargs: dict[str, Any], smtp_sink: SmtpSink) -> None:
    async with running_shop(settings_kwargs, smtp_sink) as shop:
        incentive = {"tiers": [{"min_total": 0, "free_shipping": True}], "on_step": 0}
        r = await shop.configure(incentive=incentive, code_source="pattern", code_pattern="SHIP-{XXXXXX}")
        assert r.status_code == 200, r.text
        to = {user: smtp_sink.address(user) for user in ("kim", "lou")}
        for user in to:
            await shop.track(user, "Product Added", added(f"cart-{user}", MUG), email=to[user])
            await shop.subscribe(user)
            await shop.cart_where(f"cart-{user}", "stored", lambda c: c["next_reminder_at"] is not None)
        await shop.later(60)
        carts = [await shop.cart(f"cart-{user}") for user in to]
        codes = [c["reminders"][0]["code"] for c in carts if c]
        assert len(set(codes)) == 2 and all(code.startswith("SHIP-") and len(code) == 11 for code in codes)
        for user, code in zip(to, codes, strict=True):
            assert code in html_of((await smtp_sink.wait_for(to[user], 1))[0])


async def test_order_after_a_reminder_is_attributed_as_recovered_revenue(
    settings_kwargs: dict[str, Any], smtp_sink: SmtpSink
) -> None:
    async with running_shop(settings_kwargs, smtp_sink) as shop:
        await shop.configure(schedule=(1, 3600))
        to = smtp_sink.address("recovered")
        await shop.track("max", "Product Added", added("c7", MUG), email=to)
        await shop.subscribe("max")
        await shop.cart_where("c7", "cart stored", lambda c: c["next_reminder_at"] is not None)
        await shop.later(5)
        await smtp_sink.wait_for(to, 1)
        order = {"cart_id": "c7", "order_id": "o-7", "total": "27.90", "currency": "EUR"}
        await shop.track("max", "Order Completed", order, at=datetime.now(UTC) + timedelta(seconds=10))

        async def recovered() -> list[dict[str, Any]] | None:
            r = await shop.client.get(shop.api("/recoveries"), headers=shop.admin)
            return r.json() or None

        (recovery,) = await eventually(recovered, what="order attributed")
        assert recovery["order_id"] == "o-7" and recovery["step"] == 0
        assert recovery["amount"] == "27.90" and recovery["currency"] == "EUR"
        stats = (await shop.client.get(shop.api("/stats"), headers=shop.admin)).json()
        assert stats["reminders_sent"] == {"0": 1} and stats["carts_abandoned"] == 1
        assert stats["recovered"] == [{"currency": "EUR", "orders": 1, "revenue": "27.90"}]


async def test_settings_errors_name_the_field(settings_kwargs: dict[str, Any], smtp_sink: SmtpSink) -> None:
    async with running_shop(settings_kwargs, smtp_sink) as shop:
        r = await shop.configure(schedule=(10, 5))
        assert r.status_code == 400 and r.json()["field"] == "schedule_seconds"
        r = await shop.client.put(
            shop.api("/settings"), json={"templates": shop.template_ids[:1], "schedule_seconds": [1, 2]},
            headers=shop.admin,
        )  # fmt: skip
        assert r.status_code == 400 and r.json()["field"] == "templates"
        r = await shop.configure(incentive={"tiers": [{"min_total": 1, "percent_off": 5}], "on_step": 0})
        assert r.status_code == 400 and r.json()["field"] == "code_source"
        r = await shop.configure(templates=["00000000-0000-0000-0000-000000000001"])
        assert r.status_code == 400 and r.json()["field"] == "templates.0"
