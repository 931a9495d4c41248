"""SQL of the analytics consumer: the state of a batch's leads, and one upsert per summary table."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics.summaries import NIL, Delta, Dims, LeadInfo, StageState

DIMS = "source_id uuid, utm_source text, utm_campaign text"
DIM_COLS = "source_id, utm_source, utm_campaign"
SUMMARY_TABLES = (
    "analytics_funnel_daily",
    "analytics_durations",
    "analytics_cohorts",
    "analytics_leads_daily",
    "analytics_revenue_daily",
    "analytics_leads",
    "analytics_lead_stages",
)


def _json(rows: list[dict[str, Any]]) -> str:
    return orjson.dumps(rows, default=str).decode()


def _dims(d: Dims) -> dict[str, Any]:
    return {"source_id": d[0], "utm_source": d[1], "utm_campaign": d[2]}


async def _upsert(
    session: AsyncSession, table: str, spec: str, keys: str, adds: Sequence[str], rows: list[dict[str, Any]]
) -> None:
    """One INSERT … ON CONFLICT for all rows; `adds` are summed into existing rows, the rest overwrite."""
    if not rows:
        return
    cols = ", ".join(part.split()[0] for part in spec.split(", "))
    key_set = {k.strip() for k in keys.split(",")}
    updates = ", ".join(
        f"{c} = {table}.{c} + EXCLUDED.{c}" if c in adds else f"{c} = EXCLUDED.{c}"
        for c in (part.split()[0] for part in spec.split(", "))
        if c not in key_set
    )
    await session.execute(
        text(
            f"INSERT INTO {table} ({cols}) SELECT {cols} FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS d({spec}) "  # noqa: S608 - fixed names
            f"ON CONFLICT ({keys}) DO UPDATE SET {updates}"
        ),
        {"rows": _json(rows)},
    )


async def load_leads(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, LeadInfo]:
    rows = await session.execute(
        text(
            "SELECT lead_id, first_seen_at, source_id, utm_source, utm_medium, utm_campaign, orders, first_order_at, "
            "last_order_at FROM analytics_leads WHERE lead_id = ANY(CAST(:ids AS uuid[]))"
        ),
        {"ids": list(ids)},
    )
    return {
        r.lead_id: LeadInfo(
            r.lead_id,
            r.first_seen_at,
            (r.source_id, r.utm_source, r.utm_campaign),
            r.utm_medium,
            r.orders,
            r.first_order_at,
            r.last_order_at,
        )
        for r in rows
    }


async def load_stages(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[tuple[uuid.UUID, str], StageState]:
    rows = await session.execute(
        text(
            "SELECT lead_id, model, stage, entered_at, first_at, reached FROM analytics_lead_stages "
            "WHERE lead_id = ANY(CAST(:ids AS uuid[]))"
        ),
        {"ids": list(ids)},
    )
    return {
        (r.lead_id, r.model): StageState(r.lead_id, r.model, r.stage, r.entered_at, r.first_at, list(r.reached))
        for r in rows
    }


async def attribution(
    session: AsyncSession, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[uuid.UUID, str, str, str]]:
    """Per lead: the source of its earliest event and the utm of the earliest tagged event of any of its
    identities (source id, utm source, medium, campaign)."""
    if not ids:
        return {}
    rows = await session.execute(
        text(
            "WITH ids AS (SELECT unnest(CAST(:ids AS uuid[])) AS lead_id), "
            "src AS (SELECT DISTINCT ON (e.lead_id) e.lead_id, e.source_id FROM lead_events e "
            "  JOIN ids USING (lead_id) ORDER BY e.lead_id, e.occurred_at), "
            "utm AS (SELECT DISTINCT ON (i.lead_id) i.lead_id, t.utm_source, t.utm_medium, t.utm_campaign "
            "  FROM lead_identities i JOIN ids USING (lead_id) JOIN analytics_touches t "
            "  ON t.identity_kind = i.kind AND t.identity_value = i.value ORDER BY i.lead_id, t.first_at) "
            "SELECT ids.lead_id, src.source_id, utm.utm_source, utm.utm_medium, utm.utm_campaign FROM ids "
            "LEFT JOIN src USING (lead_id) LEFT JOIN utm USING (lead_id)"
        ),
        {"ids": list(ids)},
    )
    return {r.lead_id: (r.source_id or NIL, r.utm_source or "", r.utm_medium or "", r.utm_campaign or "") for r in rows}


async def write_delta(session: AsyncSession, delta: Delta) -> None:
    """The batch's additions, one statement per table."""
    funnel: dict[tuple[Any, ...], dict[str, Any]] = {}
    for (day, model, stage, dims, what), n in delta.funnel.items():
        row = funnel.setdefault(
            (day, model, stage, dims),
            {"day": day, "model": model, "stage": stage, **_dims(dims), "entered": 0, "exited": 0},
        )
        row[what] += n
    await _upsert(
        session,
        "analytics_funnel_daily",
        f"day date, model text, stage text, {DIMS}, entered bigint, exited bigint",
        f"day, model, stage, {DIM_COLS}",
        ("entered", "exited"),
        list(funnel.values()),
    )
    await _upsert(
        session,
        "analytics_durations",
        f"day date, model text, stage text, {DIMS}, bucket smallint, leads bigint",
        f"day, model, stage, {DIM_COLS}, bucket",
        ("leads",),
        [
            {"day": d, "model": m, "stage": s, **_dims(dims), "bucket": b, "leads": n}
            for (d, m, s, dims, b), n in delta.durations.items()
        ],
    )
    await _upsert(
        session,
        "analytics_cohorts",
        f"cohort_week date, model text, stage text, week_offset smallint, {DIMS}, leads bigint",
        f"cohort_week, model, stage, week_offset, {DIM_COLS}",
        ("leads",),
        [
            {"cohort_week": w, "model": m, "stage": s, "week_offset": o, **_dims(dims), "leads": n}
            for (w, m, s, o, dims), n in delta.cohorts.items()
        ],
    )
    await _upsert(
        session,
        "analytics_leads_daily",
        f"day date, {DIMS}, new_leads bigint",
        f"day, {DIM_COLS}",
        ("new_leads",),
        [{"day": d, **_dims(dims), "new_leads": n} for (d, dims), n in delta.new_leads.items()],
    )
    await _upsert(
        session,
        "analytics_revenue_daily",
        f"day date, {DIMS}, currency text, orders bigint, first_orders bigint, revenue numeric",
        f"day, {DIM_COLS}, currency",
        ("orders", "first_orders", "revenue"),
        [
            {
                "day": d,
                **_dims(dims),
                "currency": c,
                "orders": delta.orders.get((d, dims, c, "orders"), 0),
                "first_orders": delta.orders.get((d, dims, c, "first_orders"), 0),
                "revenue": str(amount),
            }
            for (d, dims, c), amount in delta.revenue.items()
        ],
    )
    await write_leads(session, delta.leads.values())
    await _upsert(
        session,
        "analytics_lead_stages",
        "lead_id uuid, model text, stage text, entered_at timestamptz, first_at timestamptz, reached text[]",
        "lead_id, model",
        (),
        [
            {
                "lead_id": s.lead_id,
                "model": s.model,
                "stage": s.stage,
                "entered_at": s.entered_at,
                "first_at": s.first_at,
                "reached": s.reached,
            }
            for s in delta.stages.values()
        ],  # fmt: skip
    )


async def write_leads(session: AsyncSession, leads: Iterable[LeadInfo]) -> None:
    await _upsert(
        session,
        "analytics_leads",
        f"lead_id uuid, first_seen_at timestamptz, {DIMS}, utm_medium text, orders integer, "
        "first_order_at timestamptz, last_order_at timestamptz",
        "lead_id",
        (),
        [
            {
                "lead_id": x.lead_id,
                "first_seen_at": x.first_seen_at,
                **_dims(x.dims),
                "utm_medium": x.utm_medium,
                "orders": x.orders,
                "first_order_at": x.first_order_at,
                "last_order_at": x.last_order_at,
            }
            for x in leads
        ],  # fmt: skip
    )


async def add_touches(session: AsyncSession, touches: dict[tuple[str, str], tuple[datetime, str, str, str]]) -> None:
    """Keep each identity's earliest utm-tagged event."""
    if not touches:
        return
    rows = [
        {"identity_kind": k, "identity_value": v, "first_at": at, "utm_source": s, "utm_medium": m, "utm_campaign": c}
        for (k, v), (at, s, m, c) in touches.items()
    ]
    await session.execute(
        text(
            "INSERT INTO analytics_touches (identity_kind, identity_value, first_at, utm_source, utm_medium, "
            "utm_campaign) SELECT * FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS d(identity_kind text, "
            "identity_value text, first_at timestamptz, utm_source text, utm_medium text, utm_campaign text) "
            "ON CONFLICT (identity_kind, identity_value) DO UPDATE SET first_at = EXCLUDED.first_at, "
            "utm_source = EXCLUDED.utm_source, utm_medium = EXCLUDED.utm_medium, utm_campaign = EXCLUDED.utm_campaign "
            "WHERE EXCLUDED.first_at < analytics_touches.first_at"
        ),
        {"rows": _json(rows)},
    )


async def add_engagement(session: AsyncSession, counts: dict[str, dict[str, int]]) -> None:
    """Add opens and clicks (human and bot) per email Message-ID."""
    await _upsert(
        session,
        "analytics_email_engagement",
        "message_id text, opens integer, clicks integer, bot_opens integer, bot_clicks integer",
        "message_id",
        ("opens", "clicks", "bot_opens", "bot_clicks"),
        [
            {"message_id": mid, "opens": 0, "clicks": 0, "bot_opens": 0, "bot_clicks": 0, **c}
            for mid, c in counts.items()
        ],
    )
