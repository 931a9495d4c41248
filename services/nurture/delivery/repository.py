"""SQL of delivery: claims and outcomes of email sends, and per-source mail settings. Never commits."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

SEND_COLUMNS = (
    "id, send_key, lead_id, source_id, template_id, template_version, kind, topic, to_email, subject, status, "
    "attempts, message_id, error, note, resend_of, claimed_at, lease_until, sent_at, created_at, updated_at"
)


@dataclass(frozen=True)
class SendRow:
    """An `email_sends` row without its stored message."""

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
    status: str
    attempts: int
    message_id: str | None
    error: str | None
    note: str | None
    resend_of: uuid.UUID | None
    claimed_at: datetime | None
    lease_until: datetime | None
    sent_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Claim:
    """A row to insert: `status` is `claimed`, or `failed` when the message could not even be built."""

    send_key: str
    lead_id: uuid.UUID | None
    source_id: uuid.UUID | None
    template_id: str | None
    template_version: int | None
    kind: str
    topic: str | None
    to_email: str | None
    subject: str | None
    status: str
    message_id: str | None
    error: str | None
    raw_message: bytes | None
    claimed_at: datetime
    lease_until: datetime | None
    resend_of: uuid.UUID | None = None


@dataclass(frozen=True)
class Outcome:
    id: uuid.UUID
    status: str
    attempts: int
    error: str | None
    sent_at: datetime | None


_CLAIM = text(
    "INSERT INTO email_sends (send_key, lead_id, source_id, template_id, template_version, kind, topic, to_email, "
    "subject, status, message_id, error, raw_message, claimed_at, lease_until, resend_of) "
    "SELECT * FROM unnest(CAST(:send_key AS text[]), CAST(:lead_id AS uuid[]), CAST(:source_id AS uuid[]), "
    "CAST(:template_id AS text[]), CAST(:template_version AS int[]), CAST(:kind AS text[]), CAST(:topic AS text[]), "
    "CAST(:to_email AS text[]), CAST(:subject AS text[]), CAST(:status AS text[]), CAST(:message_id AS text[]), "
    "CAST(:error AS text[]), CAST(:raw_message AS bytea[]), CAST(:claimed_at AS timestamptz[]), "
    "CAST(:lease_until AS timestamptz[]), CAST(:resend_of AS uuid[])) "
    "ON CONFLICT (send_key) DO NOTHING RETURNING send_key, id"
)
# A late but definite outcome may replace `unknown` (the sweeper ran while the database was unreachable);
# nothing replaces an operator's decision.
_RECORD = text(
    "UPDATE email_sends e SET status = u.status, attempts = u.attempts, error = u.error, sent_at = u.sent_at, "
    "lease_until = NULL, updated_at = now(), "
    "raw_message = CASE WHEN u.status = 'sent' THEN NULL ELSE e.raw_message END "
    "FROM unnest(CAST(:id AS uuid[]), CAST(:status AS text[]), CAST(:attempts AS int[]), CAST(:error AS text[]), "
    "CAST(:sent_at AS timestamptz[])) AS u(id, status, attempts, error, sent_at) "
    "WHERE e.id = u.id AND e.status IN ('claimed', 'unknown')"
)
_SWEEP = text(
    "UPDATE email_sends SET status = 'unknown', lease_until = NULL, updated_at = now(), "
    "error = 'the sending process stopped before recording the outcome (lease expired at ' "
    "|| to_char(lease_until AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') || ')' "
    "WHERE status = 'claimed' AND lease_until < :now"
)
_SKIP = text(
    "INSERT INTO email_sends (send_key, lead_id, source_id, template_id, template_version, kind, topic, to_email, "
    "status, error) VALUES (:send_key, :lead_id, :source_id, :template_id, :template_version, :kind, :topic, "
    ":to_email, 'suppressed', :reason) ON CONFLICT (send_key) DO NOTHING RETURNING id"
)


async def claim(session: AsyncSession, claims: Sequence[Claim]) -> dict[str, uuid.UUID]:
    """Insert claims in one statement; returns send_key → id of those inserted (others existed)."""
    if not claims:
        return {}
    params = {name: [getattr(c, name) for c in claims] for name in Claim.__dataclass_fields__}
    result = await session.execute(_CLAIM, params)
    return {row.send_key: row.id for row in result}


async def record(session: AsyncSession, outcomes: Sequence[Outcome]) -> None:
    """Write outcomes of claimed sends in one statement."""
    if not outcomes:
        return
    params = {name: [getattr(o, name) for o in outcomes] for name in Outcome.__dataclass_fields__}
    await session.execute(_RECORD, params)


async def sweep(session: AsyncSession, now: datetime) -> int:
    """Turn claims whose lease ended before `now` into `unknown`; returns how many."""
    result = await session.execute(_SWEEP, {"now": now})
    return int(getattr(result, "rowcount", 0) or 0)


async def count_status(session: AsyncSession, status: str) -> int:
    found = await session.scalar(text("SELECT count(*) FROM email_sends WHERE status = :s"), {"s": status})
    return int(found or 0)


async def insert_skipped(session: AsyncSession, send_key: str, reason: str, **fields: Any) -> uuid.UUID | None:
    """A `suppressed` row for a due send that must not go out; None if the key was already there."""
    params = {
        "send_key": send_key,
        "reason": reason,
        "lead_id": fields.get("lead_id"),
        "source_id": fields.get("source_id"),
        "template_id": fields.get("template_id"),
        "template_version": fields.get("template_version"),
        "kind": fields.get("kind", "marketing"),
        "topic": fields.get("topic"),
        "to_email": fields.get("to_email"),
    }
    found: uuid.UUID | None = (await session.execute(_SKIP, params)).scalar_one_or_none()
    return found


async def by_keys(session: AsyncSession, keys: Iterable[str]) -> dict[str, SendRow]:
    wanted = list(set(keys))
    if not wanted:
        return {}
    sql = text(f"SELECT {SEND_COLUMNS} FROM email_sends WHERE send_key = ANY(CAST(:keys AS text[]))")  # noqa: S608
    result = await session.execute(sql, {"keys": wanted})
    return {row["send_key"]: SendRow(**row) for row in result.mappings()}


async def existing_keys(session: AsyncSession, keys: Iterable[str]) -> set[str]:
    sql = text("SELECT send_key FROM email_sends WHERE send_key = ANY(CAST(:keys AS text[]))")
    return set((await session.execute(sql, {"keys": list(set(keys))})).scalars())


_GET = text(f"SELECT {SEND_COLUMNS}, raw_message FROM email_sends WHERE id = :id")  # noqa: S608 - constants
_GET_LOCKED = text(f"SELECT {SEND_COLUMNS}, raw_message FROM email_sends WHERE id = :id FOR UPDATE")  # noqa: S608


async def get(session: AsyncSession, send_id: uuid.UUID, *, lock: bool = False) -> tuple[SendRow, bytes | None] | None:
    """A send and its stored (compressed) message; `lock` holds the row until the transaction ends."""
    found = (await session.execute(_GET_LOCKED if lock else _GET, {"id": send_id})).mappings().first()
    if found is None:
        return None
    row = dict(found)
    raw = row.pop("raw_message")
    return SendRow(**row), raw


async def list_sends(
    session: AsyncSession, *, status: str | None, lead_id: uuid.UUID | None, limit: int
) -> list[SendRow]:
    """Newest first, filtered by status and lead."""
    where: list[str] = []
    params: dict[str, Any] = {"limit": limit}
    if status is not None:
        where.append("status = :status")
        params["status"] = status
    if lead_id is not None:
        where.append("lead_id = :lead_id")
        params["lead_id"] = lead_id
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    sql = text(f"SELECT {SEND_COLUMNS} FROM email_sends {clause} ORDER BY created_at DESC, id LIMIT :limit")  # noqa: S608
    return [SendRow(**row) for row in (await session.execute(sql, params)).mappings()]


_DECIDE = text(
    "UPDATE email_sends SET status = 'dropped', note = :note, raw_message = NULL, updated_at = now() "  # noqa: S608
    f"WHERE id = :id AND status IN ('unknown', 'failed') RETURNING {SEND_COLUMNS}"
)


async def decide(session: AsyncSession, send_id: uuid.UUID, note: str) -> SendRow | None:
    """Mark an `unknown` or `failed` send `dropped` with the operator's note; None if it is in another state."""
    found = (await session.execute(_DECIDE, {"id": send_id, "note": note})).mappings().first()
    return SendRow(**found) if found else None


_MAIL_SETTINGS = (
    "source_id, from_address, reply_to, dkim_domain, dkim_selector, dkim_private_key, default_timezone, updated_at"
)
_UPSERT_MAIL_SETTINGS = text(
    "INSERT INTO source_mail_settings (source_id, from_address, reply_to, dkim_domain, dkim_selector, "  # noqa: S608
    "dkim_private_key, default_timezone, updated_at) VALUES (:source_id, :from_address, :reply_to, :dkim_domain, "
    ":dkim_selector, :dkim_private_key, :default_timezone, now()) ON CONFLICT (source_id) DO UPDATE SET "
    "from_address = EXCLUDED.from_address, reply_to = EXCLUDED.reply_to, dkim_domain = EXCLUDED.dkim_domain, "
    "dkim_selector = EXCLUDED.dkim_selector, dkim_private_key = EXCLUDED.dkim_private_key, "
    f"default_timezone = EXCLUDED.default_timezone, updated_at = now() RETURNING {_MAIL_SETTINGS}"
)
MAIL_SETTING_FIELDS = (
    "from_address",
    "reply_to",
    "dkim_domain",
    "dkim_selector",
    "dkim_private_key",
    "default_timezone",
)


async def mail_settings_rows(session: AsyncSession, source_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    ids = list(set(source_ids))
    if not ids:
        return {}
    sql = text(f"SELECT {_MAIL_SETTINGS} FROM source_mail_settings WHERE source_id = ANY(CAST(:ids AS uuid[]))")  # noqa: S608
    result = await session.execute(sql, {"ids": ids})
    return {row["source_id"]: dict(row) for row in result.mappings()}


async def store_mail_settings(session: AsyncSession, source_id: uuid.UUID, values: dict[str, Any]) -> dict[str, Any]:
    """Replace a source's mail settings with `values`."""
    params = {"source_id": source_id, **{name: values.get(name) for name in MAIL_SETTING_FIELDS}}
    return dict((await session.execute(_UPSERT_MAIL_SETTINGS, params)).mappings().one())


async def source_exists(session: AsyncSession, source_id: uuid.UUID) -> bool:
    found = await session.scalar(text("SELECT 1 FROM sources WHERE id = :id"), {"id": source_id})
    return found is not None
