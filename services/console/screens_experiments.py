"""Console screens for experiments on sequence steps: list, start one on a step with variants, the results
per variant (exposures, rate, interval, P(best), the leader), pick the winner, or stop."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from services.console.web import ConsoleRoute, Viewer, call, check_csrf, error_of, form, page, read, see_other, viewer

Me = Annotated[Viewer, Depends(viewer)]
METRICS = ("open", "click", "conversion", "revenue")


def experiments_router() -> APIRouter:
    router = APIRouter(prefix="/console", include_in_schema=False, route_class=ConsoleRoute)

    async def list_screen(request: Request, me: Viewer, status: int = 200, **extra: Any) -> HTMLResponse:
        experiments = await read(request, me, "/api/experiments")
        sequences = await read(request, me, "/api/sequences")
        names = {s["id"]: s["name"] for s in sequences}
        extra.setdefault("fields", {"name": "", "sequence_id": "", "step_id": "", "metric": "click", "goal_event": ""})
        return page("experiments.html", status, me=me, experiments=experiments, sequences=sequences, names=names,
                    metrics=METRICS, **extra)  # fmt: skip

    async def detail_screen(
        request: Request, me: Viewer, experiment_id: str, status: int = 200, **extra: Any
    ) -> HTMLResponse:
        results = await read(request, me, f"/api/experiments/{experiment_id}/results")
        return page("experiment.html", status, me=me, results=results, experiment=results["experiment"], **extra)

    @router.get("/experiments")
    async def experiments(request: Request, me: Me, msg: str | None = None) -> HTMLResponse:
        return await list_screen(request, me, msg=msg)

    @router.post("/experiments")
    async def create(request: Request, me: Me) -> Response:
        fields = await form(request)
        check_csrf(me, fields)
        body = {
            "name": fields.get("name", ""), "sequence_id": fields.get("sequence_id", ""),
            "step_id": fields.get("step_id", ""), "metric": fields.get("metric", ""),
            "goal_event": fields.get("goal_event") or None,
        }  # fmt: skip
        status, answer = await call(request, me, "POST", "/api/experiments", json=body)
        if status != 201:
            return await list_screen(request, me, status, fields=fields, error=error_of(answer))
        return see_other(f"/console/experiments/{answer['id']}?msg=Experiment+started")

    @router.get("/experiments/{experiment_id}")
    async def experiment(experiment_id: str, request: Request, me: Me, msg: str | None = None) -> HTMLResponse:
        return await detail_screen(request, me, experiment_id, msg=msg)

    @router.post("/experiments/{experiment_id}/{action}")
    async def change(experiment_id: str, action: str, request: Request, me: Me) -> Response:
        fields = await form(request)
        check_csrf(me, fields)
        if action not in ("decide", "stop"):
            return page("message.html", 404, me=me, title="Experiments", error=f"no action {action!r}")
        body = {"winner": fields.get("winner", "")} if action == "decide" else None
        status, answer = await call(request, me, "POST", f"/api/experiments/{experiment_id}/{action}", json=body)
        if status != 200:
            return await detail_screen(request, me, experiment_id, status, error=error_of(answer))
        return see_other(f"/console/experiments/{experiment_id}?msg=Experiment+is+now+{answer['status']}")

    return router
