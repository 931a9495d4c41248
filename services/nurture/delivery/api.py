"""Admin API routes for email delivery: sends in doubt, the dev mailbox."""

from __future__ import annotations

from fastapi import APIRouter

from services.admin.api import ERRORS, AdminDep


def delivery_router() -> APIRouter:
    return APIRouter(prefix="/api", dependencies=[AdminDep], responses=ERRORS, tags=["delivery"])
