"""Reports as plain dicts (the API answers them as JSON, the dashboard renders them), one per question."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics import activity, queries, service
from services.analytics.queries import Filters
from services.analytics.summaries import CYCLE, Funnels, percentile
from services.scoring.rulebook import ActiveRules
from shared.settings import AnalyticsSettings, Settings, load_settings

SUMMARY = "summary tables"
FORECAST_LOOKBACK_DAYS = 180


class UnknownModel(Exception):
    pass


class Unsupported(Exception):
    """A filter this report cannot take."""


class Reports:
    def __init__(self, settings: AnalyticsSettings) -> None:
        self.settings = settings
        self.rules = ActiveRules(refresh_seconds=5.0)

    async def funnels(self, session: AsyncSession) -> tuple[Funnels, str]:
        scorer = await self.rules.get(session)
        models = [(m.name, [s.name for s in m.stages]) for m in scorer.rules.models]
        won = [w.strip() for w in self.settings.analytics_won_stages.split(",")]
        return Funnels.from_rules(models, won), scorer.rules.primary_model

    async def stages(self, session: AsyncSession, f: Filters, segment: bool = False) -> tuple[list[str], str]:
        if f.audience is not None and not segment:
            raise Unsupported("audience: only the funnel report takes a segment filter")
        funnels, _ = await self.funnels(session)
        if f.model not in funnels.stages:
            raise UnknownModel(f"no funnel model {f.model!r} (models: {', '.join(funnels.stages)})")
        return list(funnels.stages[f.model]), funnels.won[f.model]

    def _head(self, f: Filters, source: str = SUMMARY) -> dict[str, Any]:
        names = ("source_id", "utm_source", "utm_campaign", "audience")
        dims = {k: getattr(f, k) for k in names if getattr(f, k) is not None}
        return {"model": f.model, "start": f.start, "end": f.end, "filters": dims, "answered_from": source}

    async def funnel(self, session: AsyncSession, f: Filters) -> dict[str, Any]:
        stages, _ = await self.stages(session, f, segment=True)
        if f.audience is not None:
            counts = await queries.funnel_counts_in_audience(session, f, stages[0])
            head = self._head(f, "stage_history and audience_members: a segment filter scans history (slower)")
        else:
            counts = await queries.funnel_counts(session, f)
            head = self._head(f)
        rows = service.funnel_rows(stages, counts)
        bottleneck = next((r["stage"] for r in rows if r["bottleneck"]), None)
        rates = service.named_rates(stages, counts)
        return {**head, "stages": rows, "bottleneck": bottleneck, "rates": rates}

    async def trend(self, session: AsyncSession, f: Filters) -> dict[str, Any]:
        await self.stages(session, f)
        rows = [{"day": d, "stage": s, "entered": n} for d, s, n in await queries.trend(session, f)]
        return {**self._head(f), "rows": rows}

    async def time_in_stage(self, session: AsyncSession, f: Filters) -> dict[str, Any]:
        stages, won = await self.stages(session, f)
        rows = service.duration_rows(stages, await queries.durations(session, f))
        return {**self._head(f), "won_stage": won, "stages": rows}

    async def stalled(self, session: AsyncSession, f: Filters, days: float | None, limit: int) -> dict[str, Any]:
        stages, won = await self.stages(session, f)
        days = days or self.settings.analytics_stalled_days
        watched = stalled_stages(stages, won)
        before = datetime.now(UTC) - timedelta(days=days)
        count, leads = await queries.stalled(session, f.model, watched, before, limit)
        return {"model": f.model, "stalled_days": days, "stages": watched, "count": count, "leads": leads,
                "threshold": self.settings.analytics_stalled_alert_threshold,
                "answered_from": "analytics_lead_stages (current stage per lead)"}  # fmt: skip

    async def cohorts(self, session: AsyncSession, f: Filters, by: str) -> dict[str, Any]:
        stages, won = await self.stages(session, f)
        rows = service.cohort_table(await queries.cohorts(session, f, by), stages, won)
        return {**self._head(f), "by": by, "stages": stages, "won_stage": won, "cohorts": rows}

    async def money(self, session: AsyncSession, f: Filters) -> dict[str, Any]:
        stages, won = await self.stages(session, f)
        money = service.Money(self.settings.reporting_currency, await queries.rates(session))
        spend = money.total(await queries.spend(session, f))
        counts = await queries.funnel_counts(session, f)
        leads = counts.get(stages[1], (0, 0))[0] if len(stages) > 1 else await queries.new_leads(session, f)
        won_count = counts.get(won, (0, 0))[0]
        revenue_rows = await queries.revenue(session, f)
        revenue = money.total([(d, c, r) for d, c, _, _, r in revenue_rows])
        orders = sum(r[2] for r in revenue_rows)
        churn_before = datetime.now(UTC) - timedelta(days=self.settings.analytics_churn_days)
        customers, churned = await queries.customers(session, f, churn_before)
        c = service.cents
        return {
            **self._head(f),
            "currency": money.reporting,
            "spend": c(spend),
            "leads": leads,
            "lead_stage": stages[1] if len(stages) > 1 else None,
            "customers": won_count,
            "cost_per_lead": c(service.per(spend, leads)),
            "cost_per_customer": c(service.per(spend, won_count)),
            "orders": orders,
            "revenue": c(revenue),
            "average_order_value": c(service.per(revenue, orders)),
            "buying_customers": customers,
            "customer_lifetime_value": c(service.per(revenue, customers)),
            "churned_customers": churned,
            "churn_rate": service.ratio(churned, customers),
            "churn_days": self.settings.analytics_churn_days,
            "missing_rates": sorted(money.missing),
        }

    async def forecast(self, session: AsyncSession, f: Filters) -> dict[str, Any]:
        stages, won = await self.stages(session, f)
        end = datetime.now(UTC).date()
        hist = replace(f, start=end - timedelta(days=FORECAST_LOOKBACK_DAYS), end=end)
        hists = await queries.durations(session, hist)
        medians = {s: (percentile(h, 0.5) or 0) / 3600 for s, h in hists.items() if s != CYCLE}
        money = service.Money(self.settings.reporting_currency, await queries.rates(session))
        revenue_rows = await queries.revenue(session, hist)
        orders = sum(r[2] for r in revenue_rows)
        aov = service.per(money.total([(d, c, r) for d, c, _, _, r in revenue_rows]), orders)
        pipeline = await queries.pipeline(session, f.model)
        rates = await queries.win_rates(session, f.model, won, hist.start)
        rows, total = service.forecast(stages, won, pipeline, rates, medians, aov)
        assumptions = {
            "history": f"win probability = share of the leads first seen in the last {FORECAST_LOOKBACK_DAYS} "
            f"days ({hist.start} to {hist.end}) that reached the stage and later the won stage (leads still "
            "open count as not won); median times in stage and average order value of the same days",
            "won_stage": won,
            "average_order_value": service.cents(aov),
            "currency": money.reporting,
            "pipeline": "leads now in each stage (current stage per lead; filters do not apply)",
            "missing_rates": sorted(money.missing),
        }
        return {"model": f.model, "expected_revenue": service.cents(total), "stages": rows, "assumptions": assumptions}

    async def email(self, session: AsyncSession, start: date, end: date) -> dict[str, Any]:
        money = service.Money(self.settings.reporting_currency, await queries.rates(session))
        steps = await activity.email_steps(session, start, end)
        carts = await activity.cart_recovery(session, start, end)
        recovered = None
        if carts is not None:
            recovered = [
                {
                    "step": s,
                    "orders": n,
                    "revenue": service.cents(money.convert(amount, cur, end)),
                    "order_currency": cur,
                    "order_revenue": service.cents(amount),
                }
                for s, cur, n, amount in carts
            ]
        return {"start": start, "end": end, "steps": steps, "cart_recovery": recovered,
                "currency": money.reporting, "missing_rates": sorted(money.missing),
                "answered_from": "email_sends, email_feedback, cart_recoveries (not summaries: slower)"}  # fmt: skip


def stalled_stages(stages: list[str], won: str) -> list[str]:
    """Stages a lead can stall in: after the first (anonymous visitors idle there) and before won."""
    end = stages.index(won) if won in stages else len(stages)
    return stages[1:end]


def analytics_settings_of(admin: Settings) -> AnalyticsSettings:
    """The analytics settings of the admin process: its connection settings, the rest from the environment."""
    return load_settings(
        AnalyticsSettings,
        database_url=admin.database_url,
        kafka_bootstrap_servers=admin.kafka_bootstrap_servers,
        topic_prefix=admin.topic_prefix,
    )
