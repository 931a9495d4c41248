"""Admin API routes of experiments: create, list, results, decide, stop."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from services.admin.api import ERRORS, AdminDep, SessionDep
from services.admin.schemas import Problem
from services.nurture.experiments import repository, service
from services.nurture.experiments.schemas import Decide, ExperimentCreate, ExperimentOut, ResultsOut
from services.nurture.sequences.definition import Definition

CONFLICT: dict[int | str, dict[str, Any]] = {409: {"model": Problem}}
METHOD = (
    "always-valid mixture SPRT on the difference of rates (valid however often results are looked at); "
    "P(best) from Beta or normal posteriors, descriptive"
)


def problem(status: int, error: str, field: str | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "field": field}, status_code=status)


async def load_results(session: AsyncSession, experiment_id: uuid.UUID) -> ResultsOut | None:
    """The results of one experiment as the API answers them (the dashboard renders this too)."""
    experiment = await repository.get(session, experiment_id)
    if experiment is None:
        return None
    arms = await repository.outcomes(session, experiment)
    return ResultsOut(experiment=ExperimentOut(**experiment), method=METHOD, **service.results(experiment, arms))


def experiments_router() -> APIRouter:
    router = APIRouter(prefix="/api", dependencies=[AdminDep], responses=ERRORS, tags=["experiments"])

    async def found(session: AsyncSession, experiment_id: uuid.UUID) -> dict[str, Any]:
        experiment = await repository.get(session, experiment_id)
        if experiment is None:
            raise HTTPException(404, f"no experiment {experiment_id}")
        return experiment

    @router.post("/experiments", status_code=201, response_model=ExperimentOut, responses=CONFLICT)
    async def create(body: ExperimentCreate, session: SessionDep) -> Any:
        """Start an experiment on a send step with variants or a split step of the sequence's current version."""
        raw = await repository.sequence_step(session, body.sequence_id)
        if raw is None:
            return problem(404, f"no sequence {body.sequence_id}", "sequence_id")
        try:
            kind, variants = service.variants_of(Definition.model_validate(raw), body.step_id)
        except service.ExperimentError as exc:
            return problem(400, str(exc), exc.field)
        goal = body.goal_event or ("Order Completed" if body.metric == "revenue" else None)
        values = {
            **body.model_dump(exclude={"window"}),
            "id": uuid.uuid4(),
            "kind": kind,
            "variants": orjson.dumps(variants).decode(),
            "goal_event": goal,
            "window_seconds": int(body.window.total_seconds()),
        }
        created = await repository.create(session, values)
        if created is None:
            return problem(409, f"step {body.step_id!r} already has a running experiment", "step_id")
        return ExperimentOut(**created)

    @router.get("/experiments", response_model=list[ExperimentOut])
    async def listing(
        session: SessionDep, sequence_id: Annotated[uuid.UUID | None, Query()] = None
    ) -> list[ExperimentOut]:
        return [ExperimentOut(**e) for e in await repository.listing(session, sequence_id)]

    @router.get("/experiments/{experiment_id}", response_model=ExperimentOut)
    async def detail(experiment_id: uuid.UUID, session: SessionDep) -> ExperimentOut:
        return ExperimentOut(**await found(session, experiment_id))

    @router.get("/experiments/{experiment_id}/results", response_model=ResultsOut)
    async def results(experiment_id: uuid.UUID, session: SessionDep) -> ResultsOut:
        """Per variant exposures, rates, intervals and P(best); each variant against the first; the leader."""
        answer = await load_results(session, experiment_id)
        if answer is None:
            raise HTTPException(404, f"no experiment {experiment_id}")
        return answer

    @router.post("/experiments/{experiment_id}/decide", response_model=ExperimentOut, responses=CONFLICT)
    async def decide(experiment_id: uuid.UUID, body: Decide, session: SessionDep) -> Any:
        """Pick the winner by hand (recorded with the numbers of the moment); remaining traffic goes to it."""
        experiment = await found(session, experiment_id)
        if body.winner not in {v["key"] for v in experiment["variants"]}:
            return problem(400, f"no variant {body.winner!r}", "winner")
        arms = await repository.outcomes(session, experiment)
        now = datetime.now(UTC)
        numbers = {"decided_at": now.isoformat(), "rule": "manual", **service.results(experiment, arms)}
        if not await repository.decide(session, experiment_id, body.winner, numbers, now):
            return problem(409, f"experiment is {experiment['status']}, not running", "winner")
        return ExperimentOut(**await found(session, experiment_id))

    @router.post("/experiments/{experiment_id}/stop", response_model=ExperimentOut)
    async def stop(experiment_id: uuid.UUID, session: SessionDep) -> ExperimentOut:
        """End the experiment: nothing more is recorded; the step splits by its own weights again."""
        stopped = await repository.stop(session, experiment_id)
        if stopped is None:
            raise HTTPException(404, f"no experiment {experiment_id}")
        return ExperimentOut(**stopped)

    return router
