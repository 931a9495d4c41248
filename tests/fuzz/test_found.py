"""Regressions of what schemathesis found, kept as plain tests so they fail with a clear name."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.helpers import running_stack

HUGE = 44_859_098_635  # beyond PostgreSQL's integer: it was a failed query and a 500


async def test_version_numbers_beyond_the_database_integer_are_a_400_naming_the_field(
    settings_kwargs: dict[str, Any],
) -> None:
    async with running_stack(settings_kwargs, consumers=()) as stack, httpx.AsyncClient() as client:
        base, template = stack.base_url, uuid.uuid4()
        for method, path, body in (
            ("GET", f"/api/scoring/rule-sets/{HUGE}", None),
            ("POST", f"/api/scoring/rule-sets/{HUGE}/activate", None),
            ("GET", f"/api/templates/{template}/versions/{HUGE}", None),
            ("POST", "/api/scoring/dry-run", {"version": HUGE}),
            ("POST", f"/api/templates/{template}/preview", {"version": HUGE}),
        ):
            r = await client.request(method, base + path, json=body, headers=stack.admin)
            assert r.status_code == 400 and r.json()["field"] == "version", (method, path, r.status_code, r.text)


async def test_an_absurd_stalled_limit_is_a_400_not_a_500(settings_kwargs: dict[str, Any]) -> None:
    async with running_stack(settings_kwargs, consumers=()) as stack, httpx.AsyncClient() as client:
        for days in ("2820935634802933.0", "1e300"):
            r = await client.get(f"{stack.base_url}/api/analytics/stalled?days={days}", headers=stack.admin)
            assert r.status_code == 400 and r.json()["field"] == "days", (days, r.status_code, r.text)
