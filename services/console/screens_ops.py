"""Console screens for operations: sources and write keys (with the snippet), leads and their timelines
(with sales decisions), users and invites (admin), the dev mailbox and the audit log."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from services.console.web import ConsoleRoute, Viewer, call, check_csrf, error_of, form, page, read, see_other, viewer

Me = Annotated[Viewer, Depends(viewer)]


def timeline(lead: dict[str, Any]) -> list[dict[str, Any]]:
    """Events and stage changes of a lead, newest first, in one list."""
    items = [
        {"at": e["occurred_at"], "what": "event", "text": f"{e['type']} {e.get('name') or ''}".strip(),
         "note": f"bot: {e['bot']}" if e.get("bot") else ""}
        for e in lead.get("recent_events", [])
    ]  # fmt: skip
    for s in lead.get("stage_history", []):
        note = s.get("reason") or ""
        if s.get("details"):
            note = f"{note} {s['details']}".strip()
        items.append({"at": s["at"], "what": f"stage ({s['kind']})",
                      "text": f"{s['model']}: {s.get('from') or '—'} → {s['to']}", "note": note})  # fmt: skip
    return sorted(items, key=lambda i: str(i["at"]), reverse=True)


def ops_router() -> APIRouter:
    router = APIRouter(prefix="/console", include_in_schema=False, route_class=ConsoleRoute)

    # -- sources -----------------------------------------------------------------------------------

    @router.get("/sources")
    async def sources(request: Request, me: Me, msg: str | None = None) -> HTMLResponse:
        rows = await read(request, me, "/api/sources")
        host = str(request.base_url).rstrip("/")
        return page("sources.html", me=me, sources=rows, created=None, host=host, msg=msg)

    @router.post("/sources")
    async def create_source(request: Request, me: Me) -> Response:
        fields = await form(request)
        check_csrf(me, fields)
        status, body = await call(request, me, "POST", "/api/sources", json={"name": fields.get("name", "")})
        rows = await read(request, me, "/api/sources")
        host = str(request.base_url).rstrip("/")
        if status != 201:
            return page("sources.html", status, me=me, sources=rows, created=None, host=host, error=error_of(body))
        return page("sources.html", me=me, sources=rows, created=body, host=host)

    @router.post("/sources/{source_id}/revoke")
    async def revoke_source(source_id: str, request: Request, me: Me) -> Response:
        check_csrf(me, await form(request))
        status, body = await call(request, me, "POST", f"/api/sources/{source_id}/revoke")
        if status != 200:
            return page("message.html", status, me=me, title="Sources", error=error_of(body))
        return see_other("/console/sources?msg=Write+key+revoked")

    # -- leads -------------------------------------------------------------------------------------

    @router.get("/leads")
    async def leads(request: Request, me: Me) -> HTMLResponse:
        allowed = ("email", "user_id", "stage", "grade", "min_score", "after")
        query = {k: v for k, v in request.query_params.items() if k in allowed and v}
        status, body = await call(request, me, "GET", "/api/leads", params=query)
        error = None if status == 200 else error_of(body)
        found = body if status == 200 else {"leads": [], "next": None}
        more = urlencode({**query, "after": found["next"]}) if found.get("next") else None
        return page("leads.html", status, me=me, leads=found["leads"], query=query, more=more, error=error)

    @router.get("/leads/{user_id}")
    async def lead(user_id: str, request: Request, me: Me, msg: str | None = None) -> HTMLResponse:
        found = await read(request, me, f"/api/leads/{user_id}")
        status, enrollments = await call(request, me, "GET", f"/api/leads/{user_id}/enrollments")
        return page("lead.html", me=me, lead=found, timeline=timeline(found),
                    enrollments=enrollments if status == 200 else [], msg=msg)  # fmt: skip

    @router.post("/leads/{user_id}/decision")
    async def decide(user_id: str, request: Request, me: Me) -> Response:
        fields = await form(request)
        check_csrf(me, fields)
        body = {"decision": fields.get("decision", ""), "reason": fields.get("reason") or None,
                "stage": fields.get("stage") or None, "actor": me.actor.label}  # fmt: skip
        status, answer = await call(request, me, "POST", f"/api/leads/{user_id}/stage", json=body)
        if status not in (200, 202):
            found = await read(request, me, f"/api/leads/{user_id}")
            return page("lead.html", status, me=me, lead=found, timeline=timeline(found), enrollments=[],
                        error=error_of(answer))  # fmt: skip
        done = "Decision+applied" if status == 200 else "Decision+recorded,+applying"
        return see_other(f"/console/leads/{user_id}?msg={done}")

    # -- users and invites (admin) -----------------------------------------------------------------

    async def users_page(request: Request, me: Viewer, status: int = 200, **extra: Any) -> HTMLResponse:
        users = await read(request, me, "/api/users")
        invites = await read(request, me, "/api/invites")
        extra.setdefault("invited", None)
        return page("users.html", status, me=me, users=users, invites=invites, **extra)

    @router.get("/users")
    async def users(request: Request, me: Me, msg: str | None = None) -> HTMLResponse:
        return await users_page(request, me, msg=msg)

    @router.post("/users/invite")
    async def invite(request: Request, me: Me) -> Response:
        fields = await form(request)
        check_csrf(me, fields)
        body = {"email": fields.get("email", ""), "role": fields.get("role", "viewer")}
        status, answer = await call(request, me, "POST", "/api/invites", json=body)
        if status != 201:
            return await users_page(request, me, status, error=error_of(answer))
        return await users_page(request, me, invited=answer)

    @router.post("/users/{user_id}")
    async def change_user(user_id: str, request: Request, me: Me) -> Response:
        fields = await form(request)
        check_csrf(me, fields)
        patch: dict[str, Any] = {}
        if fields.get("role"):
            patch["role"] = fields["role"]
        if fields.get("disabled") in ("true", "false"):
            patch["disabled"] = fields["disabled"] == "true"
        status, answer = await call(request, me, "PATCH", f"/api/users/{user_id}", json=patch)
        if status != 200:
            return await users_page(request, me, status, error=error_of(answer))
        return see_other("/console/users?msg=User+updated")

    @router.post("/invites/{invite_id}/revoke")
    async def revoke_invite(invite_id: str, request: Request, me: Me) -> Response:
        check_csrf(me, await form(request))
        status, answer = await call(request, me, "POST", f"/api/invites/{invite_id}/revoke")
        if status != 200:
            return await users_page(request, me, status, error=error_of(answer))
        return see_other("/console/users?msg=Invite+withdrawn")

    # -- mailbox and audit -------------------------------------------------------------------------

    @router.get("/mailbox")
    async def mailbox(request: Request, me: Me) -> HTMLResponse:
        status, body = await call(request, me, "GET", "/api/mailbox", params={"limit": 200})
        messages = body["messages"] if status == 200 else []
        return page("mailbox.html", status, me=me, messages=messages, error=None if status == 200 else error_of(body))

    @router.get("/audit")
    async def audit(request: Request, me: Me) -> HTMLResponse:
        allowed = ("actor", "kind", "path", "before_id")
        query = {k: v for k, v in request.query_params.items() if k in allowed and v}
        found = await read(request, me, "/api/audit", params=query)
        more = urlencode({**query, "before_id": found["next"]}) if found.get("next") else None
        return page("audit.html", me=me, entries=found["entries"], query=query, more=more)

    return router
