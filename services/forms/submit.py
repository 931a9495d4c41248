"""The form POST target: rate limits, honeypot, the time token, field validation, then the submission
stored and announced and the confirmation email sent. Each refusal is a clear 4xx (see responses.py)."""

from __future__ import annotations

import logging
import math
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from prometheus_client import Counter

from services.forms import optin, pages
from services.forms.repository import NewSubmission
from services.forms.responses import active_form, form_response, is_json, maker_of, not_found, page, wants_json
from services.forms.service import (
    FORMS_SOURCE_ID,
    Refused,
    Submitted,
    anonymous_id_for,
    check_form_token,
    email_field,
    submission_events,
    traits_of,
    utm_of,
    validate,
)
from services.ingest.api import IngestError, IngestState, json_object
from services.ingest.ratelimit import RateLimiter
from services.nurture.consent.pages_api import client_ip
from services.nurture.consent.service import normalize_email
from shared.events import derived_id
from shared.settings import SettingsError

log = logging.getLogger(__name__)
SUBMISSIONS = Counter(
    "funnelstream_form_submissions_total",
    "Form submissions by outcome: accepted, invalid, honeypot, token, replay, rate-limited, bad-request, unavailable",
    ["outcome"],
)

MAX_BODY = 64 * 1024


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
    for limiter, key, what in (
        (limits.per_ip, ip_key, "from this address"),
        (limits.per_form, form_id, "to this form"),
    ):
        wait = limiter.retry_after(key, 1, now)
        if wait > 0:
            raise RateLimited(math.ceil(wait), f"too many submissions {what}: try again in {math.ceil(wait)} s")


class RateLimited(Refused):
    def __init__(self, retry_after: int, error: str) -> None:
        super().__init__(429, error)
        self.retry_after = retry_after


async def read_fields(request: Request) -> dict[str, str]:
    """The submitted values: a JSON object, else an HTML form (application/x-www-form-urlencoded)."""
    chunks, size = [], 0
    async for chunk in request.stream():  # read no further than the limit
        size += len(chunk)
        if size > MAX_BODY:
            raise Refused(413, f"the submission exceeds {MAX_BODY // 1024} KB")
        chunks.append(chunk)
    body = b"".join(chunks)
    if is_json(request):
        try:
            data = json_object(body)
        except IngestError as exc:
            raise Refused(400, exc.error) from None
        return {k: str(v) for k, v in data.items() if isinstance(v, str | int | float | bool)}
    try:
        return dict(parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=200))
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "the submission is not a valid HTML form") from None


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
        SUBMISSIONS.labels("rate-limited").inc()
        headers = {"Retry-After": str(exc.retry_after)}
        return form_response(request, form, values, status=429, error=exc.error, headers=headers)
    except Refused as exc:
        SUBMISSIONS.labels({"website": "honeypot", "fs_token": "token"}.get(exc.field or "", "bad-request")).inc()
        return form_response(request, form, values, status=exc.status, error=exc.error, field=exc.field)
    except SettingsError as exc:
        SUBMISSIONS.labels("unavailable").inc()
        log.error("forms: email is not configured on this edge: %s", exc)
        return form_response(request, form, values, status=503, error="sign-ups are not possible right now")
    clean, errors = validate(form.definition, values)
    if errors:
        SUBMISSIONS.labels("invalid").inc()
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
        form.definition.consent_text, form.definition.topic, submitted.ip, submitted.user_agent, now,
    )  # fmt: skip
    try:
        if not await optin.accept(request.app.state.sessionmaker, state, row, submission_events(submitted, now)):
            SUBMISSIONS.labels("replay").inc()
            error = "this form was already submitted (its token was used): reload the page to submit again"
            return form_response(request, form, values, status=409, error=error, field="fs_token")
    except IngestError as exc:
        SUBMISSIONS.labels("unavailable").inc()
        return form_response(request, form, values, status=exc.status, error=exc.error, headers=exc.headers)
    SUBMISSIONS.labels("accepted").inc()
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
    return page(
        pages.message_page(d.title or "Thank you", d.success_message, in_frame=True), 200, pages.form_headers(d)
    )
