"""Session-wide real components: PostgreSQL and the Kafka-protocol broker, started once.

FUNNELSTREAM_TEST_DATABASE_URL / FUNNELSTREAM_TEST_KAFKA_BOOTSTRAP_SERVERS point the suite at
running servers instead of the embedded ones. Each test gets its own database (a copy of a
migrated template) and its own topic prefix, so tests never see each other's data.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from funnelstream.embedded import EmbeddedBroker, EmbeddedPostgres
from funnelstream.migrate import upgrade
from shared.settings import to_libpq_url
from tests.helpers import COUNTING_RULES


def with_database(url: str, name: str) -> str:
    base = to_libpq_url(url)
    head, _, _ = base.rpartition("/")
    return f"{head}/{name}"


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("FUNNELSTREAM_TEST_DATABASE_URL")
    if given:
        yield given
        return
    root: Path = tmp_path_factory.mktemp("pg")
    server = EmbeddedPostgres(root / "data", root / "run")
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def template_db(pg_server: str) -> str:
    """A database migrated once; each test copies it (CREATE DATABASE ... TEMPLATE)."""
    import asyncio

    name = f"fs_template_{uuid.uuid4().hex[:8]}"

    async def create() -> None:
        conn = await asyncpg.connect(to_libpq_url(pg_server))
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    upgrade(with_database(pg_server, name))

    async def counting_rules() -> None:
        conn = await asyncpg.connect(to_libpq_url(with_database(pg_server, name)))
        try:
            await conn.execute(
                "INSERT INTO rule_sets (rules, status, note, activated_at) VALUES ($1::jsonb, 'active', $2, now())",
                orjson.dumps(COUNTING_RULES).decode(),
                "tests: one point per human event",
            )
        finally:
            await conn.close()

    # Tests of identity, ingest and delivery count events through the score: one point per human
    # event, no decay. Tests of scoring itself activate the rule set they are about.
    asyncio.run(counting_rules())
    return name


@pytest.fixture
async def database_url(pg_server: str, template_db: str) -> AsyncIterator[str]:
    name = f"fs_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(to_libpq_url(pg_server))
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    finally:
        await conn.close()
    yield with_database(pg_server, name)
    conn = await asyncpg.connect(to_libpq_url(pg_server))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def broker() -> Iterator[tuple[str, bool]]:
    """(bootstrap servers, idempotence allowed)."""
    given = os.environ.get("FUNNELSTREAM_TEST_KAFKA_BOOTSTRAP_SERVERS")
    if given:
        yield given, True
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="fs-tansu-") as run_dir:
        embedded = EmbeddedBroker(Path(run_dir))
        bootstrap = embedded.start()
        try:
            yield bootstrap, False
        finally:
            embedded.stop()


@pytest.fixture
def settings_kwargs(database_url: str, broker: tuple[str, bool]) -> dict[str, Any]:
    """Settings for one test: its own database and its own topic prefix."""
    bootstrap, idempotence = broker
    return {
        "database_url": database_url,
        "kafka_bootstrap_servers": bootstrap,
        "kafka_idempotence": idempotence,
        "topic_prefix": f"t{uuid.uuid4().hex[:10]}.",
        "partitions": 3,
        # tansu completes a group join after about half the session timeout; real Kafka wants >= 6 s.
        "kafka_session_timeout_ms": 6000 if idempotence else 2000,
        "consumer_poll_ms": 50,
    }
