"""ASGI apps: the public collection edge, the admin API, and both on one port for `dev`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from funnelstream import __version__
from funnelstream.migrate import wait_for_schema
from funnelstream.openapi import openapi_as_answered
from services.admin.accounts_api import accounts_router
from services.admin.api import admin_router
from services.admin.scoring_api import scoring_router
from services.admin.webhook_endpoints import webhook_endpoints_router
from services.admin.webhook_secrets import webhook_secrets_router
from services.analytics.api import analytics_router
from services.analytics.dashboard.pages import dashboard_router
from services.analytics.reports import Reports, analytics_settings_of
from services.commerce.api import commerce_router, recovery_router
from services.console.api import console_api_router
from services.console.audit import AuditMiddleware
from services.console.screens import console_router
from services.forms.api import forms_router
from services.forms.public import forms_public_router
from services.ingest.api import IngestError, IngestState, TrackingFastPath, ingest_error_handler, tracking_router
from services.ingest.browser import TrackingCORSMiddleware, browser_router
from services.ingest.repository import SourceCache
from services.ingest.webhooks import webhooks_router
from services.nurture.audiences.api import audiences_router
from services.nurture.consent.api import consent_admin_router, consent_public_router
from services.nurture.consent.repository import consent_check
from services.nurture.delivery.api import delivery_router
from services.nurture.experiments.api import experiments_router
from services.nurture.sequences.api import sequences_router
from services.nurture.templates.api import templates_router
from services.predictive.api import predictive_router
from services.referrals.api import referrals_router
from shared.db import make_engine, make_sessionmaker
from shared.health import broker_check, database_check, health_router
from shared.kafka import Topics, make_producer
from shared.settings import AdminSettings, IngestSettings, NurtureSettings, Settings


async def http_error(_request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, StarletteHTTPException):
        raise exc
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """400 naming the first bad field, instead of FastAPI's 422 list."""
    if not isinstance(exc, RequestValidationError):
        raise exc
    first: dict[str, Any] = exc.errors()[0]
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
    field = ".".join(loc) or None
    message = str(first.get("msg", "invalid input")).removeprefix("Value error, ")
    return JSONResponse({"error": f"{field}: {message}" if field else message, "field": field}, status_code=400)


def create_app(
    *, ingest: IngestSettings | None = None, admin: AdminSettings | None = None, nurture: NurtureSettings | None = None
) -> FastAPI:
    """One app serving the parts given settings for; resources are opened in its lifespan."""
    base: Settings | None = ingest or admin
    if base is None:
        raise ValueError("create_app needs ingest or admin settings")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(base.database_url)
        await wait_for_schema(engine)
        producer = make_producer(base)
        await producer.start()
        sessionmaker = make_sessionmaker(engine)
        app.state.sessionmaker = sessionmaker
        app.state.producer = producer
        if admin is not None:
            app.state.admin_token = admin.admin_token.get_secret_value()
            # Delivery routes (resends, test sends, the dev mailbox): given nurture settings, else the
            # environment's; a marketing resend checks consent first.
            if nurture is not None:
                app.state.nurture_settings = nurture
            app.state.consent_check = consent_check
            app.state.analytics_reports = Reports(analytics_settings_of(admin))
        if ingest is not None:
            app.state.ingest = IngestState(
                ingest, producer, SourceCache(sessionmaker, ingest.write_key_cache_seconds), Topics(ingest.topic_prefix)
            )
        app.state.checks = {"database": database_check(engine), "broker": broker_check(producer)}
        try:
            yield
        finally:
            await producer.stop()
            await engine.dispose()

    parts = [name for name, s in (("collection edge", ingest), ("admin API", admin)) if s is not None]
    app = FastAPI(
        title="FunnelStream",
        version=__version__,
        description="FunnelStream " + " and ".join(parts) + ".",
        lifespan=lifespan,
    )
    app.openapi = openapi_as_answered(app)  # type: ignore[method-assign]
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(IngestError, ingest_error_handler)
    app.include_router(health_router(lambda: getattr(app.state, "checks", {})))
    if ingest is not None:
        app.add_middleware(TrackingFastPath)  # inner: CORS (added next) wraps it
        app.add_middleware(TrackingCORSMiddleware)
        app.include_router(tracking_router())
        app.include_router(browser_router())
        app.include_router(webhooks_router())
        app.include_router(consent_public_router())
        app.include_router(recovery_router())
        app.include_router(forms_public_router())
    if admin is not None:
        app.include_router(admin_router())
        app.include_router(scoring_router(admin))
        app.include_router(predictive_router(admin))
        app.include_router(accounts_router())
        app.include_router(webhook_secrets_router())
        app.include_router(webhook_endpoints_router())
        app.include_router(templates_router())
        app.include_router(sequences_router())
        app.include_router(audiences_router())
        app.include_router(experiments_router())
        app.include_router(consent_admin_router())
        app.include_router(delivery_router())
        app.include_router(analytics_router())
        app.include_router(dashboard_router())
        app.include_router(commerce_router())
        app.include_router(forms_router())
        app.include_router(referrals_router())
        app.include_router(console_api_router(admin))
        app.include_router(console_router(admin))
        app.add_middleware(AuditMiddleware)  # every change through /api, by whom (services/console/audit.py)

        @app.get("/", include_in_schema=False)
        async def home() -> HTMLResponse:
            return HTMLResponse(
                "<!doctype html><title>FunnelStream</title><h1>FunnelStream</h1>"
                '<ul><li><a href="/docs">API documentation</a></li>'
                '<li><a href="/readyz">readiness</a></li><li><a href="/metrics">metrics</a></li></ul>'
            )

    return app
