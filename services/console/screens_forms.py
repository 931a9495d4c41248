"""Console screens for lead capture forms: list, create from a JSON definition with an example, the embed
code to paste, activate or archive, and the latest submissions."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from services.console.web import ConsoleRoute, Viewer, call, check_csrf, error_of, form, page, read, see_other, viewer

Me = Annotated[Viewer, Depends(viewer)]
EXAMPLE: dict[str, Any] = {
    "title": "Get the pricing guide",
    "fields": [
        {"name": "email", "type": "email", "label": "Work email", "required": True},
        {"name": "first_name", "type": "first_name", "label": "First name"},
    ],
    "consent_text": "Send me the guide and the monthly newsletter. Unsubscribe any time.",
    "topic": None,
    "sequence_id": None,
}


def forms_router() -> APIRouter:
    router = APIRouter(prefix="/console", include_in_schema=False, route_class=ConsoleRoute)

    async def list_screen(request: Request, me: Viewer, status: int = 200, **extra: Any) -> HTMLResponse:
        forms = (await read(request, me, "/api/forms"))["forms"]
        sources = await read(request, me, "/api/sources")
        extra.setdefault("fields", {"name": "", "source_id": "", "definition": json.dumps(EXAMPLE, indent=2)})
        return page("forms.html", status, me=me, forms=forms, sources=sources, **extra)

    @router.get("/forms")
    async def forms(request: Request, me: Me, msg: str | None = None) -> HTMLResponse:
        return await list_screen(request, me, msg=msg)

    @router.post("/forms")
    async def create(request: Request, me: Me) -> Response:
        fields = await form(request)
        check_csrf(me, fields)
        try:
            definition = json.loads(fields.get("definition", ""))
        except ValueError as exc:
            return await list_screen(request, me, 400, fields=fields, error=f"definition: not JSON ({exc})")
        body = {"name": fields.get("name", ""), "source_id": fields.get("source_id") or None, "definition": definition}
        status, answer = await call(request, me, "POST", "/api/forms", json=body)
        if status != 201:
            return await list_screen(request, me, status, fields=fields, error=error_of(answer))
        return see_other(f"/console/forms/{answer['id']}?msg=Form+created")

    async def detail_page(
        request: Request, me: Viewer, found: dict[str, Any], status: int = 200, **extra: Any
    ) -> HTMLResponse:
        code, body = await call(request, me, "GET", f"/api/forms/{found['id']}/submissions", params={"limit": 50})
        submissions = body["submissions"] if code == 200 else []
        draft = json.dumps(found["definition"], indent=2)
        return page("form.html", status, me=me, form=found, submissions=submissions, draft=draft, **extra)

    @router.get("/forms/{form_id}")
    async def detail(form_id: str, request: Request, me: Me, msg: str | None = None) -> HTMLResponse:
        return await detail_page(request, me, await read(request, me, f"/api/forms/{form_id}"), msg=msg)

    @router.post("/forms/{form_id}/edit")
    async def edit(form_id: str, request: Request, me: Me) -> Response:
        """Save the edited definition as the form's next version."""
        fields = await form(request)
        check_csrf(me, fields)
        found = await read(request, me, f"/api/forms/{form_id}")
        try:
            definition = json.loads(fields.get("definition", ""))
        except ValueError as exc:
            return await detail_page(request, me, found, 400, error=f"definition: not JSON ({exc})")
        body = {"name": found["name"], "source_id": found["source_id"], "definition": definition}
        status, answer = await call(request, me, "PUT", f"/api/forms/{form_id}", json=body)
        if status != 200:
            return await detail_page(request, me, found, status, error=error_of(answer))
        return see_other(f"/console/forms/{form_id}?msg=Saved+as+version+{answer['version']}")

    @router.post("/forms/{form_id}/{action}")
    async def change(form_id: str, action: str, request: Request, me: Me) -> Response:
        check_csrf(me, await form(request))
        if action not in ("activate", "archive"):
            return page("message.html", 404, me=me, title="Forms", error=f"no action {action!r}")
        status, body = await call(request, me, "POST", f"/api/forms/{form_id}/{action}")
        if status != 200:
            return page("message.html", status, me=me, title="Forms", error=error_of(body))
        return see_other(f"/console/forms/{form_id}?msg=Form+is+now+{body['status']}")

    return router
