"""Console screens before and around sign-in: sign in, sign out, accept an invite, home, own API tokens."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.console import accounts, repository
from services.console.accounts import AccountError, NewSession
from services.console.auth import SESSION_COOKIE
from services.console.service import form_token
from services.console.web import (
    PRE_COOKIE,
    ConsoleRoute,
    Viewer,
    call,
    check_csrf,
    check_pre_csrf,
    error_of,
    form,
    page,
    pre_session,
    read,
    see_other,
    viewer,
)
from shared.settings import AdminSettings

Me = Annotated[Viewer, Depends(viewer)]


def safe_next(target: str | None) -> str:
    """Only a path of the console or the dashboard after sign-in: never another site (no open redirect)."""
    if target and target.startswith(("/console", "/dashboard")) and "//" not in target and "\\" not in target:
        return target
    return "/console"


def signed_in(response: Response, request: Request, new: NewSession, hours: float) -> Response:
    response.set_cookie(
        SESSION_COOKIE, new.token, max_age=int(hours * 3600), path="/", httponly=True, samesite="lax",
        secure=request.url.scheme == "https",
    )  # fmt: skip
    response.delete_cookie(PRE_COOKIE, path="/console")
    return response


def with_pre(response: HTMLResponse, request: Request, pre: str) -> HTMLResponse:
    if request.cookies.get(PRE_COOKIE) != pre:
        response.set_cookie(
            PRE_COOKIE, pre, path="/console", httponly=True, samesite="lax", secure=request.url.scheme == "https"
        )
    return response


async def audit(request: Request, kind: str, label: str, user_id: object, role: str, status: int) -> None:
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with maker() as session, session.begin():
        await repository.add_audit(
            session, actor=label, user_id=user_id, role=role, via="session", kind=kind, method=request.method,
            path=request.url.path if kind != "invite_accepted" else "/console/invite/…", status=status,
            request=None, before=None, after=None,
        )  # fmt: skip


def auth_router(settings: AdminSettings) -> APIRouter:
    router = APIRouter(prefix="/console", include_in_schema=False, route_class=ConsoleRoute)
    secret_key = settings.secret_key.get_secret_value()
    hours = settings.console_session_hours

    def maker(request: Request) -> async_sessionmaker[AsyncSession]:
        found: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
        return found

    @router.get("/login")
    async def login_form(request: Request, next: str | None = None) -> HTMLResponse:
        pre = pre_session(request)
        response = page("login.html", csrf=form_token(secret_key, pre), next=safe_next(next), email="")
        return with_pre(response, request, pre)

    @router.post("/login")
    async def login(request: Request) -> Response:
        fields = await form(request)
        check_pre_csrf(request, secret_key, fields)
        email, target = fields.get("email", ""), safe_next(fields.get("next"))
        try:
            new = await accounts.sign_in(maker(request), email, fields.get("password", ""), hours, datetime.now(UTC))
            error = "Wrong email or password, or the account is disabled."
            status = 401
        except AccountError as exc:
            new, error, status = None, str(exc), exc.status
        if new is None:
            pre = pre_session(request)
            response = page(
                "login.html", status, csrf=form_token(secret_key, pre), next=target, email=email, error=error
            )
            return with_pre(response, request, pre)
        await audit(request, "sign_in", new.user.email, new.user.id, new.user.role, 303)
        return signed_in(see_other(target), request, new, hours)

    @router.post("/logout")
    async def logout(request: Request, me: Me) -> Response:
        check_csrf(me, await form(request))
        await accounts.sign_out(maker(request), me.session_token)
        await audit(request, "sign_out", me.actor.label, me.actor.user_id, me.actor.role, 303)
        response = see_other("/console/login")
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @router.get("/invite/{token}")
    async def invite_form(token: str, request: Request) -> HTMLResponse:
        try:
            invite = await accounts.open_invite(maker(request), secret_key, token, datetime.now(UTC))
        except AccountError as exc:
            return page("message.html", exc.status, title="Invite", error=str(exc))
        pre = pre_session(request)
        response = page("invite.html", csrf=form_token(secret_key, pre), invite=invite, token=token)
        return with_pre(response, request, pre)

    @router.post("/invite/{token}")
    async def accept(token: str, request: Request) -> Response:
        fields = await form(request)
        check_pre_csrf(request, secret_key, fields)
        password = fields.get("password", "")
        try:
            if password != fields.get("password2", ""):
                raise AccountError("the two passwords differ", "password")
            new = await accounts.accept_invite(
                maker(request), secret_key, token, password, fields.get("name", "")[:200], hours, datetime.now(UTC)
            )
        except AccountError as exc:
            if exc.field is None:
                return page("message.html", exc.status, title="Invite", error=str(exc))
            invite = await accounts.open_invite(maker(request), secret_key, token, datetime.now(UTC))
            pre = pre_session(request)
            response = page(
                "invite.html", 400, csrf=form_token(secret_key, pre), invite=invite, token=token, error=str(exc)
            )
            return with_pre(response, request, pre)
        await audit(request, "invite_accepted", new.user.email, new.user.id, new.user.role, 303)
        return signed_in(see_other("/console"), request, new, hours)

    @router.get("")
    async def home(me: Me, msg: str | None = None) -> HTMLResponse:
        return page("home.html", me=me, msg=msg)

    @router.get("/password")
    async def password_form(me: Me) -> HTMLResponse:
        return page("password.html", me=me)

    @router.post("/password")
    async def change_password(request: Request, me: Me) -> Response:
        """One's own password (every role, also viewers): the current one first; other sessions end."""
        fields = await form(request)
        check_csrf(me, fields)
        try:
            if me.actor.user_id is None:
                raise AccountError("no user", None, 400)
            if fields.get("password", "") != fields.get("password2", ""):
                raise AccountError("the two new passwords differ", "password")
            await accounts.change_password(
                maker(request), me.actor.user_id, fields.get("current", ""), fields.get("password", ""),
                keep_session=me.session_token,
            )  # fmt: skip
        except AccountError as exc:
            return page("password.html", exc.status, me=me, error=str(exc))
        await audit(request, "password_changed", me.actor.label, me.actor.user_id, me.actor.role, 303)
        return see_other("/console?msg=Password+changed;+other+sessions+ended")

    @router.get("/tokens")
    async def tokens(request: Request, me: Me, msg: str | None = None) -> HTMLResponse:
        rows = await read(request, me, "/api/me/tokens")
        return page("tokens.html", me=me, tokens=rows, created=None, msg=msg)

    @router.post("/tokens")
    async def create_token(request: Request, me: Me) -> Response:
        fields = await form(request)
        check_csrf(me, fields)
        status, body = await call(request, me, "POST", "/api/me/tokens", json={"name": fields.get("name", "")})
        rows = await read(request, me, "/api/me/tokens")
        if status != 201:
            return page("tokens.html", status, me=me, tokens=rows, created=None, error=error_of(body))
        return page("tokens.html", me=me, tokens=rows, created=body)

    @router.post("/tokens/{token_id}/revoke")
    async def revoke_token(token_id: str, request: Request, me: Me) -> Response:
        check_csrf(me, await form(request))
        status, body = await call(request, me, "POST", f"/api/me/tokens/{token_id}/revoke")
        if status != 200:
            return page("message.html", status, me=me, title="API tokens", error=error_of(body))
        return see_other("/console/tokens?msg=Token+revoked")

    return router
