"""Console screen for email sends: the latest ones by status, and for sends in doubt (`unknown`, whose
process stopped mid-SMTP) or `failed`, the operator's decision: resend the stored message, or drop it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from services.console.web import ConsoleRoute, Viewer, call, check_csrf, error_of, form, page, see_other, viewer

Me = Annotated[Viewer, Depends(viewer)]
STATUSES = ("unknown", "failed", "sent", "suppressed", "claimed", "dropped")


def sends_router() -> APIRouter:
    router = APIRouter(prefix="/console", include_in_schema=False, route_class=ConsoleRoute)

    @router.get("/sends")
    async def sends(request: Request, me: Me, status: str = "unknown", msg: str | None = None) -> HTMLResponse:
        status = status if status in STATUSES else "unknown"
        code, body = await call(request, me, "GET", "/api/sends", params={"status": status, "limit": 200})
        rows = body["sends"] if code == 200 else []
        return page("sends.html", code, me=me, sends=rows, shown=status, statuses=STATUSES, msg=msg,
                    error=None if code == 200 else error_of(body))  # fmt: skip

    @router.post("/sends/{send_id}/{action}")
    async def decide(send_id: str, action: str, request: Request, me: Me) -> Response:
        fields = await form(request)
        check_csrf(me, fields)
        if action not in ("resend", "drop"):
            return page("message.html", 404, me=me, title="Sends", error=f"no action {action!r}")
        body = {"reason": fields.get("reason", "")} if action == "drop" else None
        code, answer = await call(request, me, "POST", f"/api/sends/{send_id}/{action}", json=body)
        if code != 200:
            return page("message.html", code, me=me, title="Sends", error=error_of(answer))
        done = f"Resent:+{answer['status']}" if action == "resend" else "Dropped"
        return see_other(f"/console/sends?status={fields.get('back', 'unknown')}&msg={done}")

    return router
