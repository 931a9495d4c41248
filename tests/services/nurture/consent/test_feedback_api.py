"""Bounce and complaint feedback over real HTTP in each provider's format, with PostgreSQL and the broker."""

from __future__ import annotations

import base64
import logging
import time
import uuid
from typing import Any

import orjson
import pytest

from shared.signing import sign
from tests.services.nurture.consent.samples import (
    SendGridSigner,
    postmark_bounce,
    postmark_complaint,
    sendgrid_events,
    ses_bounce,
    ses_complaint,
    sns_envelope,
)
from tests.services.nurture.consent.stack import ConsentStack, consent_stack

CONTACTS = (
    "email,user_id,consent,consent_text\n"
    "ann@example.com,u-ann,subscribed,Newsletter box\n"
    "bo@example.com,u-bo,subscribed,Newsletter box\n"
)


async def with_contacts(cs: ConsentStack) -> dict[str, uuid.UUID]:
    r = await cs.import_csv("/api/contacts/import", CONTACTS)
    assert r.status_code == 200 and r.json()["accepted"] == 2, r.text
    return {user: uuid.UUID((await cs.consent(user))["lead_id"]) for user in ("u-ann", "u-bo")}


async def feedback_rows(cs: ConsentStack, email: str) -> list[str]:
    async with cs.maker() as session:
        from sqlalchemy import text

        rows = await session.execute(
            text("SELECT kind || ':' || coalesce(bounce_type, '-') FROM email_feedback WHERE email = :e ORDER BY id"),
            {"e": email},
        )
        return [r[0] for r in rows]


async def test_our_signed_format_bounces_hard_and_suppresses_unknown_addresses(settings_kwargs: dict[str, Any]) -> None:
    async with consent_stack(settings_kwargs, consumers=()) as cs:
        leads = await with_contacts(cs)
        source, secret = await cs.source_with_secret()
        body = orjson.dumps(
            [
                {"email": "ann@example.com", "type": "bounce", "bounce_type": "hard", "message_id": "m-1"},
                {"email": "stranger@example.com", "type": "complaint", "message_id": "m-2"},
                {"email": "bo@example.com", "type": "bounce", "bounce_type": "soft", "message_id": "m-3"},
            ]
        )
        url = f"{cs.base}/v1/email-feedback?source={source}"
        for expected_new in (3, 0):  # a redelivery changes nothing
            headers = {
                "Content-Type": "application/json",
                "FunnelStream-Signature": sign(secret, body, int(time.time())),
            }
            r = await cs.client.post(url, content=body, headers=headers)
            assert r.status_code == 200, r.text
            assert r.json() == {"received": 3, "new": expected_new, "events": 1}
        assert (await cs.consent("u-ann"))["effective"] == {"*": "bounced"}
        assert (await cs.can_send(leads["u-ann"], None, "transactional")).reason == "bounced"
        assert (await cs.can_send(None, "Stranger@example.com", "transactional")).reason == "complained"
        assert (await cs.consent("u-bo"))["effective"] == {"*": "subscribed"}  # soft: recorded only
        assert await feedback_rows(cs, "bo@example.com") == ["bounce:soft"]
        assert (await cs.can_send(leads["u-bo"], None, "marketing")).allowed

        wrong = sign("whsec_wrong", body, int(time.time()))
        r = await cs.client.post(url, content=body, headers={"FunnelStream-Signature": wrong})
        assert r.status_code == 401


async def test_ses_through_sns_bounce_complaint_and_a_logged_subscription_confirmation(
    settings_kwargs: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    # Amazon's certificate cannot be fetched here: SNS signatures are checked in test_feedback.py.
    async with consent_stack(settings_kwargs, consumers=(), sns_verify_signatures=False) as cs:
        leads = await with_contacts(cs)
        source, secret = await cs.source_with_secret()
        url = f"{cs.base}/v1/email-feedback/ses"
        params = {"source": source, "token": secret}
        plain = {"Content-Type": "text/plain; charset=UTF-8"}  # what SNS sends

        with caplog.at_level(logging.WARNING):
            confirm = await cs.client.post(
                url, params=params, content=orjson.dumps(sns_envelope(None, "SubscriptionConfirmation")), headers=plain
            )
        assert confirm.status_code == 200 and "SubscribeURL" in confirm.json()["note"]
        assert "Action=ConfirmSubscription" in caplog.text

        for _ in range(2):
            bounced = await cs.client.post(
                url, params=params, content=orjson.dumps(sns_envelope(ses_bounce("ann@example.com"))), headers=plain
            )
            assert bounced.status_code == 200, bounced.text
        complained = await cs.client.post(
            url, params=params, content=orjson.dumps(sns_envelope(ses_complaint("bo@example.com"))), headers=plain
        )
        assert complained.json() == {"received": 1, "new": 1, "events": 1}
        assert (await cs.can_send(leads["u-ann"], None, "transactional")).reason == "bounced"
        assert (await cs.can_send(leads["u-bo"], None, "marketing")).reason == "complained"
        assert await feedback_rows(cs, "ann@example.com") == ["bounce:hard"]

        wrong = await cs.client.post(
            url, params={**params, "token": "nope"}, content=orjson.dumps(sns_envelope(ses_bounce("x@y.io")))
        )
        assert wrong.status_code == 401


async def test_ses_refuses_a_message_whose_certificate_is_not_amazons(settings_kwargs: dict[str, Any]) -> None:
    async with consent_stack(settings_kwargs, consumers=()) as cs:
        source, secret = await cs.source_with_secret()
        forged = {**sns_envelope(ses_bounce("victim@example.com")), "SigningCertURL": "https://evil.example/cert.pem"}
        r = await cs.client.post(
            f"{cs.base}/v1/email-feedback/ses", params={"source": source, "token": secret}, content=orjson.dumps(forged)
        )
        assert r.status_code == 401 and "SigningCertURL" in r.json()["error"]
        assert (await cs.can_send(None, "victim@example.com", "transactional")).allowed


async def test_sendgrid_signed_events(settings_kwargs: dict[str, Any]) -> None:
    signer = SendGridSigner()
    async with consent_stack(settings_kwargs, consumers=(), sendgrid_verification_key=signer.public_key) as cs:
        leads = await with_contacts(cs)
        source, secret = await cs.source_with_secret()
        url = f"{cs.base}/v1/email-feedback/sendgrid"
        params = {"source": source, "token": secret}
        body = orjson.dumps(sendgrid_events("ann@example.com"))

        unsigned = await cs.client.post(url, params=params, content=body)
        assert unsigned.status_code == 401
        r = await cs.client.post(url, params=params, content=body, headers=signer.headers(body))
        assert r.status_code == 200, r.text
        assert r.json() == {"received": 3, "new": 3, "events": 2}
        assert await feedback_rows(cs, "ann@example.com") == ["bounce:soft", "bounce:hard", "complaint:-"]
        # The complaint came last: the lead is complained, and nothing at all goes to the address.
        assert (await cs.consent("u-ann"))["effective"] == {"*": "complained"}
        assert (await cs.can_send(leads["u-ann"], None, "transactional")).reason == "complained"


async def test_postmark_with_basic_credentials(settings_kwargs: dict[str, Any]) -> None:
    async with consent_stack(settings_kwargs, consumers=()) as cs:
        leads = await with_contacts(cs)
        source, secret = await cs.source_with_secret()
        url = f"{cs.base}/v1/email-feedback/postmark"
        good = {"Authorization": "Basic " + base64.b64encode(f"{source}:{secret}".encode()).decode()}
        bad = {"Authorization": "Basic " + base64.b64encode(f"{source}:wrong".encode()).decode()}

        assert (await cs.client.post(url, json=postmark_bounce("ann@example.com"), headers=bad)).status_code == 401
        assert (await cs.client.post(url, json=postmark_bounce("ann@example.com"))).status_code == 401
        for payload in (postmark_bounce("ann@example.com"), postmark_complaint("bo@example.com")):
            r = await cs.client.post(url, json=payload, headers=good)
            assert r.status_code == 200 and r.json()["new"] == 1, r.text
        assert (await cs.can_send(leads["u-ann"], None, "transactional")).reason == "bounced"
        assert (await cs.consent("u-bo"))["effective"] == {"*": "complained"}
        suppressed = (await cs.consent("u-bo"))["suppressions"]
        assert [(s["email"], s["reason"], s["source"]) for s in suppressed] == [
            ("bo@example.com", "complained", "postmark")
        ]
