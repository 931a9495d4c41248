"""SQL for email templates. Repositories never commit; the request (or the sending batch) does."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.admin.repository import known_by
from services.nurture.templates.service import TemplateContent
from shared.models import Lead
from shared.templates_models import EmailTemplate, EmailTemplateVersion


@dataclass(frozen=True)
class TemplateVersion:
    """One version of a template with what sending needs of the template itself (kind, topic)."""

    template_id: uuid.UUID
    name: str
    kind: str
    topic: str | None
    version: int
    subject: str
    html: str
    text: str | None
    sample_extra: dict[str, Any] | None
    note: str
    created_at: datetime
    archived_at: datetime | None

    @property
    def content(self) -> TemplateContent:
        return TemplateContent(subject=self.subject, html=self.html, text=self.text)


async def add_template(
    session: AsyncSession,
    *,
    name: str,
    description: str,
    kind: str,
    topic: str | None,
    content: TemplateContent,
    sample_extra: dict[str, Any] | None,
    note: str,
) -> EmailTemplate | None:
    """A new template with its version 1; None if the name is taken."""
    template_id = await session.scalar(
        pg_insert(EmailTemplate)
        .values(id=uuid.uuid4(), name=name, description=description, kind=kind, topic=topic, current_version=1)
        .on_conflict_do_nothing(index_elements=[EmailTemplate.name])
        .returning(EmailTemplate.id)
    )
    if template_id is None:
        return None
    await _add_version(session, template_id, 1, content, sample_extra, note)
    return await session.get(EmailTemplate, template_id)


async def add_version(
    session: AsyncSession,
    template_id: uuid.UUID,
    content: TemplateContent,
    sample_extra: dict[str, Any] | None,
    note: str,
    description: str | None = None,
) -> int | None:
    """The number of the new current version of a live template; None if it is missing or archived.
    Concurrent edits queue on the template row, so each gets its own number."""
    values: dict[str, Any] = {"current_version": EmailTemplate.current_version + 1}
    if description is not None:
        values["description"] = description
    version: int | None = await session.scalar(
        update(EmailTemplate)
        .where(EmailTemplate.id == template_id, EmailTemplate.archived_at.is_(None))
        .values(**values)
        .returning(EmailTemplate.current_version)
    )
    if version is None:
        return None
    await _add_version(session, template_id, version, content, sample_extra, note)
    return version


async def _add_version(
    session: AsyncSession,
    template_id: uuid.UUID,
    version: int,
    content: TemplateContent,
    sample_extra: dict[str, Any] | None,
    note: str,
) -> None:
    await session.execute(
        insert(EmailTemplateVersion).values(
            template_id=template_id,
            version=version,
            subject=content.subject,
            html=content.html,
            text=content.text,
            sample_extra=sample_extra,
            note=note,
        )
    )


async def get_template(session: AsyncSession, template_id: uuid.UUID) -> EmailTemplate | None:
    return await session.get(EmailTemplate, template_id, populate_existing=True)


async def list_templates(session: AsyncSession, *, archived: bool = False) -> Sequence[EmailTemplate]:
    """Templates by name; archived ones only if asked."""
    query = select(EmailTemplate).order_by(EmailTemplate.name)
    if not archived:
        query = query.where(EmailTemplate.archived_at.is_(None))
    return (await session.scalars(query)).all()


async def list_versions(session: AsyncSession, template_id: uuid.UUID) -> Sequence[EmailTemplateVersion]:
    """A template's versions, newest first."""
    query = (
        select(EmailTemplateVersion)
        .where(EmailTemplateVersion.template_id == template_id)
        .order_by(EmailTemplateVersion.version.desc())
    )
    return (await session.scalars(query)).all()


async def archive(session: AsyncSession, template_id: uuid.UUID) -> EmailTemplate | None:
    """Archive a template (once: the first archive time stays); None if there is none."""
    await session.execute(
        update(EmailTemplate)
        .where(EmailTemplate.id == template_id, EmailTemplate.archived_at.is_(None))
        .values(archived_at=func.now())
    )
    return await get_template(session, template_id)


async def get_version(
    session: AsyncSession, template_id: uuid.UUID | str, version: int | None = None
) -> TemplateVersion | None:
    """A version of a template (None: the current one), archived or not: a lead inside a sequence keeps
    the version it entered with. None if there is no such template or version (or the id is no UUID)."""
    if isinstance(template_id, str):
        try:
            template_id = uuid.UUID(template_id)
        except ValueError:
            return None
    t, v = EmailTemplate, EmailTemplateVersion
    query = (
        select(t.id, t.name, t.kind, t.topic, v.version, v.subject, v.html, v.text)
        .add_columns(v.sample_extra, v.note, v.created_at, t.archived_at)
        .join(v, v.template_id == t.id)
        .where(t.id == template_id, v.version == (t.current_version if version is None else version))
    )
    row = (await session.execute(query)).first()
    return None if row is None else TemplateVersion(*row)


async def lead_for_preview(session: AsyncSession, user_id: str) -> dict[str, Any] | None:
    """The live lead known by this user id, with the columns templates read; None if unknown."""
    query = (
        select(Lead.email, Lead.user_id, Lead.traits, Lead.score, Lead.grade, Lead.stage, Lead.stages)
        .where(known_by("user_id", user_id), Lead.merged_into.is_(None))
        .order_by(Lead.created_at)
        .limit(1)
    )
    row = (await session.execute(query)).mappings().first()
    return None if row is None else dict(row)
