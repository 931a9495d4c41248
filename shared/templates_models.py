"""Tables of nurture: email templates."""

from __future__ import annotations

from shared.db import Base  # noqa: F401 - the models below register on its metadata
