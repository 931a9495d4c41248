"""The nurture process's background task picks the winner of an auto-winner experiment by itself."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson
from sqlalchemy import text

from funnelstream.runtime import background_tasks
from shared.db import make_engine, make_sessionmaker
from shared.kafka import make_producer
from shared.settings import NurtureSettings
from tests.helpers import eventually

VARIANTS = [{"key": "short", "next": "exit", "weight": 1}, {"key": "long", "next": "exit", "weight": 1}]


async def test_the_nurture_process_records_the_winner_once_the_test_has_one(settings_kwargs: dict[str, Any]) -> None:
    settings = NurtureSettings(**settings_kwargs, secret_key="test-secret", experiment_check_seconds=0.1)
    engine = make_engine(settings.database_url, pool_size=2)
    sessionmaker = make_sessionmaker(engine)
    experiment = uuid.uuid4()
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO experiments (id, name, sequence_id, step_id, kind, variants, metric, goal_event, "
                "window_seconds, alpha, min_sample, auto_winner) VALUES (:id, 'paths', :s, 'pick', 'path', "
                "CAST(:v AS jsonb), 'conversion', 'Demo Requested', 86400, 0.05, 30, true)"
            ),
            {"id": experiment, "s": uuid.uuid4(), "v": orjson.dumps(VARIANTS).decode()},
        )
        # 40 leads per path took the split an hour ago; 4 of "short" and 30 of "long" asked for a demo since,
        # and 20 of "short" did before the split (not counted).
        await conn.execute(
            text(
                "INSERT INTO experiment_assignments (experiment_id, lead_id, variant, enrollment_id, send_key, "
                "assigned_at) SELECT :e, md5('lead' || i)::uuid, CASE WHEN i <= 40 THEN 'short' ELSE 'long' END, "
                "gen_random_uuid(), NULL, now() - interval '1 hour' FROM generate_series(1, 80) i"
            ),
            {"e": experiment},
        )
        await conn.execute(
            text(
                "INSERT INTO lead_events (event_id, lead_id, source_id, type, name, properties, bot, occurred_at, "
                "received_at) SELECT gen_random_uuid(), md5('lead' || i)::uuid, gen_random_uuid(), 'track', "
                "'Demo Requested', '{}', NULL, now() - CASE WHEN i <= 20 THEN interval '2 hours' "
                "ELSE interval '10 minutes' END, now() FROM generate_series(1, 80) i "
                "WHERE i <= 20 OR i BETWEEN 37 AND 40 OR i > 50"
            )
        )
    producer = make_producer(settings)
    tasks = background_tasks("nurture", settings, sessionmaker, producer)
    try:
        assert "experiments" in {t.get_name() for t in tasks}

        async def decided() -> dict[str, Any] | None:
            async with engine.connect() as conn:
                row = (
                    (
                        await conn.execute(
                            text("SELECT status, winner, decision FROM experiments WHERE id = :id"), {"id": experiment}
                        )  # fmt: skip
                    )
                    .mappings()
                    .first()
                )
            return dict(row) if row and row["status"] == "decided" else None

        found = await eventually(decided, what="the winner recorded")
        assert found["winner"] == "long"
        totals = {v["key"]: (v["exposures"], v["total"]) for v in found["decision"]["variants"]}
        assert totals == {"short": (40, 4), "long": (40, 30)}
        assert found["decision"]["comparisons"][0]["significant"]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await engine.dispose()
