"""An unsubscribe through the email's one-click link takes the lead out of marketing sequences at once."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from services.nurture.consent.links import unsubscribe_url
from tests.helpers import basic, eventually, running_stack

WELCOME = {
    "name": "welcome",
    "definition": {
        "trigger": {"kind": "event", "event": "Signed Up"},
        "steps": [{"id": "a-day-later", "type": "wait", "duration": "P1D"},
                  {"id": "tips", "type": "send_email", "template_id": str(uuid.uuid4())}],
    },
}  # fmt: skip


async def test_one_click_unsubscribe_exits_the_waiting_lead(settings_kwargs: dict[str, Any]) -> None:
    async with running_stack(settings_kwargs) as stack, httpx.AsyncClient() as client:
        await asyncio.wait_for(asyncio.gather(*(r.assigned.wait() for r in stack.runners.values())), 60)
        r = await client.post(f"{stack.base_url}/api/sequences", json=WELCOME, headers=stack.admin)
        assert r.status_code == 201, r.text
        sequence = r.json()["id"]
        r = await client.post(f"{stack.base_url}/api/sequences/{sequence}/activate", headers=stack.admin)
        assert r.json()["status"] == "active"
        key = await stack.create_source(client)
        batch = [
            {"type": "identify", "userId": "kim", "traits": {"email": "kim@example.com"}},
            {"type": "track", "userId": "kim", "event": "Signed Up"},
        ]
        assert (await client.post(f"{stack.base_url}/v1/batch", json={"batch": batch}, headers=basic(key))).is_success

        async def enrollment(status: str) -> dict[str, Any] | None:
            r = await client.get(f"{stack.base_url}/api/leads/kim/enrollments", headers=stack.admin)
            found = [e for e in r.json() if e["status"] == status] if r.status_code == 200 else []
            return found[0] if found else None

        waiting = await eventually(lambda: enrollment("active"), what="kim enrolled")
        assert waiting["next_due_at"]  # its next step is a row in the scheduler
        lead = (await client.get(f"{stack.base_url}/api/leads/kim", headers=stack.admin)).json()
        link = unsubscribe_url(stack.base_url, "test-secret", uuid.UUID(lead["lead_id"]), "kim@example.com")
        r = await client.post(link, content=b"List-Unsubscribe=One-Click",
                              headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
        assert r.status_code == 200, r.text
        exited = await eventually(lambda: enrollment("exited"), what="kim exited")
        assert exited["exit_reason"] == "unsubscribed"
        assert [entry["action"] for entry in exited["log"]][-1] == "exited"
