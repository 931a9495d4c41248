"""SQL of lead capture: forms, their lead magnet files, submissions. Repositories never commit."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.forms.schemas import FormDefinition

FORM_COLUMNS = "id, name, source_id, definition, version, status, created_at, updated_at"
FILE_META = "form_id, filename, content_type, length(data) AS size, sha256, uploaded_at"
SUBMISSION_COLUMNS = (
    "id, form_id, form_version, email, anonymous_id, values, consent_text, topic, ip, submitted_at, status, "
    "confirmed_at, confirm_ip, lead_id"
)


@dataclass(frozen=True)
class FormRow:
    id: uuid.UUID
    name: str
    source_id: uuid.UUID | None
    definition: FormDefinition
    version: int
    status: str
    created_at: datetime
    updated_at: datetime


def _form(row: Any) -> FormRow:
    m = row._mapping
    return FormRow(**{**m, "definition": FormDefinition.model_validate(m["definition"])})


def _json(definition: FormDefinition) -> str:
    return definition.model_dump_json()


async def create_form(
    session: AsyncSession, form_id: uuid.UUID, name: str, source_id: uuid.UUID | None, definition: FormDefinition
) -> FormRow:
    row = await session.execute(
        text(
            "INSERT INTO forms (id, name, source_id, definition) VALUES (:id, :name, :source, CAST(:d AS jsonb)) "  # noqa: S608 - constants only
            f"RETURNING {FORM_COLUMNS}"
        ),
        {"id": form_id, "name": name, "source": source_id, "d": _json(definition)},
    )
    return _form(row.one())


async def update_form(
    session: AsyncSession, form_id: uuid.UUID, name: str, source_id: uuid.UUID | None, definition: FormDefinition
) -> FormRow | None:
    """A new version (the previous one stays on the submissions made with it)."""
    row = await session.execute(
        text(
            "UPDATE forms SET name = :name, source_id = :source, definition = CAST(:d AS jsonb), "  # noqa: S608 - constants only
            f"version = version + 1, updated_at = now() WHERE id = :id RETURNING {FORM_COLUMNS}"
        ),
        {"id": form_id, "name": name, "source": source_id, "d": _json(definition)},
    )
    found = row.first()
    return _form(found) if found else None


async def set_status(session: AsyncSession, form_id: uuid.UUID, status: str) -> FormRow | None:
    row = await session.execute(
        text(f"UPDATE forms SET status = :s, updated_at = now() WHERE id = :id RETURNING {FORM_COLUMNS}"),  # noqa: S608 - constants only
        {"id": form_id, "s": status},
    )
    found = row.first()
    return _form(found) if found else None


async def get_form(session: AsyncSession, form_id: uuid.UUID) -> FormRow | None:
    row = (await session.execute(text(f"SELECT {FORM_COLUMNS} FROM forms WHERE id = :id"), {"id": form_id})).first()  # noqa: S608
    return _form(row) if row else None


async def list_forms(session: AsyncSession) -> list[FormRow]:
    rows = await session.execute(text(f"SELECT {FORM_COLUMNS} FROM forms ORDER BY created_at"))  # noqa: S608
    return [_form(r) for r in rows]


async def source_exists(session: AsyncSession, source_id: uuid.UUID) -> bool:
    return bool(await session.scalar(text("SELECT EXISTS (SELECT 1 FROM sources WHERE id = :id)"), {"id": source_id}))


async def put_file(
    session: AsyncSession, form_id: uuid.UUID, filename: str, content_type: str, data: bytes, sha256: str
) -> dict[str, Any]:
    row = await session.execute(
        text(
            "INSERT INTO form_files (form_id, filename, content_type, data, sha256) VALUES (:f, :n, :t, :d, :h) "  # noqa: S608 - constants only
            "ON CONFLICT (form_id) DO UPDATE SET filename = EXCLUDED.filename, content_type = EXCLUDED.content_type, "
            f"data = EXCLUDED.data, sha256 = EXCLUDED.sha256, uploaded_at = now() RETURNING {FILE_META}"
        ),
        {"f": form_id, "n": filename, "t": content_type, "d": data, "h": sha256},
    )
    return dict(row.mappings().one())


async def file_meta(session: AsyncSession, form_ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    rows = await session.execute(
        text(f"SELECT {FILE_META} FROM form_files WHERE form_id = ANY(:ids)"),  # noqa: S608
        {"ids": form_ids},
    )
    return {r["form_id"]: dict(r) for r in rows.mappings()}


async def get_file(session: AsyncSession, form_id: uuid.UUID) -> tuple[str, str, bytes] | None:
    row = (
        await session.execute(
            text("SELECT filename, content_type, data FROM form_files WHERE form_id = :f"), {"f": form_id}
        )
    ).first()
    return (row.filename, row.content_type, bytes(row.data)) if row else None


async def delete_file(session: AsyncSession, form_id: uuid.UUID) -> bool:
    result = await session.execute(text("DELETE FROM form_files WHERE form_id = :f RETURNING form_id"), {"f": form_id})
    return result.first() is not None


@dataclass(frozen=True)
class NewSubmission:
    id: uuid.UUID
    form_id: uuid.UUID
    form_version: int
    token_nonce: str
    email: str
    anonymous_id: str
    values: dict[str, str]
    consent_text: str
    topic: str | None
    ip: str | None
    user_agent: str | None
    submitted_at: datetime


async def insert_submission(session: AsyncSession, s: NewSubmission) -> bool:
    """Store a submission; False if its token's nonce was used before (a replay)."""
    row = await session.execute(
        text(
            "INSERT INTO form_submissions (id, form_id, form_version, token_nonce, email, anonymous_id, values, "
            "consent_text, topic, ip, user_agent, submitted_at) VALUES (:id, :form, :version, :nonce, :email, :aid, "
            "CAST(:values AS jsonb), :consent, :topic, :ip, :ua, :at) ON CONFLICT (token_nonce) DO NOTHING "
            "RETURNING id"
        ),
        {
            "id": s.id,
            "form": s.form_id,
            "version": s.form_version,
            "nonce": s.token_nonce,
            "email": s.email,
            "aid": s.anonymous_id,
            "values": orjson.dumps(s.values).decode(),
            "consent": s.consent_text,
            "topic": s.topic,
            "ip": s.ip,
            "ua": s.user_agent,
            "at": s.submitted_at,
        },
    )
    return row.first() is not None


async def get_submission(
    session: AsyncSession, submission_id: uuid.UUID, *, lock: bool = False
) -> dict[str, Any] | None:
    sql = f"SELECT {SUBMISSION_COLUMNS} FROM form_submissions WHERE id = :id" + (" FOR UPDATE" if lock else "")  # noqa: S608
    row = (await session.execute(text(sql), {"id": submission_id})).mappings().first()
    return dict(row) if row else None


async def mark_confirmed(
    session: AsyncSession,
    submission_id: uuid.UUID,
    *,
    at: datetime,
    ip: str | None,
    user_agent: str | None,
    lead_id: uuid.UUID,
) -> None:
    await session.execute(
        text(
            "UPDATE form_submissions SET status = 'confirmed', confirmed_at = :at, confirm_ip = :ip, "
            "confirm_user_agent = :ua, lead_id = :lead WHERE id = :id AND status = 'pending'"
        ),
        {"id": submission_id, "at": at, "ip": ip, "ua": user_agent, "lead": lead_id},
    )


async def forget_unconfirmed(session: AsyncSession, form_id: uuid.UUID, before: datetime) -> int:
    """Delete the form's submissions submitted before `before` and never confirmed."""
    result = await session.execute(
        text(
            "DELETE FROM form_submissions WHERE form_id = :f AND status = 'pending' AND submitted_at < :before "
            "RETURNING id"
        ),
        {"f": form_id, "before": before},
    )
    return len(result.all())


async def list_submissions(session: AsyncSession, form_id: uuid.UUID, limit: int) -> list[dict[str, Any]]:
    rows = await session.execute(
        text(
            f"SELECT {SUBMISSION_COLUMNS} FROM form_submissions WHERE form_id = :f "  # noqa: S608
            "ORDER BY submitted_at DESC LIMIT :limit"
        ),
        {"f": form_id, "limit": limit},
    )
    return [dict(r) for r in rows.mappings()]


async def active_sequence_version(session: AsyncSession, sequence_id: uuid.UUID) -> int | None:
    """The version new leads get, if the sequence is active (a paused or draft one takes nobody in)."""
    version: int | None = await session.scalar(
        text("SELECT current_version FROM sequences WHERE id = :id AND status = 'active'"), {"id": sequence_id}
    )
    return version
