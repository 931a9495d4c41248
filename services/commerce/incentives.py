"""Cart incentives: tiered discounts or free shipping on one chosen reminder step, and single-use codes.

Codes come either from a pool the shop uploaded (`take_code`) or from a pattern (`code_from_pattern`),
where `{XXXX}` becomes as many characters from A-Z and 0-9, derived deterministically from a seed —
the same seed (e.g. cart id and step) always gives the same code, so a retried send reuses it.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Iterable
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, model_validator

CODE_ALPHABET = string.ascii_uppercase + string.digits
_GROUP = re.compile(r"\{(X+)\}")


class Tier(BaseModel):
    """Reached by carts whose total is at least `min_total` (in the cart's currency)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_total: Decimal = Field(ge=0)
    percent_off: Decimal | None = Field(default=None, gt=0, le=100)
    free_shipping: bool = False

    @model_validator(mode="after")
    def _offers_something(self) -> Tier:
        if self.percent_off is None and not self.free_shipping:
            raise ValueError("a tier offers a percentage off, free shipping, or both")
        return self


class IncentivePolicy(BaseModel):
    """A shop's tiers, the reminder step (0-based) that carries them, and the currency they apply to.

    `currency=None` applies the thresholds to any cart currency as-is.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    tiers: tuple[Tier, ...] = Field(min_length=1)
    on_step: int = Field(ge=0)
    currency: str | None = None

    @model_validator(mode="after")
    def _distinct_thresholds(self) -> IncentivePolicy:
        thresholds = [tier.min_total for tier in self.tiers]
        if len(set(thresholds)) != len(thresholds):
            raise ValueError("two tiers share a min_total")
        return self


class Incentive(BaseModel):
    """What a reminder offers: the tier reached."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tier: Tier
    currency: str

    @property
    def percent_off(self) -> Decimal | None:
        return self.tier.percent_off

    @property
    def free_shipping(self) -> bool:
        return self.tier.free_shipping


def incentive_for(policy: IncentivePolicy, cart_total: Decimal, currency: str, step: int) -> Incentive | None:
    """The highest tier the cart total reaches, on the policy's step only; None on another step,
    below every tier, or when the cart's currency is not the policy's."""
    if step != policy.on_step:
        return None
    if policy.currency is not None and policy.currency.upper() != currency.upper():
        return None
    reached = [tier for tier in policy.tiers if cart_total >= tier.min_total]
    if not reached:
        return None
    return Incentive(tier=max(reached, key=lambda tier: tier.min_total), currency=currency.upper())


def code_from_pattern(pattern: str, seed: str) -> str:
    """`pattern` with every `{X…}` group replaced by as many A-Z/0-9 characters derived from `seed`.

    Not secret (anyone with the seed can derive the code); uniqueness comes from unique seeds, and
    short groups can collide, so the caller still checks a code is unused.
    """
    if not _GROUP.search(pattern):
        raise ValueError("a code pattern needs at least one {X…} group")
    counter = 0

    def fill(match: re.Match[str]) -> str:
        nonlocal counter
        out = []
        for _ in match.group(1):
            digest = hashlib.sha256(f"{seed}\x00{counter}".encode()).digest()
            counter += 1
            # 2**64 over 36 symbols: the modulo bias is negligible.
            out.append(CODE_ALPHABET[int.from_bytes(digest[:8], "big") % len(CODE_ALPHABET)])
        return "".join(out)

    return _GROUP.sub(fill, pattern)


def take_code(pool: Iterable[str], used: set[str]) -> str | None:
    """The first code of the shop's pool not yet used (pool order), or None when the pool is exhausted."""
    return next((code for code in pool if code not in used), None)
