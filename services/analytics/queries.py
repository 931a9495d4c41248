# ruff: noqa: S608 - the only text put into SQL is fixed column names; values are bound parameters
"""Report SQL. Reports over the fixed dimensions read only the summary tables; the rest say where from."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True)
class Filters:
    model: str
    start: date
    end: date
    source_id: uuid.UUID | None = None
    utm_source: str | None = None
    utm_campaign: str | None = None
    audience: str | None = None  # a segment: not a summary dimension, answered from history (slower)

    def where(self, day_col: str = "day", model: bool = True) -> tuple[str, dict[str, Any]]:
        parts = [f"{day_col} BETWEEN :start AND :end"]
        params: dict[str, Any] = {"start": self.start, "end": self.end}
        if model:
            parts.append("model = :model")
            params["model"] = self.model
        for col in ("source_id", "utm_source", "utm_campaign"):
            value = getattr(self, col)
            if value is not None:
                parts.append(f"{col} = :{col}")
                params[col] = value
        return " AND ".join(parts), params


async def funnel_counts(session: AsyncSession, f: Filters) -> dict[str, tuple[int, int]]:
    where, params = f.where()
    rows = await session.execute(
        text(f"SELECT stage, sum(entered), sum(exited) FROM analytics_funnel_daily WHERE {where} GROUP BY stage"),
        params,
    )
    return {r[0]: (int(r[1]), int(r[2])) for r in rows}


async def trend(session: AsyncSession, f: Filters) -> list[tuple[date, str, int]]:
    where, params = f.where()
    rows = await session.execute(
        text(
            f"SELECT day, stage, sum(entered) FROM analytics_funnel_daily WHERE {where} "
            "GROUP BY day, stage ORDER BY day"
        ),
        params,
    )
    return [(r[0], r[1], int(r[2])) for r in rows]


async def durations(session: AsyncSession, f: Filters) -> dict[str, dict[int, int]]:
    where, params = f.where()
    rows = await session.execute(
        text(f"SELECT stage, bucket, sum(leads) FROM analytics_durations WHERE {where} GROUP BY stage, bucket"),
        params,
    )
    found: dict[str, dict[int, int]] = defaultdict(dict)
    for stage, bucket, n in rows:
        found[stage][bucket] = int(n)
    return dict(found)


async def cohorts(session: AsyncSession, f: Filters, by: str) -> list[tuple[Any, str, int, int]]:
    """(cohort key, stage, week offset, leads): the key is the entry week or the source id."""
    where, params = f.where("cohort_week")
    key = "cohort_week" if by == "week" else "source_id"
    rows = await session.execute(
        text(
            f"SELECT {key}, stage, week_offset, sum(leads) FROM analytics_cohorts WHERE {where} "
            f"GROUP BY {key}, stage, week_offset ORDER BY {key}, week_offset"
        ),
        params,
    )
    return [(r[0], r[1], int(r[2]), int(r[3])) for r in rows]


async def new_leads(session: AsyncSession, f: Filters) -> int:
    where, params = f.where(model=False)
    value = await session.scalar(
        text(f"SELECT coalesce(sum(new_leads), 0) FROM analytics_leads_daily WHERE {where}"), params
    )
    return int(value or 0)


async def revenue(session: AsyncSession, f: Filters) -> list[tuple[date, str, int, int, Decimal]]:
    where, params = f.where(model=False)
    rows = await session.execute(
        text(
            f"SELECT day, currency, sum(orders), sum(first_orders), sum(revenue) FROM analytics_revenue_daily "
            f"WHERE {where} GROUP BY day, currency"
        ),
        params,
    )
    return [(r[0], r[1], int(r[2]), int(r[3]), Decimal(r[4])) for r in rows]


async def spend(session: AsyncSession, f: Filters) -> list[tuple[date, str, Decimal]]:
    """Spend rows matching the filters; spend entered without a source or utm matches any of it."""
    parts = ["day BETWEEN :start AND :end"]
    params: dict[str, Any] = {"start": f.start, "end": f.end}
    if f.source_id is not None:
        parts.append("source_id = :source_id")
        params["source_id"] = f.source_id
    for col in ("utm_source", "utm_campaign"):
        if getattr(f, col) is not None:
            parts.append(f"{col} = :{col}")
            params[col] = getattr(f, col)
    rows = await session.execute(
        text(
            f"SELECT day, currency, sum(amount) FROM analytics_spend WHERE {' AND '.join(parts)} GROUP BY day, currency"
        ),
        params,
    )
    return [(r[0], r[1], Decimal(r[2])) for r in rows]


async def customers(session: AsyncSession, f: Filters, churn_before: datetime) -> tuple[int, int]:
    """Customers whose first order falls in the range, and how many of them bought nothing since `churn_before`."""
    where, params = f.where("first_order_at::date", model=False)
    row = (
        await session.execute(
            text(
                f"SELECT count(*), count(*) FILTER (WHERE last_order_at < :cut) FROM analytics_leads "
                f"WHERE orders > 0 AND {where}"
            ),
            {**params, "cut": churn_before},
        )
    ).one()
    return int(row[0]), int(row[1])


async def rates(session: AsyncSession) -> list[tuple[str, str, date, Decimal]]:
    rows = await session.execute(text("SELECT base, quote, day, rate FROM analytics_rates ORDER BY day"))
    return [(r[0], r[1], r[2], Decimal(r[3])) for r in rows]


async def pipeline(session: AsyncSession, model: str) -> dict[str, int]:
    """Leads now in each stage of `model` (merged leads left out)."""
    rows = await session.execute(
        text(
            "SELECT s.stage, count(*) FROM analytics_lead_stages s JOIN leads l ON l.lead_id = s.lead_id "
            "WHERE s.model = :model AND l.merged_into IS NULL GROUP BY s.stage"
        ),
        {"model": model},
    )
    return {r[0]: int(r[1]) for r in rows}


async def stalled(
    session: AsyncSession, model: str, stages: list[str], before: datetime, limit: int
) -> tuple[int, list[dict[str, Any]]]:
    """Leads of `model` in one of `stages` since before `before`: how many, and the longest-stalled."""
    params = {"model": model, "stages": stages, "before": before, "limit": limit}
    base = (
        "FROM analytics_lead_stages s JOIN leads l ON l.lead_id = s.lead_id WHERE s.model = :model "
        "AND s.stage = ANY(CAST(:stages AS text[])) AND s.entered_at < :before AND l.merged_into IS NULL"
    )
    count = int(await session.scalar(text(f"SELECT count(*) {base}"), params) or 0)
    rows = await session.execute(
        text(f"SELECT s.lead_id, l.user_id, l.email, s.stage, s.entered_at {base} ORDER BY s.entered_at LIMIT :limit"),
        params,
    )
    return count, [dict(r._mapping) for r in rows]


async def win_rates(session: AsyncSession, model: str, won: str, since: date) -> dict[str, tuple[int, int]]:
    """Per stage: leads first seen since `since` that ever reached it, and how many of those reached `won`
    (a scan of the per-lead stage table: the forecast's history)."""
    rows = await session.execute(
        text(
            "SELECT stage, count(*), count(*) FILTER (WHERE won) FROM (SELECT unnest(reached) AS stage, "
            ":won = ANY(reached) AS won FROM analytics_lead_stages WHERE model = :model AND first_at >= :since) r "
            "GROUP BY stage"
        ),
        {"model": model, "won": won, "since": since},
    )
    return {r[0]: (int(r[1]), int(r[2])) for r in rows}


async def funnel_counts_in_audience(session: AsyncSession, f: Filters, first_stage: str) -> dict[str, tuple[int, int]]:
    """Like `funnel_counts` for the current members of audience `f.audience`: read from `stage_history`
    and `analytics_leads` (the first stage's entries), so it scans history: the slow path."""
    dims = " ".join(
        f"AND a.{c} = :{c}" for c in ("source_id", "utm_source", "utm_campaign") if getattr(f, c) is not None
    )
    params: dict[str, Any] = {"model": f.model, "start": f.start, "end": f.end, "audience": f.audience,
                              "first": first_stage, "source_id": f.source_id, "utm_source": f.utm_source,
                              "utm_campaign": f.utm_campaign}  # fmt: skip
    members = "JOIN audience_members m ON m.lead_id = a.lead_id AND m.audience = :audience AND m.removed_at IS NULL"
    rows = await session.execute(
        text(
            "WITH h AS (SELECT h.to_stage, coalesce(h.from_stage, :first) AS from_stage FROM stage_history h "
            f"JOIN analytics_leads a ON a.lead_id = h.lead_id {members} WHERE h.model = :model {dims} "
            "AND h.occurred_at >= CAST(:start AS date) AND h.occurred_at < CAST(:end AS date) + 1) "
            "SELECT stage, sum(entered), sum(exited) FROM ("
            "SELECT to_stage AS stage, count(*) AS entered, 0 AS exited FROM h GROUP BY to_stage UNION ALL "
            "SELECT from_stage, 0, count(*) FROM h GROUP BY from_stage UNION ALL "
            f"SELECT :first, count(*), 0 FROM analytics_leads a {members} "
            f"WHERE a.first_seen_at >= CAST(:start AS date) AND a.first_seen_at < CAST(:end AS date) + 1 {dims}) c "
            "GROUP BY stage"
        ),
        {k: v for k, v in params.items() if v is not None or k in ("audience",)},
    )
    return {r[0]: (int(r[1]), int(r[2])) for r in rows}
