"""Outages of the broker and of PostgreSQL while events flow: nothing acknowledged is lost, nothing is
counted twice. Each test runs its own broker or database, so pausing it disturbs no other test.

The broker is paused with SIGSTOP (10 s here; the report's full run uses 60 s through
FUNNELSTREAM_CHAOS_OUTAGE_SECONDS): the process stays, its sockets stay open, nothing answers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from funnelstream.embedded import EmbeddedBroker, EmbeddedPostgres
from funnelstream.migrate import upgrade
from shared.settings import to_libpq_url
from tests.conftest import with_database
from tests.helpers import COUNTING_RULES, basic, env, event, eventually, running, running_stack

OUTAGE = float(os.environ.get("FUNNELSTREAM_CHAOS_OUTAGE_SECONDS", "10"))
USERS = [f"outage-{i}" for i in range(5)]


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    broker = EmbeddedBroker(tmp_path / "tansu")
    broker.start()
    try:
        yield broker
    finally:
        if broker.proc is not None and broker.proc.poll() is None:
            broker.proc.send_signal(signal.SIGCONT)
        broker.stop()


def track(i: int) -> dict[str, Any]:
    return {"userId": USERS[i % len(USERS)], "event": "Outage Probe", "messageId": f"probe-{i}"}


async def scores(stack_env: Any) -> dict[str, int]:
    found = {}
    for user in USERS:
        value = await stack_env.scalar("SELECT score FROM leads WHERE user_id = :u", u=user)
        found[user] = int(value or 0)
    return found


async def test_broker_paused_ingest_answers_503_and_nothing_acknowledged_is_lost(
    settings_kwargs: dict[str, Any], own_broker: EmbeddedBroker
) -> None:
    kwargs = {**settings_kwargs, "kafka_bootstrap_servers": own_broker.bootstrap, "kafka_idempotence": False}
    async with (
        running_stack(kwargs, consumers=("scoring",), produce_timeout_seconds=2) as stack,
        httpx.AsyncClient(timeout=30) as client,
        env(kwargs) as e,
    ):
        await asyncio.wait_for(stack.runners["scoring"].assigned.wait(), 60)
        key = await stack.create_source(client)
        url = f"{stack.base_url}/v1/track"

        async def send(i: int) -> httpx.Response:
            return await client.post(url, json=track(i), headers=basic(key))

        before = await asyncio.gather(*(send(i) for i in range(40)))
        assert all(r.status_code == 200 for r in before)
        assert own_broker.proc is not None
        own_broker.proc.send_signal(signal.SIGSTOP)
        loop = asyncio.get_running_loop()
        resumed_at = loop.time() + OUTAGE
        during: dict[int, httpx.Response] = {}
        i = 40
        try:
            while loop.time() < resumed_at - 2.5:
                batch = await asyncio.gather(*(send(n) for n in range(i, i + 3)))
                during |= dict(zip(range(i, i + 3), batch, strict=True))
                i += 3
        finally:
            await asyncio.sleep(max(0.0, resumed_at - loop.time()))
            own_broker.proc.send_signal(signal.SIGCONT)
        refused = [n for n, r in during.items() if r.status_code == 503]
        assert refused and all(during[n].headers.get("Retry-After") for n in refused)
        assert all(r.status_code in (200, 503) for r in during.values())
        after = await asyncio.gather(*(send(n) for n in range(i, i + 40)))
        assert all(r.status_code == 200 for r in after)
        # The clients retry what was refused, with the same message ids, as Segment's libraries do.
        retried = await asyncio.gather(*(send(n) for n in refused))
        assert all(r.status_code == 200 for r in retried)
        sent = range(i + 40)
        want = Counter(USERS[n % len(USERS)] for n in sent)
        got = await eventually(lambda: _when_equal(scores(e), dict(want)), timeout=90, what="every event counted once")
        assert got == dict(want)


async def _when_equal(found: Any, want: dict[str, int]) -> dict[str, int] | None:
    value: dict[str, int] = await found
    return value if value == want else None


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(tmp_path / "pg" / "data", tmp_path / "pg" / "run")
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_postgres_restarted_during_consumption_loses_and_doubles_nothing(
    settings_kwargs: dict[str, Any], own_postgres: EmbeddedPostgres
) -> None:
    name = f"fs_restart_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(to_libpq_url(own_postgres.url))
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = with_database(own_postgres.url, name)
    await asyncio.to_thread(upgrade, url)
    conn = await asyncpg.connect(to_libpq_url(url))
    await conn.execute(
        "INSERT INTO rule_sets (rules, status, note, activated_at) VALUES ($1::jsonb, 'active', 'count', now())",
        orjson.dumps(COUNTING_RULES).decode(),
    )
    await conn.close()
    kwargs = {**settings_kwargs, "database_url": url}
    async with env(kwargs) as e, running(e.runner()) as scoring:
        await asyncio.wait_for(scoring.assigned.wait(), 60)
        events = [event(USERS[n % len(USERS)], n, message_id=f"r-{n}") for n in range(3000)]
        first, second = events[:1500], events[1500:]
        await e.send(*first)
        await asyncio.sleep(0.3)  # consumption under way
        await asyncio.to_thread(own_postgres.stop)
        await e.send(*second)  # the broker takes them while the database is down
        await asyncio.sleep(3)
        await asyncio.to_thread(own_postgres.start)
        want = dict(Counter(USERS[n % len(USERS)] for n in range(3000)))
        got = await eventually(lambda: _when_equal(scores(e), want), timeout=120, what="every event counted once")
        assert got == want
