"""A running shop for cart tests: the real HTTP app, scoring and nurture consumers, the cart reminder
loop sending to the real SMTP sink, a source with a reminder template and settings."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

import httpx
from sqlalchemy import text

from services.commerce.reminder_loop import ReminderSender, make_reminder_sender, reminder_loop
from services.nurture.consent import repository as consent
from shared.db import make_engine, make_sessionmaker
from shared.settings import NurtureSettings
from tests.helpers import Stack, basic, eventually, running_stack
from tests.smtp import Received, SmtpSink

HTML = (
    "<h1>Still thinking it over?</h1>"
    "{% for item in extra.cart['items'] %}<div class='item'><img src='{{ item.image_url }}' alt=''>"
    "<span class='name'>{{ item.name }}</span> × {{ item.quantity }} at {{ item.price }} {{ extra.cart.currency }}"
    "</div>{% endfor %}"
    "<p class='total'>Total: {{ extra.cart.total }} {{ extra.cart.currency }}</p>"
    "{% if extra.incentive %}<p class='offer'>{{ extra.incentive.percent_off }}% off with code "
    "<b>{{ extra.incentive.code }}</b></p>{% endif %}"
    "<a class='back' href='{{ extra.cart.url }}'>Back to your cart</a>"
    "<p><a href='{{ unsubscribe_url }}'>Unsubscribe</a></p>"
)
SAMPLE_EXTRA: dict[str, Any] = {
    "step": 0,
    "cart": {
        "url": "https://shop.example/cart/1",
        "currency": "EUR",
        "total": "10.00",
        "item_count": 1,
        "items": [{"name": "Mug", "quantity": 1, "price": "10.00", "image_url": "https://shop.example/m.png"}],
    },
    "incentive": {"percent_off": "5", "free_shipping": False, "code": "X", "currency": "EUR", "min_total": "0"},
}


@dataclass
class Shop:
    stack: Stack
    client: httpx.AsyncClient
    sink: SmtpSink
    source_id: str
    write_key: str
    template_ids: list[str]
    sender: ReminderSender
    settings: NurtureSettings
    loop: asyncio.Task[None] | None = None

    @property
    def admin(self) -> dict[str, str]:
        return self.stack.admin

    def api(self, path: str) -> str:
        return f"{self.stack.base_url}/api/commerce/shops/{self.source_id}{path}"

    async def configure(self, schedule: tuple[float, ...] = (1,), **config: Any) -> httpx.Response:
        body = {"templates": self.template_ids[: len(schedule)], "schedule_seconds": list(schedule), **config}
        return await self.client.put(self.api("/settings"), json=body, headers=self.admin)

    async def track(self, user: str, name: str, properties: dict[str, Any], *, at: datetime | None = None,
                    message_id: str | None = None, email: str | None = None) -> None:  # fmt: skip
        body: dict[str, Any] = {
            "userId": user, "event": name, "properties": properties,
            "timestamp": (at or datetime.now(UTC)).isoformat(), "messageId": message_id or str(uuid.uuid4()),
        }  # fmt: skip
        if email:
            body["context"] = {"traits": {"email": email}}
        r = await self.client.post(f"{self.stack.base_url}/v1/track", json=body, headers=basic(self.write_key))
        assert r.status_code == 200, r.text

    async def lead_id(self, user: str) -> uuid.UUID:
        async def probe() -> uuid.UUID | None:
            async with self.sender.sessionmaker() as session:
                found: uuid.UUID | None = await session.scalar(
                    text("SELECT lead_id FROM leads WHERE user_id = :u"), {"u": user}
                )
                return found

        return await eventually(probe, what=f"lead {user}")

    async def subscribe(self, user: str) -> None:
        lead = await self.lead_id(user)
        async with self.sender.sessionmaker() as session, session.begin():
            await consent.set_status(session, lead, "*", "subscribed", "api", "test", "Yes", None, datetime.now(UTC))

    async def cart(self, cart_id: str) -> dict[str, Any] | None:
        r = await self.client.get(self.api(f"/carts/{cart_id}"), headers=self.admin)
        found: dict[str, Any] | None = r.json() if r.status_code == 200 else None
        return found

    async def cart_where(self, cart_id: str, what: str, check: Any) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            found = await self.cart(cart_id)
            return found if found is not None and check(found) else None

        return await eventually(probe, what=what)

    def start_loop(self) -> None:
        self.loop = asyncio.create_task(reminder_loop(self.sender, poll_seconds=0.05))

    async def stop_loop(self) -> None:
        if self.loop is not None:
            self.loop.cancel()
            await asyncio.gather(self.loop, return_exceptions=True)
            self.loop = None

    async def later(self, seconds: float) -> int:
        """One reminder round as if it ran `seconds` from now (deterministic: no waiting for the clock)."""
        return await self.sender.run_due(datetime.now(UTC) + timedelta(seconds=seconds))


def links(received: Received) -> dict[str, str]:
    """The HTML part's links by their class (or text), tracked as they were sent."""
    body = received.message.get_body(("html",))
    assert body is not None
    html = body.get_content()
    found = {}
    for attrs, label in re.findall(r"<a ([^>]*)>(.*?)</a>", html, flags=re.S):
        href = re.search(r'href="([^"]+)"', attrs)
        if href:
            found[label.strip()] = href.group(1).replace("&amp;", "&")
    return found


def html_of(received: Received) -> str:
    body = received.message.get_body(("html",))
    assert body is not None
    content: str = body.get_content()
    return content


@asynccontextmanager
async def running_shop(settings_kwargs: dict[str, Any], sink: SmtpSink, steps: int = 3) -> AsyncIterator[Shop]:
    async with running_stack(settings_kwargs, consumers=("scoring", "nurture")) as stack:
        await asyncio.wait_for(asyncio.gather(*(r.assigned.wait() for r in stack.runners.values())), 60)
        settings = NurtureSettings(
            **settings_kwargs, secret_key="test-secret", smtp_host=sink.host, smtp_port=sink.port,
            public_base_url=stack.base_url, quiet_hours_start=time(0), quiet_hours_end=time(0),
        )  # fmt: skip
        engine = make_engine(settings.database_url, pool_size=4)
        async with httpx.AsyncClient(timeout=30) as client:
            r = await client.post(f"{stack.base_url}/api/sources", json={"name": "shop"}, headers=stack.admin)
            created = r.json()
            template_ids = []
            for step in range(steps):
                r = await client.post(
                    f"{stack.base_url}/api/templates",
                    json={
                        "name": f"cart reminder {step + 1}",
                        "kind": "marketing",
                        "subject": f"Reminder {step + 1}: your cart",
                        "html": HTML,
                        "sample_extra": SAMPLE_EXTRA,
                    },  # fmt: skip
                    headers=stack.admin,
                )
                assert r.status_code == 201, r.text
                template_ids.append(r.json()["id"])
            sender = make_reminder_sender(settings, make_sessionmaker(engine))
            shop = Shop(stack, client, sink, created["id"], created["write_key"], template_ids, sender, settings)
            try:
                yield shop
            finally:
                await shop.stop_loop()
                await engine.dispose()
