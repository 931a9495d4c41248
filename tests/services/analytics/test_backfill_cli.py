"""The analytics commands: `backfill` rebuilds the summaries from history with progress; `run` is a consumer process."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from funnelstream.embedded import free_port
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


def test_analytics_run_is_a_consumer_process_with_health_that_stops_on_sigterm(
    database_url: str, broker: tuple[str, bool]
) -> None:
    bootstrap, idempotence = broker
    port = free_port()
    env = clean_env(
        FUNNELSTREAM_DATABASE_URL=database_url,
        FUNNELSTREAM_KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        FUNNELSTREAM_KAFKA_IDEMPOTENCE=str(idempotence).lower(),
        FUNNELSTREAM_TOPIC_PREFIX=f"an{uuid.uuid4().hex[:8]}.",
        FUNNELSTREAM_HEALTH_PORT=str(port),
        FUNNELSTREAM_ANALYTICS_ALERT_INTERVAL_SECONDS="0.2",
    )
    proc = subprocess.Popen([EXE, "analytics", "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        ready = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                if ready.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        assert ready is not None and ready.status_code == 200
        time.sleep(1)  # a few rounds of the stalled-lead check
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        output = proc.communicate()[0]
    assert "analytics stopped" in output
    assert "stalled-lead check failed" not in output
