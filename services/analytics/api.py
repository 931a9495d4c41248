"""HTTP routes of funnel analytics under /api/analytics, behind the admin token."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from sqlalchemy import text

from services.admin.api import ERRORS, AdminDep, SessionDep
from services.analytics import activity
from services.analytics.queries import Filters
from services.analytics.reports import Reports, UnknownModel, Unsupported
from services.analytics.schemas import RateIn, SpendIn, SpendOut

DEFAULT_DAYS = 30


def reports_of(request: Request) -> Reports:
    found: Reports = request.app.state.analytics_reports
    return found


ReportsDep = Annotated[Reports, Depends(reports_of)]


async def filters(
    request: Request,
    session: SessionDep,
    model: Annotated[str | None, Query(max_length=80, description="Funnel model; default the primary one")] = None,
    start: Annotated[date | None, Query(description=f"First day (UTC); default {DEFAULT_DAYS} days ago")] = None,
    end: Annotated[date | None, Query(description="Last day (UTC), included; default today")] = None,
    source_id: Annotated[str | None, Query(max_length=36, description="Source id (UUID)")] = None,
    utm_source: Annotated[str | None, Query(max_length=200)] = None,
    utm_campaign: Annotated[str | None, Query(max_length=200)] = None,
    audience: Annotated[
        str | None, Query(max_length=200, description="Segment (audience name); funnel only, read from history: slower")
    ] = None,
) -> Filters:
    """The report filters: the fixed dimensions, all answered from the summary tables. An empty value
    (as an HTML form sends it) means no filter."""
    try:
        source = uuid.UUID(source_id) if source_id else None
    except ValueError:
        raise HTTPException(400, "source_id: not a UUID") from None
    end = end or datetime.now(UTC).date()
    start = start or end - timedelta(days=DEFAULT_DAYS)
    if start > end:
        raise HTTPException(400, "start: must not be after end")
    if model is None:
        _, model = await reports_of(request).funnels(session)
    return Filters(model, start, end, source, utm_source or None, utm_campaign or None, audience or None)


FiltersDep = Annotated[Filters, Depends(filters)]


async def guarded(call: Any) -> dict[str, Any]:
    try:
        result: dict[str, Any] = await call
    except (UnknownModel, Unsupported) as exc:
        raise HTTPException(400, str(exc)) from None
    return result


def analytics_router() -> APIRouter:
    router = APIRouter(prefix="/api/analytics", dependencies=[AdminDep], responses=ERRORS, tags=["analytics"])

    @router.get("/funnel")
    async def funnel(f: FiltersDep, r: ReportsDep, session: SessionDep) -> dict[str, Any]:
        """Entering and leaving each stage, stage-to-stage conversion, drop-off and the bottleneck; named rates."""
        return await guarded(r.funnel(session, f))

    @router.get("/trend")
    async def trend(f: FiltersDep, r: ReportsDep, session: SessionDep) -> dict[str, Any]:
        """Leads entering each stage per day."""
        return await guarded(r.trend(session, f))

    @router.get("/time-in-stage")
    async def time_in_stage(f: FiltersDep, r: ReportsDep, session: SessionDep) -> dict[str, Any]:
        """Median and p90 hours in each stage (of leads that left it in the range) and of the sales cycle."""
        return await guarded(r.time_in_stage(session, f))

    @router.get("/stalled")
    async def stalled(
        f: FiltersDep,
        r: ReportsDep,
        session: SessionDep,
        days: Annotated[float | None, Query(gt=0, le=36_500, description="Stalled after; default the setting")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        """Leads in one stage longer than `days`: the count and the longest-stalled first."""
        return await guarded(r.stalled(session, f, days, limit))

    @router.get("/cohorts")
    async def cohorts(
        f: FiltersDep, r: ReportsDep, session: SessionDep, by: Literal["week", "source"] = "week"
    ) -> dict[str, Any]:
        """Leads by week of entry (or by source) and how many reached each later stage."""
        return await guarded(r.cohorts(session, f, by))

    @router.get("/money")
    async def money(f: FiltersDep, r: ReportsDep, session: SessionDep) -> dict[str, Any]:
        """Spend, cost per lead and per customer, revenue, AOV, CLV and churn in the reporting currency."""
        return await guarded(r.money(session, f))

    @router.get("/forecast")
    async def forecast(f: FiltersDep, r: ReportsDep, session: SessionDep) -> dict[str, Any]:
        """Expected revenue from the current pipeline, with the assumptions used."""
        return await guarded(r.forecast(session, f))

    @router.get("/email")
    async def email(f: FiltersDep, r: ReportsDep, session: SessionDep) -> dict[str, Any]:
        """Sequence emails per step and recovered cart revenue (read from operational tables: slower)."""
        return await r.email(session, f.start, f.end)

    @router.get("/leads/{ref}/timeline")
    async def timeline(
        ref: str, session: SessionDep, limit: Annotated[int, Query(ge=1, le=1000)] = 200
    ) -> dict[str, Any]:
        """A lead's events, score changes, stage changes and emails, newest first (by lead id or user id)."""
        lead = await activity.find_lead(session, ref[:200])
        if lead is None:
            raise HTTPException(404, f"no lead {ref[:200]}")
        return {"lead": lead, "timeline": await activity.timeline(session, lead["lead_id"], limit)}

    @router.post("/spend", status_code=201)
    async def add_spend(body: SpendIn, session: SessionDep) -> SpendOut:
        """Record campaign spend (one row per call; several rows of a day add up)."""
        new_id = uuid.uuid4()
        await session.execute(
            text(
                "INSERT INTO analytics_spend (id, day, source_id, utm_source, utm_campaign, amount, currency, note) "
                "VALUES (:id, :day, :source_id, :utm_source, :utm_campaign, :amount, :currency, :note)"
            ),
            {"id": new_id, **body.model_dump()},
        )
        return SpendOut(id=new_id, **body.model_dump())

    @router.get("/spend")
    async def list_spend(f: FiltersDep, session: SessionDep) -> list[SpendOut]:
        rows = await session.execute(
            text(
                "SELECT id, day, source_id, utm_source, utm_campaign, amount, currency, note FROM analytics_spend "
                "WHERE day BETWEEN :start AND :end ORDER BY day, created_at"
            ),
            {"start": f.start, "end": f.end},
        )
        return [SpendOut.model_validate(dict(r._mapping)) for r in rows]

    @router.put("/rates")
    async def put_rate(body: RateIn, session: SessionDep) -> RateIn:
        """Set the exchange rate of a currency pair from a day on (replaces that day's rate)."""
        if body.base == body.quote:
            raise HTTPException(400, "quote: must differ from base")
        await session.execute(
            text(
                "INSERT INTO analytics_rates (base, quote, day, rate) VALUES (:base, :quote, :day, :rate) "
                "ON CONFLICT (base, quote, day) DO UPDATE SET rate = EXCLUDED.rate"
            ),
            body.model_dump(),
        )
        return body

    @router.get("/rates")
    async def list_rates(session: SessionDep) -> list[RateIn]:
        rows = await session.execute(
            text("SELECT base, quote, day, rate FROM analytics_rates ORDER BY base, quote, day")
        )
        return [RateIn.model_validate(dict(r._mapping)) for r in rows]

    return router
