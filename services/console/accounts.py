"""What the API, the console and the CLI do with accounts: create, invite, accept, sign in, API tokens.

Each function owns its transaction (sessionmaker in, committed rows out), so a route, a console screen
and `funnelstream users create` share one code path.
"""

from __future__ import annotations

import html
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.console import repository
from services.console.service import (
    Actor,
    Role,
    check_password,
    digest,
    hash_password,
    invite_expiry,
    invite_token,
    new_secret,
    normal_email,
    read_invite_token,
    verify_password,
)
from services.nurture.delivery.mailer import make_mailer
from services.nurture.delivery.service import SendOutcome, SendRequest, send_once
from shared.console_models import ApiToken, ConsoleInvite, ConsoleUser
from shared.settings import NurtureSettings
from shared.tokens import InvalidToken

Maker = async_sessionmaker[AsyncSession]
# Guessing passwords: argon2 makes each try slow; this caps the tries per email (audited failures).
FAILURES_ALLOWED = 10
FAILURE_WINDOW = timedelta(minutes=15)


class AccountError(Exception):
    """A request about accounts that cannot be done; `field` names the input at fault."""

    def __init__(self, message: str, field: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


@dataclass(frozen=True)
class NewSession:
    token: str  # goes into the cookie, never stored
    csrf_token: str
    user: ConsoleUser
    expires_at: datetime


async def create_user(maker: Maker, email: str, role: Role, password: str | None, name: str = "") -> ConsoleUser:
    """A user with a password (or none, to be set through an invite); AccountError when the email is taken."""
    if password is not None and (why := check_password(password)):
        raise AccountError(why, "password")
    async with maker() as session, session.begin():
        user = await repository.add_user(
            session, normal_email(email), role, hash_password(password) if password else None, name
        )
    if user is None:
        raise AccountError(f"a user with email {normal_email(email)!r} exists", "email", 409)
    return user


async def invite(
    maker: Maker,
    settings: NurtureSettings,
    *,
    secret_key: str,
    email: str,
    role: Role,
    by: Actor,
    base_url: str,
    hours: float,
    now: datetime | None = None,
) -> tuple[ConsoleInvite, str, SendOutcome]:
    """Record an invite and send its link by email (a durable transactional send keyed by the invite)."""
    now = now or datetime.now(UTC)
    address = normal_email(email)
    async with maker() as session, session.begin():
        if await repository.user_by_email(session, address) is not None:
            raise AccountError(f"a user with email {address!r} exists", "email", 409)
        row = await repository.add_invite(session, address, role, by.label, invite_expiry(now, hours))
    url = f"{base_url.rstrip('/')}/console/invite/{invite_token(secret_key, row.id, row.expires_at)}"
    until = row.expires_at.strftime("%Y-%m-%d %H:%M UTC")
    text = (
        f"{by.label} invited you to FunnelStream as {role}.\n\nSet your password and sign in here "
        f"(the link works once, until {until}):\n{url}\n"
    )
    body = (
        f"<!doctype html><html><body><p>{html.escape(by.label)} invited you to FunnelStream as {role}.</p>"
        f'<p><a href="{html.escape(url)}">Set your password and sign in</a> '
        f"(the link works once, until {until}).</p></body></html>"
    )
    request = SendRequest(
        send_key=f"console-invite:{row.id}",
        lead_id=None,
        to_email=address,
        kind="transactional",
        subject="You are invited to FunnelStream",
        html=body,
        text=text,
    )
    mailer = make_mailer(settings)
    try:
        outcome = await send_once(maker, mailer, settings, request, now=now)
    finally:
        await mailer.aclose()
    return row, url, outcome


async def open_invite(maker: Maker, secret_key: str, token: str, now: datetime) -> ConsoleInvite:
    """The invite behind a link, if it can still be accepted; AccountError (410) otherwise."""
    try:
        invite_id = read_invite_token(secret_key, token, now)
    except InvalidToken as exc:
        raise AccountError(f"this invite link cannot be used: {exc}", None, 410) from None
    async with maker() as session:
        row = await repository.get_invite(session, invite_id)
    return _check_open(row, now)


def _check_open(row: ConsoleInvite | None, now: datetime) -> ConsoleInvite:
    if row is None or row.revoked_at is not None:
        raise AccountError("this invite was withdrawn", None, 410)
    if row.accepted_at is not None:
        raise AccountError("this invite link was used already; sign in instead", None, 410)
    if row.expires_at <= now:
        raise AccountError("this invite link has expired; ask for a new one", None, 410)
    return row


async def accept_invite(
    maker: Maker, secret_key: str, token: str, password: str, name: str, session_hours: float, now: datetime
) -> NewSession:
    """Create the invited user with this password (once per link) and sign them in."""
    if why := check_password(password):
        raise AccountError(why, "password")
    try:
        invite_id = read_invite_token(secret_key, token, now)
    except InvalidToken as exc:
        raise AccountError(f"this invite link cannot be used: {exc}", None, 410) from None
    async with maker() as session, session.begin():
        row = _check_open(await repository.get_invite(session, invite_id, lock=True), now)
        user = await repository.add_user(session, row.email, row.role, hash_password(password), name)
        if user is None:
            raise AccountError(f"a user with email {row.email!r} exists; sign in instead", None, 409)
        row.accepted_at, row.user_id = now, user.id
        return await _start(session, user, session_hours, now)


async def sign_in(maker: Maker, email: str, password: str, session_hours: float, now: datetime) -> NewSession | None:
    """A new session when the password is right and the user is not disabled, else None (the failure is
    audited). AccountError (429) after FAILURES_ALLOWED failures for this email in FAILURE_WINDOW."""
    address = normal_email(email)[:320]
    async with maker() as session, session.begin():
        if await repository.recent_failures(session, address, now - FAILURE_WINDOW) >= FAILURES_ALLOWED:
            raise AccountError("too many failed sign-ins for this email: try again in 15 minutes", None, 429)
        user = await repository.user_by_email(session, address)
        ok = verify_password(user.password_hash if user else None, password)
        if user is None or not ok or user.disabled_at is not None:
            await repository.add_audit(
                session, actor=address, user_id=user.id if user else None, role=user.role if user else "none",
                via="session", kind="sign_in_failed", method="POST", path="/console/login", status=401,
                request=None, before=None, after=None,
            )  # fmt: skip
            return None
        return await _start(session, user, session_hours, now)


async def _start(session: AsyncSession, user: ConsoleUser, hours: float, now: datetime) -> NewSession:
    token, csrf = new_secret(), new_secret()
    expires = now + timedelta(hours=hours)
    await repository.add_session(session, digest(token), user.id, csrf, expires)
    await repository.touch_login(session, user.id, now)
    return NewSession(token, csrf, user, expires)


async def sign_out(maker: Maker, token: str) -> None:
    async with maker() as session, session.begin():
        await repository.drop_session(session, digest(token))


async def new_token(maker: Maker, user_id: uuid.UUID, name: str) -> tuple[ApiToken, str]:
    """A new API token for the user: the secret (returned once) and its stored row."""
    secret = new_secret("fst_")
    async with maker() as session, session.begin():
        if await repository.get_user(session, user_id) is None:
            raise AccountError(f"no user {user_id}", None, 404)
        row = await repository.add_token(session, user_id, name, digest(secret))
    return row, secret


async def update_user(
    maker: Maker,
    user_id: uuid.UUID,
    *,
    role: Role | None,
    name: str | None,
    disabled: bool | None,
    now: datetime,
    password: str | None = None,
) -> ConsoleUser:
    """Change a user's role, name, disabled state or password; any but a new name signs them out everywhere."""
    if password is not None and (why := check_password(password)):
        raise AccountError(why, "password")
    async with maker() as session, session.begin():
        user = await repository.get_user(session, user_id)
        if user is None:
            raise AccountError(f"no user {user_id}", None, 404)
        changed = False
        if role is not None and role != user.role:
            user.role, changed = role, True
        if name is not None:
            user.name = name
        if disabled is not None and disabled != (user.disabled_at is not None):
            user.disabled_at, changed = (now if disabled else None), True
        if password is not None:
            user.password_hash, changed = hash_password(password), True
        if changed:
            await repository.end_sessions(session, user_id)
        await session.flush()
        await session.refresh(user)
        return user


async def change_password(
    maker: Maker, user_id: uuid.UUID, current: str | None, new: str, keep_session: str | None = None
) -> None:
    """Set a new password (checking `current` unless None: an admin's reset); every other session ends."""
    if why := check_password(new):
        raise AccountError(why, "password")
    async with maker() as session, session.begin():
        user = await repository.get_user(session, user_id)
        if user is None:
            raise AccountError(f"no user {user_id}", None, 404)
        if current is not None and not verify_password(user.password_hash, current):
            raise AccountError("the current password is wrong", "current")
        user.password_hash = hash_password(new)
        await repository.end_sessions(session, user_id, keep=digest(keep_session) if keep_session else None)
