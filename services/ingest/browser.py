"""Browser and email tracking: pixel, snippet, open pixel and click redirect. (Being built.)"""

from __future__ import annotations

from fastapi import APIRouter


def browser_router() -> APIRouter:
    return APIRouter(tags=["browser"])
