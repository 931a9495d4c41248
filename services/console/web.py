"""Plumbing of the console screens: Jinja2 pages, the signed-in user, forms, CSRF, and the in-process API client.

Every screen that reads or changes something calls the admin API in-process (httpx over ASGI) with the
user's own session and CSRF token: the same routes, role checks and audit log as a script, so the console
can do nothing the API cannot.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

import httpx
from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from services.console.auth import CSRF_HEADER, SESSION_COOKIE, find_actor
from services.console.service import Actor, form_token, refusal
from shared.security import same_secret

PAGES = Path(__file__).parent / "pages"
PRE_COOKIE = "fs_pre"  # binds the CSRF token of the sign-in and invite forms to this browser
MAX_FORM = 512 * 1024

env = Environment(loader=FileSystemLoader(PAGES), autoescape=select_autoescape(default=True), undefined=StrictUndefined)
env.filters["pretty"] = lambda value: json.dumps(value, indent=2, sort_keys=True, default=str)


def when(value: Any) -> str:
    """An API timestamp as "2026-11-23 19:18:04 UTC"; anything else as it is, nothing for None."""
    if value is None:
        return ""
    try:
        return datetime.fromisoformat(str(value)).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        return str(value)


env.filters["when"] = when


@dataclass(frozen=True)
class Viewer:
    """The signed-in user of a console page."""

    actor: Actor
    session_token: str

    @property
    def csrf(self) -> str:
        return self.actor.csrf_token or ""

    def may(self, method: str, path: str) -> bool:
        """Whether the role allows an API request: screens hide what the API would refuse."""
        return refusal(self.actor.role, method, path) is None


async def viewer(request: Request) -> Viewer:
    """The signed-in user; a redirect to the sign-in page otherwise."""
    token = request.cookies.get(SESSION_COOKIE)
    actor = await find_actor(request, None) if token else None
    if actor is None or token is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise HTTPException(303, "sign in first", headers={"Location": f"/console/login?next={quote(target)}"})
    return Viewer(actor, token)


class ConsoleRoute(APIRoute):
    """Console routes answer errors as an HTML page (and redirects as redirects), not as JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except HTTPException as exc:
                if 300 <= exc.status_code < 400 and exc.headers and "Location" in exc.headers:
                    return see_other(exc.headers["Location"])
                title = "Not allowed" if exc.status_code in (401, 403) else "Something went wrong"
                return page("message.html", exc.status_code, title=title, error=str(exc.detail))

        return handle


def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("me", None)
    context.setdefault("msg", None)
    context.setdefault("error", None)
    html = env.get_template(name).render(**context)
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


async def form(request: Request) -> dict[str, str]:
    """The fields of a posted urlencoded form."""
    body = await request.body()
    if len(body) > MAX_FORM:
        raise HTTPException(413, "form too large")
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=500))


def check_csrf(me: Viewer, fields: dict[str, str]) -> None:
    """The synchronizer token: every state-changing form carries the session's CSRF token."""
    if not me.csrf or not same_secret(fields.get("csrf", ""), me.csrf):
        raise HTTPException(403, "CSRF token missing or wrong: reload the page and try again")


def pre_session(request: Request) -> str:
    return request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(24)


def check_pre_csrf(request: Request, secret_key: str, fields: dict[str, str]) -> None:
    pre = request.cookies.get(PRE_COOKIE)
    if not pre or not same_secret(fields.get("csrf", ""), form_token(secret_key, pre)):
        raise HTTPException(403, "CSRF token missing or wrong: reload the page and try again")


def api(request: Request, me: Viewer) -> httpx.AsyncClient:
    """A client of this app's admin API acting as the signed-in user."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=request.app),
        base_url=str(request.base_url).rstrip("/"),  # the API sees the browser's host (links in emails)
        cookies={SESSION_COOKIE: me.session_token},
        headers={CSRF_HEADER: me.csrf},
        timeout=30,
    )


async def call(request: Request, me: Viewer, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    """One admin API request as the user: its status and JSON answer."""
    async with api(request, me) as client:
        response = await client.request(method, path, **kwargs)
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, response.text


def error_of(body: Any) -> str:
    if isinstance(body, dict) and "error" in body:
        return str(body["error"])
    return str(body)[:500]


async def read(request: Request, me: Viewer, path: str, **kwargs: Any) -> Any:
    """GET from the API; an error page for anything but 200."""
    status, body = await call(request, me, "GET", path, **kwargs)
    if status != 200:
        raise HTTPException(status, error_of(body))
    return body
