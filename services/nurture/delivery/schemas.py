"""Request and response models of the delivery admin API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.nurture.delivery.mail_settings import check_timezone
from services.nurture.delivery.message import check_address

SendStatus = Literal["claimed", "sent", "failed", "unknown", "dropped", "suppressed"]


class SendOut(BaseModel):
    """One email send. `unknown`: the process stopped during the SMTP exchange; resend or drop it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    send_key: str
    lead_id: uuid.UUID | None
    source_id: uuid.UUID | None
    template_id: str | None
    template_version: int | None
    kind: str
    topic: str | None
    to_email: str | None
    subject: str | None
    status: SendStatus
    attempts: int
    message_id: str | None = Field(description="The Message-ID header: search the mail server's logs for it")
    error: str | None
    note: str | None = Field(description="An operator's decision: resent as …, dropped because …")
    resend_of: uuid.UUID | None
    claimed_at: datetime | None
    lease_until: datetime | None
    sent_at: datetime | None
    created_at: datetime
    updated_at: datetime


class SendList(BaseModel):
    sends: list[SendOut]


class SendResultOut(BaseModel):
    """What a send request did. `duplicate`: nothing was sent now, the key had been handled before."""

    id: uuid.UUID
    send_key: str
    status: SendStatus
    duplicate: bool
    message_id: str | None
    error: str | None
    attempts: int


class DropIn(BaseModel):
    reason: str = Field(default="", max_length=500)


class TestSendIn(BaseModel):
    to: str = Field(max_length=320, description="Recipient address")
    source_id: uuid.UUID | None = Field(default=None, description="Use this source's From, Reply-To and DKIM")

    @field_validator("to")
    @classmethod
    def _address(cls, value: str) -> str:
        check_address(value)
        return value


class MailSettingsIn(BaseModel):
    """A source's mail settings; a field left null uses the process default. Leaving `dkim_private_key` out
    keeps the stored key; null removes it."""

    model_config = ConfigDict(extra="forbid")

    from_address: str | None = Field(default=None, max_length=320, examples=["Acme <hello@mail.acme.example>"])
    reply_to: str | None = Field(default=None, max_length=320)
    dkim_domain: str | None = Field(default=None, max_length=253)
    dkim_selector: str | None = Field(default=None, max_length=63)
    dkim_private_key: str | None = Field(default=None, max_length=20_000, description="PEM; never shown again")
    default_timezone: str | None = Field(default=None, max_length=64, examples=["Europe/Berlin"])

    @field_validator("from_address", "reply_to")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None:
            check_address(value)
        return value

    @field_validator("default_timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                check_timezone("default_timezone", value)
            except ValueError:
                raise ValueError(f"{value!r} is not an IANA time zone such as Europe/Berlin") from None
        return value


class EffectiveMailSettings(BaseModel):
    from_address: str
    reply_to: str | None
    sender_domain: str
    dkim_domain: str | None
    dkim_selector: str | None
    default_timezone: str


class MailSettingsOut(BaseModel):
    source_id: uuid.UUID
    from_address: str | None
    reply_to: str | None
    dkim_domain: str | None
    dkim_selector: str | None
    has_dkim_private_key: bool
    default_timezone: str | None
    updated_at: datetime | None
    effective: EffectiveMailSettings = Field(description="What emails of this source go out with, defaults applied")


class MailboxEntryOut(BaseModel):
    name: str
    size: int
    modified_at: datetime
    subject: str | None
    from_: str | None = Field(serialization_alias="from")
    to: str | None
    message_id: str | None


class MailboxList(BaseModel):
    folder: str
    messages: list[MailboxEntryOut]
