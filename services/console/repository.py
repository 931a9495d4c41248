"""SQL of the console's accounts: users, invites, sessions, API tokens and the audit log."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Text, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.console.service import Actor
from shared.console_models import ApiToken, AuditEntry, ConsoleInvite, ConsoleSession, ConsoleUser


async def add_user(
    session: AsyncSession, email: str, role: str, password_hash: str | None, name: str = ""
) -> ConsoleUser | None:
    """A new user, or None when the email is taken."""
    found = await session.scalar(
        insert(ConsoleUser)
        .values(id=uuid.uuid4(), email=email, role=role, password_hash=password_hash, name=name)
        .on_conflict_do_nothing(index_elements=["email"])
        .returning(ConsoleUser)
    )
    return found


async def user_by_email(session: AsyncSession, email: str) -> ConsoleUser | None:
    found: ConsoleUser | None = await session.scalar(select(ConsoleUser).where(ConsoleUser.email == email))
    return found


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> ConsoleUser | None:
    return await session.get(ConsoleUser, user_id)


async def list_users(session: AsyncSession) -> list[ConsoleUser]:
    return list(await session.scalars(select(ConsoleUser).order_by(ConsoleUser.email)))


async def has_users(session: AsyncSession) -> bool:
    return bool(await session.scalar(select(func.count()).select_from(ConsoleUser)))


async def touch_login(session: AsyncSession, user_id: uuid.UUID, now: datetime) -> None:
    await session.execute(update(ConsoleUser).where(ConsoleUser.id == user_id).values(last_login_at=now))


async def end_sessions(session: AsyncSession, user_id: uuid.UUID, keep: str | None = None) -> None:
    """Sign a user out everywhere (role change, disabling, new password), but for the session `keep`."""
    query = delete(ConsoleSession).where(ConsoleSession.user_id == user_id)
    if keep is not None:
        query = query.where(ConsoleSession.token_hash != keep)
    await session.execute(query)


# -- invites --------------------------------------------------------------------------------------


async def add_invite(
    session: AsyncSession, email: str, role: str, invited_by: str, expires_at: datetime
) -> ConsoleInvite:
    invite = ConsoleInvite(id=uuid.uuid4(), email=email, role=role, invited_by=invited_by, expires_at=expires_at)
    session.add(invite)
    await session.flush()
    return invite


async def get_invite(session: AsyncSession, invite_id: uuid.UUID, lock: bool = False) -> ConsoleInvite | None:
    query = select(ConsoleInvite).where(ConsoleInvite.id == invite_id)
    found: ConsoleInvite | None = await session.scalar(query.with_for_update() if lock else query)
    return found


async def list_invites(session: AsyncSession) -> list[ConsoleInvite]:
    return list(await session.scalars(select(ConsoleInvite).order_by(ConsoleInvite.created_at.desc()).limit(200)))


# -- sessions and API tokens ----------------------------------------------------------------------


async def add_session(
    session: AsyncSession, token_hash: str, user_id: uuid.UUID, csrf_token: str, expires_at: datetime
) -> None:
    session.add(ConsoleSession(token_hash=token_hash, user_id=user_id, csrf_token=csrf_token, expires_at=expires_at))
    await session.flush()


async def drop_session(session: AsyncSession, token_hash: str) -> None:
    await session.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == token_hash))


async def session_actor(session: AsyncSession, token_hash: str, now: datetime) -> Actor | None:
    """The user of a live session (not expired, user not disabled)."""
    row = (
        await session.execute(
            select(ConsoleUser.id, ConsoleUser.email, ConsoleUser.role, ConsoleSession.csrf_token)
            .join(ConsoleSession, ConsoleSession.user_id == ConsoleUser.id)
            .where(
                ConsoleSession.token_hash == token_hash,
                ConsoleSession.expires_at > now,
                ConsoleUser.disabled_at.is_(None),
            )
        )
    ).first()
    if row is None:
        return None
    return Actor(row.email, row.role, "session", row.id, row.csrf_token)


async def token_actor(session: AsyncSession, token_hash: str, now: datetime) -> Actor | None:
    """The user of a live API token, whose last use is noted."""
    row = (
        await session.execute(
            update(ApiToken)
            .where(ApiToken.token_hash == token_hash, ApiToken.revoked_at.is_(None))
            .where(ApiToken.user_id == ConsoleUser.id, ConsoleUser.disabled_at.is_(None))
            .values(last_used_at=now)
            .returning(ConsoleUser.id, ConsoleUser.email, ConsoleUser.role)
        )
    ).first()
    if row is None:
        return None
    return Actor(row.email, row.role, "api_token", row.id)


async def add_token(session: AsyncSession, user_id: uuid.UUID, name: str, token_hash: str) -> ApiToken:
    token = ApiToken(id=uuid.uuid4(), user_id=user_id, name=name, token_hash=token_hash)
    session.add(token)
    await session.flush()
    await session.refresh(token)
    return token


async def list_tokens(session: AsyncSession, user_id: uuid.UUID) -> list[ApiToken]:
    query = select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.created_at.desc())
    return list(await session.scalars(query))


async def revoke_token(
    session: AsyncSession, token_id: uuid.UUID, now: datetime, user_id: uuid.UUID | None = None
) -> ApiToken | None:
    """Revoke a token (only `user_id`'s when given); None when there is no such token."""
    query = update(ApiToken).where(ApiToken.id == token_id)
    if user_id is not None:
        query = query.where(ApiToken.user_id == user_id)
    found: ApiToken | None = await session.scalar(
        query.values(revoked_at=func.coalesce(ApiToken.revoked_at, now)).returning(ApiToken)
    )
    return found


# -- audit ----------------------------------------------------------------------------------------


async def add_audit(session: AsyncSession, **values: Any) -> None:
    await session.execute(insert(AuditEntry).values(**values))


async def list_audit(
    session: AsyncSession,
    *,
    actor: str | None,
    kind: str | None,
    path_prefix: str | None,
    before_id: int | None,
    limit: int,
) -> list[AuditEntry]:
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if actor:
        query = query.where(AuditEntry.actor == actor)
    if kind:
        query = query.where(AuditEntry.kind == kind)
    if path_prefix:
        query = query.where(AuditEntry.path.startswith(path_prefix, autoescape=True))
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    return list(await session.scalars(query))


async def scrub_audit(session: AsyncSession, identity: str) -> int:
    """After an erasure: entries that name the person (in the path or a body) lose their bodies and path."""
    quoted = func.to_jsonb(identity).cast(Text)
    named = or_(
        AuditEntry.path.contains(f"/{identity}", autoescape=True),
        *(column.cast(Text).contains(quoted) for column in (AuditEntry.request, AuditEntry.before, AuditEntry.after)),
    )
    result = await session.execute(
        update(AuditEntry).where(named).values(path="[erased]", request=None, before=None, after={"erased": True})
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def recent_failures(session: AsyncSession, email: str, since: datetime) -> int:
    query = select(func.count()).where(
        AuditEntry.kind == "sign_in_failed", AuditEntry.actor == email, AuditEntry.at > since
    )
    return int(await session.scalar(query) or 0)
