"""Pure, deterministic assignment of a lead to a variant.

The variant is a function of the experiment's key and the lead id only (sha256 → a point in [0, 1) →
the variant whose share of the weights covers it), so the same lead gets the same variant in every
process, after a restart and on a replay, without reading anything. Weights need not sum to 1; a
weight of 0 takes no traffic. Changing the weights moves only the leads whose point falls in the
changed slice; an assignment already recorded is kept regardless (see the scheduler's routing).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence


def point(key: str, lead_id: uuid.UUID) -> float:
    """A uniform point in [0, 1) for this lead in this experiment (64 bits of sha256)."""
    digest = hashlib.sha256(f"{key}:{lead_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign(key: str, lead_id: uuid.UUID, weights: Sequence[tuple[str, float]]) -> str:
    """The variant of `lead_id` among `weights` ((variant, weight) in their defined order)."""
    live = [(variant, weight) for variant, weight in weights if weight > 0]
    if not live:
        raise ValueError("no variant has a positive weight")
    total = sum(weight for _, weight in live)
    at = point(key, lead_id) * total
    running = 0.0
    for variant, weight in live:
        running += weight
        if at < running:
            return variant
    return live[-1][0]  # float rounding at the very top
