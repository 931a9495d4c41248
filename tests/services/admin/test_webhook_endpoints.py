"""The webhook endpoints admin API over real HTTP and PostgreSQL, delivering to a real receiver."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db import make_engine, make_sessionmaker
from shared.outbox import deliver_due, enqueue
from shared.signing import verify
from tests.helpers import Stack, running_stack
from tests.shared.test_outbox import Received, receiver

Maker = async_sessionmaker[AsyncSession]


@asynccontextmanager
async def admin_api(settings_kwargs: dict[str, Any]) -> AsyncIterator[tuple[Stack, httpx.AsyncClient, Maker]]:
    engine = make_engine(settings_kwargs["database_url"], pool_size=2)
    try:
        async with running_stack(settings_kwargs, consumers=()) as stack, httpx.AsyncClient() as client:
            yield stack, client, make_sessionmaker(engine)
    finally:
        await engine.dispose()


async def deliver(maker: Maker) -> int:
    async with httpx.AsyncClient() as client:
        return await deliver_due(maker, client, limit=10, now=datetime.now(UTC))


def signed_by(got: Received, secret: str) -> bool:
    return verify(got.headers["funnelstream-signature"], got.body, [secret], now=time.time())


async def test_endpoint_round_trip_ping_rotation_and_deactivation(settings_kwargs: dict[str, Any]) -> None:
    async with admin_api(settings_kwargs) as (stack, client, maker), receiver() as r:
        api = f"{stack.base_url}/api/webhook-endpoints"
        body = {"url": r.url, "description": "CRM", "event_types": ["lead.mql", "lead.mql"]}
        created = await client.post(api, json=body, headers=stack.admin)
        assert created.status_code == 201, created.text
        endpoint = created.json()
        first_secret = endpoint["secret"]
        assert first_secret.startswith("whsec_") and endpoint["event_types"] == ["lead.mql"] and endpoint["active"]
        listed = (await client.get(api, headers=stack.admin)).json()
        assert [e["id"] for e in listed] == [endpoint["id"]] and "secret" not in listed[0]

        ping = await client.post(f"{api}/{endpoint['id']}/test", headers=stack.admin)
        assert ping.status_code == 202
        assert await deliver(maker) == 1
        [got] = r.received
        assert got.headers["funnelstream-event"] == "ping" and got.json["id"] == ping.json()["delivery_id"]
        assert got.json["data"]["endpoint_id"] == endpoint["id"] and signed_by(got, first_secret)
        history = (await client.get(f"{api}/{endpoint['id']}/deliveries", headers=stack.admin)).json()
        assert [(d["event_type"], d["status"], d["attempts"], d["last_status_code"]) for d in history] == [
            ("ping", "delivered", 1, 200)
        ]
        pending = await client.get(f"{api}/{endpoint['id']}/deliveries?status=pending", headers=stack.admin)
        assert pending.json() == []

        # During a rotation both secrets sign; the receiver may switch at its own pace.
        rotated = await client.post(f"{api}/{endpoint['id']}/rotate-secret", headers=stack.admin)
        assert rotated.status_code == 200 and rotated.json()["previous_secret_expires_at"]
        second_secret = rotated.json()["secret"]
        await client.post(f"{api}/{endpoint['id']}/test", headers=stack.admin)
        assert await deliver(maker) == 1
        assert signed_by(r.received[-1], first_secret) and signed_by(r.received[-1], second_secret)

        # Ending the grace period at once: only the newest secret signs.
        rotated = await client.post(
            f"{api}/{endpoint['id']}/rotate-secret", json={"previous_secret_valid_seconds": 0}, headers=stack.admin
        )
        third_secret = rotated.json()["secret"]
        assert rotated.json()["previous_secret_expires_at"] is None
        await client.post(f"{api}/{endpoint['id']}/test", headers=stack.admin)
        assert await deliver(maker) == 1
        assert signed_by(r.received[-1], third_secret) and not signed_by(r.received[-1], second_secret)

        gone = await client.delete(f"{api}/{endpoint['id']}", headers=stack.admin)
        assert gone.status_code == 200 and gone.json()["active"] is False
        assert (await client.post(f"{api}/{endpoint['id']}/test", headers=stack.admin)).status_code == 404
        async with maker() as session, session.begin():
            assert await enqueue(session, "lead.mql", {}, uuid.uuid4()) == 0
        assert [e["active"] for e in (await client.get(api, headers=stack.admin)).json()] == [False]
        assert len(r.received) == 3


async def test_deactivating_an_endpoint_gives_up_its_pending_deliveries(settings_kwargs: dict[str, Any]) -> None:
    async with admin_api(settings_kwargs) as (stack, client, maker):
        api = f"{stack.base_url}/api/webhook-endpoints"
        body = {"url": "https://crm.example.com/hooks/funnelstream", "event_types": ["*"]}
        endpoint = (await client.post(api, json=body, headers=stack.admin)).json()
        async with maker() as session, session.begin():
            assert await enqueue(session, "lead.attention", {"lead": 1}, uuid.uuid4()) == 1
        assert (await client.delete(f"{api}/{endpoint['id']}", headers=stack.admin)).status_code == 200
        assert await deliver(maker) == 0
        failed = (await client.get(f"{api}/{endpoint['id']}/deliveries?status=failed", headers=stack.admin)).json()
        assert [(d["event_type"], d["last_error"], d["payload"]) for d in failed] == [
            ("lead.attention", "endpoint deactivated", {"lead": 1})
        ]


async def test_bad_input_is_a_400_naming_the_field_and_unknown_ids_are_404(settings_kwargs: dict[str, Any]) -> None:
    async with admin_api(settings_kwargs) as (stack, client, _):
        api = f"{stack.base_url}/api/webhook-endpoints"
        for body, field, words in [
            ({"url": "ftp://crm.example.com/x", "event_types": ["*"]}, "url", "http"),
            ({"url": "crm.example.com/x", "event_types": ["*"]}, "url", "http"),
            ({"url": "https://crm.example.com:99999/", "event_types": ["*"]}, "url", "port"),
            ({"url": "https://crm.example.com/", "event_types": []}, "event_types", "at least 1"),
            ({"url": "https://crm.example.com/", "event_types": ["lead.mq1"]}, "event_types", "lead.mq1"),
            ({"event_types": ["*"]}, "url", "required"),
        ]:
            r = await client.post(api, json=body, headers=stack.admin)
            assert r.status_code == 400 and r.json()["field"] == field, (body, r.text)
            assert words in r.json()["error"], r.text
        r = await client.get(f"{api}/{uuid.uuid4()}/deliveries?status=lost", headers=stack.admin)
        assert r.status_code == 400 and r.json()["field"] == "status"
        r = await client.post(f"{api}/not-a-uuid/test", headers=stack.admin)
        assert r.status_code == 400 and r.json()["field"] == "endpoint_id"
        r = await client.post(
            f"{api}/{uuid.uuid4()}/rotate-secret", json={"previous_secret_valid_seconds": -1}, headers=stack.admin
        )
        assert r.status_code == 400 and r.json()["field"] == "previous_secret_valid_seconds"
        nobody = uuid.uuid4()
        for method, path in [
            ("DELETE", ""),
            ("POST", "/rotate-secret"),
            ("GET", "/deliveries"),
            ("POST", "/test"),
        ]:
            r = await client.request(method, f"{api}/{nobody}{path}", headers=stack.admin)
            assert r.status_code == 404 and str(nobody) in r.json()["error"], (method, path)
        for method, path in [("GET", ""), ("POST", ""), ("DELETE", f"/{nobody}"), ("POST", f"/{nobody}/test")]:
            r = await client.request(method, api + path, json={}, headers={"Authorization": "Bearer wrong"})
            assert r.status_code == 401, (method, path)
