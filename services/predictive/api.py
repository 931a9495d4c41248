"""Admin routes of predictive scoring: train, list runs with their evaluation, roll back, a lead's prediction."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import JSONResponse

from services.admin import scoring_repository
from services.admin.api import ERRORS, AdminDep, SessionDep
from services.admin.schemas import Problem
from services.predictive import repository
from services.predictive.schemas import LeadPredictionOut, ModelRun, RollbackOut, TrainRequest
from services.predictive.training import TrainingError, params_of, run_training
from shared.settings import PredictiveSettings


def predictive_router(settings: PredictiveSettings) -> APIRouter:
    router = APIRouter(prefix="/api", dependencies=[AdminDep], responses=ERRORS, tags=["predictive"])

    @router.post("/predictive/train", status_code=201, response_model=ModelRun)
    async def train(body: TrainRequest, session: SessionDep) -> ModelRun | JSONResponse:
        """Train now on the stored history; activated only if it beats the active rules (see `reason`)."""
        params = params_of(settings, **body.model_dump())
        try:
            row = await run_training(session, params, datetime.now(UTC), settings.predictive_max_leads)
        except TrainingError as exc:
            return JSONResponse({"error": str(exc), "field": exc.field}, status_code=400)
        return ModelRun.model_validate(row)

    @router.get("/predictive/models", response_model=list[ModelRun])
    async def runs(
        session: SessionDep,
        funnel_model: str | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> list[ModelRun]:
        """Every training run, newest first, with metrics, decision and reason."""
        return [ModelRun.model_validate(r) for r in await repository.runs(session, funnel_model, limit)]

    @router.get("/predictive/models/{version}", response_model=ModelRun)
    async def run(version: Annotated[int, Path(ge=1, le=2_147_483_647)], session: SessionDep) -> ModelRun:
        found = await repository.run(session, version)
        if found is None:
            raise HTTPException(404, f"no predictive model {version}")
        return ModelRun.model_validate(found)

    @router.post(
        "/predictive/models/{funnel_model}/rollback",
        response_model=RollbackOut,
        responses={409: {"model": Problem, "description": "No model of this funnel model is active"}},
    )
    async def rollback(funnel_model: str, session: SessionDep) -> RollbackOut:
        """The active model steps down; the one active before it is active again (none if there was none)."""
        done = await repository.rollback(session, funnel_model)
        if done is None:
            raise HTTPException(409, f"no active predictive model for {funnel_model!r}")
        return RollbackOut(funnel_model=funnel_model, rolled_back=done[0], active=done[1])

    @router.get("/leads/{user_id}/prediction", response_model=list[LeadPredictionOut])
    async def lead_prediction(user_id: str, session: SessionDep) -> list[LeadPredictionOut]:
        """The lead's latest predictions, one per funnel model with an active model, and why."""
        lead_id = await scoring_repository.lead_id_of_user(session, user_id)
        if lead_id is None:
            raise HTTPException(404, f"no lead with user id {user_id!r}")
        return [LeadPredictionOut.model_validate(p) for p in await repository.lead_predictions(session, lead_id)]

    return router
