"""Sequence email performance (opens and clicks through the real pixel and redirect, bots apart), recovered
carts, and the segment filter's slower path."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text

from shared.db import make_engine
from shared.tokens import make_click_token, make_open_token
from tests.helpers import eventually, running_stack
from tests.services.analytics.seed import count, default_rules, seed

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
MESSAGE_ID = "<step-one@acme.example>"


async def test_email_steps_cart_recovery_and_segment_funnel(settings_kwargs: dict[str, Any]) -> None:
    await default_rules(settings_kwargs["database_url"])
    consumers = ("scoring", "analytics")
    async with running_stack(settings_kwargs, consumers=consumers) as stack, httpx.AsyncClient(timeout=20) as client:
        await seed(stack, client)
        sent_at = datetime.now(UTC) - timedelta(hours=2)
        engine = make_engine(settings_kwargs["database_url"], pool_size=1)
        async with engine.begin() as conn:
            ids: dict[str, uuid.UUID] = dict(
                (await conn.execute(text("SELECT user_id, lead_id FROM leads WHERE user_id IN ('u1', 'u2')"))).all()
            )
            sequence, enrollment = uuid.uuid4(), uuid.uuid4()
            await conn.execute(text("INSERT INTO sequences (id, name) VALUES (:id, 'welcome')"), {"id": sequence})
            await conn.execute(
                text("INSERT INTO enrollments (id, sequence_id, version, lead_id, cause_event_id) "
                     "VALUES (:id, :s, 1, :lead, :cause)"),
                {"id": enrollment, "s": sequence, "lead": ids["u1"], "cause": uuid.uuid4()},
            )  # fmt: skip
            await conn.execute(
                text("INSERT INTO email_sends (send_key, lead_id, kind, status, message_id, sent_at, created_at) "
                     "VALUES (:key, :lead, 'marketing', 'sent', :mid, :at, :at)"),
                {"key": f"{enrollment}:1", "lead": ids["u1"], "mid": MESSAGE_ID, "at": sent_at},
            )  # fmt: skip
            await conn.execute(
                text("INSERT INTO cart_recoveries (order_cart_key, source_id, lead_id, order_id, reminded_cart_key, "
                     "step, amount, currency, reminder_at, ordered_at) VALUES ('c1', :src, :lead, 'o1', 'c0', 1, "
                     "100, 'EUR', :at, now())"),
                {"src": uuid.UUID(int=5), "lead": ids["u1"], "at": sent_at},
            )  # fmt: skip
            for user in ("u1", "u2"):
                await conn.execute(
                    text("INSERT INTO audience_members (audience, lead_id) VALUES ('vip', :lead)"), {"lead": ids[user]}
                )
        await engine.dispose()

        token = make_open_token("test-secret", message_id=MESSAGE_ID, sent_at=sent_at, user_id="u1")
        for agent in (BROWSER, BROWSER, "Googlebot/2.1 (+http://www.google.com/bot.html)"):
            r = await client.get(f"{stack.base_url}/t/o/{token}.gif", headers={"User-Agent": agent})
            assert r.status_code == 200
        click = make_click_token("test-secret", url="https://acme.example/a", message_id=MESSAGE_ID, sent_at=sent_at,
                                 user_id="u1")  # fmt: skip
        r = await client.get(f"{stack.base_url}/t/c/{click}", headers={"User-Agent": BROWSER}, follow_redirects=False)
        assert r.status_code == 302
        engaged = "SELECT coalesce(sum(opens + bot_opens + clicks), 0) FROM analytics_email_engagement"
        await eventually(lambda: _at_least(stack, engaged, 4), what="opens and the click counted")

        r = await client.get(f"{stack.base_url}/api/analytics/email", headers=stack.admin)
        assert r.status_code == 200, r.text
        email = r.json()
        (step,) = email["steps"]
        assert step == {"sequence": "welcome", "step": 1, "sent": 1, "delivered": 1, "opened": 1, "clicked": 1,
                        "bot_opens": 1, "bot_clicks": 0, "unsubscribed": 0, "converted": 1}  # fmt: skip
        assert email["cart_recovery"] == [
            {"step": 1, "orders": 1, "revenue": "110.00", "order_currency": "EUR", "order_revenue": "100.00"}
        ]
        assert await count(stack, "SELECT opens FROM analytics_email_engagement") == 2  # two human opens

        r = await client.get(
            f"{stack.base_url}/api/analytics/funnel", params={"model": "b2b", "audience": "vip"}, headers=stack.admin
        )
        assert r.status_code == 200, r.text
        vip = r.json()
        assert "slower" in vip["answered_from"]
        assert vip["filters"] == {"audience": "vip"}
        stages = {row["stage"]: row for row in vip["stages"]}
        assert (stages["visitor"]["entered"], stages["lead"]["entered"], stages["customer"]["entered"]) == (2, 2, 1)
        assert (stages["visitor"]["exited"], stages["lead"]["exited"]) == (2, 1)
        r = await client.get(
            f"{stack.base_url}/api/analytics/time-in-stage", params={"audience": "vip"}, headers=stack.admin
        )
        assert r.status_code == 400
        assert r.json()["error"].startswith("audience:")


async def _at_least(stack: Any, sql: str, n: int) -> bool:
    return await count(stack, sql) >= n
