"""From a tracked demo request to sales' webhook: real HTTP in, the real scoring consumer, a real receiver."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx

from services.scoring import rulebook
from services.scoring.rules import DEFAULT_RULES, RuleSet
from shared.db import make_engine, make_sessionmaker
from shared.outbox import deliver_due
from shared.signing import verify
from tests.helpers import basic, eventually, running_stack
from tests.shared.test_outbox import receiver


async def test_a_lead_turning_mql_reaches_sales_as_a_signed_webhook(settings_kwargs: dict[str, Any]) -> None:
    engine = make_engine(settings_kwargs["database_url"], pool_size=2)
    sessionmaker = make_sessionmaker(engine)
    async with sessionmaker() as session, session.begin():
        version = (await rulebook.add(session, RuleSet.model_validate(DEFAULT_RULES), "e2e")).version
        await rulebook.activate(session, version)
    try:
        async with receiver() as sales, running_stack(settings_kwargs) as stack, httpx.AsyncClient() as client:
            r = await client.post(
                f"{stack.base_url}/api/webhook-endpoints",
                json={"url": sales.url, "event_types": ["lead.mql"]},
                headers=stack.admin,
            )
            assert r.status_code == 201, r.text
            secret = r.json()["secret"]
            key = await stack.create_source(client)
            batch = [
                {"type": "identify", "userId": "kim", "traits": {"email": "kim@acme.io", "title": "Head of Growth"}},
                {"type": "track", "userId": "kim", "event": "Demo Requested"},
                {"type": "page", "userId": "kim", "properties": {"path": "/pricing"}},
            ]
            r = await client.post(f"{stack.base_url}/v1/batch", json={"batch": batch}, headers=basic(key))
            assert r.status_code == 200, r.text

            async def delivered() -> bool:
                await deliver_due(sessionmaker, client, limit=10, now=datetime.now(UTC))
                return bool(sales.received)

            await eventually(delivered, what="the lead.mql webhook")
            got = sales.received[0]
            assert got.headers["funnelstream-event"] == "lead.mql"
            assert verify(got.headers["funnelstream-signature"], got.body, [secret], time.time())
            data = got.json["data"]
            # Fit 30 (senior title, business email) + demo 30 + pricing 10 + a page 1 = 71 ≥ 50.
            assert data["user_id"] == "kim" and data["stage"] == "mql" and data["grade"] == "B2"
            assert abs(float(data["score"]) - 71) < 0.01
    finally:
        await engine.dispose()
