"""Console screen for outgoing webhook endpoints: list, add one (its signing secret shown once), rotate
the secret, queue a test ping, stop one, and an endpoint's recent deliveries."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from services.console.web import ConsoleRoute, Viewer, call, check_csrf, error_of, form, page, read, see_other, viewer
from shared.outbox import ALL_EVENTS, EVENT_TYPES

Me = Annotated[Viewer, Depends(viewer)]
API = "/api/webhook-endpoints"


def webhooks_router() -> APIRouter:
    router = APIRouter(prefix="/console", include_in_schema=False, route_class=ConsoleRoute)

    async def screen(request: Request, me: Viewer, status: int = 200, **extra: Any) -> HTMLResponse:
        endpoints = await read(request, me, API)
        extra.setdefault("secret", None)
        return page("webhooks.html", status, me=me, endpoints=endpoints, event_types=EVENT_TYPES, all=ALL_EVENTS,
                    **extra)  # fmt: skip

    @router.get("/webhooks")
    async def webhooks(request: Request, me: Me, msg: str | None = None) -> HTMLResponse:
        return await screen(request, me, msg=msg)

    @router.post("/webhooks")
    async def create(request: Request, me: Me) -> Response:
        body = await request.body()
        # several event_types: a list, not the last value as in `form`
        pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=100)
        fields = dict(pairs)
        check_csrf(me, fields)
        types = [v for k, v in pairs if k == "event_types"]
        payload = {"url": fields.get("url", ""), "description": fields.get("description", ""), "event_types": types}
        status, answer = await call(request, me, "POST", API, json=payload)
        if status != 201:
            return await screen(request, me, status, error=error_of(answer))
        return await screen(request, me, secret={"url": answer["url"], "secret": answer["secret"]})

    @router.get("/webhooks/{endpoint_id}")
    async def deliveries(endpoint_id: str, request: Request, me: Me) -> HTMLResponse:
        rows = await read(request, me, f"{API}/{endpoint_id}/deliveries")
        return page("webhook_deliveries.html", me=me, deliveries=rows, endpoint_id=endpoint_id)

    @router.post("/webhooks/{endpoint_id}/{action}")
    async def change(endpoint_id: str, action: str, request: Request, me: Me) -> Response:
        check_csrf(me, await form(request))
        calls = {"rotate": ("POST", "/rotate-secret"), "test": ("POST", "/test"), "stop": ("DELETE", "")}
        if action not in calls:
            return page("message.html", 404, me=me, title="Webhooks", error=f"no action {action!r}")
        method, suffix = calls[action]
        status, answer = await call(request, me, method, f"{API}/{endpoint_id}{suffix}")
        if status not in (200, 202):
            return await screen(request, me, status, error=error_of(answer))
        if action == "rotate":
            return await screen(request, me, secret={"url": endpoint_id, "secret": answer["secret"]})
        return see_other("/console/webhooks?msg=" + ("Ping+queued" if action == "test" else "Endpoint+stopped"))

    return router
