"""Outgoing webhooks on real PostgreSQL, POSTed over real HTTP to a receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI, Request, Response
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from funnelstream.runtime import make_server, start_server
from shared.db import make_engine, make_sessionmaker
from shared.outbox import (
    DeliveryPolicy,
    deliver_due,
    delivery_loop,
    enqueue,
    enqueue_many,
    retry_delay,
)
from shared.settings import ScoringSettings
from shared.signing import verify
from shared.webhook_models import WebhookDelivery, WebhookEndpoint
from tests.helpers import eventually

Maker = async_sessionmaker[AsyncSession]
SECRET = "whsec_test-secret-0123456789"


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        found: dict[str, Any] = orjson.loads(self.body)
        return found


@dataclass
class Receiver:
    """A real HTTP server answering the queued status codes in turn, then `default`."""

    answers: list[int] = field(default_factory=list)
    default: int = 200
    delay: float = 0.0
    url: str = ""
    received: list[Received] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            self.received.append(Received({k.lower(): v for k, v in request.headers.items()}, await request.body()))
            if self.delay:
                await asyncio.sleep(self.delay)
            code = self.answers.pop(0) if self.answers else self.default
            return Response(b"ok" if code < 300 else b"receiver is down", status_code=code)

        return app

    def deliveries(self) -> list[str]:
        return [r.headers["funnelstream-delivery"] for r in self.received]


@asynccontextmanager
async def receiver(answers: tuple[int, ...] = (), default: int = 200, delay: float = 0.0) -> AsyncIterator[Receiver]:
    r = Receiver(list(answers), default, delay)
    server = make_server(r.app(), "127.0.0.1", 0)
    task = await start_server(server)
    r.url = f"http://127.0.0.1:{server.port}/hook"
    try:
        yield r
    finally:
        server.should_exit = True
        await task


def settings(database_url: str, **overrides: Any) -> ScoringSettings:
    return ScoringSettings(database_url=database_url, kafka_bootstrap_servers="127.0.0.1:9", **overrides)


@pytest.fixture
async def maker(database_url: str) -> AsyncIterator[Maker]:
    engine = make_engine(database_url, pool_size=4)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


async def add_endpoint(maker: Maker, url: str, event_types: list[str], *, active: bool = True) -> uuid.UUID:
    async with maker() as session, session.begin():
        endpoint = WebhookEndpoint(url=url, event_types=event_types, secret=SECRET, active=active)
        session.add(endpoint)
        await session.flush()
        return endpoint.id


async def queue(maker: Maker, *items: tuple[str, dict[str, Any], uuid.UUID]) -> int:
    async with maker() as session, session.begin():
        return await enqueue_many(session, list(items))


async def deliveries(maker: Maker) -> list[WebhookDelivery]:
    async with maker() as session:
        return list(await session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.created_at)))


async def deliver(maker: Maker, policy: DeliveryPolicy | None = None, limit: int = 50) -> int:
    async with httpx.AsyncClient() as client:
        return await deliver_due(maker, client, limit=limit, now=datetime.now(UTC), policy=policy)


async def test_a_delivery_is_signed_and_the_receiver_can_verify_it(maker: Maker) -> None:
    async with receiver() as r:
        await add_endpoint(maker, r.url, ["lead.mql"])
        payload = {"lead_id": str(uuid.uuid4()), "email": "kim@example.com", "score": "42.5"}
        assert await queue(maker, ("lead.mql", payload, uuid.uuid4())) == 1
        assert await deliver(maker) == 1

        [got] = r.received
        [row] = await deliveries(maker)
        assert verify(got.headers["funnelstream-signature"], got.body, [SECRET], now=time.time())
        assert not verify(got.headers["funnelstream-signature"], got.body, ["whsec_other"], now=time.time())
        assert not verify(got.headers["funnelstream-signature"], got.body + b" ", [SECRET], now=time.time())
        assert got.headers["funnelstream-event"] == "lead.mql"
        assert got.headers["funnelstream-delivery"] == str(row.id)
        assert got.headers["content-type"] == "application/json"
        assert got.json["id"] == str(row.id) and got.json["type"] == "lead.mql" and got.json["data"] == payload
        assert datetime.fromisoformat(got.json["created_at"]) == row.created_at
        assert (row.status, row.attempts, row.last_status_code, row.last_error) == ("delivered", 1, 200, None)
        assert row.delivered_at is not None
        assert await deliver(maker) == 0 and len(r.received) == 1


async def test_the_same_event_enqueued_twice_is_delivered_once(maker: Maker) -> None:
    await add_endpoint(maker, "http://127.0.0.1:9/a", ["*"])
    await add_endpoint(maker, "http://127.0.0.1:9/b", ["*"])
    key = uuid.uuid4()
    assert await queue(maker, ("lead.mql", {"n": 1}, key)) == 2
    async with maker() as session, session.begin():
        assert await enqueue(session, "lead.mql", {"n": 1}, key) == 0  # a redelivered batch
    other = uuid.uuid4()
    assert await queue(maker, ("lead.attention", {"n": 2}, other), ("lead.attention", {"n": 2}, other)) == 2
    assert len(await deliveries(maker)) == 4


async def test_only_active_endpoints_subscribed_to_the_event_type_get_it(maker: Maker) -> None:
    mql = await add_endpoint(maker, "http://127.0.0.1:9/mql", ["lead.mql"])
    everything = await add_endpoint(maker, "http://127.0.0.1:9/all", ["*"])
    attention = await add_endpoint(maker, "http://127.0.0.1:9/attention", ["lead.attention", "lead.stage_changed"])
    await add_endpoint(maker, "http://127.0.0.1:9/off", ["*"], active=False)
    added = await queue(
        maker,
        ("lead.mql", {}, uuid.uuid4()),
        ("lead.attention", {}, uuid.uuid4()),
        ("lead.unknown", {}, uuid.uuid4()),
    )
    got = {(d.endpoint_id, d.event_type) for d in await deliveries(maker)}
    assert added == len(got) == 5
    assert got == {
        (mql, "lead.mql"),
        (everything, "lead.mql"),
        (everything, "lead.attention"),
        (everything, "lead.unknown"),
        (attention, "lead.attention"),
    }


async def test_an_event_whose_transaction_rolls_back_is_never_queued(maker: Maker) -> None:
    await add_endpoint(maker, "http://127.0.0.1:9/a", ["*"])
    with pytest.raises(ZeroDivisionError):
        async with maker() as session, session.begin():
            assert await enqueue(session, "lead.mql", {}, uuid.uuid4()) == 1
            _ = 1 / 0  # whatever caused the event fails after it was enqueued
    assert await deliveries(maker) == []


async def test_a_failed_delivery_is_retried_and_then_delivered(maker: Maker, database_url: str) -> None:
    policy = DeliveryPolicy.from_settings(settings(database_url, webhook_backoff_seconds=0.01))
    async with receiver(answers=(500,)) as r:
        await add_endpoint(maker, r.url, ["lead.mql"])
        await queue(maker, ("lead.mql", {"lead": 1}, uuid.uuid4()))
        assert await deliver(maker, policy) == 1
        [row] = await deliveries(maker)
        assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, 500)
        assert row.last_error == "HTTP 500: receiver is down"

        async def delivered() -> WebhookDelivery | None:
            await deliver(maker, policy)
            [row] = await deliveries(maker)
            return row if row.status == "delivered" else None

        row = await eventually(delivered, what="delivery after a retry")
        assert (row.attempts, row.last_status_code, row.last_error) == (2, 200, None)
        assert r.deliveries() == [str(row.id)] * 2


async def test_after_max_attempts_a_delivery_fails_and_is_not_tried_again(
    maker: Maker, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    policy = DeliveryPolicy.from_settings(settings(database_url, webhook_backoff_seconds=0.01, webhook_max_attempts=3))
    caplog.set_level(logging.WARNING, logger="shared.outbox")
    async with receiver(default=503) as r:
        endpoint = await add_endpoint(maker, r.url + "?token=private", ["*"])
        await queue(maker, ("lead.attention", {}, uuid.uuid4()))

        async def failed() -> WebhookDelivery | None:
            await deliver(maker, policy)
            [row] = await deliveries(maker)
            return row if row.status == "failed" else None

        row = await eventually(failed, what="delivery given up")
        assert (row.attempts, row.last_status_code, row.last_error) == (3, 503, "HTTP 503: receiver is down")
        assert await deliver(maker, policy) == 0
        assert len(r.received) == 3
    warnings = [rec.getMessage() for rec in caplog.records if rec.levelno == logging.WARNING]
    assert len(warnings) == 3
    assert all(str(endpoint) in w and "503" in w and "private" not in w for w in warnings)


async def test_an_unreachable_endpoint_is_retried_with_the_error_recorded(maker: Maker) -> None:
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    await add_endpoint(maker, f"http://127.0.0.1:{port}/hook", ["*"])
    await queue(maker, ("lead.mql", {}, uuid.uuid4()))
    assert await deliver(maker) == 1
    [row] = await deliveries(maker)
    assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, None)
    assert row.last_error and "Connect" in row.last_error
    assert row.next_attempt_at > datetime.now(UTC)


async def test_two_workers_at_once_never_deliver_a_row_twice(maker: Maker) -> None:
    async with receiver(delay=0.005) as r:
        await add_endpoint(maker, r.url, ["lead.mql"])
        await queue(maker, *[("lead.mql", {"n": n}, uuid.uuid4()) for n in range(60)])

        async def worker() -> int:
            total = 0
            async with httpx.AsyncClient() as client:
                while sent := await deliver_due(maker, client, limit=4, now=datetime.now(UTC)):
                    total += sent
            return total

        shares = await asyncio.gather(worker(), worker())
        rows = await deliveries(maker)
        assert sum(shares) == 60
        assert sorted(r.deliveries()) == sorted(str(d.id) for d in rows)
        assert {(d.status, d.attempts) for d in rows} == {("delivered", 1)}


async def test_the_delivery_loop_sends_what_is_queued_until_stopped(maker: Maker, database_url: str) -> None:
    async with receiver() as r:
        await add_endpoint(maker, r.url, ["lead.stage_changed"])
        stop = asyncio.Event()
        loop = asyncio.create_task(delivery_loop(settings(database_url, webhook_poll_seconds=0.05), maker, stop))
        try:
            await queue(maker, ("lead.stage_changed", {"stage": "mql"}, uuid.uuid4()))

            async def received() -> list[Received]:
                return r.received

            await eventually(received, what="delivery by the loop")
        finally:
            stop.set()
            await asyncio.wait_for(loop, 10)
        assert [got.json["data"] for got in r.received] == [{"stage": "mql"}]


def test_backoff_doubles_from_the_base_up_to_an_hour() -> None:
    assert [retry_delay(n, 10, 3600, 0) for n in range(1, 6)] == [10, 20, 40, 80, 160]
    assert retry_delay(12, 10, 3600, 0) == retry_delay(1000, 10, 3600, 0) == 3600


@given(
    attempt=st.integers(1, 10_000),
    base=st.floats(0.001, 3600),
    jitter=st.floats(0, 1, exclude_max=True),
)
def test_jitter_only_shortens_the_wait_by_at_most_a_fifth(attempt: int, base: float, jitter: float) -> None:
    nominal = retry_delay(attempt, base, 3600, 0)
    delay = retry_delay(attempt, base, 3600, jitter)
    assert 0.8 * nominal <= delay <= nominal <= 3600
