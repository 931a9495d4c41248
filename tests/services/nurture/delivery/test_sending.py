"""Sending through a real SMTP server with the durable claim in a real PostgreSQL: never twice, never lost."""

from __future__ import annotations

import base64
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import dkim  # type: ignore[import-untyped]
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from services.nurture.delivery import repository
from services.nurture.delivery.compose import prepare
from services.nurture.delivery.mail_settings import resolve
from services.nurture.delivery.mailer import MailboxMailer, SmtpMailer, dev_mail_overrides, make_mailer
from services.nurture.delivery.service import SendRequest, record_skipped, send_many, send_once
from services.nurture.delivery.sweeper import sweep_unknown
from shared.tokens import read_click_token, read_open_token
from tests.services.nurture.delivery.conftest import SECRET, Delivery, nurture_settings

UNSUBSCRIBE = "https://t.acme.example/u/tok123"
HTML = (
    "<html><body><h1>Hello Ann</h1>"
    '<p>Read <a href="https://acme.example/guide?x=1&amp;y=2">the guide</a> or '
    "<a href='mailto:help@acme.example'>write to us</a>.</p>"
    f'<p><a href="{UNSUBSCRIBE}">Unsubscribe</a></p></body></html>'
)


def request(to: str, key: str | None = None, **overrides: Any) -> SendRequest:
    values: dict[str, Any] = {
        "send_key": key or f"{uuid.uuid4()}:0",
        "lead_id": uuid.uuid4(),
        "to_email": to,
        "kind": "marketing",
        "subject": "Your guide to Acme",
        "html": HTML,
        "text": "Hello Ann\n\nRead the guide: https://acme.example/guide?x=1&y=2\n",
        "user_id": "user-42",
        "unsubscribe_url": UNSUBSCRIBE,
        "template_id": "welcome",
        "template_version": 3,
        **overrides,
    }
    return SendRequest(**values)


def html_part(data: bytes) -> str:
    from tests.smtp import Received

    message = Received("", [], data).message
    part = message.get_body(("html",))
    assert part is not None
    content: str = part.get_content()
    return content


async def test_email_arrives_multipart_with_headers_tracked_links_and_pixel(delivery: Delivery) -> None:
    to = delivery.sink.address("ann")
    outcome = await send_once(delivery.sessionmaker, delivery.mailer, delivery.settings, request(to))
    assert outcome.status == "sent" and not outcome.duplicate and outcome.attempts == 1

    [got] = await delivery.sink.wait_for(to)
    message = got.message
    assert got.mail_from == "news@acme.example" and got.rcpt_tos == [to]
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["Message-ID"] == outcome.message_id
    assert re.fullmatch(r"<[0-9a-f-]{36}@acme\.example>", outcome.message_id or "")
    assert message["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["From"] == "Acme News <news@acme.example>" and message["Date"]

    html = html_part(got.data)
    clicks = re.findall(r'href="https://t\.acme\.example/t/c/([^"]+)"', html)
    assert len(clicks) == 1
    click = read_click_token(SECRET, clicks[0])
    assert click.url == "https://acme.example/guide?x=1&y=2"
    assert click.user_id == "user-42" and click.message_id == outcome.message_id
    assert 'href="mailto:help@acme.example"' in html.replace("'", '"')
    assert f'href="{UNSUBSCRIBE}"' in html  # never rewritten: it must work without the tracking edge
    [pixel] = re.findall(r'src="https://t\.acme\.example/t/o/([^"]+)\.gif"', html)
    assert read_open_token(SECRET, pixel).message_id == outcome.message_id

    row = await delivery.send_row(outcome.send_id)
    assert row["status"] == "sent" and row["sent_at"] is not None and row["raw_message"] is None
    assert row["template_id"] == "welcome" and row["template_version"] == 3 and row["kind"] == "marketing"


async def test_dkim_signature_of_the_delivered_email_verifies(delivery: Delivery) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    settings = nurture_settings(
        delivery.settings.database_url,
        delivery.sink,
        dkim_domain="acme.example",
        dkim_selector="fs1",
        dkim_private_key=pem,
    )
    to = delivery.sink.address("dkim")
    outcome = await send_once(delivery.sessionmaker, delivery.mailer, settings, request(to))
    assert outcome.status == "sent"
    [got] = await delivery.sink.wait_for(to)
    signature = got.message["DKIM-Signature"]
    assert "d=acme.example" in signature and "s=fs1" in signature and "list-unsubscribe-post" in signature

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"fs1._domainkey.acme.example."
        return record

    assert dkim.verify(got.data, dnsfunc=dns)
    assert not dkim.verify(got.data.replace(b"Your guide", b"Your gu1de"), dnsfunc=dns)


async def test_the_same_send_key_twice_delivers_one_email(delivery: Delivery) -> None:
    to = delivery.sink.address("twice")
    first = await send_once(delivery.sessionmaker, delivery.mailer, delivery.settings, request(to, "enr-1:2"))
    second = await send_once(delivery.sessionmaker, delivery.mailer, delivery.settings, request(to, "enr-1:2"))
    assert first.status == "sent" and not first.duplicate
    assert second.duplicate and second.status == "sent" and second.send_id == first.send_id
    await delivery.sink.wait_for(to)
    assert len(delivery.sink.received(to)) == 1
    assert await delivery.count("send_key = 'enr-1:2'") == 1


async def test_a_claim_whose_process_died_becomes_unknown_and_is_never_resent(delivery: Delivery) -> None:
    to = delivery.sink.address("crash")
    req = request(to, "enr-crash:0")
    now = datetime.now(UTC)
    # What send_once does up to the SMTP call, then the process "dies": the claim is committed, no outcome.
    mail = resolve(None, delivery.settings)
    lease_until = now + timedelta(seconds=delivery.settings.send_lease_seconds)
    prepared = prepare(req, mail, delivery.settings, now, lease_until)
    async with delivery.sessionmaker() as session, session.begin():
        ids = await repository.claim(session, [prepared.claim])
    send_id = ids["enr-crash:0"]

    assert await sweep_unknown(delivery.sessionmaker, now + timedelta(seconds=60)) == 0  # lease still running
    again = await send_once(delivery.sessionmaker, delivery.mailer, delivery.settings, req)
    assert again.duplicate and again.status == "claimed"

    assert await sweep_unknown(delivery.sessionmaker, lease_until + timedelta(seconds=1)) == 1
    row = await delivery.send_row(send_id)
    assert row["status"] == "unknown" and "lease expired" in row["error"] and row["raw_message"] is not None
    later = await send_once(delivery.sessionmaker, delivery.mailer, delivery.settings, req)
    assert later.duplicate and later.status == "unknown"
    assert delivery.sink.received(to) == []


async def test_a_refused_recipient_is_retried_and_delivered_once(delivery: Delivery) -> None:
    to = delivery.sink.address("grey")
    delivery.sink.answer_rcpt(to, "451 4.7.1 greylisted, try again later", "421 4.3.2 busy")
    outcome = await send_once(delivery.sessionmaker, delivery.mailer, delivery.settings, request(to))
    assert outcome.status == "sent" and outcome.attempts == 3
    await delivery.sink.wait_for(to)
    assert len(delivery.sink.received(to)) == 1
    assert (await delivery.send_row(outcome.send_id))["attempts"] == 3


async def test_a_permanent_rejection_fails_with_the_servers_reason(delivery: Delivery) -> None:
    to = delivery.sink.address("gone")
    delivery.sink.answer_rcpt(to, "550 5.1.1 no such user here")
    outcome = await send_once(delivery.sessionmaker, delivery.mailer, delivery.settings, request(to))
    assert outcome.status == "failed" and outcome.attempts == 1
    row = await delivery.send_row(outcome.send_id)
    assert row["status"] == "failed" and "550 5.1.1 no such user here" in row["error"] and "RCPT" in row["error"]
    assert row["raw_message"] is not None  # kept, so an operator can resend it
    # The connection was reset, not wasted: the next email goes out over the pool as usual.
    other = delivery.sink.address("next")
    assert (await send_once(delivery.sessionmaker, delivery.mailer, delivery.settings, request(other))).status == "sent"


async def test_a_connection_lost_after_the_message_was_sent_is_unknown_and_not_retried(delivery: Delivery) -> None:
    to = delivery.sink.address("cut")
    delivery.sink.drop_after_data(to)
    outcome = await send_once(delivery.sessionmaker, delivery.mailer, delivery.settings, request(to))
    assert outcome.status == "unknown" and outcome.attempts == 1
    row = await delivery.send_row(outcome.send_id)
    assert row["status"] == "unknown" and "DATA" in row["error"] and row["lease_until"] is None
    assert delivery.sink.received(to) == []


async def test_send_many_delivers_fifty_distinct_emails_and_skips_keys_seen_before(delivery: Delivery) -> None:
    addresses = [delivery.sink.address(f"bulk{i}") for i in range(50)]
    requests = [request(to, f"bulk-{i}:0", user_id=f"user-{i}") for i, to in enumerate(addresses)]
    outcomes = await send_many(delivery.sessionmaker, delivery.mailer, delivery.settings, requests)
    assert [o.send_key for o in outcomes] == [r.send_key for r in requests]
    assert all(o.status == "sent" and not o.duplicate for o in outcomes)
    assert len({o.message_id for o in outcomes}) == 50
    for to in addresses:
        [got] = await delivery.sink.wait_for(to)
        assert got.message["To"] == to

    again = await send_many(delivery.sessionmaker, delivery.mailer, delivery.settings, [*requests[:3], requests[0]])
    assert all(o.duplicate and o.status == "sent" for o in again)
    assert all(len(delivery.sink.received(to)) == 1 for to in addresses)
    assert await delivery.count("send_key LIKE 'bulk-%' AND status = 'sent'") == 50


async def test_a_duplicate_key_inside_one_batch_is_sent_once(delivery: Delivery) -> None:
    to = delivery.sink.address("dup")
    req = request(to, "enr-dup:1")
    first, second = await send_many(delivery.sessionmaker, delivery.mailer, delivery.settings, [req, req])
    assert first.status == "sent" and not first.duplicate
    assert second.duplicate and second.send_id == first.send_id
    await delivery.sink.wait_for(to)
    assert len(delivery.sink.received(to)) == 1


async def test_an_unbuildable_message_is_recorded_as_failed(delivery: Delivery) -> None:
    outcome = await send_once(
        delivery.sessionmaker, delivery.mailer, delivery.settings, request("not an address", "enr-bad:0")
    )
    assert outcome.status == "failed" and "could not build the message" in (outcome.error or "")
    assert (await delivery.send_row(outcome.send_id))["status"] == "failed"


async def test_a_suppressed_step_is_accounted_for_and_never_sent_later(delivery: Delivery) -> None:
    to = delivery.sink.address("optout")
    async with delivery.sessionmaker() as session, session.begin():
        assert await record_skipped(session, "enr-9:1", "unsubscribed", to_email=to, lead_id=uuid.uuid4())
    async with delivery.sessionmaker() as session, session.begin():
        assert not await record_skipped(session, "enr-9:1", "unsubscribed")
    outcome = await send_once(delivery.sessionmaker, delivery.mailer, delivery.settings, request(to, "enr-9:1"))
    assert outcome.duplicate and outcome.status == "suppressed" and outcome.error == "unsubscribed"
    assert delivery.sink.received(to) == []


async def test_the_mailbox_mailer_writes_one_eml_file_per_email(delivery: Delivery, tmp_path: Any) -> None:
    folder = tmp_path / "mailbox"
    mailer = MailboxMailer(folder)
    requests = [request(f"box{i}@inbox.example", f"box-{i}:0") for i in range(3)]
    outcomes = await send_many(delivery.sessionmaker, mailer, delivery.settings, requests)
    assert [o.status for o in outcomes] == ["sent"] * 3
    files = sorted(folder.glob("*.eml"))
    assert len(files) == 3 and not list(folder.glob(".*"))
    assert {f.read_bytes().split(b"Message-ID: ")[1].split(b"\r\n")[0].decode() for f in files} == {
        o.message_id for o in outcomes
    }


def test_dev_writes_to_the_mailbox_unless_smtp_is_configured(delivery: Delivery, tmp_path: Any) -> None:
    overrides = dev_mail_overrides(tmp_path, {})
    assert overrides == {"mailbox_dir": tmp_path / "mailbox"}
    dev = nurture_settings(delivery.settings.database_url, delivery.sink, **overrides)
    assert isinstance(make_mailer(dev), MailboxMailer)
    assert dev_mail_overrides(tmp_path, {"FUNNELSTREAM_SMTP_HOST": "mail.example"}) == {}
    assert isinstance(make_mailer(delivery.settings), SmtpMailer)
