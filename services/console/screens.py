"""The console's router: its screens and its static files (CSS, the vendored htmx)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from services.console.screens_audiences import audiences_router
from services.console.screens_auth import auth_router
from services.console.screens_content import content_router
from services.console.screens_experiments import experiments_router
from services.console.screens_forms import forms_router
from services.console.screens_ops import ops_router
from services.console.screens_scoring import scoring_router
from services.console.screens_sends import sends_router
from services.console.screens_webhooks import webhooks_router
from shared.settings import AdminSettings

STATIC = Path(__file__).parent / "static"
TYPES = {"console.css": "text/css", "htmx.min.js": "text/javascript"}


def console_router(settings: AdminSettings) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/console/static/{name}")
    async def static(name: str) -> FileResponse:
        if name not in TYPES:
            raise HTTPException(404, "no such file")
        return FileResponse(STATIC / name, media_type=TYPES[name], headers={"Cache-Control": "max-age=3600"})

    router.include_router(auth_router(settings))
    router.include_router(content_router())
    router.include_router(ops_router())
    router.include_router(scoring_router())
    router.include_router(forms_router())
    router.include_router(audiences_router())
    router.include_router(experiments_router())
    router.include_router(sends_router())
    router.include_router(webhooks_router())
    return router
