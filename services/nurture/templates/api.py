"""Admin API routes for email templates."""

from __future__ import annotations

from fastapi import APIRouter

from services.admin.api import ERRORS, AdminDep


def templates_router() -> APIRouter:
    return APIRouter(prefix="/api", dependencies=[AdminDep], responses=ERRORS, tags=["templates"])
