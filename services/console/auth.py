"""Who is calling the admin API, and whether their role allows the request.

Three ways in: the bootstrap admin token (checked by services/admin/api.py first, unchanged), a user's API
token as a Bearer token, or the console's session cookie. A request made with the cookie that changes
something must also carry the session's CSRF token in the X-CSRF-Token header (the console's own forms
are checked against the same token before they call the API).
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import HTTPException, Request, status
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.console import repository
from services.console.service import Actor, digest, is_change, refusal
from shared.security import same_secret

SESSION_COOKIE = "fs_session"
CSRF_HEADER = "X-CSRF-Token"
ACTOR_KEY = "funnelstream.actor"  # in the ASGI scope, where the audit middleware finds it


async def find_actor(request: Request, bearer: str | None) -> Actor | None:
    """The user behind an API token or a session cookie, or None."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not bearer and not cookie:
        return None
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    now = datetime.now(UTC)
    async with maker() as session, session.begin():
        if bearer:
            return await repository.token_actor(session, digest(bearer), now)
        return await repository.session_actor(session, digest(cookie or ""), now)


def remember(request: Request, actor: Actor) -> None:
    request.scope[ACTOR_KEY] = actor


def authorize(request: Request, actor: Actor) -> None:
    """403 unless the actor's role allows this request; a cookie-authenticated change needs the CSRF header."""
    remember(request, actor)
    method, path = request.method, request.url.path
    if actor.via == "session" and is_change(method, path):
        given = request.headers.get(CSRF_HEADER, "")
        if not actor.csrf_token or not same_secret(given, actor.csrf_token):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "CSRF token missing or wrong")
    why = refusal(actor.role, method, path)
    if why is not None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"forbidden: {why}")


async def require_user(request: Request, bearer: str | None) -> Actor:
    """The authorized actor of a request without the admin token; 401 or 403 otherwise."""
    actor = await find_actor(request, bearer)
    if actor is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or wrong admin token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    authorize(request, actor)
    return actor
