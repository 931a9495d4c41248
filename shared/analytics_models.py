"""Funnel analytics tables: incrementally maintained summaries, campaign spend and exchange rates (issue 8)."""

from __future__ import annotations

from shared.db import Base  # noqa: F401 - tables of this module subclass Base
