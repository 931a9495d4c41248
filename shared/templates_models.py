"""Tables of nurture: email templates and their immutable versions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Integer, String, Text, func
from sqlalchemy import text as sql
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base


class EmailTemplate(Base):
    """A named email; its content lives in versions, `current_version` is what new sends use.
    Archived, never deleted: sequences pin versions of it."""

    __tablename__ = "email_templates"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, server_default=sql("''"))
    kind: Mapped[str] = mapped_column(String(20), server_default=sql("'marketing'"))
    # The subscription topic a marketing email belongs to, for consent; None: marketing in general.
    topic: Mapped[str | None] = mapped_column(String(200))
    current_version: Mapped[int] = mapped_column(Integer, server_default=sql("1"))
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (CheckConstraint("kind IN ('marketing', 'transactional')", name="kind"),)


class EmailTemplateVersion(Base):
    """One immutable version of a template's parts; editing a template adds a version."""

    __tablename__ = "email_template_versions"

    template_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("email_templates.id"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject: Mapped[str] = mapped_column(Text)
    html: Mapped[str] = mapped_column(Text)
    # None: the text part is derived from the rendered HTML.
    text: Mapped[str | None] = mapped_column(Text)
    # The `extra` this version was validated against (a step's data, e.g. a cart); also the preview default.
    sample_extra: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    note: Mapped[str] = mapped_column(Text, server_default=sql("''"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
