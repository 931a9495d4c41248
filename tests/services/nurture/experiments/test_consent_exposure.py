"""A marketing A/B step that consent skips exposes nobody: the lead is neither sent to nor counted."""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from services.nurture.experiments import repository
from services.nurture.sequences import queries
from services.nurture.sequences.definition import Definition
from services.nurture.templates import repository as templates
from services.nurture.templates.service import TemplateContent
from tests.helpers import eventually
from tests.services.nurture.sequences.test_sequence_flow import ev, nurture_stack
from tests.smtp import SmtpSink

NOT_USED = {
    "trigger": {"kind": "event", "event": "Never Sent"},
    "steps": [{"id": "x", "type": "send_email", "template_id": "set below"}],
}


async def test_a_lead_without_consent_is_not_exposed_to_a_marketing_ab_send(
    settings_kwargs: dict[str, Any], smtp_sink: SmtpSink
) -> None:
    async with nurture_stack(settings_kwargs, smtp_sink, NOT_USED) as n:
        async with n.e.sessionmaker() as session, session.begin():
            ids = []
            for key in ("a", "b"):
                content = TemplateContent(subject=f"Promo {key}", html=f"<p>Promo {key}</p>", text=None)
                template = await templates.add_template(
                    session, name=f"promo-{key}", description="", kind="marketing", topic=None, content=content,
                    sample_extra={}, note="test",
                )  # fmt: skip
                assert template is not None
                ids.append(str(template.id))
            variants = [{"key": "a", "template_id": ids[0]}, {"key": "b", "template_id": ids[1]}]
            definition = {
                "trigger": {"kind": "event", "event": "Promo Requested"},
                "steps": [{"id": "promo", "type": "send_email", "template_id": ids[0], "variants": variants}],
            }
            sequence = await queries.create(
                session, name="promo", description="", message_class="marketing", topic=None, exempt=True,
                definition=Definition.model_validate(definition),
            )  # fmt: skip
            assert sequence is not None
            await queries.set_status(session, sequence, "active")
            experiment = await repository.create(
                session,
                {"id": uuid.uuid4(), "name": "promo", "sequence_id": sequence, "step_id": "promo", "kind": "send",
                 "variants": orjson.dumps([{**v, "weight": 1.0} for v in variants]).decode(), "metric": "open",
                 "goal_event": None, "window_seconds": 86400, "alpha": 0.05, "min_sample": 100,
                 "auto_winner": False},
            )  # fmt: skip
            assert experiment is not None
        ann, bob = smtp_sink.address("ann"), smtp_sink.address("bob")
        await n.send(ev("ann", None, 0, "identify", traits={"email": ann}), ev("bob", None, 0, "identify",
                                                                               traits={"email": bob}))  # fmt: skip
        await n.subscribe("ann")  # bob never consented to marketing mail
        await n.send(ev("ann", "Promo Requested", 1), ev("bob", "Promo Requested", 1))
        [mail] = await smtp_sink.wait_for(ann, 1, timeout=30)
        assert mail.message["Subject"] in ("Promo a", "Promo b")
        skipped = "SELECT count(*) FROM enrollment_log WHERE action = 'skipped'"
        assert await eventually(lambda: n.e.scalar(skipped), what="bob's send skipped") == 1
        assert smtp_sink.received(bob) == []
        rows = await n.e.scalar(
            "SELECT string_agg(l.user_id || ':' || x.variant, ',') FROM experiment_assignments x "
            "JOIN leads l USING (lead_id)"
        )
        assert rows == f"ann:{mail.message['Subject'][-1]}"  # only ann was exposed, to what she got
        async with n.e.sessionmaker() as session:
            arms = await repository.outcomes(session, experiment)
        assert sum(arm.n for arm in arms) == 1
