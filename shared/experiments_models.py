"""Experiment tables: experiments on send steps and branches, assignments and winner decisions (issue 12)."""

from __future__ import annotations

from shared.db import Base  # noqa: F401 - tables of this module subclass Base
