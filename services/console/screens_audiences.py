"""Console screens for retargeting audiences: list with member counts, create from a JSON definition,
an audience's destinations with their sync status (pending, pushed, last error), add one, retry."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from services.console.web import ConsoleRoute, Viewer, call, check_csrf, error_of, form, page, read, see_other, viewer

Me = Annotated[Viewer, Depends(viewer)]
EXAMPLE: dict[str, Any] = {
    "include": [{"kind": "event", "name": "Product Viewed", "days": 7}],
    "exclude": [],
    "exclude_customers": True,
    "exclude_unsubscribed": True,
}


def parse(text: str, what: str) -> tuple[Any, str | None]:
    try:
        return json.loads(text or "{}"), None
    except ValueError as exc:
        return None, f"{what}: not JSON ({exc})"


def audiences_router() -> APIRouter:
    router = APIRouter(prefix="/console", include_in_schema=False, route_class=ConsoleRoute)

    async def list_screen(request: Request, me: Viewer, status: int = 200, **extra: Any) -> HTMLResponse:
        audiences = await read(request, me, "/api/audiences")
        extra.setdefault("fields", {"name": "", "description": "", "definition": json.dumps(EXAMPLE, indent=2)})
        return page("audiences.html", status, me=me, audiences=audiences, **extra)

    async def detail_screen(
        request: Request, me: Viewer, audience_id: str, status: int = 200, **extra: Any
    ) -> HTMLResponse:
        audience = await read(request, me, f"/api/audiences/{audience_id}")
        destinations = await read(request, me, f"/api/audiences/{audience_id}/destinations")
        extra.setdefault("fields", {"kind": "webhook", "name": "", "config": "{}", "credentials": "{}"})
        return page("audience.html", status, me=me, audience=audience, destinations=destinations, **extra)

    @router.get("/audiences")
    async def audiences(request: Request, me: Me, msg: str | None = None) -> HTMLResponse:
        return await list_screen(request, me, msg=msg)

    @router.post("/audiences")
    async def create(request: Request, me: Me) -> Response:
        fields = await form(request)
        check_csrf(me, fields)
        definition, error = parse(fields.get("definition", ""), "definition")
        if error:
            return await list_screen(request, me, 400, fields=fields, error=error)
        body = {"name": fields.get("name", ""), "description": fields.get("description", ""), "definition": definition}
        status, answer = await call(request, me, "POST", "/api/audiences", json=body)
        if status != 201:
            return await list_screen(request, me, status, fields=fields, error=error_of(answer))
        return see_other(f"/console/audiences/{answer['id']}?msg=Audience+created")

    @router.get("/audiences/{audience_id}")
    async def audience(audience_id: str, request: Request, me: Me, msg: str | None = None) -> HTMLResponse:
        return await detail_screen(request, me, audience_id, msg=msg)

    @router.post("/audiences/{audience_id}/destinations")
    async def add_destination(audience_id: str, request: Request, me: Me) -> Response:
        fields = await form(request)
        check_csrf(me, fields)
        config, error = parse(fields.get("config", ""), "config")
        credentials, error = (None, error) if error else parse(fields.get("credentials", ""), "credentials")
        if error:
            return await detail_screen(request, me, audience_id, 400, fields=fields, error=error)
        body = {"kind": fields.get("kind", ""), "name": fields.get("name", ""), "config": config}
        body["credentials"] = credentials
        path = f"/api/audiences/{audience_id}/destinations"
        status, answer = await call(request, me, "POST", path, json=body)
        if status != 201:
            return await detail_screen(request, me, audience_id, status, fields=fields, error=error_of(answer))
        return see_other(f"/console/audiences/{audience_id}?msg=Destination+added")

    @router.post("/audiences/{audience_id}/edit")
    async def edit(audience_id: str, request: Request, me: Me) -> Response:
        """A new definition: membership is recomputed by the API's rules."""
        fields = await form(request)
        check_csrf(me, fields)
        definition, error = parse(fields.get("definition", ""), "definition")
        if error:
            return await detail_screen(request, me, audience_id, 400, error=error)
        body = {"definition": definition, "description": fields.get("description")}
        status, answer = await call(request, me, "PATCH", f"/api/audiences/{audience_id}", json=body)
        if status != 200:
            return await detail_screen(request, me, audience_id, status, error=error_of(answer))
        return see_other(f"/console/audiences/{audience_id}?msg=Audience+saved")

    @router.post("/audiences/{audience_id}/destinations/{destination_id}/retry")
    async def retry(audience_id: str, destination_id: str, request: Request, me: Me) -> Response:
        check_csrf(me, await form(request))
        path = f"/api/audiences/{audience_id}/destinations/{destination_id}/retry"
        status, answer = await call(request, me, "POST", path)
        if status != 200:
            return await detail_screen(request, me, audience_id, status, error=error_of(answer))
        return see_other(f"/console/audiences/{audience_id}?msg=Sync+retried")

    return router
