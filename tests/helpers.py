"""Running pieces of the real product inside a test: the HTTP app and consumers on real components."""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import httpx
from aiokafka import AIOKafkaProducer
from sqlalchemy import text

from funnelstream.apps import create_app
from funnelstream.runtime import CONSUMERS, make_server, start_server
from services.scoring.handlers import ScoringHandler
from shared.db import make_engine, make_sessionmaker
from shared.events import EventType, TrackedEvent, derived_id
from shared.kafka import Topics, ensure_topics, make_producer
from shared.runner import ConsumerRunner
from shared.settings import AdminSettings, IngestSettings, ScoringSettings, Settings

T = TypeVar("T")

# One point per human event of any type, no decay; the B2B model's first two stages.
COUNTING_RULES: dict[str, Any] = {
    "behaviour": [{"id": "any-event", "type": None, "points": 1}],
    "half_life_days": None,
    "models": [
        {"name": "b2b", "stages": [{"name": "visitor"}, {"name": "lead", "entry": {"all": [{"kind": "known"}]}}]}
    ],
    "primary_model": "b2b",
}


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


def event(
    user: str | None,
    n: int = 0,
    *,
    message_id: str | None = None,
    anonymous_id: str | None = None,
    type: EventType = "track",
    traits: dict[str, Any] | None = None,
    previous_id: str | None = None,
    at: datetime | None = None,
) -> TrackedEvent:
    """A TrackedEvent as ingest would publish it."""
    source = uuid.UUID(int=1)
    mid = message_id or f"{user or anonymous_id}-{type}-{n}"
    now = datetime.now(UTC)
    return TrackedEvent(
        event_id=derived_id(source, mid),
        source_id=source,
        message_id=mid,
        type=type,
        event="Page Viewed" if type == "track" else None,
        user_id=user,
        anonymous_id=anonymous_id,
        previous_id=previous_id,
        traits=traits or {},
        timestamp=at or now,
        received_at=now,
    )


class Env:
    def __init__(self, settings: ScoringSettings) -> None:
        self.settings = settings
        self.topics = Topics(settings.topic_prefix)
        self.engine = make_engine(settings.database_url, pool_size=4)
        self.sessionmaker = make_sessionmaker(self.engine)
        self.producer: AIOKafkaProducer = make_producer(settings)

    async def send(self, *events: TrackedEvent) -> None:
        await produce(self.producer, self.topics.events, [e.to_bytes() for e in events])

    async def score(self, user: str) -> Decimal | None:
        async with self.engine.connect() as conn:
            value = await conn.scalar(text("SELECT score FROM leads WHERE user_id = :u"), {"u": user})
        return value if value is None else Decimal(value)

    async def scalar(self, sql: str, **params: Any) -> Any:
        async with self.engine.connect() as conn:
            return await conn.scalar(text(sql), params)

    async def row(self, sql: str, **params: Any) -> dict[str, Any] | None:
        async with self.engine.connect() as conn:
            found = (await conn.execute(text(sql), params)).mappings().first()
        return dict(found) if found else None

    async def equals(self, sql: str, expected: Any) -> bool:
        return bool(await self.scalar(sql) == expected)

    def runner(self, handler: Any = None, **kwargs: Any) -> ConsumerRunner[Any]:
        return ConsumerRunner(
            self.settings, handler or ScoringHandler(self.topics), self.sessionmaker, self.producer, **kwargs
        )


@asynccontextmanager
async def env(settings_kwargs: dict[str, Any]) -> AsyncIterator[Env]:
    e = Env(ScoringSettings(**settings_kwargs))
    await ensure_topics(e.settings)
    await e.producer.start()
    try:
        yield e
    finally:
        await e.producer.stop()
        await e.engine.dispose()


@asynccontextmanager
async def running(runner: ConsumerRunner[Any]) -> AsyncIterator[ConsumerRunner[Any]]:
    task = asyncio.create_task(runner.run())
    try:
        yield runner
    finally:
        runner.request_stop()
        await task
