"""SQL of carts, their reminders and recovered revenue. Never commits: the consumer's batch or the
reminder round owns the transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.commerce.carts import CartState, restore
from services.commerce.schemas import ShopConfig
from services.commerce.service import Order, SentReminder


@dataclass(frozen=True)
class StoredCart:
    cart_key: str
    source_id: uuid.UUID
    lead_id: uuid.UUID
    state: CartState
    closed_by: str | None
    ordered_at: datetime | None
    steps_sent: tuple[int, ...]
    next_reminder_at: datetime | None = None


@dataclass(frozen=True)
class CartWrite:
    """One row of the batch upsert."""

    cart_key: str
    source_id: uuid.UUID
    lead_id: uuid.UUID
    state: CartState
    closed_by: Order | None
    next_reminder_at: datetime | None


CART_COLUMNS = "cart_key, source_id, lead_id, state, closed_by, ordered_at, steps_sent, next_reminder_at"


def stored_cart(row: Any) -> StoredCart:
    return StoredCart(
        row.cart_key, row.source_id, row.lead_id, restore(row.state), row.closed_by,
        row.ordered_at, tuple(row.steps_sent), row.next_reminder_at,
    )  # fmt: skip


async def lock_carts(session: AsyncSession, keys: Iterable[str]) -> dict[str, StoredCart]:
    """The stored carts of these keys, locked until the transaction ends (in key order: no deadlocks)."""
    rows = await session.execute(
        text(f"SELECT {CART_COLUMNS} FROM carts WHERE cart_key = ANY(:k) ORDER BY cart_key FOR UPDATE"),  # noqa: S608
        {"k": sorted(set(keys))},
    )
    return {row.cart_key: stored_cart(row) for row in rows}


async def lead_orders(session: AsyncSession, lead_ids: Iterable[uuid.UUID]) -> list[Order]:
    """The leads' orders (carts ordered themselves, not closed by another cart's order)."""
    rows = await session.execute(
        text(
            "SELECT cart_key, lead_id, ordered_at FROM carts WHERE lead_id = ANY(:l) AND status = 'ordered' "
            "AND closed_by IS NULL AND ordered_at IS NOT NULL"
        ),
        {"l": sorted(set(lead_ids))},
    )
    return [Order(r.cart_key, r.lead_id, r.ordered_at) for r in rows]


_UPSERT = text(
    "INSERT INTO carts (cart_key, source_id, lead_id, status, currency, total, item_count, started_at, "
    " last_activity_at, ordered_at, state, closed_by, checkout_url, next_reminder_at, updated_at) "
    "SELECT i.cart_key, i.source_id, i.lead_id, i.status, i.currency, i.total, i.item_count, i.started_at, "
    " i.last_activity_at, i.ordered_at, i.state, i.closed_by, i.checkout_url, i.next_reminder_at, now() "
    "FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS i(cart_key text, source_id uuid, lead_id uuid, status text, "
    " currency text, total numeric, item_count int, started_at timestamptz, last_activity_at timestamptz, "
    " ordered_at timestamptz, state jsonb, closed_by text, checkout_url text, next_reminder_at timestamptz) "
    "ON CONFLICT (cart_key) DO UPDATE SET status = EXCLUDED.status, currency = EXCLUDED.currency, "
    " total = EXCLUDED.total, item_count = EXCLUDED.item_count, started_at = EXCLUDED.started_at, "
    " last_activity_at = EXCLUDED.last_activity_at, ordered_at = EXCLUDED.ordered_at, state = EXCLUDED.state, "
    " closed_by = EXCLUDED.closed_by, checkout_url = EXCLUDED.checkout_url, "
    " next_reminder_at = EXCLUDED.next_reminder_at, updated_at = now()"
)


async def upsert_carts(session: AsyncSession, writes: Sequence[CartWrite]) -> None:
    """Every cart of the batch in one statement; a cart closed by another order reads as `ordered`."""
    if not writes:
        return
    rows = []
    for w in writes:
        s = w.state
        rows.append(
            {
                "cart_key": w.cart_key,
                "source_id": str(w.source_id),
                "lead_id": str(w.lead_id),
                "status": "ordered" if w.closed_by else s.status,
                "currency": s.currency,
                "total": _json_amount(_storable(s.total)),
                "item_count": min(s.item_count, MAX_INT),
                "started_at": s.started_at.isoformat() if s.started_at else None,
                "last_activity_at": (s.last_activity_at or s.ordered_at or s.events[0].at).isoformat(),
                "ordered_at": _iso(w, s),
                "state": s.model_dump(mode="json"),
                "closed_by": w.closed_by.cart_key if w.closed_by else None,
                "checkout_url": s.checkout_url,
                "next_reminder_at": w.next_reminder_at.isoformat() if w.next_reminder_at else None,
            }
        )
    await session.execute(_UPSERT, {"rows": orjson.dumps(rows).decode()})


MAX_INT = 2**31 - 1
MAX_AMOUNT = Decimal(10) ** 12  # numeric(14, 2)


def _storable(amount: Decimal | None) -> Decimal | None:
    """An amount the column holds; an absurd one (a forged browser event) is stored as unknown, not refused,
    so it cannot stop the batch it came in."""
    return None if amount is None or amount >= MAX_AMOUNT else amount


def _json_amount(amount: Decimal | None) -> str | None:
    return None if amount is None else str(amount)


def _iso(w: CartWrite, s: CartState) -> str | None:
    at = w.closed_by.at if w.closed_by else s.ordered_at
    return at.isoformat() if at else None


async def close_lead_carts(session: AsyncSession, orders: Sequence[Order], skip: Iterable[str]) -> list[str]:
    """Other open carts of each ordering lead that started at or before the order are `ordered` now: their
    reminders stop. Takes their row locks (waits for a reminder round holding one). Returns their keys."""
    if not orders:
        return []
    rows = await session.execute(
        text(
            "UPDATE carts c SET status = 'ordered', closed_by = o.cart_key, ordered_at = o.at, "
            " next_reminder_at = NULL, updated_at = now() "
            "FROM (SELECT DISTINCT ON (lead_id) * FROM unnest(CAST(:k AS text[]), CAST(:l AS uuid[]), "
            " CAST(:t AS timestamptz[])) AS u(cart_key, lead_id, at) ORDER BY lead_id, at) o "
            "WHERE c.lead_id = o.lead_id AND c.cart_key <> o.cart_key AND c.status IN ('open', 'checkout') "
            " AND c.started_at <= o.at AND NOT (c.cart_key = ANY(CAST(:skip AS text[]))) RETURNING c.cart_key"
        ),
        {
            "k": [o.cart_key for o in orders],
            "l": [o.lead_id for o in orders],
            "t": [o.at for o in orders],
            "skip": sorted(set(skip)),
        },
    )
    return [r.cart_key for r in rows]


async def configs(session: AsyncSession, source_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, ShopConfig]:
    rows = await session.execute(
        text("SELECT source_id, config FROM commerce_shop_settings WHERE source_id = ANY(:s)"),
        {"s": sorted(set(source_ids))},
    )
    return {r.source_id: ShopConfig.model_validate(r.config) for r in rows}


async def sent_reminders(session: AsyncSession, lead_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[SentReminder]]:
    rows = await session.execute(
        text("SELECT lead_id, cart_key, step, at FROM cart_reminders WHERE lead_id = ANY(:l) AND outcome = 'sent'"),
        {"l": sorted(set(lead_ids))},
    )
    found: dict[uuid.UUID, list[SentReminder]] = {}
    for r in rows:
        found.setdefault(r.lead_id, []).append(SentReminder(r.cart_key, r.step, r.at))
    return found


@dataclass(frozen=True)
class Recovery:
    order_cart_key: str
    source_id: uuid.UUID
    lead_id: uuid.UUID
    order_id: str | None
    reminder: SentReminder
    amount: Decimal | None
    currency: str | None
    ordered_at: datetime


async def add_recoveries(session: AsyncSession, recoveries: Sequence[Recovery]) -> None:
    """Attribute orders (each once: a replayed order changes nothing)."""
    if not recoveries:
        return
    await session.execute(
        text(
            "INSERT INTO cart_recoveries (order_cart_key, source_id, lead_id, order_id, reminded_cart_key, step, "
            " amount, currency, reminder_at, ordered_at) "
            "SELECT * FROM unnest(CAST(:k AS text[]), CAST(:s AS uuid[]), CAST(:l AS uuid[]), CAST(:o AS text[]), "
            " CAST(:r AS text[]), CAST(:st AS int[]), CAST(:a AS numeric[]), CAST(:c AS text[]), "
            " CAST(:ra AS timestamptz[]), CAST(:oa AS timestamptz[])) ON CONFLICT (order_cart_key) DO NOTHING"
        ),
        {
            "k": [r.order_cart_key for r in recoveries],
            "s": [r.source_id for r in recoveries],
            "l": [r.lead_id for r in recoveries],
            "o": [r.order_id for r in recoveries],
            "r": [r.reminder.cart_key for r in recoveries],
            "st": [r.reminder.step for r in recoveries],
            "a": [_storable(r.amount) for r in recoveries],
            "c": [r.currency for r in recoveries],
            "ra": [r.reminder.at for r in recoveries],
            "oa": [r.ordered_at for r in recoveries],
        },
    )
