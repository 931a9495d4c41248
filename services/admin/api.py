"""HTTP routes of the admin API, every one behind the admin token, a user's API token or console session."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.admin import repository, scoring_repository, scoring_service
from services.admin.schemas import LeadList, Problem, SourceCreate, SourceCreated, SourceOut
from services.admin.scoring_schemas import LeadDetail
from services.console import auth as console_auth
from services.console.service import ADMIN_TOKEN_ACTOR
from shared.security import hash_write_key, new_write_key, same_secret

bearer = HTTPBearer(
    auto_error=False, description="Authorization: Bearer <FUNNELSTREAM_ADMIN_TOKEN or a user API token>"
)


async def require_admin(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> None:
    """The bootstrap admin token; else a user's API token or console session, within the user's role."""
    expected: str = request.app.state.admin_token
    if credentials is not None and same_secret(credentials.credentials, expected):
        console_auth.remember(request, ADMIN_TOKEN_ACTOR)
        return
    await console_auth.require_user(request, credentials.credentials if credentials else None)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session and transaction per request, committed when the route returns."""
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with maker() as session, session.begin():
        yield session


async def lead_detail(session: AsyncSession, user_id: str) -> LeadDetail | None:
    """The lead known by `user_id` as of now under the active rules, or None."""
    lead_id = await scoring_repository.lead_id_of_user(session, user_id)
    found = await scoring_repository.lead_row(session, lead_id) if lead_id is not None else None
    if found is None:
        return None
    row, times = found
    scorer = await scoring_repository.active_scorer(session)
    history = await scoring_repository.lead_history(session, row.lead_id)
    return scoring_service.lead_detail(scorer, row, times, history, datetime.now(UTC))


AdminDep = Depends(require_admin)
# scope="function": the transaction commits before the answer is sent, so a client never reads old
# data right after a 200, and a failed commit is an error answer, not a 200.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
# A stored version number (a PostgreSQL integer): larger ones name nothing, a 400 rather than a failed query.
VersionPath = Annotated[int, Path(ge=1, le=2**31 - 1)]
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
        stage: Annotated[str | None, Query(max_length=80, description="Only leads in this stage")] = None,
        model: Annotated[
            str | None, Query(max_length=80, description="Funnel model of `stage`; default primary")
        ] = None,
        grade: Annotated[
            list[str] | None, Query(description="Grades at request time, e.g. A1; repeat or comma-list")
        ] = None,
        min_score: Annotated[float | None, Query(description="Score decayed to request time at least this")] = None,
        max_score: Annotated[float | None, Query(description="Score decayed to request time at most this")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        after: Annotated[str | None, Query(max_length=500, description="`next` of the previous page")] = None,
    ) -> LeadList:
        """Find leads by one identity (email, anonymous_id or user_id), or else list live leads, highest score
        first, filtered by stage, grade and score. Scores are decayed to the time of the first page."""
        given = {k: v for k, v in {"email": email, "anonymous_id": anonymous_id, "user_id": user_id}.items() if v}
        if len(given) > 1:
            raise HTTPException(400, "give at most one of email, anonymous_id, user_id")
        scorer = await scoring_repository.active_scorer(session)
        at, cursor = datetime.now(UTC), None
        if after is not None and not given:
            at, score, lead_id = scoring_service.decode_cursor(after, datetime, float, uuid.UUID)
            cursor = (score, lead_id)
        where = None
        if stage is not None:
            funnel = scoring_service.funnel_model(scorer.rules, model)
            where = (funnel.name, scoring_service.check_stage(funnel, stage), funnel.name == scorer.rules.primary_model)
        elif model is not None:
            raise scoring_service.bad("stage", "give the stage to filter `model` by")
        grades = tuple(g.strip().upper() for value in grade or () for g in value.split(",") if g.strip())
        for g in grades:
            if len(g) != 2 or g[0] not in "ABCD" or g[1] not in "1234":
                raise scoring_service.bad("grade", f"{g!r} is not a grade (A1 to D4)")
        query = scoring_repository.LeadQuery(
            identity=next(iter(given.items()), None),
            stage=where,
            grades=grades,
            min_score=min_score,
            max_score=max_score,
            after=cursor,
            limit=500 if given else limit,
            order="created" if given else "score",
        )
        decay = scoring_repository.Decay(at, scorer.half_life_s, scorer.rules.grades)
        rows = await scoring_repository.list_leads(session, query, decay)
        page, more = rows[: query.limit], len(rows) > query.limit and not given
        last = page[-1] if page else None
        return LeadList(
            leads=[scoring_service.lead_out(row, at) for row in page],
            next=scoring_service.encode_cursor(at.isoformat(), last["score_now"], last["lead_id"])
            if more and last
            else None,
        )

    @router.get("/leads/{user_id}", response_model=LeadDetail, tags=["leads"])
    async def get_lead(user_id: str, session: SessionDep) -> LeadDetail:
        """The lead known by this user id, scored at the time of the request, with its stage history,
        recent events, latest ledger entries, accounts and alerts."""
        detail = await lead_detail(session, user_id)
        if detail is None:
            raise HTTPException(404, f"no lead with user id {user_id!r}")
        return detail

    return router
