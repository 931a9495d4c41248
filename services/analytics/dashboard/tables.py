"""The dashboard's tables: each a report turned into columns and rows, shown as HTML and downloadable as CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics import activity
from services.analytics.queries import Filters
from services.analytics.reports import Reports

Rows = list[dict[str, Any]]


@dataclass(frozen=True)
class Table:
    title: str
    columns: list[str]
    rows: Rows


Builder = Callable[[Reports, AsyncSession, Filters, dict[str, str]], Awaitable[Table]]


async def funnel(r: Reports, s: AsyncSession, f: Filters, _p: dict[str, str]) -> Table:
    rows = (await r.funnel(s, f))["stages"]
    cols = ["stage", "entered", "exited", "conversion", "drop_off", "bottleneck"]
    return Table("Funnel", cols, rows)


async def time_in_stage(r: Reports, s: AsyncSession, f: Filters, _p: dict[str, str]) -> Table:
    rows = (await r.time_in_stage(s, f))["stages"]
    return Table("Time in stage", ["stage", "leads", "median_hours", "p90_hours"], rows)


async def trend(r: Reports, s: AsyncSession, f: Filters, _p: dict[str, str]) -> Table:
    return Table("Entries per day", ["day", "stage", "entered"], (await r.trend(s, f))["rows"])


async def stalled(r: Reports, s: AsyncSession, f: Filters, _p: dict[str, str]) -> Table:
    rows = (await r.stalled(s, f, None, 100))["leads"]
    return Table("Stalled leads", ["lead_id", "user_id", "email", "stage", "entered_at"], rows)


async def forecast(r: Reports, s: AsyncSession, f: Filters, _p: dict[str, str]) -> Table:
    rows = (await r.forecast(s, f))["stages"]
    cols = ["stage", "leads", "win_probability", "expected_customers", "expected_revenue", "expected_days_to_close"]
    return Table("Revenue forecast", cols, rows)


async def cohorts(r: Reports, s: AsyncSession, f: Filters, p: dict[str, str]) -> Table:
    by = "source" if p.get("by") == "source" else "week"
    found = await r.cohorts(s, f, by)
    cols = ["cohort", "leads"] + [c for st in found["stages"][1:] for c in (st, f"{st}_share")] + ["won_by_week"]
    rows = [{**r, "won_by_week": " ".join(f"{v:.0%}" if v is not None else "-" for v in r["won_by_week"])}
            for r in found["cohorts"]]  # fmt: skip
    return Table(f"Cohorts by {by} ({found['won_stage']} reached by week after entry: won_by_week)", cols, rows)


async def email_steps(r: Reports, s: AsyncSession, f: Filters, _p: dict[str, str]) -> Table:
    rows = (await r.email(s, f.start, f.end))["steps"]
    cols = ["sequence", "step", "sent", "delivered", "opened", "clicked", "bot_opens", "bot_clicks", "unsubscribed",
            "converted"]  # fmt: skip
    return Table("Sequence emails per step", cols, rows)


async def cart_recovery(r: Reports, s: AsyncSession, f: Filters, _p: dict[str, str]) -> Table:
    rows = (await r.email(s, f.start, f.end))["cart_recovery"] or []
    cols = ["step", "orders", "revenue", "order_revenue", "order_currency"]
    return Table("Recovered carts per reminder step (revenue in the reporting currency)", cols, rows)


async def timeline(_r: Reports, s: AsyncSession, _f: Filters, p: dict[str, str]) -> Table:
    lead = await activity.find_lead(s, p.get("lead", "")[:200]) if p.get("lead") else None
    rows = await activity.timeline(s, lead["lead_id"], 500) if lead else []
    return Table("Lead timeline", ["at", "kind", "what", "detail"], rows)


TABLES: dict[str, Builder] = {
    "funnel": funnel,
    "time-in-stage": time_in_stage,
    "trend": trend,
    "stalled": stalled,
    "forecast": forecast,
    "cohorts": cohorts,
    "email-steps": email_steps,
    "cart-recovery": cart_recovery,
    "timeline": timeline,
}


def to_csv(table: Table) -> str:
    """The table as CSV; cells a spreadsheet would run as a formula are prefixed with a quote."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(table.columns)
    for row in table.rows:
        writer.writerow([_cell(row.get(c)) for c in table.columns])
    return out.getvalue()


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _number(text) else text


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
