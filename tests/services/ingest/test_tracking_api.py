"""The tracking API's foundation contract over real HTTP with the real broker."""

from __future__ import annotations

import gzip
from decimal import Decimal
from typing import Any

import httpx
import orjson

from tests.helpers import basic, eventually, running_stack


async def test_write_key_in_body_and_gzip_bodies_are_accepted(settings_kwargs: dict[str, Any]) -> None:
    async with running_stack(settings_kwargs) as stack, httpx.AsyncClient() as client:
        key = await stack.create_source(client)
        body = gzip.compress(orjson.dumps({"writeKey": key, "userId": "gz", "event": "Zipped"}))
        r = await client.post(
            f"{stack.base_url}/v1/track",
            content=body,
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )
        assert r.status_code == 200, r.text

        async def score() -> Decimal | None:
            r = await client.get(f"{stack.base_url}/api/leads/gz", headers=stack.admin)
            return Decimal(r.json()["score"]) if r.status_code == 200 else None

        assert await eventually(score, what="gz scored") == 1


async def test_invalid_requests_are_400_with_a_json_body_naming_the_problem(settings_kwargs: dict[str, Any]) -> None:
    async with running_stack(settings_kwargs, consumers=()) as stack, httpx.AsyncClient() as client:
        key = await stack.create_source(client)
        url = f"{stack.base_url}/v1/track"
        cases = [
            (b"{nope", "body is not valid JSON"),
            (b"[1]", "body must be a JSON object"),
            (orjson.dumps({"event": "E"}), "userId or anonymousId is required"),
            (orjson.dumps({"userId": "u"}), "event is required for track"),
            (orjson.dumps({"userId": "u", "event": "E", "timestamp": "yesterday"}), "timestamp"),
        ]
        for body, expected in cases:
            r = await client.post(url, content=body, headers=basic(key))
            assert r.status_code == 400, body
            assert r.json()["success"] is False and expected in r.json()["error"], r.json()
        r = await client.post(url, json={"userId": "u", "event": "E"})
        assert r.status_code == 401 and r.json()["field"] == "writeKey"


async def test_batch_accepts_valid_events_and_lists_rejected_indexes(settings_kwargs: dict[str, Any]) -> None:
    async with running_stack(settings_kwargs) as stack, httpx.AsyncClient() as client:
        key = await stack.create_source(client)
        batch = {
            "batch": [
                {"type": "track", "userId": "b1", "event": "One", "messageId": "m1"},
                {"type": "track", "userId": "b1"},
                {"type": "nonsense", "userId": "b1"},
                {"type": "page", "userId": "b1", "name": "Pricing", "messageId": "m2"},
            ]
        }
        r = await client.post(f"{stack.base_url}/v1/batch", json=batch, headers=basic(key))
        assert r.status_code == 200
        assert r.json() == {"success": True, "rejected": [1, 2]}

        async def score() -> Decimal | None:
            r = await client.get(f"{stack.base_url}/api/leads/b1", headers=stack.admin)
            return Decimal(r.json()["score"]) if r.status_code == 200 and r.json()["score"] == "2.0000" else None

        assert await eventually(score, what="b1 scored twice") == 2


async def test_a_retried_message_id_counts_once(settings_kwargs: dict[str, Any]) -> None:
    async with running_stack(settings_kwargs) as stack, httpx.AsyncClient() as client:
        key = await stack.create_source(client)
        message = {"userId": "retry", "event": "Clicked", "messageId": "same-id"}
        for _ in range(3):
            assert (
                await client.post(f"{stack.base_url}/v1/track", json=message, headers=basic(key))
            ).status_code == 200
        other = {"userId": "retry", "event": "Clicked", "messageId": "other-id"}
        assert (await client.post(f"{stack.base_url}/v1/track", json=other, headers=basic(key))).status_code == 200

        async def scored_twice() -> bool:
            r = await client.get(f"{stack.base_url}/api/leads/retry", headers=stack.admin)
            return r.status_code == 200 and r.json()["score"] == "2.0000"

        await eventually(scored_twice, what="score 2")
        runner = stack.runners["scoring"]
        runner.request_stop(drain=True)
        r = await client.get(f"{stack.base_url}/api/leads/retry", headers=stack.admin)
        assert r.json()["score"] == "2.0000"


async def test_openapi_documents_tracking_and_admin_routes(settings_kwargs: dict[str, Any]) -> None:
    async with running_stack(settings_kwargs, consumers=()) as stack, httpx.AsyncClient() as client:
        spec = (await client.get(f"{stack.base_url}/openapi.json")).json()
        for path in ("/v1/track", "/v1/identify", "/v1/batch", "/api/sources", "/api/leads/{user_id}", "/readyz"):
            assert path in spec["paths"], path
        assert (await client.get(f"{stack.base_url}/docs")).status_code == 200


async def test_size_limits_hold_after_decompression(settings_kwargs: dict[str, Any]) -> None:
    async with running_stack(settings_kwargs, consumers=()) as stack, httpx.AsyncClient() as client:
        key = await stack.create_source(client)
        big = {"userId": "big", "event": "E", "properties": {"blob": "x" * 40_000}}
        r = await client.post(f"{stack.base_url}/v1/track", json=big, headers=basic(key))
        assert r.status_code == 413 and "exceeds 32 KB" in r.json()["error"]
        bomb = gzip.compress(orjson.dumps({"batch": [], "pad": "0" * 5_000_000}))
        assert len(bomb) < 10_000
        r = await client.post(
            f"{stack.base_url}/v1/batch", content=bomb, headers={**basic(key), "Content-Encoding": "gzip"}
        )
        assert r.status_code == 413 and "exceeds 500 KB" in r.json()["error"]
        batch = {"batch": [{**big, "type": "track"}, {"type": "track", "userId": "small", "event": "E"}]}
        r = await client.post(f"{stack.base_url}/v1/batch", json=batch, headers=basic(key))
        assert r.status_code == 200 and r.json() == {"success": True, "rejected": [0]}


async def test_websites_may_call_the_tracking_api_cross_origin(settings_kwargs: dict[str, Any]) -> None:
    async with running_stack(settings_kwargs, consumers=()) as stack, httpx.AsyncClient() as client:
        key = await stack.create_source(client)
        origin = {"Origin": "https://shop.example"}
        preflight = await client.options(
            f"{stack.base_url}/v1/track",
            headers={
                **origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == "*"
        for path, body in (("/v1/track", {"userId": "c", "event": "E"}), ("/v1/batch", {"batch": []})):
            r = await client.post(stack.base_url + path, json={**body, "writeKey": key}, headers=origin)
            assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "*"
        r = await client.post(f"{stack.base_url}/v1/track", json={"event": "E"}, headers=origin)
        assert r.status_code == 401 and r.headers["access-control-allow-origin"] == "*"
        admin = await client.get(f"{stack.base_url}/api/sources", headers={**origin, **stack.admin})
        assert "access-control-allow-origin" not in admin.headers


async def test_a_browser_key_cannot_send_a_sales_decision(settings_kwargs: dict[str, Any]) -> None:
    async with running_stack(settings_kwargs, consumers=()) as stack, httpx.AsyncClient() as client:
        key = await stack.create_source(client)
        decision = {"userId": "me", "event": "funnelstream.sales_decision", "properties": {"stage": "customer"}}
        r = await client.post(f"{stack.base_url}/v1/track", json=decision, headers=basic(key))
        assert r.status_code == 400 and r.json()["field"] == "event"
        batch = {"batch": [{"type": "track", "userId": "me", "event": "Signed Up"}, {"type": "track", **decision}]}
        r = await client.post(f"{stack.base_url}/v1/batch", json=batch, headers=basic(key))
        assert r.status_code == 200 and r.json() == {"success": True, "rejected": [1]}
