"""Claims whose process died: after their lease they become `unknown`, listed for an operator, never resent."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from prometheus_client import Gauge
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.nurture.delivery import repository
from services.nurture.delivery.service import EMAILS
from shared.settings import NurtureSettings

log = logging.getLogger(__name__)

UNKNOWN = Gauge("funnelstream_email_sends_unknown", "Email sends whose outcome is unknown, awaiting an operator")


async def sweep_unknown(sessionmaker: async_sessionmaker[AsyncSession], now: datetime) -> int:
    """Mark claims whose lease ended before `now` as `unknown`; returns how many. Safe in several processes."""
    async with sessionmaker() as session, session.begin():
        swept = await repository.sweep(session, now)
        UNKNOWN.set(await repository.count_status(session, "unknown"))
    if swept:
        EMAILS.labels("unknown").inc(swept)
        log.warning(
            "%d email send(s) became unknown: their process stopped during the SMTP exchange. They are not "
            "resent automatically; list them with GET /api/sends?status=unknown, then resend or drop each.",
            swept,
        )
    return swept


async def sweeper_loop(
    settings: NurtureSettings, sessionmaker: async_sessionmaker[AsyncSession], stop: asyncio.Event | None = None
) -> None:
    """Sweep every `send_sweep_seconds` until `stop` is set (or the task is cancelled)."""
    stop = stop or asyncio.Event()
    while not stop.is_set():
        try:
            await sweep_unknown(sessionmaker, datetime.now(UTC))
        except Exception:  # noqa: BLE001 - a database outage must not end the nurture process
            log.exception("sweeping expired email claims failed; next try in %.0f s", settings.send_sweep_seconds)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), settings.send_sweep_seconds)
