"""Consent: admin routes (subscriptions, imports, export and erasure) and public pages (unsubscribe,
preferences, bounce and complaint feedback)."""

from __future__ import annotations

from fastapi import APIRouter

from services.admin.api import ERRORS, AdminDep


def consent_admin_router() -> APIRouter:
    return APIRouter(prefix="/api", dependencies=[AdminDep], responses=ERRORS, tags=["consent"])


def consent_public_router() -> APIRouter:
    return APIRouter(tags=["consent (public)"])
