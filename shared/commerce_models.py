"""Commerce tables: carts, their reminders, incentive code pools and recovered revenue (issue 7)."""

from __future__ import annotations

from shared.db import Base  # noqa: F401 - tables of this module subclass Base
