"""SQL behind the commerce admin API: a shop's configuration, its code pool, its carts and its numbers."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.commerce.repository import CART_COLUMNS, StoredCart, stored_cart
from services.commerce.schemas import CodesOut, RecoveredOut, RecoveryOut, ShopConfig, StatsOut
from services.commerce.service import next_due


async def source_exists(session: AsyncSession, source_id: uuid.UUID) -> bool:
    found = await session.scalar(text("SELECT 1 FROM sources WHERE id = :s"), {"s": source_id})
    return found is not None


async def missing_templates(session: AsyncSession, ids: Sequence[uuid.UUID]) -> list[int]:
    """Positions in `ids` naming no template (or an archived one)."""
    rows = await session.execute(
        text("SELECT id FROM email_templates WHERE id = ANY(:ids) AND archived_at IS NULL"), {"ids": list(set(ids))}
    )
    known = {r.id for r in rows}
    return [i for i, template_id in enumerate(ids) if template_id not in known]


async def save_config(session: AsyncSession, source_id: uuid.UUID, config: ShopConfig) -> None:
    """Store the configuration and re-plan the shop's open carts under its schedule."""
    await session.execute(
        text(
            "INSERT INTO commerce_shop_settings (source_id, config, updated_at) VALUES (:s, CAST(:c AS jsonb), now()) "
            "ON CONFLICT (source_id) DO UPDATE SET config = EXCLUDED.config, updated_at = now()"
        ),
        {"s": source_id, "c": config.model_dump_json()},
    )
    rows = await session.execute(
        text(
            f"SELECT {CART_COLUMNS} FROM carts WHERE source_id = :s AND status IN ('open', 'checkout') "  # noqa: S608
            "AND closed_by IS NULL ORDER BY cart_key FOR UPDATE"
        ),
        {"s": source_id},
    )
    plans = []
    for cart in (stored_cart(r) for r in rows):
        due = next_due(cart.state, config.schedule, cart.steps_sent) if config.enabled else None
        plans.append((cart.cart_key, due))
    if plans:
        await session.execute(
            text(
                "UPDATE carts c SET next_reminder_at = u.n FROM unnest(CAST(:k AS text[]), "
                "CAST(:n AS timestamptz[])) AS u(k, n) WHERE c.cart_key = u.k"
            ),
            {"k": [k for k, _ in plans], "n": [n for _, n in plans]},
        )


async def get_config(session: AsyncSession, source_id: uuid.UUID) -> ShopConfig | None:
    raw = await session.scalar(text("SELECT config FROM commerce_shop_settings WHERE source_id = :s"), {"s": source_id})
    return None if raw is None else ShopConfig.model_validate(raw)


async def add_codes(session: AsyncSession, source_id: uuid.UUID, codes: Sequence[str]) -> int:
    """Add codes to the pool; a code the shop has already (given or not) is not added again."""
    result = await session.execute(
        text(
            "INSERT INTO incentive_codes (source_id, code, origin) SELECT :s, c, 'pool' "
            "FROM unnest(CAST(:c AS text[])) "
            "AS c ON CONFLICT DO NOTHING RETURNING code"
        ),
        {"s": source_id, "c": list(dict.fromkeys(codes))},
    )
    return len(result.all())


async def code_counts(session: AsyncSession, source_id: uuid.UUID, added: int = 0) -> CodesOut:
    row = (
        await session.execute(
            text(
                "SELECT count(*) FILTER (WHERE cart_key IS NULL) AS free, count(*) FILTER (WHERE cart_key IS NOT NULL) "
                "AS given FROM incentive_codes WHERE source_id = :s"
            ),
            {"s": source_id},
        )
    ).one()
    return CodesOut(added=added, available=row.free, given=row.given)


async def cart(session: AsyncSession, key: str) -> tuple[StoredCart, dict[str, Any], list[dict[str, Any]]] | None:
    """A stored cart, its contract columns and its reminders."""
    row = (
        await session.execute(
            text(
                f"SELECT {CART_COLUMNS}, status, currency, total, item_count, started_at, "  # noqa: S608
                "last_activity_at FROM carts WHERE cart_key = :k"
            ),
            {"k": key},
        )
    ).first()
    if row is None:
        return None
    reminders = await session.execute(
        text("SELECT step, outcome, reason, code, at FROM cart_reminders WHERE cart_key = :k ORDER BY step"),
        {"k": key},
    )
    return stored_cart(row), dict(row._mapping), [dict(r._mapping) for r in reminders]


async def carts(session: AsyncSession, source_id: uuid.UUID, status: str | None, limit: int) -> list[dict[str, Any]]:
    """The shop's carts, most recently active first (the contract columns and the reminder plan)."""
    rows = await session.execute(
        text(
            "SELECT cart_key, lead_id, status, currency, total, item_count, started_at, last_activity_at, ordered_at, "
            "closed_by, next_reminder_at, steps_sent FROM carts WHERE source_id = :s "
            "AND (CAST(:status AS text) IS NULL OR status = :status) ORDER BY last_activity_at DESC LIMIT :n"
        ),
        {"s": source_id, "status": status, "n": limit},
    )
    return [dict(r._mapping) for r in rows]


async def stats(session: AsyncSession, source_id: uuid.UUID, now: datetime, first_delay_seconds: float) -> StatsOut:
    """Carts; carts abandoned (a reminder step fell due, or it is open past the first delay); reminders
    sent per step; orders and revenue recovered per currency."""
    carts = (
        await session.execute(
            text(
                "SELECT count(*) AS carts, count(*) FILTER (WHERE cardinality(steps_sent) > 0 OR (status IN "
                "('open', 'checkout') AND item_count > 0 AND last_activity_at + make_interval(secs => :d) <= :now)) "
                "AS abandoned FROM carts WHERE source_id = :s"
            ),
            {"s": source_id, "now": now, "d": first_delay_seconds},
        )
    ).one()
    sent = await session.execute(
        text(
            "SELECT step, count(*) AS n FROM cart_reminders WHERE source_id = :s AND outcome = 'sent' "
            "GROUP BY step ORDER BY step"
        ),
        {"s": source_id},
    )
    recovered = await session.execute(
        text(
            "SELECT currency, count(*) AS orders, coalesce(sum(amount), 0) AS revenue FROM cart_recoveries "
            "WHERE source_id = :s GROUP BY currency ORDER BY currency"
        ),
        {"s": source_id},
    )
    return StatsOut(
        carts=carts.carts,
        carts_abandoned=carts.abandoned,
        reminders_sent={r.step: r.n for r in sent},
        recovered=[RecoveredOut(currency=r.currency, orders=r.orders, revenue=r.revenue) for r in recovered],
    )


async def recoveries(session: AsyncSession, source_id: uuid.UUID, limit: int) -> list[RecoveryOut]:
    rows = await session.execute(
        text(
            "SELECT order_cart_key, order_id, reminded_cart_key, step, amount, currency, reminder_at, ordered_at "
            "FROM cart_recoveries WHERE source_id = :s ORDER BY ordered_at DESC LIMIT :n"
        ),
        {"s": source_id, "n": limit},
    )
    return [RecoveryOut.model_validate(dict(r._mapping)) for r in rows]


async def recovery_target(session: AsyncSession, key: str) -> tuple[StoredCart, ShopConfig | None] | None:
    """The cart a recovery link names and its shop's configuration (for the URL pattern)."""
    row = (
        await session.execute(text(f"SELECT {CART_COLUMNS} FROM carts WHERE cart_key = :k"), {"k": key})  # noqa: S608
    ).first()
    if row is None:
        return None
    found = stored_cart(row)
    return found, await get_config(session, found.source_id)
