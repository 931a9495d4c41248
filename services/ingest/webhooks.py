"""Signed shop and system webhooks. (Being built.)"""

from __future__ import annotations

from fastapi import APIRouter


def webhooks_router() -> APIRouter:
    return APIRouter(tags=["webhooks"])
