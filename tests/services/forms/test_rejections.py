"""Every way a submission is refused, each a clear 4xx: in the re-rendered page next to the field (values
kept, escaped) or as JSON when asked; a refused submission stores nothing and mails nothing."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.forms.service import FORM_SALT
from shared.tokens import sign
from tests.services.forms.helpers import SECRET, Forms, forms_stack
from tests.smtp import SmtpSink


def values(token: str, email: str, **extra: str) -> dict[str, str]:
    return {"fs_token": token, "email": email, "consent": "yes", "website": ""} | extra


async def stored(f: Forms, form_id: str) -> int:
    count: int = await f.scalar("SELECT count(*) FROM form_submissions WHERE form_id = :f", f=uuid.UUID(form_id))
    return count


async def test_invalid_fields_are_shown_next_to_each_field_with_the_values_kept_and_escaped(
    settings_kwargs: dict[str, Any], smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with forms_stack(settings_kwargs, smtp_sink, monkeypatch) as f:
        form = await f.create()
        token = await f.token(form["id"])
        evil = '<script>alert("x")</script>'
        answer = await f.post(
            form["id"],
            {"fs_token": token, "email": "not-an-address", "first_name": evil, "team": "9000", "code": "abc"},
        )
        assert answer.status_code == 422
        page = answer.text
        assert 'id="error-email">Please enter a valid email address.</p>' in page
        assert 'id="error-team">Please choose one of the options.</p>' in page
        assert 'id="error-code">Please match the requested format.</p>' in page
        assert 'id="error-consent">Please tick the box to agree.</p>' in page
        assert 'id="error-first_name"' not in page
        assert evil not in page and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
        assert 'value="not-an-address"' in page
        # The page carries a fresh token: correcting the fields and sending again works.
        fixed = await f.post(form["id"], values(f.token_in(page), smtp_sink.address("fixed")))
        assert fixed.status_code == 200, fixed.text
        # A JSON client gets the same errors as JSON.
        as_json = await f.client.post(
            f"{f.base}/forms/{form['id']}", json={"fs_token": await f.token(form["id"]), "email": "x"}
        )
        assert as_json.status_code == 422
        assert as_json.json()["errors"]["email"] == "Please enter a valid email address."
        assert await stored(f, form["id"]) == 1


async def test_a_filled_honeypot_is_refused_and_nothing_is_stored_or_sent(
    settings_kwargs: dict[str, Any], smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with forms_stack(settings_kwargs, smtp_sink, monkeypatch) as f:
        form = await f.create()
        to = smtp_sink.address("bot")
        before = await honeypot_count(f)
        answer = await f.post(form["id"], values(await f.token(form["id"]), to, website="http://spam.example"))
        assert answer.status_code == 400
        assert "refused as automated" in answer.text
        as_json = await f.post(
            form["id"], values(await f.token(form["id"]), to, website="x"), headers={"Accept": "application/json"}
        )
        assert as_json.status_code == 400 and as_json.json()["field"] == "website"
        assert await stored(f, form["id"]) == 0
        assert smtp_sink.received(to) == []
        assert await honeypot_count(f) == before + 2  # counted in /metrics


async def honeypot_count(f: Forms) -> float:
    metrics = (await f.client.get(f"{f.base}/metrics")).text
    line = 'funnelstream_form_submissions_total{outcome="honeypot"} '
    return next((float(x.removeprefix(line)) for x in metrics.splitlines() if x.startswith(line)), 0.0)


async def test_too_fast_expired_foreign_and_replayed_tokens_are_refused(
    settings_kwargs: dict[str, Any], smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with forms_stack(settings_kwargs, smtp_sink, monkeypatch, form_min_seconds=30, form_max_seconds=3600) as f:
        form, other = await f.create(), await f.create(name="Other")
        to = smtp_sink.address("tokens")
        json = {"Accept": "application/json"}

        fast = await f.post(form["id"], values(await f.token(form["id"]), to), headers=json)
        assert fast.status_code == 400 and "too fast" in fast.json()["error"]
        assert fast.json()["field"] == "fs_token"

        def token_from(seconds_ago: float, form_id: str, nonce: str) -> str:
            at = datetime.now(UTC) - timedelta(seconds=seconds_ago)
            return sign(SECRET, FORM_SALT, {"f": uuid.UUID(form_id).hex, "t": at.timestamp(), "n": nonce})

        old = await f.post(form["id"], values(token_from(7200, form["id"], "n-old"), to), headers=json)
        assert old.status_code == 400 and "expired" in old.json()["error"]
        foreign = await f.post(form["id"], values(token_from(60, other["id"], "n-other"), to), headers=json)
        assert foreign.status_code == 400 and "another form" in foreign.json()["error"]
        forged = await f.post(form["id"], values("x" + token_from(60, form["id"], "n-f"), to), headers=json)
        assert forged.status_code == 400 and "invalid" in forged.json()["error"]
        missing = await f.post(form["id"], {"email": to, "consent": "yes"})
        assert missing.status_code == 400 and 'id="form-error"' in missing.text

        good = token_from(60, form["id"], "n-once")
        first = await f.post(form["id"], values(good, to), headers=json)
        assert first.status_code == 200, first.text
        replay = await f.post(form["id"], values(good, smtp_sink.address("replay")), headers=json)
        assert replay.status_code == 409 and "already submitted" in replay.json()["error"]
        assert await stored(f, form["id"]) == 1
        assert len(await smtp_sink.wait_for(to)) == 1

        # The same token sent twice at once (a double click, two workers): one wins, the database refuses the other.
        twice = token_from(60, form["id"], "n-twice")
        both = await asyncio.gather(
            *(f.post(form["id"], values(twice, smtp_sink.address(f"twice{i}")), headers=json) for i in range(2))
        )
        assert sorted(a.status_code for a in both) == [200, 409]
        assert await stored(f, form["id"]) == 2


async def test_rate_limits_per_address_and_per_form_answer_429_with_retry_after(
    settings_kwargs: dict[str, Any], smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with forms_stack(settings_kwargs, smtp_sink, monkeypatch, form_ip_per_minute=2, form_per_minute=0) as f:
        form = await f.create()
        answers = [
            await f.post(form["id"], values(await f.token(form["id"]), smtp_sink.address("rate"))) for _ in range(3)
        ]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert int(answers[2].headers["retry-after"]) >= 1
        assert "too many submissions from this address" in answers[2].text
        assert await stored(f, form["id"]) == 2


async def test_per_form_rate_limit(
    settings_kwargs: dict[str, Any], smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with forms_stack(settings_kwargs, smtp_sink, monkeypatch, form_ip_per_minute=0, form_per_minute=1) as f:
        form, other = await f.create(), await f.create(name="Other")
        json = {"Accept": "application/json"}
        first = await f.post(form["id"], values(await f.token(form["id"]), smtp_sink.address("a")), headers=json)
        second = await f.post(form["id"], values(await f.token(form["id"]), smtp_sink.address("b")), headers=json)
        elsewhere = await f.post(other["id"], values(await f.token(other["id"]), smtp_sink.address("c")), headers=json)
        assert (first.status_code, second.status_code, elsewhere.status_code) == (200, 429, 200)
        assert "too many submissions to this form" in second.json()["error"]
        third = await f.create(name="Third")
        huge = await f.post(third["id"], {"email": "x" * 70_000}, headers=json)
        assert huge.status_code == 413 and "exceeds 64 KB" in huge.json()["error"]


async def test_an_unknown_or_archived_form_is_404(
    settings_kwargs: dict[str, Any], smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with forms_stack(settings_kwargs, smtp_sink, monkeypatch) as f:
        form = await f.create()
        token = await f.token(form["id"])
        archived = await f.client.post(f"{f.base}/api/forms/{form['id']}/archive", headers=f.stack.admin)
        assert archived.json()["status"] == "archived"
        assert (await f.client.get(f"{f.base}/forms/{form['id']}")).status_code == 404
        assert (await f.post(form["id"], values(token, smtp_sink.address("gone")))).status_code == 404
        assert (await f.client.get(f"{f.base}/forms/{uuid.uuid4()}")).status_code == 404
