"""Public form routes on the collection edge: the embeddable page, the embed script, the no-JavaScript POST
target, the double opt-in confirmation and the lead magnet download.

A refused submission is a 4xx: in JSON when the client asks for JSON (`Accept` or a JSON body), else the
form again with the person's values (escaped) and the error next to its field.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from services.forms import optin, pages, repository
from services.forms.responses import active_form, form_response, maker_of, not_found, page, wants_json
from services.forms.schemas import UTM_FIELDS
from services.forms.service import read_confirm_token, read_file_token
from services.forms.submit import handle_submit
from services.ingest.api import IngestState
from services.nurture.consent.pages_api import client_ip
from services.nurture.consent.service import masked
from shared.settings import SettingsError
from shared.tokens import InvalidToken

log = logging.getLogger(__name__)

HTML: dict[str, Any] = {"content": {"text/html": {}}}
HTML_OR_JSON: dict[str, Any] = {"content": {"text/html": {}, "application/json": {}}}
LINK_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {**HTML, "description": "Not a link made here (altered or cut off)"},
    404: {**HTML, "description": "No such submission (any more)"},
}
SUBMIT_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {**HTML_OR_JSON, "description": "Accepted: the success message, or JSON"},
    303: {"description": "Accepted: to the form's success redirect"},
    **{
        status: {**HTML_OR_JSON, "description": what}
        for status, what in (
            (400, "Honeypot filled, or the form token missing, invalid, too fast or expired"),
            (404, "No such form, or archived"),
            (409, "The form token was used before (a replay)"),
            (413, "Body over 64 KB"),
            (422, "Invalid fields: the form again with each error next to its field"),
            (429, "Rate limit per address or per form; see Retry-After"),
            (503, "The broker did not acknowledge, or email is not configured; retry"),
        )
    },
}
INVALID_LINK = "This link is not valid. Your mail program may have cut it off: open it from the email again."


def invalid_link(status: int = 400) -> Response:
    return page(pages.message_page("Link not valid", INVALID_LINK), status)


def linked_submission(request: Request, token: str, reader: Callable[[str, str], uuid.UUID]) -> uuid.UUID | None:
    """The submission a signed link names, or None if the link was not made here or was altered."""
    state: IngestState = request.app.state.ingest
    try:
        return reader(state.settings.secret_key.get_secret_value(), token)
    except InvalidToken:
        return None


def static_script(name: str) -> Callable[[Request], Response]:
    """A script from static/, cacheable for five minutes and revalidated by its ETag."""
    script = files("services.forms").joinpath(f"static/{name}").read_bytes()
    etag = '"' + hashlib.sha256(script).hexdigest()[:32] + '"'
    headers = {"Cache-Control": "public, max-age=300", "ETag": etag, "X-Content-Type-Options": "nosniff"}
    headers["Access-Control-Allow-Origin"] = "*"

    def serve(request: Request) -> Response:
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(script, media_type="text/javascript; charset=utf-8", headers=headers)

    return serve


def forms_public_router() -> APIRouter:
    router = APIRouter(tags=["forms (public)"])
    embed = static_script("form.js")

    script: dict[int | str, dict[str, Any]] = {200: {"content": {"text/javascript": {}}}, 304: {}}

    @router.get("/forms/{form_id}.js", response_class=Response, responses=script, summary="Script that embeds the form")
    async def embed_script(form_id: uuid.UUID, request: Request) -> Response:
        return embed(request)

    @router.get(
        "/forms/confirm/{token}",
        response_class=HTMLResponse,
        responses=LINK_ERRORS,
        summary="Double opt-in: confirmation page",
    )
    async def confirm_page(token: str, request: Request) -> Response:
        """Shows a button and changes nothing: mail scanners open every link in an email."""
        submission_id = linked_submission(request, token, read_confirm_token)
        if submission_id is None:
            return invalid_link()
        async with maker_of(request)() as session:
            sub = await repository.get_submission(session, submission_id)
        if sub is None:
            return invalid_link(404)
        if sub["status"] == "confirmed":
            return page(pages.message_page("Already confirmed", "Your subscription is confirmed. Thank you!"))
        return page(pages.confirm_page(address=masked(sub["email"]), action=f"/forms/confirm/{token}"))

    @router.post(
        "/forms/confirm/{token}",
        response_class=HTMLResponse,
        responses={200: HTML_OR_JSON, **LINK_ERRORS, 503: {**HTML, "description": "The lead is not written yet"}},
        summary="Double opt-in: confirm",
    )
    async def confirm(token: str, request: Request) -> Response:
        """Records consent (time, IP, form, the exact text), joins the list and sequence, sends the lead
        magnet, announces "Form Confirmed". Idempotent."""
        state: IngestState = request.app.state.ingest
        secret = state.settings.secret_key.get_secret_value()
        submission_id = linked_submission(request, token, read_confirm_token)
        if submission_id is None:
            return invalid_link()
        ip, agent = client_ip(request), request.headers.get("user-agent")
        try:
            done = await optin.confirm(maker_of(request), submission_id, ip=ip, user_agent=agent, now=datetime.now(UTC))
        except optin.LeadNotReady:
            message = "We are still processing your sign-up. Please try again in a few seconds."
            return page(pages.message_page("One moment", message), 503, {**pages.PRIVATE_HEADERS, "Retry-After": "5"})
        if done is None:
            return invalid_link(404)
        await optin.announce(state, done.event)
        try:
            await optin.send_lead_magnet(maker_of(request), optin.nurture_settings(request.app.state), secret, done)
        except SettingsError as exc:
            log.error("form %s: lead magnet not sent, email is not configured here: %s", done.form.id, exc)
        if wants_json(request):
            return JSONResponse({"confirmed": True, "lead_id": str(done.lead_id)})
        return page(pages.message_page("Subscription confirmed", done.form.definition.confirmed_message))

    @router.get(
        "/forms/files/{token}",
        response_class=Response,
        responses={200: {"content": {"application/octet-stream": {}}}, **LINK_ERRORS},
        summary="Lead magnet download (after confirming)",
    )
    async def download(token: str, request: Request) -> Response:
        submission_id = linked_submission(request, token, read_file_token)
        if submission_id is None:
            return invalid_link()
        async with maker_of(request)() as session:
            sub = await repository.get_submission(session, submission_id)
            found = await repository.get_file(session, sub["form_id"]) if sub and sub["status"] == "confirmed" else None
        if found is None:
            return page(pages.message_page("Not available", "This download is not available."), 404)
        filename, content_type, data = found
        disposition = f'attachment; filename="{filename}"'
        return Response(
            data, media_type=content_type, headers={**pages.PRIVATE_HEADERS, "Content-Disposition": disposition}
        )

    @router.get(
        "/forms/{form_id}",
        response_class=HTMLResponse,
        responses={404: {**HTML_OR_JSON, "description": "No such form, or archived"}},
        summary="The form page (iframe-able)",
    )
    async def form_page(form_id: uuid.UUID, request: Request) -> Response:
        """Query (filled by the embed script): `aid` (anonymous id), `page` (embedding page), `utm_*`."""
        form = await active_form(request, form_id)
        if form is None:
            return not_found(request)
        q = request.query_params
        values = {"fs_aid": q.get("aid", ""), "fs_page": q.get("page", "")} | {k: q.get(k, "") for k in UTM_FIELDS}
        return form_response(request, form, values)

    @router.post(
        "/forms/{form_id}",
        response_class=HTMLResponse,
        responses=SUBMIT_ANSWERS,
        summary="Submit the form (HTML form or JSON)",
    )
    async def submit(form_id: uuid.UUID, request: Request) -> Response:
        return await handle_submit(request, form_id)

    return router
