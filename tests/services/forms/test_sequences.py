"""Nothing but the confirmation reaches an unconfirmed contact: a marketing sequence triggered by the
submission is refused by consent until the link is used; the form's own sequence starts on confirmation
and its marketing email then goes out. Real scoring and nurture consumers, the scheduler, real SMTP."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import time, timedelta
from typing import Any

import pytest

from services.nurture.delivery.mailer import make_mailer
from services.nurture.sequences import queries
from services.nurture.sequences.definition import Definition
from services.nurture.sequences.messaging import SequenceMessenger
from services.nurture.sequences.scheduler import Scheduler, scheduler_loop
from services.nurture.sequences.timing import SendPolicy
from services.nurture.templates import repository as templates
from services.nurture.templates.service import TemplateContent
from shared.db import make_engine, make_sessionmaker
from shared.settings import NurtureSettings
from tests.helpers import eventually
from tests.services.forms.helpers import SECRET, forms_stack, link_in
from tests.smtp import SmtpSink

NO_QUIET_HOURS = SendPolicy(quiet_start=time(0, 0), quiet_end=time(0, 0), cap=timedelta(hours=16))


@asynccontextmanager
async def scheduler(settings_kwargs: dict[str, Any], sink: SmtpSink) -> AsyncIterator[Any]:
    settings = NurtureSettings(**settings_kwargs, secret_key=SECRET, smtp_host=sink.host, smtp_port=sink.port)
    engine = make_engine(settings.database_url, pool_size=2)
    maker = make_sessionmaker(engine)
    loop = asyncio.create_task(
        scheduler_loop(
            Scheduler(maker, SequenceMessenger(settings, maker, make_mailer(settings)), policy=NO_QUIET_HOURS),
            poll_seconds=0.05,
        )
    )
    try:
        yield maker
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        await engine.dispose()


async def marketing_sequence(maker: Any, name: str, trigger: str) -> uuid.UUID:
    async with maker() as session, session.begin():
        template = await templates.add_template(
            session, name=f"{name}-mail", description="", kind="marketing", topic="news",
            content=TemplateContent(
                subject=f"{name}: our news", html="<p>News</p><a href='{{ unsubscribe_url }}'>Unsubscribe</a>",
                text=None,
            ),
            sample_extra=None, note="test",
        )  # fmt: skip
        assert template is not None
        definition = Definition.model_validate(
            {
                "trigger": {"kind": "event", "event": trigger},
                "steps": [{"id": "mail", "type": "send_email", "template_id": str(template.id)}],
            }
        )
        sequence_id = await queries.create(
            session, name=name, description="", message_class="marketing", topic="news", exempt=True,
            definition=definition,
        )  # fmt: skip
        assert sequence_id is not None
        await queries.set_status(session, sequence_id, "active")
    return sequence_id


async def test_an_unconfirmed_contact_gets_no_marketing_and_the_form_sequence_starts_on_confirmation(
    settings_kwargs: dict[str, Any], smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with forms_stack(settings_kwargs, smtp_sink, monkeypatch) as f, scheduler(settings_kwargs, smtp_sink) as m:
        eager = await marketing_sequence(m, "eager", "Form Submitted")
        welcome = await marketing_sequence(m, "welcome", "Never Sent")
        form = await f.create(sequence_id=str(welcome))
        to = smtp_sink.address("unconfirmed")
        answer = await f.post(form["id"], {"fs_token": await f.token(form["id"]), "email": to, "consent": "yes"})
        assert answer.status_code == 200, answer.text

        async def skipped() -> str | None:
            reason: str | None = await f.scalar(
                "SELECT l.detail->>'reason' FROM enrollment_log l JOIN enrollments e ON e.id = l.enrollment_id "
                "WHERE e.sequence_id = :s AND l.action = 'skipped'",
                s=eager,
            )
            return reason

        # The submission enrolled the lead in the eager sequence, whose email consent refused.
        assert "no-consent" in await eventually(skipped, timeout=30, what="the eager step refused")
        (confirmation,) = await smtp_sink.wait_for(to)
        assert confirmation.message["Subject"] == "Please confirm your subscription"

        confirmed = await f.client.post(link_in(confirmation.message))
        assert confirmed.status_code == 200, confirmed.text
        _, news = await smtp_sink.wait_for(to, 2, timeout=30)
        assert news.message["Subject"] == "welcome: our news"
        assert news.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        enrolled = await f.scalar("SELECT count(*) FROM enrollments WHERE sequence_id = :s", s=welcome)
        assert enrolled == 1
        assert [r.message["Subject"] for r in smtp_sink.received(to)] == [
            "Please confirm your subscription",
            "welcome: our news",
        ]
