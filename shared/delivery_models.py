"""Tables of nurture: email sends and delivery."""

from __future__ import annotations

from shared.db import Base  # noqa: F401 - the models below register on its metadata
