"""What the reminder loop guarantees: one email per cart and step across processes and replayed rounds,
an unsubscribe honoured at send time, the frequency cap only when the shop asks for it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from funnelstream.runtime import background_tasks
from services.commerce.reminder_loop import make_reminder_sender
from services.nurture.consent import repository as consent
from shared.db import make_engine, make_sessionmaker
from shared.kafka import make_producer
from shared.settings import NurtureSettings
from tests.services.commerce.shop import Shop, running_shop
from tests.smtp import SmtpSink

MUG = {"cart_id": "c1", "product_id": "mug", "name": "Mug", "price": 10, "quantity": 1, "currency": "EUR"}


async def left_cart(shop: Shop, user: str, to: str) -> None:
    await shop.track(user, "Product Added", MUG | {"cart_id": f"cart-{user}"}, email=to)
    await shop.subscribe(user)
    await shop.cart_where(f"cart-{user}", "cart stored", lambda c: c["next_reminder_at"] is not None)


async def execute(shop: Shop, sql: str, **params: Any) -> None:
    async with shop.sender.sessionmaker() as session, session.begin():
        await session.execute(text(sql), params)


async def test_two_processes_due_at_once_send_one_email(settings_kwargs: dict[str, Any], smtp_sink: SmtpSink) -> None:
    async with running_shop(settings_kwargs, smtp_sink) as shop:
        await shop.configure(schedule=(1,))
        to = smtp_sink.address("twice")
        await left_cart(shop, "ann", to)
        engine = make_engine(shop.settings.database_url, pool_size=2)
        try:
            other = make_reminder_sender(shop.settings, make_sessionmaker(engine))  # a second nurture process
            at = datetime.now(UTC) + timedelta(seconds=5)
            handled = await asyncio.gather(shop.sender.run_due(at), other.run_due(at), shop.sender.run_due(at))
        finally:
            await engine.dispose()
        assert sum(handled) == 1
        await smtp_sink.wait_for(to, 1)
        await shop.later(3600)
        assert len(smtp_sink.received(to)) == 1


async def test_a_round_replayed_after_a_crash_never_sends_twice(
    settings_kwargs: dict[str, Any], smtp_sink: SmtpSink
) -> None:
    async with running_shop(settings_kwargs, smtp_sink) as shop:
        await shop.configure(schedule=(1,))
        to = smtp_sink.address("replayed")
        await left_cart(shop, "bob", to)
        await shop.later(5)
        await smtp_sink.wait_for(to, 1)
        # As if the round's transaction was lost after the email went out: the delivery claim stays.
        await execute(shop, "DELETE FROM cart_reminders")
        await execute(shop, "UPDATE carts SET steps_sent = '{}', next_reminder_at = now()")
        assert await shop.later(5) == 1
        cart = await shop.cart("cart-bob")
        assert cart is not None and [(r["step"], r["outcome"]) for r in cart["reminders"]] == [(0, "sent")]
        assert len(smtp_sink.received(to)) == 1


async def test_unsubscribe_after_the_first_reminder_stops_the_rest(
    settings_kwargs: dict[str, Any], smtp_sink: SmtpSink
) -> None:
    async with running_shop(settings_kwargs, smtp_sink) as shop:
        await shop.configure(schedule=(1, 3600))
        to = smtp_sink.address("unsub")
        await left_cart(shop, "cat", to)
        await shop.later(5)
        await smtp_sink.wait_for(to, 1)
        lead = await shop.lead_id("cat")
        async with shop.sender.sessionmaker() as session, session.begin():
            await consent.set_status(session, lead, "*", "unsubscribed", "link", None, None, None, datetime.now(UTC))
        await shop.later(7200)
        cart = await shop.cart("cart-cat")
        assert cart is not None
        assert [(r["step"], r["outcome"], r["reason"]) for r in cart["reminders"]] == [
            (0, "sent", None),
            (1, "suppressed", "unsubscribed"),
        ]
        assert len(smtp_sink.received(to)) == 1


async def test_reminders_skip_the_frequency_cap_unless_the_shop_turns_the_exemption_off(
    settings_kwargs: dict[str, Any], smtp_sink: SmtpSink
) -> None:
    async with running_shop(settings_kwargs, smtp_sink) as shop:
        await shop.configure(schedule=(1,))  # exempt by default
        exempt, capped = smtp_sink.address("exempt"), smtp_sink.address("capped")
        await left_cart(shop, "dan", exempt)
        await just_got_marketing(shop, "dan")
        await shop.later(5)
        await smtp_sink.wait_for(exempt, 1)

        await shop.configure(schedule=(1,), exempt_from_cap=False)
        await left_cart(shop, "eve", capped)
        await just_got_marketing(shop, "eve")
        await shop.later(5)
        assert smtp_sink.received(capped) == []
        cart = await shop.cart("cart-eve")
        assert cart is not None and cart["reminders"] == []
        assert datetime.fromisoformat(cart["next_reminder_at"]) > datetime.now(UTC) + timedelta(hours=15)
        await shop.later(17 * 3600)  # once the cap has passed
        await smtp_sink.wait_for(capped, 1)


async def just_got_marketing(shop: Shop, user: str) -> None:
    """Another sequence's marketing email just went to the lead (what the cap counts)."""
    lead = await shop.lead_id(user)
    await execute(shop, "INSERT INTO nurture_lead_state VALUES (:l, now())", l=lead)


async def test_an_absurd_price_is_stored_as_unknown_and_the_batch_goes_on(
    settings_kwargs: dict[str, Any], smtp_sink: SmtpSink
) -> None:
    async with running_shop(settings_kwargs, smtp_sink) as shop:
        forged = MUG | {"cart_id": "huge", "price": "1e20", "quantity": 10**12}
        await shop.track("fay", "Product Added", forged)
        await shop.track("fay", "Product Added", MUG | {"cart_id": "fine"})
        cart = await shop.cart_where("huge", "stored", lambda c: c["status"] == "open")
        assert cart["total"] is None and cart["item_count"] == 2**31 - 1
        fine = await shop.cart_where("fine", "stored", lambda c: c["status"] == "open")
        assert fine["total"] == "10.00"


async def test_the_nurture_process_runs_the_reminder_loop(settings_kwargs: dict[str, Any]) -> None:
    settings = NurtureSettings(**settings_kwargs, secret_key="test-secret")
    engine = make_engine(settings.database_url, pool_size=2)
    tasks = background_tasks("nurture", settings, make_sessionmaker(engine), make_producer(settings))
    try:
        assert "cart-reminders" in {task.get_name() for task in tasks}
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await engine.dispose()
