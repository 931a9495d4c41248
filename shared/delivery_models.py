"""Tables of nurture: email sends and delivery."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text, func, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base


class EmailSend(Base):
    """One email the product meant to send, claimed under its `send_key` before any SMTP traffic.

    The row exists before the message leaves, so a send is never made twice for one key and never goes
    missing: it ends `sent`, `failed` (with `error`), `suppressed` (not sent, with the reason) or `unknown`
    (the process stopped during the SMTP exchange), and only an operator turns `unknown` into a resend or
    `dropped`.
    """

    __tablename__ = "email_sends"

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    # The caller's idempotence key: "<enrollment>:<step>", "resend:<id>", "test:<uuid>", …
    send_key: Mapped[str] = mapped_column(Text, unique=True)
    lead_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    source_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    template_id: Mapped[str | None] = mapped_column(Text)
    template_version: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))
    topic: Mapped[str | None] = mapped_column(Text)
    to_email: Mapped[str | None] = mapped_column(Text)
    subject: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    message_id: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    # What an operator decided about this send (resent as …, dropped because …).
    note: Mapped[str | None] = mapped_column(Text)
    resend_of: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    # The message exactly as built (zlib), kept until it is sent or dropped so an operator can resend it.
    raw_message: Mapped[bytes | None] = mapped_column(LargeBinary)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint("status IN ('claimed', 'sent', 'failed', 'unknown', 'dropped', 'suppressed')", name="status"),
        CheckConstraint("kind IN ('marketing', 'transactional')", name="kind"),
        Index("ix_email_sends_lease", "lease_until", postgresql_where=text("status = 'claimed'")),
        Index("ix_email_sends_status_created_at", "status", "created_at"),
        Index("ix_email_sends_lead_id_created_at", "lead_id", "created_at"),
    )


class SourceMailSettings(Base):
    """How one source's emails go out; a NULL column falls back to the NurtureSettings default."""

    __tablename__ = "source_mail_settings"

    source_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True
    )
    from_address: Mapped[str | None] = mapped_column(Text)
    reply_to: Mapped[str | None] = mapped_column(Text)
    dkim_domain: Mapped[str | None] = mapped_column(Text)
    dkim_selector: Mapped[str | None] = mapped_column(Text)
    # Stored in the database as given (signing needs it); in production prefer a secret store and the
    # FUNNELSTREAM_DKIM_* settings, or restrict who can read this table.
    dkim_private_key: Mapped[str | None] = mapped_column(Text)
    default_timezone: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
