"""Public form routes on the collection edge: the embeddable page, the embed script, the no-JavaScript POST
target, the double opt-in confirmation and the lead magnet download.

A refused submission is a 4xx: in JSON when the client asks for JSON (`Accept` or a JSON body), else the
form again with the person's values (escaped) and the error next to its field.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.forms import optin, pages, repository
from services.forms.repository import FormRow, NewSubmission
from services.forms.schemas import UTM_FIELDS
from services.forms.service import (
    FORMS_SOURCE_ID,
    Refused,
    Submitted,
    anonymous_id_for,
    check_form_token,
    email_field,
    make_form_token,
    read_confirm_token,
    read_file_token,
    submission_events,
    traits_of,
    utm_of,
    validate,
)
from services.ingest.api import IngestError, IngestState, json_object
from services.ingest.ratelimit import RateLimiter
from services.nurture.consent.pages_api import client_ip
from services.nurture.consent.service import masked, normalize_email
from shared.events import derived_id
from shared.settings import SettingsError
from shared.tokens import InvalidToken

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
MAX_HIDDEN = 2048
INVALID_LINK = "This link is not valid. Your mail program may have cut it off: open it from the email again."


@dataclass
class Limits:
    per_ip: RateLimiter
    per_form: RateLimiter


def limits_of(request: Request, state: IngestState) -> Limits:
    """Per-worker token buckets: N per minute, bursts of N (0 turns a limit off)."""
    found: Limits | None = getattr(request.app.state, "form_limits", None)
    if found is None:
        ip, form = state.settings.form_ip_per_minute, state.settings.form_per_minute
        found = request.app.state.form_limits = Limits(
            RateLimiter(ip / 60, max(ip, 1)), RateLimiter(form / 60, max(form, 1))
        )
    return found


def check_limits(request: Request, state: IngestState, form_id: uuid.UUID) -> None:
    limits, now = limits_of(request, state), time.monotonic()
    ip_key = derived_id("form-ip", client_ip(request) or "-")
    for limiter, key, what in ((limits.per_ip, ip_key, "this address"), (limits.per_form, form_id, "this form")):
        wait = limiter.retry_after(key, 1, now)
        if wait > 0:
            raise RateLimited(math.ceil(wait), f"too many submissions from {what}: try again in {math.ceil(wait)} s")


class RateLimited(Refused):
    def __init__(self, retry_after: int, error: str) -> None:
        super().__init__(429, error)
        self.retry_after = retry_after


def wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "") or _is_json(request)


def _is_json(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json"


async def read_fields(request: Request) -> dict[str, str]:
    """The submitted values: a JSON object, else an HTML form (application/x-www-form-urlencoded)."""
    body = await request.body()
    if len(body) > MAX_BODY:
        raise Refused(413, f"the submission exceeds {MAX_BODY // 1024} KB")
    if _is_json(request):
        try:
            data = json_object(body)
        except IngestError as exc:
            raise Refused(400, exc.error) from None
        return {k: str(v) for k, v in data.items() if isinstance(v, str | int | float | bool)}
    try:
        return dict(parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=200))
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "the submission is not a valid HTML form") from None


def hidden_of(values: dict[str, str]) -> dict[str, str]:
    """What the page carries from one render to the next: the visitor's id, page and campaign."""
    return {k: str(values[k])[:MAX_HIDDEN] for k in ("fs_aid", "fs_page", *UTM_FIELDS) if values.get(k)}


def maker_of(request: Request) -> async_sessionmaker[AsyncSession]:
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    return maker


async def active_form(request: Request, form_id: uuid.UUID) -> FormRow | None:
    async with maker_of(request)() as session:
        form = await repository.get_form(session, form_id)
    return form if form is not None and form.status == "active" else None


def page(body: str, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=headers or pages.PRIVATE_HEADERS)


def form_response(
    request: Request,
    form: FormRow,
    values: dict[str, str],
    *,
    status: int = 200,
    error: str | None = None,
    field: str | None = None,
    errors: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """The form page (fresh token), or in JSON the error; `errors` are shown next to their fields."""
    if status >= 400 and wants_json(request):
        body: dict[str, Any] = {"error": error, "field": field}
        if errors:
            body["errors"] = errors
        return JSONResponse(body, status_code=status, headers=headers)
    secret = request.app.state.ingest.settings.secret_key.get_secret_value()
    kept = {k: v for k, v in values.items() if k != "website"}
    html = pages.form_page(
        form.definition,
        action=f"/forms/{form.id}",
        token=make_form_token(secret, form.id, datetime.now(UTC)),
        hidden=hidden_of(values),
        values=kept,
        errors=errors,
        error=error,
    )
    return HTMLResponse(html, status_code=status, headers={**pages.form_headers(form.definition), **(headers or {})})


def not_found(request: Request) -> Response:
    if wants_json(request):
        return JSONResponse({"error": "no such form"}, status_code=404)
    return page(pages.message_page("Form not found", "This form does not exist or was taken down."), 404)


def forms_public_router() -> APIRouter:
    router = APIRouter(tags=["forms (public)"])
    script = files("services.forms").joinpath("static/form.js").read_bytes()
    script_etag = '"' + hashlib.sha256(script).hexdigest()[:32] + '"'

    @router.get("/forms/{form_id}.js", response_class=Response, summary="Script that embeds the form")
    async def embed_script(form_id: uuid.UUID, request: Request) -> Response:
        headers = {"Cache-Control": "public, max-age=300", "ETag": script_etag, "X-Content-Type-Options": "nosniff"}
        headers["Access-Control-Allow-Origin"] = "*"
        if request.headers.get("if-none-match") == script_etag:
            return Response(status_code=304, headers=headers)
        return Response(script, media_type="text/javascript; charset=utf-8", headers=headers)

    @router.get("/forms/confirm/{token}", response_class=HTMLResponse, summary="Double opt-in: confirmation page")
    async def confirm_page(token: str, request: Request) -> Response:
        """Shows a button and changes nothing: mail scanners open every link in an email."""
        state: IngestState = request.app.state.ingest
        try:
            submission_id = read_confirm_token(state.settings.secret_key.get_secret_value(), token)
        except InvalidToken:
            return page(pages.message_page("Link not valid", INVALID_LINK), 400)
        async with maker_of(request)() as session:
            sub = await repository.get_submission(session, submission_id)
        if sub is None:
            return page(pages.message_page("Link not valid", INVALID_LINK), 404)
        if sub["status"] == "confirmed":
            return page(pages.message_page("Already confirmed", "Your subscription is confirmed. Thank you!"))
        return page(pages.confirm_page(address=masked(sub["email"]), action=f"/forms/confirm/{token}"))

    @router.post("/forms/confirm/{token}", response_class=HTMLResponse, summary="Double opt-in: confirm")
    async def confirm(token: str, request: Request) -> Response:
        """Records consent (time, IP, form, the exact text), joins the list and sequence, sends the lead
        magnet, announces "Form Confirmed". Idempotent."""
        state: IngestState = request.app.state.ingest
        secret = state.settings.secret_key.get_secret_value()
        try:
            submission_id = read_confirm_token(secret, token)
        except InvalidToken:
            return page(pages.message_page("Link not valid", INVALID_LINK), 400)
        ip, agent = client_ip(request), request.headers.get("user-agent")
        try:
            done = await optin.confirm(maker_of(request), submission_id, ip=ip, user_agent=agent, now=datetime.now(UTC))
        except optin.LeadNotReady:
            message = "We are still processing your sign-up. Please try again in a few seconds."
            return page(pages.message_page("One moment", message), 503, {**pages.PRIVATE_HEADERS, "Retry-After": "5"})
        if done is None:
            return page(pages.message_page("Link not valid", INVALID_LINK), 404)
        await optin.announce(state, done.event)
        try:
            await optin.send_lead_magnet(maker_of(request), optin.nurture_settings(request.app.state), secret, done)
        except SettingsError as exc:
            log.error("form %s: lead magnet not sent, email is not configured here: %s", done.form.id, exc)
        if wants_json(request):
            return JSONResponse({"confirmed": True, "lead_id": str(done.lead_id)})
        return page(pages.message_page("Subscription confirmed", done.form.definition.confirmed_message))

    @router.get("/forms/files/{token}", response_class=Response, summary="Lead magnet download (after confirming)")
    async def download(token: str, request: Request) -> Response:
        state: IngestState = request.app.state.ingest
        try:
            submission_id = read_file_token(state.settings.secret_key.get_secret_value(), token)
        except InvalidToken:
            return page(pages.message_page("Link not valid", INVALID_LINK), 400)
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

    @router.get("/forms/{form_id}", response_class=HTMLResponse, summary="The form page (iframe-able)")
    async def form_page(form_id: uuid.UUID, request: Request) -> Response:
        """Query (filled by the embed script): `aid` (anonymous id), `page` (embedding page), `utm_*`."""
        form = await active_form(request, form_id)
        if form is None:
            return not_found(request)
        q = request.query_params
        values = {"fs_aid": q.get("aid", ""), "fs_page": q.get("page", "")} | {k: q.get(k, "") for k in UTM_FIELDS}
        return form_response(request, form, values)

    @router.post("/forms/{form_id}", response_class=HTMLResponse, summary="Submit the form (HTML form or JSON)")
    async def submit(form_id: uuid.UUID, request: Request) -> Response:
        return await handle_submit(request, form_id)

    return router


async def handle_submit(request: Request, form_id: uuid.UUID) -> Response:
    now = datetime.now(UTC)
    state: IngestState = request.app.state.ingest
    form = await active_form(request, form_id)
    if form is None:
        return not_found(request)
    values: dict[str, str] = {}
    try:
        check_limits(request, state, form.id)
        values = await read_fields(request)
        if values.get("website"):
            raise Refused(400, "the submission was refused as automated (a hidden field was filled)", "website")
        settings = state.settings
        secret = settings.secret_key.get_secret_value()
        token = check_form_token(
            secret, values.get("fs_token", ""), form.id, now, settings.form_min_seconds, settings.form_max_seconds
        )
        mail = optin.nurture_settings(request.app.state)
    except RateLimited as exc:
        headers = {"Retry-After": str(exc.retry_after)}
        return form_response(request, form, values, status=429, error=exc.error, headers=headers)
    except Refused as exc:
        return form_response(request, form, values, status=exc.status, error=exc.error, field=exc.field)
    except SettingsError as exc:
        log.error("forms: email is not configured on this edge: %s", exc)
        return form_response(request, form, values, status=503, error="sign-ups are not possible right now")
    clean, errors = validate(form.definition, values)
    if errors:
        first = next(iter(errors))
        error = "Please correct the fields marked below."
        return form_response(request, form, values, status=422, error=error, field=first, errors=errors)
    email = normalize_email(clean[email_field(form.definition)])
    submitted = Submitted(
        submission_id=uuid.uuid4(),
        form_id=form.id,
        form_name=form.name,
        form_version=form.version,
        source_id=form.source_id or FORMS_SOURCE_ID,
        anonymous_id=anonymous_id_for(values.get("fs_aid"), email),
        traits=traits_of(form.definition, clean),
        utm=utm_of(values),
        ip=client_ip(request),
        user_agent=request.headers.get("user-agent"),
        page_url=values.get("fs_page") or request.headers.get("referer"),
    )
    row = NewSubmission(
        submitted.submission_id, form.id, form.version, token.nonce, email, submitted.anonymous_id, clean,
        form.definition.consent_text, submitted.ip, submitted.user_agent, now,
    )  # fmt: skip
    try:
        if not await optin.accept(request.app.state.sessionmaker, state, row, submission_events(submitted, now)):
            error = "this form was already submitted (its token was used): reload the page to submit again"
            return form_response(request, form, values, status=409, error=error, field="fs_token")
    except IngestError as exc:
        return form_response(request, form, values, status=exc.status, error=exc.error, headers=exc.headers)
    first_name = str(submitted.traits.get("firstName", ""))
    await optin.send_confirmation(maker_of(request), mail, secret, form, row, first_name)
    d = form.definition
    if wants_json(request):
        body = {
            "success": True,
            "submission_id": str(row.id),
            "message": d.success_message,
            "redirect": d.success_redirect,
        }
        return JSONResponse(body)
    if d.success_redirect:
        return RedirectResponse(d.success_redirect, status_code=303)
    return page(pages.message_page(d.title or "Thank you", d.success_message), 200, pages.form_headers(d))
