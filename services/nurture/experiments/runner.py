"""The automatic winner: running experiments with `auto_winner` are evaluated every few seconds by the
nurture processes; the first time the always-valid test names a winner it is recorded with its numbers
and the step sends remaining traffic to it."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.nurture.experiments import repository, service

log = logging.getLogger(__name__)


async def evaluate(sessionmaker: async_sessionmaker[AsyncSession], now: datetime | None = None) -> list[str]:
    """One pass over running auto-winner experiments; returns the ids decided now."""
    now = now or datetime.now(UTC)
    decided: list[str] = []
    async with sessionmaker() as session, session.begin():
        for experiment in await repository.running_auto(session):
            arms = await repository.outcomes(session, experiment)
            found = service.decide(experiment, arms, now)
            if found is None:
                continue
            winner, numbers = found
            if await repository.decide(session, experiment["id"], winner, numbers, now):
                log.info("experiment %s: winner %s", experiment["id"], winner)
                decided.append(str(experiment["id"]))
    return decided


async def experiment_loop(sessionmaker: async_sessionmaker[AsyncSession], every_seconds: float) -> None:
    """Evaluate until cancelled (the test is valid however often it looks)."""
    while True:
        try:
            await evaluate(sessionmaker)
        except Exception:
            log.exception("experiment evaluation failed; retrying")
        await asyncio.sleep(every_seconds)
