"""Confirmation links in the edge cases: clicked before scoring wrote the lead, and after the unconfirmed
submission was forgotten."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from services.forms.optin import PENDING_DAYS
from services.forms.service import make_confirm_token
from shared.db import make_engine
from tests.services.forms.helpers import SECRET, definition, forms_stack, link_in
from tests.smtp import SmtpSink


async def test_a_click_before_the_lead_exists_is_a_503_and_records_nothing(
    settings_kwargs: dict[str, Any], smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with forms_stack(settings_kwargs, smtp_sink, monkeypatch, consumers=()) as f:  # no scoring running
        form = await f.create()
        to = smtp_sink.address("early")
        answer = await f.post(form["id"], {"fs_token": await f.token(form["id"]), "email": to, "consent": "yes"})
        assert answer.status_code == 200
        (confirmation,) = await smtp_sink.wait_for(to)
        early = await f.client.post(link_in(confirmation.message))
        assert early.status_code == 503 and early.headers["retry-after"] == "5"
        assert "try again in a few seconds" in early.text
        status = await f.scalar("SELECT status FROM form_submissions WHERE email = :e", e=to)
        assert status == "pending"
        assert await f.scalar("SELECT count(*) FROM subscriptions") == 0


async def test_unconfirmed_submissions_are_forgotten_after_the_pending_days_and_their_link_dies(
    settings_kwargs: dict[str, Any], smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with forms_stack(settings_kwargs, smtp_sink, monkeypatch) as f:
        form = await f.create()
        old_id, confirmed_id = uuid.uuid4(), uuid.uuid4()
        long_ago = datetime.now(UTC) - timedelta(days=PENDING_DAYS + 1)
        engine = make_engine(f.database_url, pool_size=1)
        try:
            async with engine.begin() as conn:
                for sub_id, status in ((old_id, "pending"), (confirmed_id, "confirmed")):
                    await conn.execute(
                        text(
                            "INSERT INTO form_submissions (id, form_id, form_version, token_nonce, email, "
                            "anonymous_id, values, consent_text, submitted_at, status) VALUES (:id, :f, 1, :n, "
                            "'old@x.example', "
                            "'a-old', '{}', 'Yes', :at, :status)"
                        ),
                        {"id": sub_id, "f": uuid.UUID(form["id"]), "n": sub_id.hex, "at": long_ago, "status": status},
                    )
        finally:
            await engine.dispose()
        stale = f"{f.base}/forms/confirm/{make_confirm_token(SECRET, old_id)}"
        assert (await f.client.get(stale)).status_code == 200  # still there before the next submission

        answer = await f.post(
            form["id"], {"fs_token": await f.token(form["id"]), "email": smtp_sink.address("new"), "consent": "yes"}
        )
        assert answer.status_code == 200
        assert await f.scalar("SELECT count(*) FROM form_submissions WHERE id = :i", i=old_id) == 0
        assert await f.scalar("SELECT count(*) FROM form_submissions WHERE id = :i", i=confirmed_id) == 1
        gone = await f.client.get(stale)
        assert gone.status_code == 404 and "not valid" in gone.text


async def test_confirming_joins_the_list_the_consent_text_was_shown_for_even_after_an_edit(
    settings_kwargs: dict[str, Any], smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with forms_stack(settings_kwargs, smtp_sink, monkeypatch) as f:
        form = await f.create(topic="news", consent_text="Send me the weekly news.")
        to = smtp_sink.address("edited")
        answer = await f.post(form["id"], {"fs_token": await f.token(form["id"]), "email": to, "consent": "yes"})
        assert answer.status_code == 200
        edit = {"name": "Offers", "definition": definition(topic="offers", consent_text="Send me offers.")}
        edited = await f.client.put(f"{f.base}/api/forms/{form['id']}", json=edit, headers=f.stack.admin)
        assert edited.json()["version"] == 2
        (confirmation,) = await smtp_sink.wait_for(to)
        await f.lead(to)
        assert (await f.client.post(link_in(confirmation.message))).status_code == 200
        (subscription,) = (await f.consent(to))["subscriptions"]
        assert (subscription["topic"], subscription["consent_text"]) == ("news", "Send me the weekly news.")
