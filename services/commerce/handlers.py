"""What the nurture consumer does with cart events: fold them into stored carts, close carts an order
ended, attribute orders to reminders, and record a Shopify shopper's stated marketing consent.

Every human track event reaches nurture as `LeadActivity` (lead-changes, keyed by lead). Per batch:
the batch's carts are locked, each cart's events are folded (order-independent, duplicates ignored:
services/commerce/carts.py), and all carts are written in one upsert. An order closes the lead's other
carts that started before it, in the same transaction; their row locks make a reminder round that holds
one finish first, and a round that comes later sees the order.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from services.commerce import repository
from services.commerce.carts import CartState, apply
from services.commerce.events import CartEvent, cart_event_from_segment
from services.commerce.repository import CartWrite, Recovery, StoredCart
from services.commerce.schemas import ShopConfig
from services.commerce.service import Order, attributed_reminder, cart_key, closing_order, next_due, shopify_consent
from services.nurture.consent import repository as consent
from services.nurture.consent.repository import StatusChange
from services.nurture.consent.service import GLOBAL
from shared.events import LeadActivity, LeadChange

DEFAULT_WINDOW = timedelta(hours=168)


@dataclass(frozen=True)
class _Seen:
    key: str
    source_id: uuid.UUID
    lead_id: uuid.UUID
    event: CartEvent


def cart_events(items: Sequence[LeadChange]) -> list[_Seen]:
    """The batch's cart events (Segment e-commerce and mapped Shopify webhooks), with their cart keys."""
    seen = []
    for m in items:
        if not isinstance(m, LeadActivity):
            continue
        event = cart_event_from_segment(
            m.name, m.properties, m.occurred_at, event_id=str(m.cause_event_id), lead=str(m.lead_id)
        )
        if event is not None:
            seen.append(_Seen(cart_key(m.source_id, event), m.source_id, m.lead_id, event))
    return seen


async def apply_cart_events(session: AsyncSession, items: Sequence[LeadChange]) -> None:
    """Fold the batch's cart events into the carts table (one upsert), in the caller's transaction."""
    seen = cart_events(items)
    if not seen:
        return
    stored = await repository.lock_carts(session, {s.key for s in seen})
    states: dict[str, CartState] = {k: c.state for k, c in stored.items()}
    owners: dict[str, tuple[uuid.UUID, uuid.UUID]] = {k: (c.source_id, c.lead_id) for k, c in stored.items()}
    for s in seen:
        states[s.key] = apply(states.get(s.key), s.event)
        owners.setdefault(s.key, (s.source_id, s.lead_id))
    leads = {lead for _, lead in owners.values()}
    fresh = [
        Order(k, owners[k][1], st.ordered_at)
        for k, st in states.items()
        if st.status == "ordered" and st.ordered_at is not None
    ]
    orders = [*await repository.lead_orders(session, leads), *fresh]
    configs = await repository.configs(session, {source for source, _ in owners.values()})
    writes = []
    for key, state in states.items():
        source_id, lead_id = owners[key]
        before = stored.get(key)
        closed = closing_order(key, lead_id, state, orders) or _kept(before, state)
        config = configs.get(source_id)
        due = None
        if config is not None and config.enabled and closed is None:
            due = next_due(state, config.schedule, before.steps_sent if before else ())
        writes.append(CartWrite(key, source_id, lead_id, state, closed, due))
    await repository.upsert_carts(session, writes)
    await repository.close_lead_carts(session, fresh, skip=states)
    newly = [o for o in fresh if (b := stored.get(o.cart_key)) is None or b.state.status != "ordered"]
    await _attribute(session, newly, states, owners, configs)
    await _shopify_consent(session, items)


def _kept(before: StoredCart | None, state: CartState) -> Order | None:
    """A cart closed by another order stays closed (that order may belong to a lead since merged away)."""
    if before is None or before.closed_by is None or before.ordered_at is None or state.status == "ordered":
        return None
    return Order(before.closed_by, before.lead_id, before.ordered_at)


async def _attribute(
    session: AsyncSession,
    orders: list[Order],
    states: dict[str, CartState],
    owners: dict[str, tuple[uuid.UUID, uuid.UUID]],
    configs: dict[uuid.UUID, ShopConfig],
) -> None:
    """Each new order goes to the last reminder the lead got before it, within the shop's window."""
    if not orders:
        return
    sent = await repository.sent_reminders(session, {o.lead_id for o in orders})
    recoveries = []
    for order in orders:
        source_id, lead_id = owners[order.cart_key]
        config = configs.get(source_id)
        window = config.attribution_window if config else DEFAULT_WINDOW
        reminder = attributed_reminder(sent.get(lead_id, []), order.at, window)
        if reminder is None:
            continue
        state = states[order.cart_key]
        amount = state.order_total if state.order_total is not None else (state.total or None)
        recoveries.append(
            Recovery(order.cart_key, source_id, lead_id, state.order_id, reminder, amount, state.currency, order.at)
        )
    await repository.add_recoveries(session, recoveries)


async def _shopify_consent(session: AsyncSession, items: Sequence[LeadChange]) -> None:
    """A shopper who told the shop yes to marketing email is subscribed (method `shopify`), as of the event."""
    stated: dict[uuid.UUID, datetime] = {}
    for m in items:
        if isinstance(m, LeadActivity) and shopify_consent(m.properties):
            stated[m.lead_id] = max(stated.get(m.lead_id, m.occurred_at), m.occurred_at)
    if not stated:
        return
    live = await consent.live_leads(session, stated)
    latest: dict[uuid.UUID, datetime] = {}
    for lead, at in stated.items():
        if lead in live:
            latest[live[lead]] = max(latest.get(live[lead], at), at)
    await consent.set_statuses(
        session,
        [
            StatusChange(lead, GLOBAL, "subscribed", "shopify", "shopify", None, None, at, actor="shopify")
            for lead, at in latest.items()
        ],
    )
