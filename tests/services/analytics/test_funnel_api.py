"""Funnel analytics end to end: tracking API → scoring → lead-changes → analytics consumer → /api/analytics."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from services.analytics.alerts import check_stalled
from services.analytics.backfill import backfill
from services.analytics.reports import Reports
from shared.db import make_engine, make_sessionmaker
from shared.settings import AnalyticsSettings
from tests.helpers import running_stack
from tests.services.analytics.seed import count, default_rules, seed

CONSUMERS = ("scoring", "analytics")


def by_stage(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["stage"]: row for row in answer["stages"]}


async def test_funnel_money_backfill_and_stalled_alert(settings_kwargs: dict[str, Any]) -> None:
    await default_rules(settings_kwargs["database_url"])
    async with running_stack(settings_kwargs, consumers=CONSUMERS) as stack, httpx.AsyncClient(timeout=20) as client:
        await seed(stack, client)
        api = f"{stack.base_url}/api/analytics"

        r = await client.get(f"{api}/funnel", params={"model": "b2b"}, headers=stack.admin)
        assert r.status_code == 200, r.text
        funnel = r.json()
        assert funnel["answered_from"] == "summary tables"
        stages = by_stage(funnel)
        assert [s["stage"] for s in funnel["stages"]][:2] == ["visitor", "lead"]
        assert stages["visitor"]["entered"] == 5
        assert stages["visitor"]["exited"] == 4
        assert stages["lead"]["entered"] == 4
        assert stages["customer"]["entered"] == 1
        assert stages["visitor"]["conversion"] == 0.8
        assert funnel["rates"]["visitor_to_lead"] == 0.8
        assert funnel["bottleneck"] == "lead"  # nobody reached mql: the biggest relative drop
        assert stages["lead"]["bottleneck"] is True

        spring = {"model": "b2b", "utm_campaign": "spring"}
        r = await client.get(f"{api}/funnel", params=spring, headers=stack.admin)
        stages = by_stage(r.json())
        assert (stages["visitor"]["entered"], stages["lead"]["entered"], stages["customer"]["entered"]) == (3, 2, 1)
        assert r.json()["filters"] == {"utm_campaign": "spring"}

        r = await client.get(f"{api}/money", params=spring, headers=stack.admin)
        money = r.json()
        assert money["currency"] == "USD"
        assert money["revenue"] == "110.00"  # 100 EUR at 1.1
        assert money["orders"] == 1
        assert money["average_order_value"] == "110.00"
        assert money["spend"] == "50.00"
        assert money["cost_per_lead"] == "25.00"
        assert money["cost_per_customer"] == "50.00"
        assert money["customer_lifetime_value"] == "110.00"
        assert money["churn_rate"] == 0.0
        assert money["missing_rates"] == []

        r = await client.get(f"{api}/time-in-stage", params={"model": "b2b"}, headers=stack.admin)
        times = by_stage(r.json())
        assert times["visitor"]["leads"] == 4
        assert times["sales cycle"]["leads"] == 1

        r = await client.get(f"{api}/cohorts", params={"model": "b2b"}, headers=stack.admin)
        (cohort,) = r.json()["cohorts"]
        assert (cohort["leads"], cohort["lead"], cohort["customer"]) == (5, 4, 1)
        assert cohort["won_by_week"][0] == 0.2  # u1 became a customer in the week it entered
        assert cohort["won_by_week"][-1] == 0.2

        r = await client.get(f"{api}/forecast", params={"model": "b2b"}, headers=stack.admin)
        forecast = r.json()
        lead_stage = by_stage(forecast)["lead"]
        assert lead_stage["leads"] == 3  # u2, u3 and the HTML-named lead are still leads
        assert (lead_stage["history_reached"], lead_stage["history_won"]) == (4, 1)  # u1 went on to customer
        assert lead_stage["win_probability"] == 0.25
        assert lead_stage["expected_revenue"] == "82.50"  # 3 × 0.25 × 110.00
        assert forecast["expected_revenue"] == "82.50"
        assert forecast["assumptions"]["won_stage"] == "customer"

        r = await client.get(f"{api}/leads/u1/timeline", headers=stack.admin)
        kinds = {(e["kind"], e["what"]) for e in r.json()["timeline"]}
        assert ("event", "Order Completed") in kinds
        assert ("stage", "b2b: lead → customer") in kinds

        r = await client.get(f"{api}/funnel", params={"model": "nope"}, headers=stack.admin)
        assert r.status_code == 400
        assert "nope" in r.json()["error"]
        r = await client.get(f"{api}/funnel", params={"start": "2026-02-01", "end": "2026-01-01"}, headers=stack.admin)
        assert r.status_code == 400
        assert (await client.get(f"{api}/funnel")).status_code == 401

        for runner in stack.runners.values():  # a backfill runs with the analytics consumer stopped
            runner.request_stop()
        engine = make_engine(settings_kwargs["database_url"], pool_size=2)
        sessionmaker = make_sessionmaker(engine)
        settings = AnalyticsSettings(**settings_kwargs)
        progress: list[tuple[int, int]] = []
        result = await backfill(sessionmaker, settings, chunk=2, progress=lambda d, t, _s: progress.append((d, t)))
        assert result.leads == 5
        assert progress[-1] == (5, 5)
        assert len(progress) == 3
        r = await client.get(f"{api}/funnel", params=spring, headers=stack.admin)
        stages = by_stage(r.json())
        assert (stages["visitor"]["entered"], stages["lead"]["entered"], stages["customer"]["entered"]) == (3, 2, 1)
        r = await client.get(f"{api}/money", params=spring, headers=stack.admin)
        assert (r.json()["revenue"], r.json()["cost_per_lead"]) == ("110.00", "25.00")

        r = await client.post(
            f"{stack.base_url}/api/webhook-endpoints",
            json={"url": "http://127.0.0.1:9/hook", "event_types": ["analytics.stalled_leads"]},
            headers=stack.admin,
        )
        assert r.status_code == 201, r.text
        alerting = AnalyticsSettings(**settings_kwargs, analytics_stalled_alert_threshold=3)
        later = datetime.now(UTC).replace(year=datetime.now(UTC).year + 1)
        async with sessionmaker() as session, session.begin():
            assert await check_stalled(session, Reports(alerting), later) == ["b2b", "ecommerce"]
        async with sessionmaker() as session, session.begin():
            assert await check_stalled(session, Reports(alerting), later) == []  # raised once per crossing
        sent = "SELECT count(*) FROM webhook_deliveries WHERE event_type = 'analytics.stalled_leads'"
        assert await count(stack, sent) == 2
        await engine.dispose()
