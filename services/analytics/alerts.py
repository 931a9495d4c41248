"""The stalled-lead alert: a webhook `analytics.stalled_leads` when a model's count crosses the threshold.

Raised once per crossing (upwards), recorded in `analytics_alerts` in the same transaction as the outbox
row, and cleared when the count falls below the threshold again, so it can fire on the next crossing.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.analytics import queries
from services.analytics.reports import Reports, stalled_stages
from shared import outbox
from shared.events import derived_id
from shared.settings import AnalyticsSettings

log = logging.getLogger(__name__)
EVENT = "analytics.stalled_leads"
SAMPLE = 20


async def check_stalled(session: AsyncSession, reports: Reports, now: datetime) -> list[str]:
    """Raise or clear each model's alert as its stalled count stands at `now`; returns the models alerted."""
    settings = reports.settings
    funnels, _ = await reports.funnels(session)
    threshold = settings.analytics_stalled_alert_threshold
    before = now - timedelta(days=settings.analytics_stalled_days)
    raised = []
    for model, stages in funnels.stages.items():
        watched = stalled_stages(list(stages), funnels.won[model])
        count, sample = await queries.stalled(session, model, watched, before, SAMPLE)
        name = f"stalled:{model}"
        active = await session.scalar(
            text("SELECT active FROM analytics_alerts WHERE name = :n FOR UPDATE"), {"n": name}
        )
        above = count >= threshold
        if bool(active) == above:
            continue
        await session.execute(
            text(
                "INSERT INTO analytics_alerts (name, active, count, changed_at) VALUES (:n, :a, :c, :t) "
                "ON CONFLICT (name) DO UPDATE SET active = :a, count = :c, changed_at = :t"
            ),
            {"n": name, "a": above, "c": count, "t": now},
        )
        if above:
            payload = {"model": model, "count": count, "threshold": threshold,
                       "stalled_days": settings.analytics_stalled_days, "stages": watched, "at": now.isoformat(),
                       "leads": [{"lead_id": str(r["lead_id"]), "user_id": r["user_id"], "stage": r["stage"],
                                  "since": r["entered_at"].isoformat()} for r in sample]}  # fmt: skip
            await outbox.enqueue(session, EVENT, payload, derived_id("analytics-alert", name, now.isoformat()))
            raised.append(model)
            log.warning("%d stalled leads in %s (threshold %d): alert sent", count, model, threshold)
    return raised


async def stalled_alert_loop(settings: AnalyticsSettings, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """Check every ANALYTICS_ALERT_INTERVAL_SECONDS until cancelled; errors are logged and retried."""
    reports = Reports(settings)
    while True:
        try:
            async with sessionmaker() as session, session.begin():
                await check_stalled(session, reports, datetime.now(UTC))
        except Exception:  # noqa: BLE001 - a failed check is retried next round
            log.exception("stalled-lead check failed")
        await asyncio.sleep(settings.analytics_alert_interval_seconds)
