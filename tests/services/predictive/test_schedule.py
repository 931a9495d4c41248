"""The optional training schedule of the scoring process stores a run each interval."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from sqlalchemy import text

from services.predictive.training import training_loop
from shared.db import make_engine, make_sessionmaker
from shared.settings import ScoringSettings
from tests.helpers import eventually


async def test_the_schedule_trains_and_stores_runs(settings_kwargs: dict[str, Any]) -> None:
    settings = ScoringSettings(
        **settings_kwargs, predictive_train_interval_hours=0.5 / 3600, predictive_target_stage="lead"
    )
    engine = make_engine(settings.database_url, pool_size=2)
    task = asyncio.create_task(training_loop(settings, make_sessionmaker(engine)))
    try:

        async def runs() -> int:
            async with engine.connect() as conn:
                return int(await conn.scalar(text("SELECT count(*) FROM predictive_models")) or 0)

        await eventually(lambda: _at_least(runs(), 2), what="two scheduled training runs")
        async with engine.connect() as conn:
            reasons = set(await conn.scalars(text("SELECT reason FROM predictive_models")))
        assert all(r.startswith("not enough history") for r in reasons)  # an empty database: stored, not activated
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await engine.dispose()


async def test_no_schedule_by_default(settings_kwargs: dict[str, Any]) -> None:
    engine = make_engine(settings_kwargs["database_url"], pool_size=1)
    try:
        await asyncio.wait_for(training_loop(ScoringSettings(**settings_kwargs), make_sessionmaker(engine)), 5)
    finally:
        await engine.dispose()


async def _at_least(value: Any, n: int) -> bool:
    return bool(await value >= n)
