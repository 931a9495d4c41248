"""The durable cart-reminder loop, a background task of the nurture process.

Per round, in one transaction: carts whose next reminder is due are locked with FOR UPDATE SKIP LOCKED
(another process, or the consumer folding an order into them, holds the rest); the lead's orders are
read after the locks are held, so an order committed before the round stops its reminders, and an
order still being written waits for the round (closing a cart takes its row lock). Each cart sends at
most its latest due step (a catch-up after downtime is one email) through the delivery layer's durable
claim keyed `cart:<cart key>:<step>`, so a round cut short and run again never sends a second copy.
Reminders are marketing: consent is checked now, quiet hours apply, the frequency cap only if the shop
turned its exemption off.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.commerce import reminder_repository as rr
from services.commerce import repository
from services.commerce.incentives import incentive_for
from services.commerce.links import recovery_url
from services.commerce.reminder_repository import ReminderRow
from services.commerce.reminders import may_send_reminder, reminders_due
from services.commerce.repository import StoredCart
from services.commerce.schemas import ShopConfig
from services.commerce.service import next_due, reminder_extra
from services.nurture.consent.links import preferences_url, unsubscribe_url
from services.nurture.delivery.compose import SendRequest
from services.nurture.delivery.mailer import Mailer, make_mailer
from services.nurture.delivery.service import send_many
from services.nurture.sequences import repository as sequences
from services.nurture.sequences.messaging import SequenceMessenger
from services.nurture.sequences.scheduler import scheduler_loop
from services.nurture.sequences.service import LeadView
from services.nurture.sequences.timing import SendPolicy, next_send_time, zone
from services.nurture.templates import repository as templates
from services.nurture.templates.service import TemplateRenderError, context_for, render
from shared.settings import NurtureSettings

log = logging.getLogger(__name__)
REMINDERS = Counter("funnelstream_cart_reminders_total", "Cart reminder steps by outcome", ["outcome"])


@dataclass(frozen=True)
class _Job:
    cart: StoredCart
    step: int
    request: SendRequest
    code: str | None
    incentive: dict[str, Any] | None


@dataclass
class _Round:
    now: datetime
    jobs: list[_Job] = field(default_factory=list)
    rows: list[ReminderRow] = field(default_factory=list)
    updates: list[tuple[str, tuple[int, ...], datetime | None]] = field(default_factory=list)
    marketing: dict[uuid.UUID, datetime] = field(default_factory=dict)

    def record(self, cart: StoredCart, step: int, outcome: str, reason: str | None, **more: Any) -> None:
        self.rows.append(
            ReminderRow(cart.cart_key, step, cart.source_id, cart.lead_id, outcome, reason, self.now, **more)
        )


class ReminderSender:
    def __init__(
        self,
        settings: NurtureSettings,
        sessionmaker: async_sessionmaker[AsyncSession],
        mailer: Mailer,
        *,
        policy: SendPolicy | None = None,
        batch: int = 200,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.mailer = mailer
        self.messenger = SequenceMessenger(settings, sessionmaker, mailer)
        self.policy = policy or SendPolicy()
        self.batch = batch
        self.secret = settings.secret_key.get_secret_value()

    async def run_due(self, now: datetime | None = None) -> int:
        """One round over the carts due by `now` that nobody else holds; returns how many were handled."""
        now = now or datetime.now(UTC)
        async with self.sessionmaker() as session, session.begin():
            due = await rr.claim_due(session, now, self.batch)
            if not due:
                return 0
            configs = await repository.configs(session, {c.source_id for c in due})
            orders = await rr.latest_orders(session, {c.lead_id for c in due})
            views = await sequences.lead_views(session, {c.lead_id for c in due})
            last = await sequences.last_marketing(session, views)
            work = _Round(now)
            for cart in due:
                config = configs.get(cart.source_id)
                if (
                    config is None
                    or not config.enabled
                    or not may_send_reminder(cart.state, orders.get(cart.lead_id), now)
                ):
                    work.updates.append((cart.cart_key, cart.steps_sent, None))
                    continue
                await self._cart(session, cart, config, views.get(cart.lead_id), last, work)
            outcomes = await send_many(self.sessionmaker, self.mailer, self.settings, [j.request for j in work.jobs])
            for job, outcome in zip(work.jobs, outcomes, strict=True):
                sent = outcome.status == "sent"
                work.record(
                    job.cart, job.step, "sent" if sent else outcome.status, outcome.error,
                    send_key=job.request.send_key, code=job.code, incentive=job.incentive,
                )  # fmt: skip
                if sent:
                    work.marketing[job.cart.lead_id] = now
            await rr.record_reminders(session, work.rows)
            for row in work.rows:
                REMINDERS.labels(row.outcome).inc()
            await rr.update_carts(session, work.updates)
            await sequences.marketing_sent(session, work.marketing)
            return len(due)

    async def _cart(
        self,
        session: AsyncSession,
        cart: StoredCart,
        config: ShopConfig,
        lead: LeadView | None,
        last: dict[uuid.UUID, datetime],
        work: _Round,
    ) -> None:
        state, schedule, now = cart.state, config.schedule, work.now
        steps = reminders_due(state, schedule, set(cart.steps_sent), now)
        if not steps:
            work.updates.append((cart.cart_key, cart.steps_sent, next_due(state, schedule, cart.steps_sent)))
            return
        step = steps[-1]
        sent = (*cart.steps_sent, *steps)
        following = next_due(state, schedule, sent)
        version = await templates.get_version(session, config.templates[step])
        topic = config.topic or (version.topic if version else None)
        reason = await self._blocked(session, lead, topic)
        if version is None or reason is not None or lead is None:
            work.updates.append((cart.cart_key, sent, following))
            work.record(cart, step, "suppressed", reason or f"no template {config.templates[step]}")
            return
        tz = zone(self.messenger.timezone_of(lead))
        when = next_send_time(
            now, tz, self.policy, last_marketing_at=last.get(lead.lead_id), capped=not config.exempt_from_cap
        )
        if when > now + timedelta(seconds=1):  # quiet hours or the cap: look again then
            work.updates.append((cart.cart_key, cart.steps_sent, when))
            return
        for skipped in steps[:-1]:
            work.record(cart, skipped, "skipped", f"step {step} was due too (catch-up)")
        work.updates.append((cart.cart_key, sent, following))
        incentive, code = None, None
        if config.incentive is not None:
            incentive = incentive_for(config.incentive, state.total, state.currency or "", step)
        if incentive is not None:
            code = await rr.give_code(self.sessionmaker, cart.source_id, cart.cart_key, step, config, now)
            incentive = incentive if code is not None else None  # an exhausted pool: no offer without a code
        email = lead.email or ""
        unsubscribe = unsubscribe_url(self.settings.public_base_url, self.secret, lead.lead_id, email, topic)
        extra = reminder_extra(
            state,
            step=step,
            recovery_url=recovery_url(self.settings.public_base_url, self.secret, cart.cart_key, step),
            incentive=incentive,
            code=code,
        )
        context = context_for(
            asdict(lead),
            unsubscribe_url=unsubscribe,
            preferences_url=preferences_url(self.settings.public_base_url, self.secret, lead.lead_id, email),
            now=now,
            extra=extra,
        )
        try:
            rendered = render(version.content, context)
        except TemplateRenderError as exc:
            work.record(cart, step, "failed", f"template: {exc.problem}")
            return
        request = SendRequest(
            send_key=f"cart:{cart.cart_key}:{step}", lead_id=lead.lead_id, to_email=email, kind="marketing",
            subject=rendered.subject, html=rendered.html, text=rendered.text, template_id=str(version.template_id),
            template_version=version.version, source_id=cart.source_id, user_id=lead.user_id,
            anonymous_id=lead.anonymous_id, unsubscribe_url=unsubscribe, topic=topic,
        )  # fmt: skip
        work.jobs.append(_Job(cart, step, request, code, extra["incentive"]))
        last[lead.lead_id] = now

    async def _blocked(self, session: AsyncSession, lead: LeadView | None, topic: str | None) -> str | None:
        """Why no marketing email may go to this lead now (consent at send time), or None."""
        if lead is None:
            return "lead no longer exists"
        allowed, reason = await self.messenger.allowed(session, lead, "marketing", topic)
        return None if allowed else reason


async def reminder_loop(sender: ReminderSender, poll_seconds: float = 1.0) -> None:
    """Run reminder rounds until cancelled, as the sequence scheduler runs its steps."""
    await scheduler_loop(sender, poll_seconds, "cart reminder")


def make_reminder_sender(settings: NurtureSettings, sessionmaker: async_sessionmaker[AsyncSession]) -> ReminderSender:
    """The sender a nurture process runs: its mailer, quiet hours and frequency cap from the settings."""
    policy = SendPolicy(
        settings.quiet_hours_start, settings.quiet_hours_end, timedelta(hours=settings.frequency_cap_hours)
    )
    mailer = make_mailer(settings)
    return ReminderSender(settings, sessionmaker, mailer, policy=policy, batch=settings.cart_reminder_batch)
