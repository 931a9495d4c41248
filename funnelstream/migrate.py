"""Database migrations with Alembic; the scripts ship inside the package."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    from shared.settings import to_asyncpg_url

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", to_asyncpg_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the schema to `revision`; safe to run again and from several processes one after another."""
    command.upgrade(alembic_config(database_url), revision)


def known_revisions() -> tuple[str, list[str]]:
    """(head, every revision this code ships)."""
    scripts = ScriptDirectory.from_config(alembic_config("postgresql://unused/db"))
    head = scripts.get_current_head() or ""
    return head, [rev.revision for rev in scripts.walk_revisions()]


async def wait_for_schema(engine: AsyncEngine, poll_seconds: float = 2.0) -> None:
    """Wait until migrations reached this code's head, so no event meets a missing table.

    A revision this code does not know is newer: migrations are additive, so older code runs on it.
    """
    head, known = known_revisions()
    warned = False
    while True:
        try:
            async with engine.connect() as conn:
                current = await conn.scalar(text("SELECT version_num FROM alembic_version"))
        except DBAPIError:
            current = None
        if current == head or (current is not None and current not in known):
            return
        if not warned:
            log.warning("database schema is at %s, waiting for %s: run `funnelstream migrate`", current, head)
            warned = True
        await asyncio.sleep(poll_seconds)
