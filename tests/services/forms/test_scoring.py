"""Under the shipped rules (services/scoring/rules.py DEFAULT_RULES) a form submission is scored and is the
B2B visitor → lead conversion in the stage history, unchanged rules: the email makes the visitor known."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from services.scoring import rulebook
from services.scoring.rules import DEFAULT_RULES, RuleSet
from shared.db import make_engine, make_sessionmaker
from tests.helpers import basic, eventually
from tests.services.forms.helpers import forms_stack
from tests.smtp import SmtpSink


async def test_a_submission_scores_by_the_default_rules_and_converts_the_visitor_to_a_lead(
    settings_kwargs: dict[str, Any], smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(settings_kwargs["database_url"], pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            row = await rulebook.add(session, RuleSet.model_validate(DEFAULT_RULES), "the shipped rules")
            await rulebook.activate(session, row.version)
    finally:
        await engine.dispose()
    async with forms_stack(settings_kwargs, smtp_sink, monkeypatch) as f:
        write_key = await f.stack.create_source(f.client)
        form = await f.create()
        aid = f"aid-{uuid.uuid4().hex[:8]}"
        viewed = await f.client.post(f"{f.base}/v1/page", json={"anonymousId": aid}, headers=basic(write_key))
        assert viewed.status_code == 200
        to = smtp_sink.address("scored")
        token = await f.token(form["id"], aid=aid)
        values = {"fs_token": token, "fs_aid": aid, "email": to, "job_title": "VP Sales", "consent": "yes"}
        assert (await f.post(form["id"], values)).status_code == 200

        async def converted() -> dict[str, Any] | None:
            lead = await f.lead(to)
            return lead if lead["stages"].get("b2b") == "lead" else None

        lead = await eventually(converted, what="visitor → lead")
        lead_id = uuid.UUID(lead["lead_id"])
        points = await eventually(
            lambda: f.scalar(
                "SELECT sum(points) FROM score_ledger WHERE lead_id = :l AND rule_id = 'form-submitted'", l=lead_id
            ),
            what="the form's points",
        )
        assert points == 10
        assert await f.scalar(
            "SELECT count(*) FROM score_ledger WHERE lead_id = :l AND rule_id = 'senior-title'", l=lead_id
        )
        history = await f.scalar(
            "SELECT array_agg(coalesce(from_stage, '-') || '>' || to_stage ORDER BY id) FROM stage_history "
            "WHERE lead_id = :l AND model = 'b2b'",
            l=lead_id,
        )
        assert "visitor>lead" in history
