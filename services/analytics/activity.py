"""Reports read from the operational tables (sends, cart recoveries, a lead's history): slower paths.

Sequence emails join `email_sends` (send key `<enrollment>:<step>`) with the opens and clicks the
analytics consumer counted per Message-ID; a lead's timeline reads its events, score ledger, stage
history and emails.
"""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

SEND_KEY = r"^[0-9a-f-]{36}:[0-9]+$"


async def email_steps(session: AsyncSession, start: date, end: date) -> list[dict[str, Any]]:
    """Per sequence step: sent, delivered (not bounced), opened, clicked (humans; bots apart), unsubscribed,
    converted (ordered at or after the send)."""
    rows = await session.execute(
        text(
            "WITH s AS (SELECT s.*, split_part(s.send_key, ':', 1)::uuid AS enrollment_id, "
            "  split_part(s.send_key, ':', 2)::int AS step FROM email_sends s "
            "  WHERE s.send_key ~ :pattern AND s.created_at >= CAST(:start AS date) "
            "  AND s.created_at < CAST(:end AS date) + 1), "
            "fb AS (SELECT message_id, bool_or(kind = 'bounce') AS bounced, bool_or(kind = 'unsubscribe') AS unsub "
            "  FROM email_feedback WHERE message_id IN (SELECT message_id FROM s) GROUP BY message_id) "
            "SELECT q.name AS sequence, s.step, "
            "count(*) FILTER (WHERE s.status = 'sent') AS sent, "
            "count(*) FILTER (WHERE s.status = 'sent' AND NOT coalesce(fb.bounced, false)) AS delivered, "
            "count(*) FILTER (WHERE g.opens > 0) AS opened, count(*) FILTER (WHERE g.clicks > 0) AS clicked, "
            "coalesce(sum(g.bot_opens), 0) AS bot_opens, coalesce(sum(g.bot_clicks), 0) AS bot_clicks, "
            "count(*) FILTER (WHERE coalesce(fb.unsub, false) OR EXISTS (SELECT 1 FROM consent_changes c "
            "  WHERE c.lead_id = s.lead_id AND c.status = 'unsubscribed' AND c.changed_at >= s.sent_at)) "
            "  AS unsubscribed, "
            "count(*) FILTER (WHERE a.last_order_at >= s.sent_at) AS converted "
            "FROM s JOIN enrollments e ON e.id = s.enrollment_id JOIN sequences q ON q.id = e.sequence_id "
            "LEFT JOIN analytics_email_engagement g ON g.message_id = s.message_id "
            "LEFT JOIN fb ON fb.message_id = s.message_id LEFT JOIN analytics_leads a ON a.lead_id = s.lead_id "
            "GROUP BY q.name, s.step ORDER BY q.name, s.step"
        ),
        {"pattern": SEND_KEY, "start": start, "end": end},
    )
    return [{k: (int(v) if k not in ("sequence",) else v) for k, v in r._mapping.items()} for r in rows]


async def cart_recovery(session: AsyncSession, start: date, end: date) -> list[tuple[int, str, int, Decimal]] | None:
    """Recovered carts per reminder step (step, currency, orders, revenue); None without commerce's table."""
    if await session.scalar(text("SELECT to_regclass('cart_recoveries')")) is None:
        return None
    rows = await session.execute(
        text(
            "SELECT step, coalesce(currency, ''), count(*), coalesce(sum(amount), 0) FROM cart_recoveries "
            "WHERE ordered_at >= CAST(:start AS date) AND ordered_at < CAST(:end AS date) + 1 "
            "GROUP BY step, currency ORDER BY step"
        ),
        {"start": start, "end": end},
    )
    return [(int(r[0]), r[1], int(r[2]), Decimal(r[3])) for r in rows]


async def find_lead(session: AsyncSession, ref: str) -> dict[str, Any] | None:
    """A lead by id or user id (following merges)."""
    try:
        lead_id: uuid.UUID | None = uuid.UUID(ref)
    except ValueError:
        lead_id = await session.scalar(text("SELECT lead_id FROM leads WHERE user_id = :u"), {"u": ref})
    for _ in range(5):
        if lead_id is None:
            return None
        row = (
            await session.execute(
                text(
                    "SELECT lead_id, user_id, email, score, grade, stage, stages, merged_into, created_at "
                    "FROM leads WHERE lead_id = :id"
                ),
                {"id": lead_id},
            )
        ).first()
        if row is None:
            return None
        if row.merged_into is None:
            return dict(row._mapping)
        lead_id = row.merged_into
    return None


async def timeline(session: AsyncSession, lead_id: uuid.UUID, limit: int) -> list[dict[str, Any]]:
    """The lead's events, score changes, stage changes and emails, newest first."""
    rows = await session.execute(
        text(
            "(SELECT occurred_at AS at, 'event' AS kind, coalesce(name, type) AS what, "
            "  CASE WHEN bot IS NOT NULL THEN 'bot: ' || bot ELSE properties::text END AS detail "
            "  FROM lead_events WHERE lead_id = :id ORDER BY occurred_at DESC LIMIT :limit) "
            "UNION ALL (SELECT occurred_at, 'score', rule_id, to_char(points, 'FMS999990.##') || ' points' "
            "  FROM score_ledger WHERE lead_id = :id ORDER BY occurred_at DESC LIMIT :limit) "
            "UNION ALL (SELECT occurred_at, 'stage', model || ': ' || coalesce(from_stage, '-') || ' → ' || to_stage, "
            "  kind || coalesce(' (' || reason || ')', '') FROM stage_history WHERE lead_id = :id "
            "  ORDER BY occurred_at DESC LIMIT :limit) "
            "UNION ALL (SELECT coalesce(sent_at, created_at), 'email', coalesce(subject, template_id, send_key), "
            "  status FROM email_sends WHERE lead_id = :id ORDER BY created_at DESC LIMIT :limit) "
            "ORDER BY at DESC LIMIT :limit"
        ),
        {"id": lead_id, "limit": limit},
    )
    return [dict(r._mapping) for r in rows]
