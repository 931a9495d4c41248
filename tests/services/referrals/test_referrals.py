"""Post-purchase sequences and referrals end to end: the real broker, scoring and nurture consumers,
the scheduler, PostgreSQL and a real SMTP server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, time, timedelta
from typing import Any

import httpx

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
from services.referrals import repository as referrals
from services.referrals.service import code_in, normalise
from services.scoring import rulebook
from services.scoring.rules import default_rule_set
from shared.events import TrackedEvent, derived_id
from shared.runner import ConsumerRunner
from shared.settings import NurtureSettings
from tests.helpers import Env, basic, env, eventually, produce, running, running_stack
from tests.smtp import SmtpSink

SOURCE = uuid.UUID(int=12)
NO_QUIET_HOURS = SendPolicy(quiet_start=time(0, 0), quiet_end=time(0, 0), cap=timedelta(hours=16))

REVIEW = TemplateContent(
    subject="How is your {{ extra.product | default('order') }}?",
    html="<p>Tell us what you think. Friends get 10 % off with your code "
    "<b>{{ lead.referral_code }}</b>.</p><a href='{{ unsubscribe_url }}'>Unsubscribe</a>",
    text=None,
)
COME_BACK = TemplateContent(
    subject="Time for a refill?",
    html="<p>It has been a while.</p><a href='{{ unsubscribe_url }}'>Unsubscribe</a>",
    text=None,
)


def post_purchase(review: str, come_back: str) -> dict[str, Any]:
    """Review request a moment after the order, then a repeat-purchase reminder unless they order again."""
    return {
        "trigger": {"kind": "event", "event": "Order Completed"},
        "reentry": "never",
        "exit": [{"kind": "unsubscribed"}],
        "steps": [
            {"id": "settle", "type": "wait", "duration": "PT1S"},
            {"id": "review", "type": "send_email", "template_id": review},
            {"id": "reorder", "type": "wait_for_event", "event": "Order Completed", "timeout": "PT2S",
             "on_event": "exit"},
            {"id": "come-back", "type": "send_email", "template_id": come_back},
        ],
    }  # fmt: skip


def ev(user: str, name: str, n: int, **fields: Any) -> TrackedEvent:
    mid = f"{user}-{name}-{n}"
    now = datetime.now(UTC)
    return TrackedEvent(
        event_id=derived_id(SOURCE, mid), source_id=SOURCE, message_id=mid, type="track" if name else "identify",
        event=name or None, user_id=user, timestamp=now, received_at=now, **fields,
    )  # fmt: skip


async def send(e: Env, *events: TrackedEvent) -> None:
    for event in events:
        await produce(e.producer, e.topics.events, [event.to_bytes()], key=event.lead_key.encode())


async def lead_id(e: Env, user: str) -> uuid.UUID:
    found = await eventually(lambda: e.scalar("SELECT lead_id FROM leads WHERE user_id = :u", u=user), what=user)
    assert isinstance(found, uuid.UUID)
    return found


@asynccontextmanager
async def shop(settings_kwargs: dict[str, Any], sink: SmtpSink) -> AsyncIterator[Env]:
    """Default rules (with the e-commerce funnel), a post-purchase sequence, both consumers, the scheduler."""
    async with env(settings_kwargs) as e:
        settings = NurtureSettings(
            **settings_kwargs, secret_key="test-secret", smtp_host=sink.host, smtp_port=sink.port
        )
        async with e.sessionmaker() as session, session.begin():
            row = await rulebook.add(session, default_rule_set(), "default rules")
            await rulebook.activate(session, row.version)
            ids = []
            for name, content in (("review", REVIEW), ("come-back", COME_BACK)):
                template = await templates.add_template(
                    session, name=name, description="", kind="marketing", topic=None, content=content,
                    sample_extra={}, note="test",
                )  # fmt: skip
                assert template is not None
                ids.append(str(template.id))
            sequence = await queries.create(
                session, name="post-purchase", description="", message_class="marketing", topic=None, exempt=True,
                definition=Definition.model_validate(post_purchase(*ids)),
            )  # fmt: skip
            assert sequence is not None
            await queries.set_status(session, sequence, "active")
        messenger = SequenceMessenger(settings, e.sessionmaker, make_mailer(settings))
        loop = asyncio.create_task(scheduler_loop(Scheduler(e.sessionmaker, messenger, policy=NO_QUIET_HOURS), 0.05))
        nurture = ConsumerRunner(settings, NurtureHandler(SequenceCache(refresh_seconds=0)), e.sessionmaker, e.producer)
        try:
            async with running(e.runner()) as scoring, running(nurture):
                await asyncio.wait_for(asyncio.gather(scoring.assigned.wait(), nurture.assigned.wait()), 60)
                yield e
        finally:
            loop.cancel()
            await asyncio.gather(loop, return_exceptions=True)


async def subscribe(e: Env, user: str) -> None:
    lead = await lead_id(e, user)
    async with e.sessionmaker() as session, session.begin():
        await consent.set_status(session, lead, "*", "subscribed", "api", "test", "Yes", None, datetime.now(UTC))


async def test_buyer_gets_review_request_with_code_then_repeat_purchase_reminder(
    settings_kwargs: dict[str, Any], smtp_sink: SmtpSink
) -> None:
    ann = smtp_sink.address("ann")
    async with shop(settings_kwargs, smtp_sink) as e:
        await send(e, ev("ann", "", 0, traits={"email": ann, "firstName": "Ann"}))
        await subscribe(e, "ann")
        await send(e, ev("ann", "Order Completed", 1, properties={"order_id": "o-1", "revenue": 40, "product": "tea"}))
        review, come_back = (m.message for m in await smtp_sink.wait_for(ann, 2, timeout=30))
        async with e.sessionmaker() as session:
            code = await referrals.code_of(session, await lead_id(e, "ann"))
        assert code is not None
        assert review["Subject"] == "How is your tea?"
        body = review.get_body(("html",))
        assert body is not None and code in body.get_content()
        assert come_back["Subject"] == "Time for a refill?"


async def test_a_reorder_stops_the_repeat_purchase_reminder(
    settings_kwargs: dict[str, Any], smtp_sink: SmtpSink
) -> None:
    dan = smtp_sink.address("dan")
    async with shop(settings_kwargs, smtp_sink) as e:
        await send(e, ev("dan", "", 0, traits={"email": dan}))
        await subscribe(e, "dan")
        await send(e, ev("dan", "Order Completed", 1, properties={"order_id": "o-1"}))
        [review] = await smtp_sink.wait_for(dan, 1, timeout=30)
        await send(e, ev("dan", "Order Completed", 2, properties={"order_id": "o-2"}))
        status = await eventually(
            lambda: e.scalar(
                "SELECT status FROM enrollments e JOIN leads l ON l.lead_id = e.lead_id "
                "WHERE l.user_id = 'dan' AND e.status <> 'active'"
            ),
            what="dan's enrollment ended",
        )
        assert status == "completed"
        await asyncio.sleep(3)  # past the reminder's 2 s timeout: had it been scheduled, it would be here
        assert len(smtp_sink.received(dan)) == 1


async def test_referred_signup_is_attributed_and_moves_the_referrer_to_advocacy(
    settings_kwargs: dict[str, Any], smtp_sink: SmtpSink
) -> None:
    async with shop(settings_kwargs, smtp_sink) as e:
        await send(e, ev("ann", "", 0, traits={"email": smtp_sink.address("ann2")}),
                   ev("ann", "Order Completed", 1, properties={"order_id": "o-1"}))  # fmt: skip
        ann = await lead_id(e, "ann")
        code = await eventually(lambda: e.scalar("SELECT code FROM referral_codes WHERE lead_id = :l", l=ann))
        signup = ev("bob", "Signed Up", 1, properties={"referral_code": f" {code.lower()} "})
        await send(e, signup, ev("ann", "Signed Up", 2, properties={"ref": code}))  # her own code: no referral
        bob = await lead_id(e, "bob")
        referrer = await eventually(
            lambda: e.scalar("SELECT referrer_lead_id FROM referrals WHERE lead_id = :l", l=bob)
        )
        assert referrer == ann
        stage = await eventually(
            lambda: e.scalar("SELECT stages->>'ecommerce' FROM leads WHERE lead_id = :l AND "
                             "stages->>'ecommerce' = 'advocacy'", l=ann),
            what="ann in advocacy",
        )  # fmt: skip
        assert stage == "advocacy"
        # The same signup delivered again, and a later code from another event: still one referral, one entry.
        await send(e, signup, ev("bob", "Page Viewed", 2, properties={"ref": "ZZZZ9999"}))
        await send(e, ev("bob", "Marker", 3))
        await eventually(lambda: e.scalar("SELECT 1 FROM lead_events le JOIN leads l ON l.lead_id = le.lead_id "
                                          "WHERE l.user_id = 'bob' AND le.name = 'Marker'"))  # fmt: skip
        assert await e.scalar("SELECT count(*) FROM referrals") == 1
        assert await e.scalar("SELECT count(*) FROM referrals WHERE lead_id = :l", l=ann) == 0
        entries = await e.scalar(
            "SELECT count(*) FROM stage_history WHERE lead_id = :l AND to_stage = 'advocacy'", l=ann
        )
        assert entries == 1


async def test_referral_code_api(settings_kwargs: dict[str, Any]) -> None:
    async with running_stack(settings_kwargs, consumers=("scoring",)) as stack, httpx.AsyncClient() as client:
        key = await stack.create_source(client)
        r = await client.post(f"{stack.base_url}/v1/identify", json={"userId": "eve", "traits": {"plan": "x"}},
                              headers=basic(key))  # fmt: skip
        assert r.is_success

        async def issued() -> dict[str, Any] | None:
            r = await client.post(f"{stack.base_url}/api/leads/eve/referral-code", headers=stack.admin)
            return r.json() if r.status_code == 200 else None

        first = await eventually(issued, what="eve's code")
        assert first["user_id"] == "eve" and normalise(first["code"]) == first["code"]
        assert (await issued()) == first  # asking again gives the same code
        r = await client.get(f"{stack.base_url}/api/leads/eve/referrals", headers=stack.admin)
        assert r.json()["code"] == first["code"] and r.json()["referred"] == [] and r.json()["referred_by"] is None
        r = await client.post(f"{stack.base_url}/api/leads/nobody/referral-code", headers=stack.admin)
        assert r.status_code == 404 and "nobody" in r.json()["error"]
        r = await client.post(f"{stack.base_url}/api/leads/eve/referral-code")
        assert r.status_code == 401


def test_codes_are_read_from_the_usual_properties() -> None:
    assert code_in({"referral_code": " ab12cd34 "}) == "AB12CD34"
    assert code_in({"referralCode": "XY-99-ZZ"}) == "XY-99-ZZ"
    assert code_in({"ref": "no spaces allowed?"}) is None
    assert code_in({"ref": 12345678}) is None
    assert code_in({}) is None
