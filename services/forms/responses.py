"""What the public form routes answer: the form page again (values kept, errors by field), a message
page, or JSON when the client asks for JSON (`Accept` or a JSON body)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.forms import pages, repository
from services.forms.repository import FormRow
from services.forms.schemas import UTM_FIELDS
from services.forms.service import make_form_token

MAX_HIDDEN = 2048


def wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "") or is_json(request)


def is_json(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json"


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
