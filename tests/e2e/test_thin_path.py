"""The foundation's thin path: website → ingest → Kafka → scoring → PostgreSQL → admin API."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx

from tests.helpers import basic, eventually, running_stack


async def test_tracked_event_shows_up_as_lead_score(settings_kwargs: dict[str, Any]) -> None:
    async with running_stack(settings_kwargs) as stack, httpx.AsyncClient(timeout=10) as client:
        write_key = await stack.create_source(client)
        response = await client.post(
            f"{stack.base_url}/v1/track",
            json={"userId": "user-1", "event": "Pricing Viewed", "properties": {"plan": "pro"}},
            headers=basic(write_key),
        )
        assert response.status_code == 200
        assert response.json() == {"success": True}

        async def lead() -> dict[str, Any] | None:
            r = await client.get(f"{stack.base_url}/api/leads/user-1", headers=stack.admin)
            return r.json() if r.status_code == 200 else None

        found = await eventually(lead, what="lead user-1")
        assert found["user_id"] == "user-1"
        assert Decimal(found["score"]) == 1
        assert found["stage"] == "lead"
        assert {"lead_id", "email", "updated_at"} <= found.keys()
