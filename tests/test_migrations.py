"""The SQLAlchemy models and the Alembic migrations describe the same schema."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

import shared.models  # noqa: F401 - registers the tables
from funnelstream.migrate import upgrade, wait_for_schema
from shared.db import Base, make_engine
from shared.settings import to_libpq_url
from tests.conftest import with_database


async def test_models_and_migrations_agree(database_url: str) -> None:
    engine = make_engine(database_url, pool_size=1)

    def diff(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    try:
        async with engine.connect() as conn:
            differences = await conn.run_sync(diff)
    finally:
        await engine.dispose()
    assert differences == []


async def test_services_wait_for_migrations_before_touching_tables(pg_server: str) -> None:
    name = f"fs_empty_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(to_libpq_url(pg_server))
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = with_database(pg_server, name)
    engine = make_engine(url, pool_size=1)
    try:
        waiting = asyncio.create_task(wait_for_schema(engine, poll_seconds=0.1))
        await asyncio.sleep(0.5)
        assert not waiting.done()
        await asyncio.to_thread(upgrade, url)
        await asyncio.wait_for(waiting, 10)
    finally:
        await engine.dispose()
