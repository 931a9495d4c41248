"""HTTP routes of the admin API, every one behind the admin bearer token."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.admin import repository
from services.admin.schemas import LeadList, LeadOut, Problem, SourceCreate, SourceCreated, SourceOut
from shared.security import hash_write_key, new_write_key, same_secret

bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <FUNNELSTREAM_ADMIN_TOKEN>")


async def require_admin(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> None:
    expected: str = request.app.state.admin_token
    if credentials is None or not same_secret(credentials.credentials, expected):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "missing or wrong admin token", headers={"WWW-Authenticate": "Bearer"}
        )


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session and transaction per request, committed when the route returns."""
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with maker() as session, session.begin():
        yield session


AdminDep = Depends(require_admin)
SessionDep = Annotated[AsyncSession, Depends(get_session)]
ERRORS: dict[int | str, dict[str, object]] = {401: {"model": Problem}, 404: {"model": Problem}, 400: {"model": Problem}}


def admin_router() -> APIRouter:
    router = APIRouter(prefix="/api", dependencies=[AdminDep], responses=ERRORS)

    @router.post("/sources", status_code=201, response_model=SourceCreated, tags=["sources"])
    async def create_source(body: SourceCreate, session: SessionDep) -> SourceCreated:
        """Create a source and its write key (shown only in this answer)."""
        key = new_write_key()
        source = await repository.add_source(session, body.name, hash_write_key(key))
        return SourceCreated(id=source.id, name=source.name, write_key=key)

    @router.get("/sources", response_model=list[SourceOut], tags=["sources"])
    async def list_sources(session: SessionDep) -> list[SourceOut]:
        return [SourceOut.model_validate(s) for s in await repository.list_sources(session)]

    @router.post("/sources/{source_id}/revoke", response_model=SourceOut, tags=["sources"])
    async def revoke_source(source_id: uuid.UUID, session: SessionDep) -> SourceOut:
        """Revoke a write key; ingest refuses it within FUNNELSTREAM_WRITE_KEY_CACHE_SECONDS (10 s)."""
        source = await repository.revoke_source(session, source_id)
        if source is None:
            raise HTTPException(404, f"no source {source_id}")
        return SourceOut.model_validate(source)

    @router.get("/leads", response_model=LeadList, tags=["leads"])
    async def find_leads(
        session: SessionDep,
        email: Annotated[str | None, Query(max_length=320)] = None,
        anonymous_id: Annotated[str | None, Query(max_length=512)] = None,
        user_id: Annotated[str | None, Query(max_length=512)] = None,
    ) -> LeadList:
        """Find leads by any identity they are known by."""
        given = {k: v for k, v in {"email": email, "anonymous_id": anonymous_id, "user_id": user_id}.items() if v}
        if len(given) != 1:
            raise HTTPException(400, "give exactly one of email, anonymous_id, user_id")
        kind, value = next(iter(given.items()))
        leads = await repository.leads_by_identity(session, kind, value)
        return LeadList(leads=[LeadOut.model_validate(lead) for lead in leads])

    @router.get("/leads/{user_id}", response_model=LeadOut, tags=["leads"])
    async def get_lead(user_id: str, session: SessionDep) -> LeadOut:
        """The lead known by this user id."""
        leads = await repository.leads_by_identity(session, "user_id", user_id)
        if not leads:
            raise HTTPException(404, f"no lead with user id {user_id!r}")
        return LeadOut.model_validate(leads[0])

    return router
