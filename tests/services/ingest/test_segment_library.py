"""The official Segment Python library, pointed at FunnelStream, delivers without code changes."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import segment.analytics as analytics

from tests.helpers import eventually, running_stack


async def test_segment_analytics_python_delivers_identify_and_track(settings_kwargs: dict[str, Any]) -> None:
    async with running_stack(settings_kwargs) as stack, httpx.AsyncClient() as client:
        key = await stack.create_source(client)
        errors: list[Exception] = []
        sdk = analytics.Client(key, host=stack.base_url, on_error=lambda e, _batch: errors.append(e), sync_mode=True)
        await asyncio.to_thread(sdk.identify, "sdk-user", {"email": "sdk@example.com", "plan": "pro"})
        await asyncio.to_thread(sdk.track, "sdk-user", "Demo Requested", {"source": "sdk"})
        assert errors == []

        async def lead() -> dict[str, Any] | None:
            r = await client.get(f"{stack.base_url}/api/leads/sdk-user", headers=stack.admin)
            return r.json() if r.status_code == 200 and r.json()["score"] == "2.0000" else None

        found = await eventually(lead, what="sdk-user with two events")
        assert found["email"] == "sdk@example.com"
        assert found["traits"]["plan"] == "pro"
