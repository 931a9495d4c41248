"""Sequences end to end: tracked events through the real scoring and nurture consumers, the scheduler,
consent at send time, templates, and a real SMTP server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import text

from services.nurture.consent import repository as consent
from services.nurture.delivery.mailer import make_mailer
from services.nurture.handlers import NurtureHandler
from services.nurture.sequences import queries
from services.nurture.sequences.definition import Definition
from services.nurture.sequences.messaging import SequenceMessenger
from services.nurture.sequences.repository import SequenceCache
from services.nurture.sequences.scheduler import Scheduler, scheduler_loop
from services.nurture.sequences.timing import SendPolicy
from services.nurture.templates import repository as templates
from services.nurture.templates.service import TemplateContent
from shared.events import EventType, TrackedEvent, derived_id
from shared.runner import ConsumerRunner
from shared.settings import NurtureSettings
from tests.helpers import Env, env, eventually, produce, running
from tests.smtp import SmtpSink

SOURCE = uuid.UUID(int=11)
NO_QUIET_HOURS = SendPolicy(quiet_start=time(0, 0), quiet_end=time(0, 0), cap=timedelta(hours=16))


def ev(user: str, name: str | None, n: int, type: EventType = "track", **fields: Any) -> TrackedEvent:
    mid = f"{user}-{type}-{name}-{n}"
    now = datetime.now(UTC)
    return TrackedEvent(
        event_id=derived_id(SOURCE, mid), source_id=SOURCE, message_id=mid, type=type,
        event=name if type == "track" else None, user_id=user, timestamp=now, received_at=now, **fields,
    )  # fmt: skip


@dataclass
class Nurture:
    e: Env
    sink: SmtpSink
    settings: NurtureSettings
    loop: asyncio.Task[None] | None = None

    def start_scheduler(self) -> None:
        """A new scheduler, as a restarted nurture process would build it (nothing carried in memory)."""
        messenger = SequenceMessenger(self.settings, self.e.sessionmaker, make_mailer(self.settings))
        scheduler = Scheduler(self.e.sessionmaker, messenger, policy=NO_QUIET_HOURS)
        self.loop = asyncio.create_task(scheduler_loop(scheduler, poll_seconds=0.05))

    async def stop_scheduler(self) -> None:
        if self.loop is not None:
            self.loop.cancel()
            await asyncio.gather(self.loop, return_exceptions=True)
            self.loop = None

    async def send(self, *events: TrackedEvent) -> None:
        """Keyed by lead as ingest keys them, so one person's events keep their order."""
        for event in events:
            await produce(self.e.producer, self.e.topics.events, [event.to_bytes()], key=event.lead_key.encode())

    async def lead_id(self, user: str) -> uuid.UUID:
        found = await eventually(
            lambda: self.e.scalar("SELECT lead_id FROM leads WHERE user_id = :u", u=user), what=f"lead {user}"
        )
        assert isinstance(found, uuid.UUID)
        return found

    async def subscribe(self, user: str) -> None:
        lead = await self.lead_id(user)
        async with self.e.sessionmaker() as session, session.begin():
            await consent.set_status(
                session, lead, "*", "subscribed", "api", "test", "Yes, send me offers", None, datetime.now(UTC)
            )

    async def enrollment(self, user: str) -> dict[str, Any] | None:
        return await self.e.row(
            "SELECT e.status, e.exit_reason, e.id FROM enrollments e JOIN leads l ON l.lead_id = e.lead_id "
            "WHERE l.user_id = :u",
            u=user,
        )


@asynccontextmanager
async def nurture_stack(
    settings_kwargs: dict[str, Any], sink: SmtpSink, definition: dict[str, Any]
) -> AsyncIterator[Nurture]:
    async with env(settings_kwargs) as e:
        settings = NurtureSettings(
            **settings_kwargs, secret_key="test-secret", smtp_host=sink.host, smtp_port=sink.port
        )
        async with e.sessionmaker() as session, session.begin():
            template = await templates.add_template(
                session, name="cart-reminder", description="", kind="marketing", topic=None,
                content=TemplateContent(
                    subject="{{ lead.first_name or 'Hi' }}, your cart is waiting",
                    html="<p>Hello {{ lead.first_name }}, you left {{ extra.total }} in your cart.</p>"
                         "<a href='{{ unsubscribe_url }}'>Unsubscribe</a>",
                    text=None,
                ),
                sample_extra={"total": 10}, note="test",
            )  # fmt: skip
            assert template is not None
            raw = {**definition}
            for step in raw["steps"]:
                if step["type"] == "send_email":
                    step["template_id"] = str(template.id)
            sequence_id = await queries.create(
                session, name="cart", description="", message_class="marketing", topic=None, exempt=True,
                definition=Definition.model_validate(raw),
            )  # fmt: skip
            assert sequence_id is not None
            await queries.set_status(session, sequence_id, "active")
        nurture = ConsumerRunner(settings, NurtureHandler(SequenceCache(refresh_seconds=0)), e.sessionmaker, e.producer)
        stack = Nurture(e, sink, settings)
        stack.start_scheduler()
        try:
            async with running(e.runner()) as scoring, running(nurture):
                # Both consumers own their partitions before anything is sent, so the waits below measure
                # the product, not the group joins.
                await asyncio.wait_for(asyncio.gather(scoring.assigned.wait(), nurture.assigned.wait()), 60)
                yield stack
        finally:
            await stack.stop_scheduler()


CART = {
    "trigger": {"kind": "event", "event": "Checkout Started"},
    "steps": [
        {"id": "wait-for-order", "type": "wait_for_event", "event": "Order Completed", "timeout": "PT5S",
         "on_event": "exit"},
        {"id": "reminder", "type": "send_email", "template_id": "set below"},
    ],
    "exit": [{"kind": "event", "event": "Order Completed"}, {"kind": "unsubscribed"}],
}  # fmt: skip


async def test_an_abandoned_checkout_gets_one_reminder_and_an_order_stops_it(
    settings_kwargs: dict[str, Any], smtp_sink: SmtpSink
) -> None:
    async with nurture_stack(settings_kwargs, smtp_sink, CART) as n:
        ann, bob, cy = smtp_sink.address("ann"), smtp_sink.address("bob"), smtp_sink.address("cy")
        await n.send(
            ev("ann", None, 0, "identify", traits={"email": ann, "firstName": "Ann"}),
            ev("bob", None, 0, "identify", traits={"email": bob}),
            ev("cy", None, 0, "identify", traits={"email": cy}),
        )
        await n.subscribe("ann")
        await n.subscribe("bob")  # cy never consented: marketing mail is not allowed
        await n.send(
            ev("ann", "Checkout Started", 1, properties={"total": "120 EUR"}),
            ev("bob", "Checkout Started", 1, properties={"total": "80 EUR"}),
            ev("cy", "Checkout Started", 1, properties={"total": "5 EUR"}),
        )
        await n.send(ev("bob", "Order Completed", 2))
        [mail] = await smtp_sink.wait_for(ann, 1, timeout=30)
        message = mail.message
        assert message["Subject"] == "Ann, your cart is waiting"
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        body = message.get_body(("html",))
        assert body is not None and "120 EUR" in body.get_content()
        await eventually(lambda: _status(n, "ann", "completed"), what="ann completed")
        await eventually(lambda: _status(n, "bob", "exited"), what="bob exited on the order")
        bob_enrollment = await n.enrollment("bob")
        assert bob_enrollment is not None and bob_enrollment["exit_reason"] == "event Order Completed"
        cy_enrollment = await eventually(lambda: _status(n, "cy", "completed"), what="cy done")
        skipped = await n.e.scalar(
            "SELECT detail->>'reason' FROM enrollment_log WHERE enrollment_id = :e AND action = 'skipped'",
            e=cy_enrollment["id"],
        )
        assert skipped  # accounted for, with the reason consent gave
        assert smtp_sink.received(bob) == [] and smtp_sink.received(cy) == []
        # Re-entry after completion: ann's second checkout enrolls her again; a redelivery does not.
        await n.send(ev("ann", "Checkout Started", 1, properties={"total": "120 EUR"}))
        await asyncio.sleep(1)
        assert (
            await n.e.scalar("SELECT count(*) FROM enrollments e JOIN leads l USING (lead_id) WHERE l.user_id = 'ann'")
            == 1
        )


async def _status(n: Nurture, user: str, status: str) -> dict[str, Any] | None:
    found = await n.enrollment(user)
    return found if found and found["status"] == status else None


async def test_a_wait_survives_a_restart_of_the_scheduler(settings_kwargs: dict[str, Any], smtp_sink: SmtpSink) -> None:
    definition = {
        "trigger": {"kind": "event", "event": "Signed Up"},
        "steps": [{"id": "pause", "type": "wait", "duration": 3}, {"id": "welcome", "type": "send_email",
                                                                    "template_id": "set below"}],
    }  # fmt: skip
    async with nurture_stack(settings_kwargs, smtp_sink, definition) as n:
        dee = smtp_sink.address("dee")
        await n.send(ev("dee", None, 0, "identify", traits={"email": dee}))
        await n.subscribe("dee")
        await n.send(ev("dee", "Signed Up", 1, properties={"total": "no"}))
        await eventually(
            lambda: n.e.scalar("SELECT count(*) FROM scheduled_steps WHERE step_index = 1 AND status = 'due'"),
            what="the wait is a row",
        )
        await n.stop_scheduler()  # the process goes away during the wait
        assert smtp_sink.received(dee) == []
        n.start_scheduler()
        await smtp_sink.wait_for(dee, 1, timeout=30)
        await eventually(lambda: _status(n, "dee", "completed"), what="dee completed")
        async with n.e.engine.connect() as conn:
            rows = (await conn.execute(text("SELECT status FROM scheduled_steps ORDER BY id"))).scalars().all()
        assert set(rows) == {"done"}


async def test_an_audience_step_adds_the_lead_and_enrolls_it_where_that_audience_is_the_trigger(
    settings_kwargs: dict[str, Any], smtp_sink: SmtpSink
) -> None:
    adder = {
        "trigger": {"kind": "event", "event": "Webinar Joined"},
        "steps": [{"id": "add", "type": "update_audience", "audience": "webinar-fans"},
                  {"id": "thanks", "type": "send_email", "template_id": "set below"}],
    }  # fmt: skip
    async with nurture_stack(settings_kwargs, smtp_sink, adder) as n:
        async with n.e.sessionmaker() as session, session.begin():
            fans = {"trigger": {"kind": "audience_joined", "audience": "webinar-fans"},
                    "steps": [{"id": "later", "type": "wait", "duration": "P7D"}]}  # fmt: skip
            follower = await queries.create(
                session, name="fans", description="", message_class="marketing", topic=None, exempt=False,
                definition=Definition.model_validate(fans),
            )  # fmt: skip
            assert follower is not None
            await queries.set_status(session, follower, "active")
        eve = smtp_sink.address("eve")
        await n.send(ev("eve", None, 0, "identify", traits={"email": eve}))
        await n.subscribe("eve")
        await n.send(ev("eve", "Webinar Joined", 1, properties={"total": "-"}))
        await smtp_sink.wait_for(eve, 1, timeout=30)
        member = "SELECT count(*) FROM audience_members WHERE audience = 'webinar-fans' AND removed_at IS NULL"
        assert await eventually(lambda: n.e.scalar(member), what="eve in the audience") == 1
        enrolled = "SELECT count(*) FROM enrollments WHERE sequence_id = :s AND status = 'active'"
        assert await eventually(lambda: n.e.scalar(enrolled, s=follower), what="eve enrolled by the audience") == 1
