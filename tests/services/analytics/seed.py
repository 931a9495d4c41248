"""Seeded funnel data through the real path: tracking API → scoring → lead-changes → analytics consumer."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import text

from services.scoring import rulebook
from services.scoring.rules import DEFAULT_RULES, RuleSet
from shared.db import make_engine, make_sessionmaker
from tests.helpers import Stack, basic, eventually

SPRING = {"source": "google", "medium": "cpc", "name": "spring"}
HOSTILE = "<img src=x onerror=alert(1)>"


async def default_rules(database_url: str) -> None:
    """The shipped rules (b2b: visitor, lead, mql, sal, sql, opportunity, customer; ecommerce)."""
    engine = make_engine(database_url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            version = (await rulebook.add(session, RuleSet.model_validate(DEFAULT_RULES), "analytics")).version
            await rulebook.activate(session, version)
    finally:
        await engine.dispose()


async def count(stack: Stack, sql: str) -> int:
    engine = make_engine(stack.settings.database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            return int(await conn.scalar(text(sql)) or 0)
    finally:
        await engine.dispose()


async def seed(stack: Stack, client: httpx.AsyncClient) -> dict[str, Any]:
    """Five leads: anonymous a1 and known u1, u2 from the spring campaign, u3 untagged, and one whose ids
    and event names are HTML. u1 orders 100 EUR and becomes a customer."""
    key = await stack.create_source(client)
    auth = basic(key)

    async def track(body: dict[str, Any]) -> None:
        r = await client.post(f"{stack.base_url}/v1/track", json=body, headers=auth)
        assert r.status_code == 200, r.text

    await track({"anonymousId": "a1", "event": "Product Viewed", "context": {"campaign": SPRING}})
    await track({"userId": "u1", "event": "Signed Up", "context": {"campaign": SPRING}})
    await track({"userId": "u2", "event": "Signed Up", "context": {"campaign": SPRING}})
    await track({"userId": "u3", "event": "Signed Up"})
    await track({"userId": HOSTILE, "event": "<script>alert(1)</script>", "properties": {"x": "<b>bold</b>"}})
    await eventually(
        lambda: _at_least(stack, "SELECT count(*) FROM analytics_lead_stages WHERE model = 'b2b'", 5),
        what="five leads in analytics",
    )
    await track({"userId": "u1", "event": "Order Completed", "properties": {"revenue": 100, "currency": "EUR"}})
    await eventually(
        lambda: _at_least(stack, "SELECT count(*) FROM analytics_lead_stages WHERE stage = 'customer'", 1),
        what="u1 a customer in analytics",
    )
    await eventually(
        lambda: _at_least(stack, "SELECT coalesce(sum(orders), 0) FROM analytics_revenue_daily", 1),
        what="u1's order in analytics",
    )
    r = await client.put(
        f"{stack.base_url}/api/analytics/rates",
        json={"base": "EUR", "quote": "USD", "day": "2020-01-01", "rate": "1.1"},
        headers=stack.admin,
    )
    assert r.status_code == 200, r.text
    r = await client.post(
        f"{stack.base_url}/api/analytics/spend",
        json={"day": _today(), "amount": "50", "currency": "USD", "utm_source": "google", "utm_campaign": "spring"},
        headers=stack.admin,
    )
    assert r.status_code == 201, r.text
    return {"write_key": key}


def _today() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).date().isoformat()


async def _at_least(stack: Stack, sql: str, n: int) -> bool:
    return await count(stack, sql) >= n
