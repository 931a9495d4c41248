"""Lead capture tables: form definitions, submissions and double opt-in confirmations (issue 11)."""

from __future__ import annotations

from shared.db import Base  # noqa: F401 - tables of this module subclass Base
