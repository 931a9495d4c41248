"""Console screens for content: email templates (editor, validation at the line, live preview on a lead)
and sequences (create from JSON with help or a simple form, the steps as a flow with counts, activate)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from services.console.web import ConsoleRoute, Viewer, call, check_csrf, error_of, form, page, read, see_other, viewer

Me = Annotated[Viewer, Depends(viewer)]
PARTS = ("subject", "html", "text")
EXAMPLE_HTML = "<p>Hello {{ lead.first_name | default('there') }},</p>\n<p>Thanks for signing up.</p>\n" + (
    '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
)


def template_body(fields: dict[str, str], new: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "subject": fields.get("subject", ""),
        "html": fields.get("html", ""),
        "text": fields.get("text") or None,
        "note": fields.get("note", ""),
    }
    if new:
        body |= {"name": fields.get("name", ""), "kind": fields.get("kind", "marketing")}
        body |= {"topic": fields.get("topic") or None, "description": fields.get("description", "")}
    return body


def annotate(fields: dict[str, Any], problems: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per part with problems: its lines, numbered, each with the messages about it (the error at the line)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for part in PARTS:
        mine = [p for p in problems if p.get("part") == part]
        if not mine:
            continue
        lines = (fields.get(part) or "").split("\n")
        rows = [{"n": i + 1, "line": line, "messages": []} for i, line in enumerate(lines)]
        for p in mine:
            line = p.get("line")
            if isinstance(line, int) and 1 <= line <= len(rows):
                rows[line - 1]["messages"].append(p["message"])
        out[part] = rows
    return out


def steps_flow(sequence: dict[str, Any], names: dict[str, str]) -> list[dict[str, Any]]:
    """The current version's steps in order, each with what it does (templates by name) and its counts."""
    versions = sequence.get("versions") or []
    current = [v for v in versions if v["version"] == sequence["current_version"]] or versions[:1]
    if not current:
        return []
    steps = current[0]["definition"].get("steps", [])
    flow = []
    for step in steps:
        what = {k: names.get(v, v) if k == "template_id" else v for k, v in step.items() if k not in ("id", "type")}
        what = {k: v for k, v in what.items() if v not in (None, [], {})}
        counts = sequence["steps"].get(step["id"], {})
        flow.append({"id": step["id"], "type": step["type"], "what": what, "counts": counts})
    return flow


async def flow_of(request: Request, me: Viewer, sequence: dict[str, Any]) -> list[dict[str, Any]]:
    templates = await read(request, me, "/api/templates", params={"archived": "true"})
    return steps_flow(sequence, {t["id"]: f"{t['name']} (v{t['current_version']})" for t in templates})


def content_router() -> APIRouter:
    router = APIRouter(prefix="/console", include_in_schema=False, route_class=ConsoleRoute)

    # -- templates ---------------------------------------------------------------------------------

    @router.get("/templates")
    async def templates(request: Request, me: Me, msg: str | None = None) -> HTMLResponse:
        rows = await read(request, me, "/api/templates")
        return page("templates.html", me=me, templates=rows, msg=msg)

    async def editor(
        request: Request, me: Me, *, template: dict[str, Any] | None, fields: dict[str, Any], status: int = 200,
        problems: list[dict[str, Any]] | None = None, preview: dict[str, Any] | None = None,
        error: str | None = None, msg: str | None = None, lead: str = "",
    ) -> HTMLResponse:  # fmt: skip
        leads: list[str] = []
        if template is not None:  # a few recent known leads to pick from for the preview
            code, found = await call(request, me, "GET", "/api/leads", params={"limit": 20})
            leads = [row["user_id"] for row in found.get("leads", []) if row.get("user_id")] if code == 200 else []
        return page(
            "template.html", status, me=me, template=template, fields=fields, problems=problems or [],
            annotated=annotate(fields, problems or []), preview=preview, error=error, msg=msg, lead=lead,
            leads=leads,
        )  # fmt: skip

    @router.get("/templates/new")
    async def new_template(request: Request, me: Me) -> HTMLResponse:
        fields = {"name": "", "kind": "marketing", "topic": "", "description": "", "note": ""}
        fields |= {"subject": "Welcome, {{ lead.first_name | default('friend') }}", "html": EXAMPLE_HTML, "text": ""}
        return await editor(request, me, template=None, fields=fields)

    @router.post("/templates/new")
    async def create_template(request: Request, me: Me) -> Response:
        fields = await form(request)
        check_csrf(me, fields)
        if fields.get("action") == "preview":
            return await checked(request, me, None, fields)
        status, body = await call(request, me, "POST", "/api/templates", json=template_body(fields, True))
        if status == 201:
            return see_other(f"/console/templates/{body['id']}?msg=Template+saved")
        problems = body.get("problems", []) if isinstance(body, dict) else []
        return await editor(request, me, template=None, fields=fields, status=status, problems=problems,
                            error=error_of(body))  # fmt: skip

    async def checked(request: Request, me: Me, template: dict[str, Any] | None, fields: dict[str, Any]) -> Response:
        """Validate the unsaved parts and show the sample lead's email (no JavaScript needed)."""
        status, body = await call(request, me, "POST", "/api/templates/validate", json=template_body(fields, False))
        if status != 200:
            return await editor(request, me, template=template, fields=fields, status=status, error=error_of(body))
        return await editor(
            request, me, template=template, fields=fields, problems=body["problems"], preview=body["preview"]
        )

    @router.post("/templates/check")
    async def live_check(request: Request, me: Me) -> HTMLResponse:
        """The live preview fragment (htmx): problems at their line, or the sample lead's email."""
        fields = await form(request)
        check_csrf(me, fields)
        status, body = await call(request, me, "POST", "/api/templates/validate", json=template_body(fields, False))
        if status != 200:
            return page("template_preview.html", me=me, problems=[], annotated={}, preview=None, error=error_of(body))
        return page("template_preview.html", me=me, problems=body["problems"],
                    annotated=annotate(fields, body["problems"]), preview=body["preview"])  # fmt: skip

    @router.get("/templates/{template_id}")
    async def template(
        template_id: str, request: Request, me: Me, msg: str | None = None, lead: str = ""
    ) -> HTMLResponse:
        found = await read(request, me, f"/api/templates/{template_id}")
        version = await read(request, me, f"/api/templates/{template_id}/versions/{found['current_version']}")
        fields = {k: version[k] or "" for k in PARTS} | {"note": ""}
        preview, error = None, None
        if lead:
            status, body = await call(
                request, me, "POST", f"/api/templates/{template_id}/preview", json={"user_id": lead}
            )
            preview, error = (body, None) if status == 200 else (None, error_of(body))
        return await editor(request, me, template=found, fields=fields, preview=preview, error=error, msg=msg,
                            lead=lead)  # fmt: skip

    @router.post("/templates/{template_id}")
    async def update_template(template_id: str, request: Request, me: Me) -> Response:
        fields = await form(request)
        check_csrf(me, fields)
        found = await read(request, me, f"/api/templates/{template_id}")
        if fields.get("action") == "preview":
            return await checked(request, me, found, fields)
        path = f"/api/templates/{template_id}"
        status, body = await call(request, me, "PUT", path, json=template_body(fields, False))
        if status == 200:
            return see_other(f"/console/templates/{template_id}?msg=Saved+as+version+{body['current_version']}")
        problems = body.get("problems", []) if isinstance(body, dict) else []
        return await editor(request, me, template=found, fields=fields, status=status, problems=problems,
                            error=error_of(body))  # fmt: skip

    @router.post("/templates/{template_id}/archive")
    async def archive_template(template_id: str, request: Request, me: Me) -> Response:
        check_csrf(me, await form(request))
        status, body = await call(request, me, "POST", f"/api/templates/{template_id}/archive")
        if status != 200:
            return page("message.html", status, me=me, title="Templates", error=error_of(body))
        return see_other(f"/console/templates?msg=Template+{body['name']}+archived")

    # -- sequences ---------------------------------------------------------------------------------

    @router.get("/sequences")
    async def sequences(request: Request, me: Me, msg: str | None = None) -> HTMLResponse:
        rows = await read(request, me, "/api/sequences")
        return page("sequences.html", me=me, sequences=rows, msg=msg)

    async def sequence_form(request: Request, me: Me, fields: dict[str, str], status: int = 200,
                            error: str | None = None) -> HTMLResponse:  # fmt: skip
        templates = await read(request, me, "/api/templates")
        if not fields.get("definition"):
            first = templates[0]["id"] if templates else "TEMPLATE-ID"
            fields["definition"] = json.dumps({
                "trigger": {"kind": "event", "event": "Signed Up"},
                "reentry": "never",
                "exit": [{"kind": "unsubscribed"}],
                "steps": [
                    {"id": "welcome", "type": "send_email", "template_id": first},
                    {"id": "pause", "type": "wait", "duration": "P2D"},
                ],
            }, indent=2)  # fmt: skip
        return page("sequence_new.html", status, me=me, fields=fields, templates=templates, error=error)

    @router.get("/sequences/new")
    async def new_sequence(request: Request, me: Me) -> HTMLResponse:
        fields = {"name": "", "message_class": "marketing", "topic": "", "mode": "simple"}
        fields |= {"event": "Signed Up", "wait": "", "template_id": "", "definition": ""}
        return await sequence_form(request, me, fields)

    @router.post("/sequences/new")
    async def create_sequence(request: Request, me: Me) -> Response:
        fields = await form(request)
        check_csrf(me, fields)
        if fields.get("mode") == "json":
            try:
                definition = json.loads(fields.get("definition", ""))
            except ValueError as exc:
                return await sequence_form(request, me, fields, 400, f"definition: not JSON ({exc})")
        else:
            steps: list[dict[str, Any]] = []
            if fields.get("wait"):
                steps.append({"id": "wait", "type": "wait", "duration": fields["wait"]})
            steps.append({"id": "send", "type": "send_email", "template_id": fields.get("template_id", "")})
            definition = {
                "trigger": {"kind": "event", "event": fields.get("event", "")},
                "reentry": "never", "exit": [{"kind": "unsubscribed"}], "steps": steps,
            }  # fmt: skip
        body = {
            "name": fields.get("name", ""), "message_class": fields.get("message_class", "marketing"),
            "topic": fields.get("topic") or None, "exempt_from_cap": fields.get("exempt") == "on",
            "definition": definition,
        }  # fmt: skip
        status, answer = await call(request, me, "POST", "/api/sequences", json=body)
        if status == 201:
            return see_other(f"/console/sequences/{answer['id']}?msg=Sequence+created+as+a+draft")
        return await sequence_form(request, me, fields, status, error_of(answer))

    async def sequence_page(
        request: Request, me: Viewer, sequence_id: str, status: int = 200, **extra: Any
    ) -> HTMLResponse:
        found = await read(request, me, f"/api/sequences/{sequence_id}")
        current = found["versions"][0]["definition"] if found["versions"] else {}
        extra.setdefault("draft", json.dumps(current, indent=2))
        extra.setdefault("dry_run", None)
        return page("sequence.html", status, me=me, sequence=found, flow=await flow_of(request, me, found), **extra)

    @router.get("/sequences/{sequence_id}")
    async def sequence(sequence_id: str, request: Request, me: Me, msg: str | None = None) -> HTMLResponse:
        return await sequence_page(request, me, sequence_id, msg=msg)

    @router.post("/sequences/{sequence_id}/edit")
    async def edit_sequence(sequence_id: str, request: Request, me: Me) -> Response:
        """A new version from the edited JSON definition; leads inside keep theirs."""
        fields = await form(request)
        check_csrf(me, fields)
        try:
            definition = json.loads(fields.get("definition", ""))
        except ValueError as exc:
            return await sequence_page(request, me, sequence_id, 400, error=f"definition: not JSON ({exc})",
                                       draft=fields.get("definition", ""))  # fmt: skip
        body = {"definition": definition, "note": fields.get("note", "")}
        status, answer = await call(request, me, "PUT", f"/api/sequences/{sequence_id}", json=body)
        if status != 200:
            return await sequence_page(request, me, sequence_id, status, error=error_of(answer),
                                       draft=fields.get("definition", ""))  # fmt: skip
        return see_other(f"/console/sequences/{sequence_id}?msg=Saved+as+version+{answer['current_version']}")

    @router.post("/sequences/{sequence_id}/dry-run")
    async def sequence_dry_run(sequence_id: str, request: Request, me: Me) -> Response:
        """How many leads would have entered over the last days (the current definition)."""
        fields = await form(request)
        check_csrf(me, fields)
        days = int(fields.get("days") or 30) if (fields.get("days") or "30").isdigit() else 30
        status, answer = await call(request, me, "POST", f"/api/sequences/{sequence_id}/dry-run", json={"days": days})
        if status != 200:
            return await sequence_page(request, me, sequence_id, status, error=error_of(answer))
        return await sequence_page(request, me, sequence_id, dry_run=answer)

    @router.post("/sequences/{sequence_id}/{action}")
    async def sequence_action(sequence_id: str, action: str, request: Request, me: Me) -> Response:
        check_csrf(me, await form(request))
        if action not in ("activate", "pause", "archive"):
            return page("message.html", 404, me=me, title="Sequence", error=f"no action {action!r}")
        status, body = await call(request, me, "POST", f"/api/sequences/{sequence_id}/{action}")
        if status != 200:
            return await sequence_page(request, me, sequence_id, status, error=error_of(body))
        return see_other(f"/console/sequences/{sequence_id}?msg=Sequence+is+now+{body['status']}")

    return router
