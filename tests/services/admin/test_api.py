"""The admin API over real HTTP, on the real database."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from funnelstream.apps import create_app
from shared.settings import AdminSettings
from tests.helpers import basic, eventually, running_stack


def test_every_api_route_requires_the_admin_token() -> None:
    app = create_app(
        admin=AdminSettings(
            database_url="postgresql://x@h/d", kafka_bootstrap_servers="h:1", admin_token="t", secret_key="s"
        )
    )
    paths = {p: ops for p, ops in app.openapi()["paths"].items() if p.startswith("/api/")}
    assert len(paths) >= 4
    for path, operations in paths.items():
        for method, operation in operations.items():
            assert operation.get("security") == [{"HTTPBearer": []}], (method, path)


async def test_without_or_with_wrong_token_every_route_answers_401(settings_kwargs: dict[str, Any]) -> None:
    async with running_stack(settings_kwargs, consumers=()) as stack, httpx.AsyncClient() as client:
        for method, path in [
            ("GET", "/api/sources"),
            ("POST", "/api/sources"),
            ("GET", "/api/leads?email=a@b.c"),
            ("GET", "/api/leads/x"),
        ]:
            for headers in ({}, {"Authorization": "Bearer wrong"}):
                r = await client.request(method, stack.base_url + path, headers=headers, json={"name": "n"})
                assert r.status_code == 401, (method, path, r.text)
                assert r.json() == {"error": "missing or wrong admin token"}


async def test_source_key_is_shown_once_stored_hashed_and_revocable(settings_kwargs: dict[str, Any]) -> None:
    async with (
        running_stack(settings_kwargs, consumers=(), write_key_cache_seconds=0) as stack,
        httpx.AsyncClient() as client,
    ):
        r = await client.post(f"{stack.base_url}/api/sources", json={"name": "shop"}, headers=stack.admin)
        assert r.status_code == 201
        created = r.json()
        assert set(created) == {"id", "name", "write_key"} and created["name"] == "shop"
        listed = (await client.get(f"{stack.base_url}/api/sources", headers=stack.admin)).json()
        assert [s["name"] for s in listed] == ["shop"] and "write_key" not in listed[0]
        track = {"userId": "u", "event": "E"}
        assert (
            await client.post(f"{stack.base_url}/v1/track", json=track, headers=basic(created["write_key"]))
        ).status_code == 200
        r = await client.post(f"{stack.base_url}/api/sources/{created['id']}/revoke", headers=stack.admin)
        assert r.status_code == 200 and r.json()["revoked_at"]
        r = await client.post(f"{stack.base_url}/v1/track", json=track, headers=basic(created["write_key"]))
        assert r.status_code == 401


async def test_bad_input_is_a_400_naming_the_field(settings_kwargs: dict[str, Any]) -> None:
    async with running_stack(settings_kwargs, consumers=()) as stack, httpx.AsyncClient() as client:
        r = await client.post(f"{stack.base_url}/api/sources", json={"name": ""}, headers=stack.admin)
        assert r.status_code == 400 and r.json()["field"] == "name"
        both = {"email": "a@b.c", "user_id": "u"}
        r = await client.get(f"{stack.base_url}/api/leads", params=both, headers=stack.admin)
        assert r.status_code == 400 and "email" in r.json()["error"]
        r = await client.get(f"{stack.base_url}/api/leads/nobody", headers=stack.admin)
        assert r.status_code == 404 and "nobody" in r.json()["error"]


async def test_leads_are_found_by_every_identity(settings_kwargs: dict[str, Any]) -> None:
    async with running_stack(settings_kwargs) as stack, httpx.AsyncClient() as client:
        key = await stack.create_source(client)
        identify = {"userId": "u-7", "anonymousId": "anon-7", "traits": {"email": "Kim@Example.COM"}}
        assert (
            await client.post(f"{stack.base_url}/v1/identify", json=identify, headers=basic(key))
        ).status_code == 200

        async def by(query: str) -> list[dict[str, Any]] | None:
            r = await client.get(f"{stack.base_url}/api/leads?{query}", headers=stack.admin)
            leads: list[dict[str, Any]] = r.json()["leads"]
            return leads or None

        by_user = await eventually(lambda: by("user_id=u-7"), what="lead by user id")
        await asyncio.sleep(0)
        for query in ("email=kim@example.com", "email=KIM@example.com", "anonymous_id=anon-7"):
            found = await eventually(lambda q=query: by(q), what=query)  # type: ignore[misc]
            assert [lead["lead_id"] for lead in found] == [by_user[0]["lead_id"]]
        assert by_user[0]["email"] == "kim@example.com"
