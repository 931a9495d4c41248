"""Clients of the places an audience is pushed to. Each speaks one documented request format, takes only
hashed identifiers (services/nurture/audiences/identifiers.py) and raises `SyncError` on any failure."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


class SyncError(Exception):
    """A push that did not go through; the sync loop retries it with backoff."""


@dataclass(frozen=True)
class Member:
    """A lead as a destination sees it: SHA-256 hex digests only (`email`, `phone`, `phone_e164`)."""

    lead_id: uuid.UUID | None
    hashes: dict[str, str]


def batches(items: list[T], size: int) -> list[list[T]]:
    """`items` in lists of at most `size` (a platform's per-request limit)."""
    return [items[i : i + size] for i in range(0, len(items), size)]
