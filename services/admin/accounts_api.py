"""Admin routes of accounts (Segment groups): their buying group's rolled-up score and stages."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from services.admin import scoring_repository as repo
from services.admin import scoring_service as svc
from services.admin.api import ERRORS, AdminDep, SessionDep
from services.admin.scoring_schemas import AccountDetail, AccountList, AccountOut
from services.scoring import accounts


def accounts_router() -> APIRouter:
    router = APIRouter(prefix="/api", dependencies=[AdminDep], responses=ERRORS, tags=["accounts"])

    @router.get("/accounts", response_model=AccountList)
    async def list_accounts(
        session: SessionDep,
        stage: Annotated[str | None, Query(max_length=80, description="Furthest member stage")] = None,
        model: Annotated[str | None, Query(max_length=80, description="Model of `stage`; default primary")] = None,
        min_score: Annotated[float | None, Query(description="Rolled-up score at least this")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        after: Annotated[str | None, Query(max_length=500, description="`next` of the previous page")] = None,
    ) -> AccountList:
        """Accounts (Segment groups), highest rolled-up score first."""
        where = None
        if stage is not None:
            funnel = svc.funnel_model((await repo.active_scorer(session)).rules, model)
            where = (funnel.name, svc.check_stage(funnel, stage))
        elif model is not None:
            raise svc.bad("stage", "give the stage to filter `model` by")
        cursor = svc.decode_cursor(after, Decimal, str) if after is not None else None
        rows = await repo.list_accounts(session, where, min_score, cursor, limit)
        page = rows[:limit]
        return AccountList(
            accounts=[AccountOut.model_validate(a, from_attributes=True) for a in page],
            next=svc.encode_cursor(str(page[-1].score), page[-1].account_id) if len(rows) > limit else None,
        )

    @router.get("/accounts/{account_id}", response_model=AccountDetail)
    async def get_account(account_id: str, session: SessionDep) -> AccountDetail:
        """An account with its traits, rolled-up score and stages, and its members scored now."""
        account = await repo.account(session, account_id)
        if account is None:
            raise HTTPException(404, f"no account {account_id!r}")
        scorer = await repo.active_scorer(session)
        at = datetime.now(UTC)
        decay = repo.Decay(at, scorer.half_life_s, scorer.rules.grades)
        members = (await repo.list_leads(session, repo.LeadQuery(account_id=account_id, limit=500), decay))[:500]
        score_now, _ = accounts.roll_up(scorer.rules, [(float(m["score_now"]), m["stages"]) for m in members])
        return AccountDetail(
            **AccountOut.model_validate(account, from_attributes=True).model_dump(),
            score_now=svc.quantized(score_now),
            scored_at=at,
            members=[svc.lead_out(m, at) for m in members],
        )

    return router
