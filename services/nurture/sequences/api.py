"""Admin API routes for nurture sequences and enrollments."""

from __future__ import annotations

from fastapi import APIRouter

from services.admin.api import ERRORS, AdminDep


def sequences_router() -> APIRouter:
    return APIRouter(prefix="/api", dependencies=[AdminDep], responses=ERRORS, tags=["sequences"])
