"""`funnelstream analytics backfill` rebuilds the summaries from history, printing progress and a result."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from shared.settings import to_libpq_url
from tests.funnelstream.test_dev import EXE, clean_env


async def _history(url: str) -> None:
    conn = await asyncpg.connect(to_libpq_url(url))
    try:
        at = datetime.now(UTC) - timedelta(days=3)
        leads = [uuid.uuid4() for _ in range(3)]
        await conn.executemany(
            "INSERT INTO leads (lead_id, user_id, created_at) VALUES ($1, $2, $3)",
            [(lead, f"cli-{i}", at) for i, lead in enumerate(leads)],
        )
        await conn.executemany(
            "INSERT INTO stage_history (lead_id, model, from_stage, to_stage, kind, rule_set_version, occurred_at) "
            "VALUES ($1, 'b2b', NULL, 'lead', 'entry', 1, $2)",
            [(lead, at + timedelta(hours=5)) for lead in leads[:2]],
        )
        await conn.execute(
            "INSERT INTO analytics_funnel_daily (day, model, stage, entered) VALUES ('2001-01-01', 'b2b', 'stale', 9)"
        )
    finally:
        await conn.close()


async def _funnel(url: str) -> dict[str, tuple[int, int]]:
    conn = await asyncpg.connect(to_libpq_url(url))
    try:
        rows = await conn.fetch("SELECT stage, sum(entered), sum(exited) FROM analytics_funnel_daily GROUP BY stage")
    finally:
        await conn.close()
    return {r[0]: (int(r[1]), int(r[2])) for r in rows}


def test_backfill_command_rebuilds_the_funnel_with_progress(database_url: str) -> None:
    asyncio.run(_history(database_url))
    env = {
        **clean_env(),
        "FUNNELSTREAM_DATABASE_URL": database_url,
        "FUNNELSTREAM_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
    }
    result = subprocess.run([EXE, "analytics", "backfill", "--chunk", "2"], capture_output=True, text=True,
                            timeout=120, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "2/3 leads (67%)" in result.stderr
    assert "3/3 leads (100%)" in result.stderr
    assert json.loads(result.stdout)["leads"] == 3
    assert json.loads(result.stdout)["stage_changes"] == 2
    funnel = asyncio.run(_funnel(database_url))
    assert funnel == {"visitor": (3, 2), "lead": (2, 0)}  # the stale row is gone
