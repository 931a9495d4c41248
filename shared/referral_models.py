"""Referral tables: each customer's referral code and the signups attributed to it (issue 7)."""

from __future__ import annotations

from shared.db import Base  # noqa: F401 - tables of this module subclass Base
