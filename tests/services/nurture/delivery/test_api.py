"""The delivery admin API over real HTTP: sends in doubt and operators' decisions, mail settings, the dev mailbox."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from services.nurture.delivery import repository
from services.nurture.delivery.compose import prepare
from services.nurture.delivery.mail_settings import resolve
from services.nurture.delivery.service import SendRequest, send_once
from services.nurture.delivery.sweeper import sweep_unknown
from tests.helpers import Stack, running_stack
from tests.services.nurture.delivery.conftest import SECRET, Delivery
from tests.smtp import SmtpSink


@asynccontextmanager
async def admin_api(
    settings_kwargs: dict[str, Any], sink: SmtpSink, monkeypatch: pytest.MonkeyPatch, **env: str
) -> AsyncIterator[tuple[Stack, httpx.AsyncClient]]:
    """The real app; `funnelstream api` reads the delivery settings from the environment, as here."""
    values = {
        "DATABASE_URL": settings_kwargs["database_url"],
        "KAFKA_BOOTSTRAP_SERVERS": settings_kwargs["kafka_bootstrap_servers"],
        "SECRET_KEY": SECRET,
        "SMTP_HOST": sink.host,
        "SMTP_PORT": str(sink.port),
        "SMTP_BACKOFF_SECONDS": "0.01",
        "MAIL_FROM": "Acme News <news@acme.example>",
        **env,
    }
    for name, value in values.items():
        monkeypatch.setenv(f"FUNNELSTREAM_{name}", value)
    async with running_stack(settings_kwargs, consumers=()) as stack, httpx.AsyncClient(timeout=30) as client:
        yield stack, client


async def unknown_send(delivery: Delivery, to: str, kind: str = "transactional") -> uuid.UUID:
    """A send whose process died mid-SMTP, as the sweeper leaves it."""
    now = datetime.now(UTC) - timedelta(hours=1)
    request = SendRequest(
        send_key=f"enr-{uuid.uuid4()}:0",
        lead_id=uuid.uuid4(),
        to_email=to,
        kind=kind,  # type: ignore[arg-type]
        subject="Your receipt",
        html="<p>Thanks</p>",
        text="Thanks",
        unsubscribe_url="https://t.acme.example/u/x",
        topic="news",
    )
    lease_until = now + timedelta(seconds=60)
    prepared = prepare(request, resolve(None, delivery.settings), delivery.settings, now, lease_until)
    async with delivery.sessionmaker() as session, session.begin():
        ids = await repository.claim(session, [prepared.claim])
    await sweep_unknown(delivery.sessionmaker, datetime.now(UTC))
    return ids[request.send_key]


async def test_an_unknown_send_is_listed_then_resent_once_by_an_operator(
    settings_kwargs: dict[str, Any], delivery: Delivery, monkeypatch: pytest.MonkeyPatch
) -> None:
    to = delivery.sink.address("doubt")
    send_id = await unknown_send(delivery, to)
    async with admin_api(settings_kwargs, delivery.sink, monkeypatch) as (stack, client):
        api = f"{stack.base_url}/api/sends"
        listed = (await client.get(api, params={"status": "unknown"}, headers=stack.admin)).json()["sends"]
        assert [s["id"] for s in listed] == [str(send_id)]
        assert listed[0]["message_id"] and "lease expired" in listed[0]["error"]

        first = await client.post(f"{api}/{send_id}/resend", headers=stack.admin)
        assert first.status_code == 200, first.text
        resent = first.json()
        assert resent["status"] == "sent" and not resent["duplicate"] and resent["send_key"] == f"resend:{send_id}"
        [got] = await delivery.sink.wait_for(to)
        assert got.message["Message-ID"] == listed[0]["message_id"]  # the same message, byte for byte

        again = (await client.post(f"{api}/{send_id}/resend", headers=stack.admin)).json()
        assert again["duplicate"] and again["id"] == resent["id"]
        old = (await client.get(f"{api}/{send_id}", headers=stack.admin)).json()
        assert old["status"] == "dropped" and old["note"] == f"resent by an operator as {resent['id']}"
        new = (await client.get(f"{api}/{resent['id']}", headers=stack.admin)).json()
        assert new["resend_of"] == str(send_id) and new["status"] == "sent"
        assert (await client.post(f"{api}/{send_id}/drop", headers=stack.admin)).status_code == 409
    assert len(delivery.sink.received(to)) == 1


async def test_a_marketing_resend_goes_through_consent_and_a_send_can_be_dropped(
    settings_kwargs: dict[str, Any], delivery: Delivery, monkeypatch: pytest.MonkeyPatch
) -> None:
    to = delivery.sink.address("optin")
    refused_id = await unknown_send(delivery, to, kind="marketing")
    dropped_id = await unknown_send(delivery, to, kind="marketing")
    async with admin_api(settings_kwargs, delivery.sink, monkeypatch) as (stack, client):
        api = f"{stack.base_url}/api/sends"
        # The app checks consent before a marketing resend: this lead never consented (nor exists).
        refused = await client.post(f"{api}/{refused_id}/resend", headers=stack.admin)
        assert refused.status_code == 200, refused.text
        assert refused.json()["status"] == "suppressed" and "resend refused" in refused.json()["error"]
        dropped = await client.post(
            f"{api}/{dropped_id}/drop", json={"reason": "sent per MTA log"}, headers=stack.admin
        )
        assert dropped.status_code == 200
        assert (
            dropped.json()["status"] == "dropped"
            and dropped.json()["note"] == "dropped by an operator: sent per MTA log"
        )
        assert (await client.post(f"{api}/{uuid.uuid4()}/drop", headers=stack.admin)).status_code == 404
        mine = (await client.get(api, params={"lead": dropped.json()["lead_id"]}, headers=stack.admin)).json()
        assert [s["id"] for s in mine["sends"]] == [str(dropped_id)]
    assert delivery.sink.received(to) == []


def pem_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return pem.decode()


async def test_mail_settings_of_a_source_are_validated_and_used_by_its_emails(
    settings_kwargs: dict[str, Any], delivery: Delivery, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with admin_api(settings_kwargs, delivery.sink, monkeypatch) as (stack, client):
        created = await client.post(f"{stack.base_url}/api/sources", json={"name": "shop"}, headers=stack.admin)
        source_id = created.json()["id"]
        url = f"{stack.base_url}/api/sources/{source_id}/mail-settings"
        before = (await client.get(url, headers=stack.admin)).json()
        assert before["from_address"] is None and before["effective"]["from_address"] == "Acme News <news@acme.example>"

        for body, field in [
            ({"from_address": "shop at example"}, "from_address"),
            ({"reply_to": "a@example.com, b@example.com"}, "reply_to"),
            ({"default_timezone": "Mars/Olympus_Mons"}, "default_timezone"),
            ({"dkim_domain": "shop.example"}, "dkim_selector"),
            ({"dkim_domain": "shop.example", "dkim_selector": "fs1", "dkim_private_key": "nope"}, "dkim_private_key"),
        ]:
            bad = await client.put(url, json=body, headers=stack.admin)
            assert bad.status_code == 400 and bad.json()["field"] == field, (body, bad.text)

        good = {
            "from_address": "Shop <hello@shop.example>",
            "reply_to": "help@shop.example",
            "dkim_domain": "shop.example",
            "dkim_selector": "fs1",
            "dkim_private_key": pem_key(),
            "default_timezone": "Europe/Berlin",
        }
        stored = await client.put(url, json=good, headers=stack.admin)
        assert stored.status_code == 200, stored.text
        out = stored.json()
        assert out["has_dkim_private_key"] and "dkim_private_key" not in out
        assert out["effective"]["sender_domain"] == "shop.example" and out["effective"]["dkim_selector"] == "fs1"
        # Leaving the key out keeps it; the other fields are replaced.
        without_key = {k: v for k, v in good.items() if k != "dkim_private_key"} | {"reply_to": "care@shop.example"}
        kept = await client.put(url, json=without_key, headers=stack.admin)
        assert kept.status_code == 200 and kept.json()["has_dkim_private_key"], kept.text
        assert kept.json()["reply_to"] == "care@shop.example"
        no_dkim = without_key | {"dkim_domain": None, "dkim_selector": None, "dkim_private_key": None}
        plain = await client.put(url, json=no_dkim, headers=stack.admin)
        assert plain.status_code == 200 and not plain.json()["has_dkim_private_key"]
        assert plain.json()["effective"]["dkim_domain"] is None
        missing = await client.get(f"{stack.base_url}/api/sources/{uuid.uuid4()}/mail-settings", headers=stack.admin)
        assert missing.status_code == 404

        to = delivery.sink.address("shopper")
        sent = await client.post(
            f"{stack.base_url}/api/sends/test", json={"to": to, "source_id": source_id}, headers=stack.admin
        )
        assert sent.status_code == 200 and sent.json()["status"] == "sent", sent.text
    [got] = await delivery.sink.wait_for(to)
    assert got.mail_from == "hello@shop.example" and got.message["From"] == "Shop <hello@shop.example>"
    assert got.message["Reply-To"] == "care@shop.example" and got.message["DKIM-Signature"] is None
    assert got.message["Message-ID"].endswith("@shop.example>") and got.message["List-Unsubscribe"] is None

    outcome = await send_once(
        delivery.sessionmaker,
        delivery.mailer,
        delivery.settings,
        SendRequest(
            send_key="shop:1",
            lead_id=None,
            to_email=to,
            kind="transactional",
            subject="Order",
            html="<p>o</p>",
            text="o",
            source_id=uuid.UUID(source_id),
        ),
    )
    assert outcome.status == "sent" and (outcome.message_id or "").endswith("@shop.example>")


async def test_the_dev_mailbox_lists_and_serves_what_was_sent(
    settings_kwargs: dict[str, Any], delivery: Delivery, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    folder = tmp_path / "mailbox"
    async with admin_api(settings_kwargs, delivery.sink, monkeypatch, MAILBOX_DIR=str(folder)) as (stack, client):
        api = f"{stack.base_url}/api"
        sent = await client.post(f"{api}/sends/test", json={"to": "dev@inbox.example"}, headers=stack.admin)
        assert sent.status_code == 200 and sent.json()["status"] == "sent"
        bad = await client.post(f"{api}/sends/test", json={"to": "nobody"}, headers=stack.admin)
        assert bad.status_code == 400 and bad.json()["field"] == "to"

        listing = (await client.get(f"{api}/mailbox", headers=stack.admin)).json()
        assert listing["folder"] == str(folder)
        [entry] = listing["messages"]
        assert entry["to"] == "dev@inbox.example" and entry["subject"].startswith("FunnelStream test email")
        assert entry["from"] == "Acme News <news@acme.example>" and entry["message_id"] == sent.json()["message_id"]
        raw = await client.get(f"{api}/mailbox/{entry['name']}", headers=stack.admin)
        assert raw.status_code == 200 and raw.headers["content-type"] == "message/rfc822"
        assert b"Message-ID: " + sent.json()["message_id"].encode() in raw.content
        for name in ["..%2F..%2Fetc%2Fpasswd", ".hidden.eml", "missing.eml"]:
            assert (await client.get(f"{api}/mailbox/{name}", headers=stack.admin)).status_code == 404
        assert (await client.get(f"{api}/mailbox")).status_code == 401
    assert delivery.sink.received("dev@inbox.example") == []
