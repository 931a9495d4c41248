"""SQL of the reminder rounds: due carts (FOR UPDATE SKIP LOCKED), the leads' orders, codes given out,
and what a round records. Never commits, except `give_code`, which owns its short transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.commerce.incentives import code_from_pattern
from services.commerce.repository import CART_COLUMNS, StoredCart, stored_cart
from services.commerce.schemas import ShopConfig

PATTERN_ATTEMPTS = 20


async def claim_due(session: AsyncSession, now: datetime, limit: int) -> list[StoredCart]:
    """Open carts whose next reminder is due, locked; carts another process (or the consumer) holds are skipped."""
    rows = await session.execute(
        text(
            f"SELECT {CART_COLUMNS} FROM carts WHERE next_reminder_at <= :now "  # noqa: S608 - constants only
            "AND status IN ('open', 'checkout') ORDER BY next_reminder_at LIMIT :n FOR UPDATE SKIP LOCKED"
        ),
        {"now": now, "n": limit},
    )
    return [stored_cart(r) for r in rows]


async def latest_orders(session: AsyncSession, lead_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, datetime]:
    """Each lead's latest order on any cart, as committed now (read after the due carts were locked)."""
    rows = await session.execute(
        text(
            "SELECT lead_id, max(ordered_at) AS at FROM carts WHERE lead_id = ANY(:l) AND status = 'ordered' "
            "AND ordered_at IS NOT NULL GROUP BY lead_id"
        ),
        {"l": sorted(set(lead_ids))},
    )
    return {r.lead_id: r.at for r in rows}


async def give_code(
    sessionmaker: async_sessionmaker[AsyncSession],
    source_id: uuid.UUID,
    cart_key: str,
    step: int,
    config: ShopConfig,
    now: datetime,
) -> str | None:
    """The code of this cart's step: the one given before (a retried round), else the pool's next free code
    or a fresh one from the pattern. Committed before the email is claimed, so a code that may have gone
    out is never given to anyone else. None: the pool is exhausted."""
    async with sessionmaker() as session, session.begin():
        given: str | None = await session.scalar(
            text("SELECT code FROM incentive_codes WHERE cart_key = :k AND step = :s"), {"k": cart_key, "s": step}
        )
        if given is not None:
            return given
        if config.code_source == "pool":
            taken: str | None = await session.scalar(
                text(
                    "UPDATE incentive_codes SET cart_key = :k, step = :s, given_at = :now "
                    "WHERE (source_id, code) = (SELECT source_id, code FROM incentive_codes WHERE source_id = :src "
                    " AND cart_key IS NULL ORDER BY created_at, code LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING code"
                ),
                {"k": cart_key, "s": step, "now": now, "src": source_id},
            )
            return taken
        assert config.code_pattern is not None  # noqa: S101 - ShopConfig requires it with 'pattern'
        for attempt in range(PATTERN_ATTEMPTS):
            code = code_from_pattern(config.code_pattern, f"{cart_key}:{step}:{attempt}")
            made: str | None = await session.scalar(
                text(
                    "INSERT INTO incentive_codes (source_id, code, origin, cart_key, step, given_at) "
                    "VALUES (:src, :c, 'pattern', :k, :s, :now) ON CONFLICT DO NOTHING RETURNING code"
                ),
                {"src": source_id, "c": code, "k": cart_key, "s": step, "now": now},
            )
            if made is not None:
                return made
        return None


@dataclass(frozen=True)
class ReminderRow:
    cart_key: str
    step: int
    source_id: uuid.UUID
    lead_id: uuid.UUID
    outcome: str  # sent, skipped, suppressed, failed
    reason: str | None
    at: datetime
    send_key: str | None = None
    code: str | None = None
    incentive: dict[str, Any] | None = None


async def record_reminders(session: AsyncSession, rows: Sequence[ReminderRow]) -> None:
    if not rows:
        return
    data = [
        {
            "cart_key": r.cart_key, "step": r.step, "source_id": str(r.source_id), "lead_id": str(r.lead_id),
            "outcome": r.outcome, "reason": r.reason, "send_key": r.send_key, "code": r.code,
            "incentive": r.incentive, "at": r.at.isoformat(),
        }
        for r in rows
    ]  # fmt: skip
    await session.execute(
        text(
            "INSERT INTO cart_reminders (cart_key, step, source_id, lead_id, outcome, reason, send_key, code, "
            " incentive, at) SELECT * FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS i(cart_key text, step int, "
            " source_id uuid, lead_id uuid, outcome text, reason text, send_key text, code text, incentive jsonb, "
            " at timestamptz) ON CONFLICT (cart_key, step) DO NOTHING"
        ),
        {"rows": orjson.dumps(data).decode()},
    )


async def update_carts(session: AsyncSession, updates: Sequence[tuple[str, tuple[int, ...], datetime | None]]) -> None:
    """Each handled cart's steps sent and when to look at it again (None: never)."""
    if not updates:
        return
    data = [{"k": k, "s": list(sent), "n": due.isoformat() if due else None} for k, sent, due in updates]
    await session.execute(
        text(
            "UPDATE carts c SET steps_sent = ARRAY(SELECT jsonb_array_elements_text(u.s)::int), "
            " next_reminder_at = u.n, updated_at = now() "
            "FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS u(k text, s jsonb, n timestamptz) WHERE c.cart_key = u.k"
        ),
        {"rows": orjson.dumps(data).decode()},
    )
