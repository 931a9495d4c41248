"""Predictive scoring tables: trained model artifacts, their evaluations and which one is active (issue 10)."""

from __future__ import annotations

from shared.db import Base  # noqa: F401 - tables of this module subclass Base
