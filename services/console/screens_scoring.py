"""Console screens for scoring: rule-set versions, a new draft from JSON, its dry run shown next to the
active rules' result before activation, and activation (which starts a rescore)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from services.console.web import ConsoleRoute, Viewer, call, check_csrf, error_of, form, page, read, see_other, viewer

Me = Annotated[Viewer, Depends(viewer)]


def stages_of(rules: dict[str, Any]) -> list[tuple[str, str]]:
    """(model, stage) pairs a dry run can be asked about."""
    return [(m["name"], s["name"]) for m in rules.get("models", []) for s in m.get("stages", [])]


def scoring_router() -> APIRouter:
    router = APIRouter(prefix="/console", include_in_schema=False, route_class=ConsoleRoute)

    async def screen(
        request: Request, me: Viewer, version: int | None, status: int = 200, **extra: Any
    ) -> HTMLResponse:
        versions = await read(request, me, "/api/scoring/rule-sets")
        shown = await read(
            request, me, f"/api/scoring/rule-sets/{version}" if version else "/api/scoring/rule-sets/active"
        )
        extra.setdefault("draft", json.dumps(shown["rules"], indent=2))
        extra.setdefault("dry_run", None)
        return page("scoring.html", status, me=me, versions=versions, shown=shown, stages=stages_of(shown["rules"]),
                    **extra)  # fmt: skip

    @router.get("/scoring")
    async def scoring(request: Request, me: Me, version: int | None = None, msg: str | None = None) -> HTMLResponse:
        return await screen(request, me, version, msg=msg)

    @router.post("/scoring/dry-run")
    async def dry_run(request: Request, me: Me) -> Response:
        """Dry-run a stored version (no change: a viewer may do it too)."""
        fields = await form(request)
        check_csrf(me, fields)
        version = int(fields.get("version") or 0) or None
        model, _, stage = fields.get("target", "").partition("/")
        body = {"version": version, "days": int(fields.get("days") or 30), "model": model or None, "stage": stage}
        status, answer = await call(request, me, "POST", "/api/scoring/dry-run", json=body)
        if status != 200:
            return await screen(request, me, version, status, error=error_of(answer))
        return await screen(request, me, version, dry_run=answer)

    @router.post("/scoring/rule-sets")
    async def create(request: Request, me: Me) -> Response:
        fields = await form(request)
        check_csrf(me, fields)
        try:
            rules = json.loads(fields.get("rules", ""))
        except ValueError as exc:
            return await screen(request, me, None, 400, draft=fields.get("rules", ""), error=f"rules: not JSON ({exc})")
        body = {"rules": rules, "note": fields.get("note", "")}
        status, answer = await call(request, me, "POST", "/api/scoring/rule-sets", json=body)
        if status != 201:
            return await screen(request, me, None, status, draft=fields.get("rules", ""), error=error_of(answer))
        return see_other(f"/console/scoring?version={answer['version']}&msg=Draft+saved:+dry-run+it,+then+activate")

    @router.post("/scoring/rule-sets/{version}/activate")
    async def activate(version: int, request: Request, me: Me) -> Response:
        fields = await form(request)
        check_csrf(me, fields)
        body = {"emit_changes": fields.get("emit_changes") == "on"}
        status, answer = await call(request, me, "POST", f"/api/scoring/rule-sets/{version}/activate", json=body)
        if status != 202:
            return await screen(request, me, version, status, error=error_of(answer))
        return see_other(f"/console/scoring?version={version}&msg=Active;+rescoring+{answer['total']}+leads")

    return router
