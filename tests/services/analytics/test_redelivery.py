"""A redelivered lead change adds nothing: the analytics consumer on the real broker and database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from services.analytics.handlers import AnalyticsHandler
from services.analytics.summaries import bucket_of, percentile
from shared.events import LeadActivity, LeadStageChanged
from shared.settings import AnalyticsSettings
from tests.helpers import env, eventually, produce, running


def became_lead(lead: uuid.UUID, at: datetime) -> LeadStageChanged:
    return LeadStageChanged(
        event_id=uuid.uuid4(), lead_id=lead, model="b2b", stage="lead", previous_stage="visitor", kind="entry",
        rule_set_version=1, occurred_at=at,
    )  # fmt: skip


async def test_redelivered_stage_change_and_order_count_once(settings_kwargs: dict[str, Any]) -> None:
    settings = AnalyticsSettings(**settings_kwargs)
    lead = uuid.uuid4()
    at = datetime.now(UTC) - timedelta(hours=2)
    lead_change = became_lead(lead, at)
    order = LeadActivity(event_id=uuid.uuid4(), lead_id=lead, name="Order Completed",
                         properties={"revenue": "12.50", "currency": "usd"}, source_id=uuid.UUID(int=7),
                         cause_event_id=uuid.uuid4(), occurred_at=at + timedelta(hours=1))  # fmt: skip
    values = [lead_change.to_bytes(), order.to_bytes()]
    async with env(settings_kwargs) as e:
        runner = e.runner(AnalyticsHandler(settings))
        runner.settings = settings
        async with running(runner):
            await produce(e.producer, e.topics.lead_changes, values, key=lead.bytes)
            await produce(e.producer, e.topics.lead_changes, values, key=lead.bytes)  # redelivered
            marker = became_lead(uuid.uuid4(), at)
            await produce(e.producer, e.topics.lead_changes, [marker.to_bytes()], key=lead.bytes)
            await eventually(
                lambda: e.equals(f"SELECT count(*) FROM analytics_leads WHERE lead_id = '{marker.lead_id}'", 1),  # noqa: S608
                what="the marker after the duplicates",
            )
        entered = await e.scalar("SELECT sum(entered) FROM analytics_funnel_daily WHERE stage = 'lead'")
        assert entered == 2  # the lead and the marker, not three
        assert await e.scalar("SELECT sum(exited) FROM analytics_funnel_daily WHERE stage = 'visitor'") == 2
        row = await e.row("SELECT sum(orders) AS orders, sum(revenue) AS revenue, min(currency) AS currency "
                          "FROM analytics_revenue_daily")  # fmt: skip
        assert row is not None
        assert (row["orders"], str(row["revenue"]), row["currency"]) == (1, "12.5000", "USD")
        hours_in_visitor = await e.scalar("SELECT min(bucket) FROM analytics_durations WHERE stage = 'visitor'")
        assert hours_in_visitor is not None


def test_percentile_of_duration_buckets_is_within_ten_percent() -> None:
    durations = [60.0 * m for m in range(1, 101)]  # 1 … 100 minutes
    histogram: dict[int, int] = {}
    for d in durations:
        histogram[bucket_of(d)] = histogram.get(bucket_of(d), 0) + 1
    median, p90 = percentile(histogram, 0.5), percentile(histogram, 0.9)
    assert median is not None and p90 is not None
    assert abs(median - 50 * 60) / (50 * 60) < 0.1
    assert abs(p90 - 90 * 60) / (90 * 60) < 0.1
    assert percentile({}, 0.5) is None
