"""From a send request to the message on the wire: addresses, tracking, headers, DKIM. Pure."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from services.nurture.delivery import repository
from services.nurture.delivery.mail_settings import MailSettings
from services.nurture.delivery.message import (
    Outgoing,
    check_address,
    compress,
    dkim_sign,
    new_message_id,
    render_message,
)
from services.nurture.delivery.tracking import add_tracking
from shared.settings import NurtureSettings

Kind = Literal["marketing", "transactional"]
MAX_KEY = 500


@dataclass(frozen=True)
class SendRequest:
    """One email to send at most once under `send_key` (e.g. f"{enrollment_id}:{step_index}").

    Links are tracked when `user_id` or `anonymous_id` names the lead. Marketing email needs
    `unsubscribe_url` (footer link and `List-Unsubscribe`); it is never rewritten for tracking."""

    send_key: str
    lead_id: uuid.UUID | None
    to_email: str
    kind: Kind
    subject: str
    html: str
    text: str
    template_id: str | None = None
    template_version: int | None = None
    source_id: uuid.UUID | None = None
    user_id: str | None = None
    anonymous_id: str | None = None
    extra_headers: Mapping[str, str] | None = None
    unsubscribe_url: str | None = None
    topic: str | None = None


def compose(
    request: SendRequest, mail: MailSettings, settings: NurtureSettings, message_id: str, now: datetime
) -> Outgoing:
    """The message for `request`: tracked links and open pixel, headers, DKIM when configured. Pure."""
    recipient = check_address(request.to_email)
    html = request.html
    if request.user_id or request.anonymous_id:
        html = add_tracking(
            html,
            secret_key=settings.secret_key.get_secret_value(),
            base_url=settings.public_base_url,
            message_id=message_id,
            user_id=request.user_id,
            anonymous_id=request.anonymous_id,
            sent_at=now,
            source_id=request.source_id,
            keep={request.unsubscribe_url} if request.unsubscribe_url else (),
        )
    data = render_message(
        subject=request.subject,
        html=html,
        text=request.text,
        to=request.to_email,
        from_=mail.from_address,
        reply_to=mail.reply_to,
        message_id=message_id,
        list_unsubscribe_url=request.unsubscribe_url,
        date=now,
        headers=request.extra_headers,
    )
    if mail.dkim is not None:
        data = dkim_sign(data, mail.dkim.selector, mail.dkim.domain, mail.dkim.private_key)
    return Outgoing(mail.sender, (recipient,), data)


def check_request(request: SendRequest) -> None:
    """Refuse requests no retry could fix (a caller's bug), before anything is claimed."""
    if not request.send_key or len(request.send_key) > MAX_KEY:
        raise ValueError(f"send_key must be 1 to {MAX_KEY} characters")
    if request.kind not in ("marketing", "transactional"):
        raise ValueError("kind must be marketing or transactional")
    if request.kind == "marketing" and not request.unsubscribe_url:
        raise ValueError("marketing email needs an unsubscribe_url (RFC 8058 List-Unsubscribe)")


@dataclass
class Prepared:
    request: SendRequest
    claim: repository.Claim
    message: Outgoing | None


def prepare(
    request: SendRequest,
    mail: MailSettings | str,
    settings: NurtureSettings,
    now: datetime,
    lease_until: datetime,
) -> Prepared:
    message: Outgoing | None = None
    error: str | None = mail if isinstance(mail, str) else None
    message_id = raw = None
    if isinstance(mail, MailSettings):
        message_id = new_message_id(mail.sender_domain)
        try:
            message = compose(request, mail, settings, message_id, now)
            raw = compress(message.data)
        except Exception as exc:  # noqa: BLE001 - a message that cannot be built is a failed send, recorded
            message, error = None, f"could not build the message: {type(exc).__name__}: {exc}"[:500]
    claim = repository.Claim(
        send_key=request.send_key,
        lead_id=request.lead_id,
        source_id=request.source_id,
        template_id=request.template_id,
        template_version=request.template_version,
        kind=request.kind,
        topic=request.topic,
        to_email=request.to_email,
        subject=request.subject,
        status="claimed" if message is not None else "failed",
        message_id=message_id,
        error=error,
        raw_message=raw,
        claimed_at=now,
        lease_until=lease_until if message is not None else None,
    )
    return Prepared(request, claim, message)
