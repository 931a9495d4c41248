"""Retargeting audience tables: definitions, memberships over time, destinations and their sync state (issue 7)."""

from __future__ import annotations

from shared.db import Base  # noqa: F401 - tables of this module subclass Base
