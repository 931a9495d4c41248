"""Admin API routes of people's accounts (admin only), one's own API tokens, and the audit log."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.admin.api import ERRORS, AdminDep, SessionDep
from services.console import accounts, repository
from services.console.accounts import AccountError
from services.console.auth import ACTOR_KEY
from services.console.schemas import (
    AuditList,
    AuditOut,
    InviteCreate,
    InviteCreated,
    InviteOut,
    Me,
    TokenCreate,
    TokenCreated,
    TokenOut,
    UserCreate,
    UserOut,
    UserPatch,
)
from services.console.service import Actor
from services.nurture.delivery.api import DeliveryDep
from shared.settings import AdminSettings


def actor_of(request: Request) -> Actor:
    actor = request.scope.get(ACTOR_KEY)
    if not isinstance(actor, Actor):  # AdminDep runs first and sets it
        raise HTTPException(500, "no actor for this request")
    return actor


def maker_of(request: Request) -> async_sessionmaker[AsyncSession]:
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    return maker


def failed(exc: AccountError) -> HTTPException:
    return HTTPException(exc.status, str(exc))


def console_api_router(settings: AdminSettings) -> APIRouter:
    router = APIRouter(prefix="/api", dependencies=[AdminDep], responses=ERRORS)
    secret_key = settings.secret_key.get_secret_value()

    @router.get("/me", response_model=Me, tags=["users"])
    async def me(request: Request) -> Me:
        """Who the credentials belong to, and their role."""
        actor = actor_of(request)
        return Me(actor=actor.label, role=actor.role, via=actor.via, user_id=actor.user_id)

    @router.get("/users", response_model=list[UserOut], tags=["users"])
    async def list_users(session: SessionDep) -> list[UserOut]:
        """Every user, by email (admin only)."""
        return [UserOut.model_validate(u) for u in await repository.list_users(session)]

    @router.post("/users", status_code=201, response_model=UserOut, tags=["users"])
    async def create_user(body: UserCreate, request: Request) -> UserOut:
        """Create a user directly, e.g. the first admin with the admin token. Without a password the user
        cannot sign in until invited."""
        try:
            user = await accounts.create_user(maker_of(request), body.email, body.role, body.password, body.name)
        except AccountError as exc:
            raise failed(exc) from None
        return UserOut.model_validate(user)

    @router.patch("/users/{user_id}", response_model=UserOut, tags=["users"])
    async def update_user(user_id: uuid.UUID, body: UserPatch, request: Request) -> UserOut:
        """Change a user's role or name, disable them or reset their password; all but a new name end their
        sessions."""
        try:
            user = await accounts.update_user(
                maker_of(request), user_id, role=body.role, name=body.name, disabled=body.disabled,
                now=datetime.now(UTC), password=body.password,
            )  # fmt: skip
        except AccountError as exc:
            raise failed(exc) from None
        return UserOut.model_validate(user)

    @router.get("/users/{user_id}/tokens", response_model=list[TokenOut], tags=["users"])
    async def user_tokens(user_id: uuid.UUID, session: SessionDep) -> list[TokenOut]:
        return [TokenOut.model_validate(t) for t in await repository.list_tokens(session, user_id)]

    @router.post("/users/{user_id}/tokens", status_code=201, response_model=TokenCreated, tags=["users"])
    async def create_user_token(user_id: uuid.UUID, body: TokenCreate, request: Request) -> TokenCreated:
        """An API token acting as this user, with the user's role; the token is shown only in this answer."""
        return await _token(request, user_id, body.name)

    @router.post("/users/{user_id}/tokens/{token_id}/revoke", response_model=TokenOut, tags=["users"])
    async def revoke_user_token(user_id: uuid.UUID, token_id: uuid.UUID, session: SessionDep) -> TokenOut:
        row = await repository.revoke_token(session, token_id, datetime.now(UTC), user_id)
        if row is None:
            raise HTTPException(404, f"no token {token_id} of user {user_id}")
        return TokenOut.model_validate(row)

    @router.get("/me/tokens", response_model=list[TokenOut], tags=["users"])
    async def my_tokens(request: Request, session: SessionDep) -> list[TokenOut]:
        """Your own API tokens (not their secrets)."""
        actor = actor_of(request)
        if actor.user_id is None:
            return []
        return [TokenOut.model_validate(t) for t in await repository.list_tokens(session, actor.user_id)]

    @router.post("/me/tokens", status_code=201, response_model=TokenCreated, tags=["users"])
    async def create_my_token(body: TokenCreate, request: Request) -> TokenCreated:
        """A new API token for yourself (any role but viewer), shown only in this answer."""
        actor = actor_of(request)
        if actor.user_id is None:
            raise HTTPException(400, "the admin token is not a user; create a user and a token for it")
        return await _token(request, actor.user_id, body.name)

    @router.post("/me/tokens/{token_id}/revoke", response_model=TokenOut, tags=["users"])
    async def revoke_my_token(token_id: uuid.UUID, request: Request, session: SessionDep) -> TokenOut:
        actor = actor_of(request)
        row = None
        if actor.user_id is not None:
            row = await repository.revoke_token(session, token_id, datetime.now(UTC), actor.user_id)
        if row is None:
            raise HTTPException(404, f"you have no token {token_id}")
        return TokenOut.model_validate(row)

    async def _token(request: Request, user_id: uuid.UUID, name: str) -> TokenCreated:
        try:
            row, secret = await accounts.new_token(maker_of(request), user_id, name)
        except AccountError as exc:
            raise failed(exc) from None
        return TokenCreated.model_validate({**TokenOut.model_validate(row).model_dump(), "token": secret})

    @router.get("/invites", response_model=list[InviteOut], tags=["users"])
    async def list_invites(session: SessionDep) -> list[InviteOut]:
        """Invites, newest first (admin only)."""
        return [InviteOut.model_validate(i) for i in await repository.list_invites(session)]

    @router.post("/invites", status_code=201, response_model=InviteCreated, tags=["users"])
    async def create_invite(body: InviteCreate, request: Request, d: DeliveryDep) -> InviteCreated:
        """Invite someone by email: a transactional email with a signed link that works once, for
        FUNNELSTREAM_CONSOLE_INVITE_HOURS, to set a password. The link is also in this answer."""
        base = settings.console_base_url or str(request.base_url)
        try:
            row, url, outcome = await accounts.invite(
                d.sessionmaker, d.settings, secret_key=secret_key, email=body.email, role=body.role,
                by=actor_of(request), base_url=base, hours=settings.console_invite_hours,
            )  # fmt: skip
        except AccountError as exc:
            raise failed(exc) from None
        out = InviteOut.model_validate(row).model_dump()
        return InviteCreated(**out, accept_url=url, send_status=outcome.status, send_error=outcome.error)

    @router.post("/invites/{invite_id}/revoke", response_model=InviteOut, tags=["users"])
    async def revoke_invite(invite_id: uuid.UUID, session: SessionDep) -> InviteOut:
        """Withdraw an invite that was not accepted yet: its link stops working."""
        row = await repository.get_invite(session, invite_id, lock=True)
        if row is None:
            raise HTTPException(404, f"no invite {invite_id}")
        if row.accepted_at is not None:
            raise HTTPException(409, "the invite was accepted already; disable the user instead")
        row.revoked_at = row.revoked_at or datetime.now(UTC)
        await session.flush()
        return InviteOut.model_validate(row)

    @router.get("/audit", response_model=AuditList, tags=["audit"])
    async def audit(
        session: SessionDep,
        actor: Annotated[
            str | None, Query(max_length=320, description="Only this actor (email, 'admin token')")
        ] = None,
        kind: Annotated[str | None, Query(max_length=40, description="change, sales_decision, sign_in, ...")] = None,
        path: Annotated[str | None, Query(max_length=500, description="Only paths starting with this")] = None,
        before_id: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="`next` of the previous page")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> AuditList:
        """The audit log, newest first: every change through the API or console and every sales decision,
        with who, when, the request, the resource before (where readable) and the answer after."""
        rows = await repository.list_audit(
            session, actor=actor, kind=kind, path_prefix=path, before_id=before_id, limit=limit + 1
        )
        page = rows[:limit]
        return AuditList(
            entries=[AuditOut.model_validate(r) for r in page], next=page[-1].id if len(rows) > limit else None
        )

    return router
