"""The web dashboard at /dashboard: server-rendered pages behind the admin token (a login page sets a
signed HttpOnly, SameSite=Strict session cookie). Everything shown is escaped by Jinja's autoescape;
chart data travels as JSON in a non-executed script element and is drawn by the vendored Frappe Charts.
"""

from __future__ import annotations

import time
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import PackageLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from services.admin.api import SessionDep
from services.analytics.api import ReportsDep, filters
from services.analytics.dashboard.tables import TABLES, Table, to_csv
from services.analytics.queries import Filters
from services.console.auth import find_actor
from services.nurture.delivery.mailbox import list_mailbox
from shared.security import same_secret
from shared.tokens import InvalidToken, load_signed, sign

COOKIE = "fs_dashboard"
SALT = "dashboard-session"
SESSION_SECONDS = 12 * 3600
CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:"
STATIC = {
    "frappe-charts.min.umd.js": "text/javascript",
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
}

ENV = SandboxedEnvironment(
    loader=PackageLoader("services.analytics.dashboard", "templates"), autoescape=True, undefined=StrictUndefined
)


async def signed_in(request: Request) -> None:
    """The dashboard's own cookie (from the admin token), or a console session of any role: it only reads."""
    if await find_actor(request, None) is not None:
        return
    token = request.cookies.get(COOKIE)
    secret: str = request.app.state.admin_token
    try:
        data = load_signed(secret, SALT, token or "")
    except InvalidToken:
        data = {}
    if not isinstance(data.get("exp"), int) or data["exp"] < time.time():
        # A redirect to the login page (the app's error handler keeps the Location header).
        raise HTTPException(303, "sign in first: /dashboard/login", headers={"Location": "/dashboard/login"})


SignedIn = Depends(signed_in)
FiltersDep = Annotated[Filters, Depends(filters)]


def page(name: str, **context: Any) -> HTMLResponse:
    html = ENV.get_template(name).render(**context)
    return HTMLResponse(html, headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store"})


def _query(request: Request, **extra: str) -> str:
    params = {k: v for k, v in request.query_params.items() if v}
    return urlencode({**params, **extra})


async def _tables(request: Request, r: Any, session: Any, f: Filters, names: list[str]) -> dict[str, Table]:
    params = dict(request.query_params)
    return {n.replace("-", "_"): await TABLES[n](r, session, f, params) for n in names}


def dashboard_router() -> APIRouter:
    router = APIRouter(prefix="/dashboard", include_in_schema=False)

    @router.get("/login")
    async def login_form(error: str = "") -> HTMLResponse:
        return page("login.html", error=error[:100])

    @router.post("/login")
    async def login(request: Request) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", "replace")[:4096])
        token = (form.get("token") or [""])[0]
        if not same_secret(token, request.app.state.admin_token):
            return RedirectResponse("/dashboard/login?error=wrong+admin+token", status_code=303)
        cookie = sign(request.app.state.admin_token, SALT, {"exp": int(time.time()) + SESSION_SECONDS})
        response = RedirectResponse("/dashboard", status_code=303)
        response.set_cookie(COOKIE, cookie, max_age=SESSION_SECONDS, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path="/dashboard")  # fmt: skip
        return response

    @router.post("/logout")
    async def logout() -> Response:
        response = RedirectResponse("/dashboard/login", status_code=303)
        response.delete_cookie(COOKIE, path="/dashboard")
        return response

    @router.get("/static/{name}")
    async def static(name: str) -> Response:
        if name not in STATIC:
            raise HTTPException(404, "no such file")
        body = files("services.analytics.dashboard").joinpath("static", name).read_bytes()
        return Response(body, media_type=STATIC[name], headers={"Cache-Control": "public, max-age=300"})

    @router.get("", dependencies=[SignedIn])
    async def overview(request: Request, f: FiltersDep, r: ReportsDep, session: SessionDep) -> HTMLResponse:
        funnel = await r.funnel(session, f)
        money = await r.money(session, f)
        tables = await _tables(request, r, session, f, ["funnel", "time-in-stage", "forecast", "stalled", "trend"])
        stalled = await r.stalled(session, f, None, 1)
        rows = funnel["stages"]
        lost = [max(0, r["entered"] - n["entered"]) for r, n in zip(rows, rows[1:], strict=False)] + [0]
        chart = {"labels": [r["stage"] for r in rows], "entered": [r["entered"] for r in rows], "lost": lost}
        days = sorted({str(row["day"]) for row in tables["trend"].rows})
        series: dict[str, dict[str, int]] = {}
        for row in tables["trend"].rows:
            series.setdefault(row["stage"], dict.fromkeys(days, 0))[str(row["day"])] = row["entered"]
        trend = {"labels": days, "series": [{"name": k, "values": list(v.values())} for k, v in series.items()]}
        return page("overview.html", **await _common(request, r, session, f), funnel=funnel, money=money,
                    tables=tables, stalled_count=stalled["count"], chart=chart, trend=trend)  # fmt: skip

    @router.get("/cohorts", dependencies=[SignedIn])
    async def cohorts(request: Request, f: FiltersDep, r: ReportsDep, session: SessionDep) -> HTMLResponse:
        weekly = await TABLES["cohorts"](r, session, f, {"by": "week"})
        by_source = await TABLES["cohorts"](r, session, f, {"by": "source"})
        return page("cohorts.html", **await _common(request, r, session, f), weekly=weekly, by_source=by_source)

    @router.get("/email", dependencies=[SignedIn])
    async def email(request: Request, f: FiltersDep, r: ReportsDep, session: SessionDep) -> HTMLResponse:
        found = await r.email(session, f.start, f.end)
        tables = await _tables(request, r, session, f, ["email-steps", "cart-recovery"])
        return page("email.html", **await _common(request, r, session, f), tables=tables,
                    carts_available=found["cart_recovery"] is not None)  # fmt: skip

    @router.get("/leads", dependencies=[SignedIn])
    async def lead(request: Request, f: FiltersDep, r: ReportsDep, session: SessionDep, lead: str = "") -> HTMLResponse:
        from services.analytics import activity

        found = await activity.find_lead(session, lead[:200]) if lead else None
        timeline = await TABLES["timeline"](r, session, f, {"lead": lead}) if found else None
        return page("lead.html", **await _common(request, r, session, f), ref=lead[:200], lead=found, timeline=timeline)

    @router.get("/mailbox", dependencies=[SignedIn])
    async def mailbox(request: Request, f: FiltersDep, r: ReportsDep, session: SessionDep) -> HTMLResponse:
        settings = getattr(request.app.state, "nurture_settings", None)
        folder: Path | None = getattr(settings, "mailbox_dir", None)
        entries = list_mailbox(folder, 200) if folder is not None else None
        return page("mailbox.html", **await _common(request, r, session, f), entries=entries, folder=folder)

    @router.get("/csv/{name}", dependencies=[SignedIn])
    async def download(name: str, request: Request, f: FiltersDep, r: ReportsDep, session: SessionDep) -> Response:
        if name not in TABLES:
            raise HTTPException(404, f"no table {name[:50]!r}")
        table = await TABLES[name](r, session, f, dict(request.query_params))
        filename = f"{name}-{f.model}-{f.start}-{f.end}.csv"
        return Response(to_csv(table), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})  # fmt: skip

    return router


async def _common(request: Request, r: Any, session: Any, f: Filters) -> dict[str, Any]:
    funnels, _ = await r.funnels(session)
    return {
        "f": f,
        "models": list(funnels.stages),
        "path": request.url.path,
        "query": _query(request),
    }
