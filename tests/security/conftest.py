"""A running product (ingest and admin API on one real HTTP port) for the security tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.helpers import Stack, running_stack


@dataclass
class Edge:
    stack: Stack
    client: httpx.AsyncClient
    write_key: str

    @property
    def base(self) -> str:
        return self.stack.base_url

    async def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.request(method, f"{self.base}{path}", headers=self.stack.admin, **kwargs)


@pytest.fixture
async def edge(settings_kwargs: dict[str, Any]) -> AsyncIterator[Edge]:
    async with running_stack(settings_kwargs, consumers=()) as stack, httpx.AsyncClient(timeout=30) as client:
        yield Edge(stack, client, await stack.create_source(client))
