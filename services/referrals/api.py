"""Admin routes of referrals: a lead's code (issued on demand) and who it brought."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from services.admin.api import ERRORS, AdminDep, SessionDep
from services.admin.scoring_repository import lead_id_of_user
from services.referrals import repository
from services.referrals.schemas import LeadReferrals, ReferralCodeOut, ReferredLead, ReferrerOut


def referrals_router() -> APIRouter:
    router = APIRouter(prefix="/api", dependencies=[AdminDep], responses=ERRORS, tags=["referrals"])

    @router.post("/leads/{user_id}/referral-code", response_model=ReferralCodeOut)
    async def issue_referral_code(user_id: str, session: SessionDep) -> ReferralCodeOut:
        """The lead's referral code, created now if it has none (buyers get one automatically)."""
        lead_id = await lead_id_of_user(session, user_id)
        if lead_id is None:
            raise HTTPException(404, f"no lead with user id {user_id!r}")
        codes = await repository.issue_codes(session, [lead_id])
        return ReferralCodeOut(code=codes[lead_id], lead_id=lead_id, user_id=user_id)

    @router.get("/leads/{user_id}/referrals", response_model=LeadReferrals)
    async def lead_referrals(user_id: str, session: SessionDep) -> LeadReferrals:
        lead_id = await lead_id_of_user(session, user_id)
        if lead_id is None:
            raise HTTPException(404, f"no lead with user id {user_id!r}")
        referrer = await repository.referrer_of(session, lead_id)
        return LeadReferrals(
            lead_id=lead_id,
            user_id=user_id,
            code=await repository.code_of(session, lead_id),
            referred=[
                ReferredLead(
                    lead_id=r.lead_id, user_id=r.user_id, code=r.code, event=r.event_name, occurred_at=r.occurred_at
                )
                for r in await repository.referred_by(session, lead_id)
            ],  # fmt: skip
            referred_by=ReferrerOut(lead_id=referrer[0], user_id=referrer[1]) if referrer else None,
        )

    return router
