"""The email templates admin API over real HTTP and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
from sqlalchemy import text

from services.nurture.templates import repository
from shared.db import make_engine, make_sessionmaker
from tests.helpers import Stack, running_stack

WELCOME: dict[str, Any] = {
    "name": "welcome",
    "description": "First email after sign-up",
    "kind": "marketing",
    "topic": "product-news",
    "subject": "Welcome, {{ lead.first_name or 'friend' }}",
    "html": "<style>p { color: #333 }</style>\n<p>Hi {{ lead.first_name or 'there' }}</p>\n"
    "<p>You work at {{ lead.traits.company | default('a great company') }}.</p>\n"
    '<a href="{{ unsubscribe_url }}">Unsubscribe</a>',
    "note": "first draft",
}


@asynccontextmanager
async def templates_api(settings_kwargs: dict[str, Any]) -> AsyncIterator[tuple[Stack, httpx.AsyncClient]]:
    async with running_stack(settings_kwargs, consumers=()) as stack, httpx.AsyncClient() as client:
        client.headers.update(stack.admin)
        yield stack, client


async def add_lead(database_url: str, user_id: str, traits: dict[str, Any]) -> None:
    engine = make_engine(database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO leads (lead_id, user_id, email, traits, score, grade, stage, stages) "
                    "VALUES (:id, :user, :email, CAST(:traits AS jsonb), 61.5, 'A2', 'mql', '{\"b2b\": \"mql\"}')"
                ),
                {
                    "id": uuid.uuid4(),
                    "user": user_id,
                    "email": f"{user_id}@example.com",
                    "traits": orjson.dumps(traits).decode(),
                },
            )
    finally:
        await engine.dispose()


async def test_create_edit_and_pin_versions(settings_kwargs: dict[str, Any]) -> None:
    async with templates_api(settings_kwargs) as (stack, client):
        api = f"{stack.base_url}/api/templates"
        created = await client.post(api, json=WELCOME)
        assert created.status_code == 201, created.text
        template = created.json()
        assert (template["name"], template["kind"], template["topic"], template["current_version"]) == (
            "welcome",
            "marketing",
            "product-news",
            1,
        )
        assert [v["version"] for v in template["versions"]] == [1]

        edited = await client.put(
            f"{api}/{template['id']}", json={**WELCOME, "subject": "Glad you're here", "note": "shorter subject"}
        )
        assert edited.status_code == 200, edited.text
        assert edited.json()["current_version"] == 2
        assert [(v["version"], v["note"]) for v in edited.json()["versions"]] == [
            (2, "shorter subject"),
            (1, "first draft"),
        ]
        first = (await client.get(f"{api}/{template['id']}/versions/1")).json()
        assert first["subject"] == WELCOME["subject"] and first["html"] == WELCOME["html"] and first["text"] is None
        assert (await client.get(f"{api}/{template['id']}/versions/3")).status_code == 404

        # The sequence engine's view: current by default, or the version a lead entered with.
        engine = make_engine(settings_kwargs["database_url"], pool_size=1)
        try:
            async with make_sessionmaker(engine)() as session:
                current = await repository.get_version(session, uuid.UUID(template["id"]))
                pinned = await repository.get_version(session, uuid.UUID(template["id"]), 1)
                by_text = await repository.get_version(session, template["id"], 2)
                missing = await repository.get_version(session, uuid.uuid4())
                malformed = await repository.get_version(session, "not-a-uuid")
        finally:
            await engine.dispose()
        assert current is not None and pinned is not None and missing is None and malformed is None
        assert by_text == current
        assert (current.version, current.subject, current.topic) == (2, "Glad you're here", "product-news")
        assert (pinned.version, pinned.content.subject) == (1, WELCOME["subject"])

        assert (await client.post(api, json=WELCOME)).status_code == 409  # names are unique
        listed = (await client.get(api)).json()
        assert [t["name"] for t in listed] == ["welcome"]

        archived = await client.post(f"{api}/{template['id']}/archive")
        assert archived.status_code == 200 and archived.json()["archived_at"]
        assert (await client.get(api)).json() == []
        assert [t["name"] for t in (await client.get(api, params={"archived": "true"})).json()] == ["welcome"]
        refused = await client.put(f"{api}/{template['id']}", json=WELCOME)
        assert refused.status_code == 409 and "archived" in refused.json()["error"]
        # Pinned versions of an archived template still preview (and send).
        assert (await client.post(f"{api}/{template['id']}/preview", json={"version": 1})).status_code == 200


async def test_invalid_template_is_refused_with_lines_and_not_saved(settings_kwargs: dict[str, Any]) -> None:
    async with templates_api(settings_kwargs) as (stack, client):
        api = f"{stack.base_url}/api/templates"
        body: dict[str, Any] = {**WELCOME, "html": "<p>Hi</p>\n<p>{{ lead.frist_name }}</p>", "text": "{% for x in %}"}
        refused = await client.post(api, json=body)
        assert refused.status_code == 400
        assert refused.json() == {
            "error": "text line 1: Expected an expression, got 'end of statement block'",
            "field": "text",
            "problems": [
                {"part": "text", "line": 1, "message": "Expected an expression, got 'end of statement block'"}
            ],
        }
        body["text"] = None
        refused = await client.post(api, json=body)
        assert refused.json()["problems"] == [
            {"part": "html", "line": 2, "message": "'lead' has no attribute 'frist_name'"}
        ]
        escape = await client.post(api, json={**WELCOME, "html": "{{ lead.__class__.__mro__ }}"})
        assert escape.status_code == 400 and "sandbox refuses" in escape.json()["error"]
        assert (await client.get(api)).json() == []

        created = (await client.post(api, json=WELCOME)).json()
        edit = await client.put(f"{api}/{created['id']}", json={**WELCOME, "subject": "{{ lead.nope }}"})
        assert edit.status_code == 400 and edit.json()["field"] == "subject"
        assert (await client.get(f"{api}/{created['id']}")).json()["current_version"] == 1

        missing = await client.post(api, json={"name": "x", "html": "<p>x</p>"})
        assert missing.status_code == 400 and missing.json()["field"] == "subject"
        assert (await client.get(f"{api}/{uuid.uuid4()}")).status_code == 404
        assert (await client.get(api, headers={"Authorization": "Bearer wrong"})).status_code == 401


async def test_validate_without_saving(settings_kwargs: dict[str, Any]) -> None:
    async with templates_api(settings_kwargs) as (stack, client):
        api = f"{stack.base_url}/api/templates"
        ok = await client.post(f"{api}/validate", json={"subject": "Hi", "html": "<p>{{ extra.coupon }}</p>"})
        assert ok.status_code == 200
        assert ok.json()["valid"] is False and ok.json()["preview"] is None
        assert ok.json()["problems"][0]["message"].startswith("'extra' has no attribute 'coupon'")
        sampled = await client.post(
            f"{api}/validate",
            json={"subject": "Hi", "html": "<p>Code {{ extra.coupon }}</p>", "sample_extra": {"coupon": "SPRING"}},
        )
        assert sampled.json()["valid"] is True and sampled.json()["problems"] == []
        assert sampled.json()["preview"]["text"] == "Code SPRING\n"
        assert (await client.get(api)).json() == []


async def test_preview_renders_for_a_real_lead_escaping_its_traits(settings_kwargs: dict[str, Any]) -> None:
    await add_lead(
        settings_kwargs["database_url"], "user-7", {"firstName": "<img src=x onerror=alert(1)>", "company": "Acme"}
    )
    async with templates_api(settings_kwargs) as (stack, client):
        api = f"{stack.base_url}/api/templates"
        template = (
            await client.post(
                api,
                json={**WELCOME, "html": WELCOME["html"] + "\n<p>{{ lead.grade }} {{ lead.stage }}</p>"},
            )
        ).json()
        preview = await client.post(f"{api}/{template['id']}/preview", json={"user_id": "user-7"})
        assert preview.status_code == 200, preview.text
        shown = preview.json()
        assert shown["user_id"] == "user-7" and shown["version"] == 1
        assert shown["subject"] == "Welcome, <img src=x onerror=alert(1)>"
        assert "<img" not in shown["html"] and "&lt;img src=x onerror=alert(1)&gt;" in shown["html"]
        assert "You work at Acme." in shown["html"] and "A2 mql" in shown["html"]
        assert '<p style="color: #333;">' in shown["html"]  # CSS inlined
        assert "Unsubscribe (https://funnelstream.invalid/preview/unsubscribe)" in shown["text"]

        sample = (await client.post(f"{api}/{template['id']}/preview")).json()
        assert sample["user_id"] is None and sample["subject"] == "Welcome, Ada"

        unknown = await client.post(f"{api}/{template['id']}/preview", json={"user_id": "nobody"})
        assert unknown.status_code == 404
        assert (await client.post(f"{api}/{template['id']}/preview", json={"version": 9})).status_code == 404


async def test_preview_with_extra_and_a_render_failure(settings_kwargs: dict[str, Any]) -> None:
    async with templates_api(settings_kwargs) as (stack, client):
        api = f"{stack.base_url}/api/templates"
        cart = {
            **WELCOME,
            "name": "cart reminder",
            "html": "{% for item in extra.cart.items %}<p>{{ item.name }} × {{ item.quantity }}</p>{% endfor %}",
        }
        template = (await client.post(api, json=cart)).json()
        sample = (await client.post(f"{api}/{template['id']}/preview")).json()
        assert "<p>Notebook × 2</p>" in sample["html"]
        given = {"cart": {"items": [{"name": "Lamp", "quantity": 3}]}}
        shown = (await client.post(f"{api}/{template['id']}/preview", json={"extra": given})).json()
        assert "<p>Lamp × 3</p>" in shown["html"] and "Notebook" not in shown["html"]

        broken = {"cart": {"items": [{"name": "Lamp"}]}}
        refused = await client.post(f"{api}/{template['id']}/preview", json={"extra": broken})
        assert refused.status_code == 400
        assert refused.json()["problems"] == [
            {"part": "html", "line": 1, "message": "'extra.cart.items[0]' has no attribute 'quantity' "
             "(`extra` is the step's data; give `sample_extra` to validate against)"}
        ]  # fmt: skip
