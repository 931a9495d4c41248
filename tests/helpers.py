"""Running pieces of the real product inside a test: the HTTP app and consumers on real components."""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from aiokafka import AIOKafkaProducer

from funnelstream.apps import create_app
from funnelstream.runtime import CONSUMERS, make_server, start_server
from shared.db import make_engine, make_sessionmaker
from shared.kafka import ensure_topics, make_producer
from shared.runner import ConsumerRunner
from shared.settings import AdminSettings, IngestSettings, Settings

T = TypeVar("T")


def basic(write_key: str) -> dict[str, str]:
    """The Authorization header Segment's libraries send: write key as user, empty password."""
    return {"Authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()}


async def eventually(probe: Callable[[], Awaitable[T | None]], timeout: float = 20.0, what: str = "condition") -> T:
    """Poll `probe` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout}s (last: {last!r})")


@dataclass
class Stack:
    base_url: str
    admin_token: str
    settings: IngestSettings
    runners: dict[str, ConsumerRunner[Any]] = field(default_factory=dict)

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    async def create_source(self, client: httpx.AsyncClient, name: str = "web") -> str:
        response = await client.post(f"{self.base_url}/api/sources", json={"name": name}, headers=self.admin)
        response.raise_for_status()
        key: str = response.json()["write_key"]
        return key


@asynccontextmanager
async def running_stack(
    settings_kwargs: dict[str, Any], consumers: tuple[str, ...] = ("scoring", "nurture"), **ingest_overrides: Any
) -> AsyncIterator[Stack]:
    """Ingest and admin API on one real HTTP port, plus consumers, like `funnelstream dev` runs them."""
    token = secrets.token_urlsafe(16)
    ingest = IngestSettings(**settings_kwargs, secret_key="test-secret", **ingest_overrides)
    admin = AdminSettings(**settings_kwargs, secret_key="test-secret", admin_token=token)
    await ensure_topics(ingest)
    engine = make_engine(ingest.database_url, pool_size=4)
    producer = make_producer(ingest)
    await producer.start()
    runners: dict[str, ConsumerRunner[Any]] = {}
    for name in consumers:
        settings_cls, make_handler = CONSUMERS[name]
        consumer_settings: Settings = settings_cls(**settings_kwargs, secret_key="test-secret")
        runners[name] = ConsumerRunner(
            consumer_settings, make_handler(consumer_settings), make_sessionmaker(engine), producer
        )
    tasks = [asyncio.create_task(r.run()) for r in runners.values()]
    server = make_server(create_app(ingest=ingest, admin=admin), "127.0.0.1", 0)
    server_task = await start_server(server)
    try:
        yield Stack(f"http://127.0.0.1:{server.port}", token, ingest, runners)
    finally:
        server.should_exit = True
        await server_task
        for runner in runners.values():
            runner.request_stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        await producer.stop()
        await engine.dispose()


async def produce(producer: AIOKafkaProducer, topic: str, values: list[bytes], key: bytes | None = None) -> None:
    futures = [await producer.send(topic, key=key, value=v) for v in values]
    await asyncio.gather(*futures)
