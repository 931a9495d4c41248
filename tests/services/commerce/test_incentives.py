"""Tiered incentives on the chosen reminder step, and single-use codes."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from services.commerce.incentives import IncentivePolicy, Tier, code_from_pattern, incentive_for, take_code

FIVE = Tier(min_total=Decimal(100), percent_off=Decimal(5))
SHIPPING = Tier(min_total=Decimal(200), free_shipping=True)
TEN = Tier(min_total=Decimal(300), percent_off=Decimal(10), free_shipping=True)
POLICY = IncentivePolicy(tiers=(TEN, FIVE, SHIPPING), on_step=1, currency="EUR")


@pytest.mark.parametrize(
    ("total", "tier"),
    [("99.99", None), ("100", FIVE), ("250", SHIPPING), ("299.99", SHIPPING), ("300", TEN), ("5000", TEN)],
)
def test_the_highest_tier_reached_is_offered(total: str, tier: Tier | None) -> None:
    incentive = incentive_for(POLICY, Decimal(total), "EUR", step=1)
    assert (incentive.tier if incentive else None) == tier


def test_only_on_the_chosen_step() -> None:
    assert incentive_for(POLICY, Decimal(400), "EUR", step=0) is None
    assert incentive_for(POLICY, Decimal(400), "EUR", step=2) is None


def test_a_cart_in_another_currency_gets_nothing_unless_the_policy_has_none() -> None:
    assert incentive_for(POLICY, Decimal(400), "USD", step=1) is None
    incentive = incentive_for(POLICY, Decimal(400), "eur", step=1)
    assert incentive is not None and incentive.currency == "EUR" and incentive.percent_off == Decimal(10)
    anywhere = POLICY.model_copy(update={"currency": None})
    assert incentive_for(anywhere, Decimal(400), "USD", step=1) is not None


def test_bad_tiers_are_refused() -> None:
    with pytest.raises(ValidationError):
        Tier(min_total=Decimal(10))
    with pytest.raises(ValidationError):
        Tier(min_total=Decimal(10), percent_off=Decimal(101))
    with pytest.raises(ValidationError):
        IncentivePolicy(tiers=(FIVE, FIVE), on_step=0)


thresholds = st.lists(st.decimals(0, 1000, places=2), min_size=1, max_size=5, unique=True)
totals = st.decimals(0, 2000, places=2)


@given(thresholds, totals, totals)
def test_tiers_are_monotone_a_bigger_cart_never_gets_a_lower_tier(
    mins: list[Decimal], smaller: Decimal, bigger: Decimal
) -> None:
    smaller, bigger = sorted((smaller, bigger))
    # Percentages rise with the threshold, as shops configure them.
    tiers = tuple(Tier(min_total=m, percent_off=Decimal(5 + 5 * i)) for i, m in enumerate(sorted(mins)))
    policy = IncentivePolicy(tiers=tiers, on_step=0)
    low = incentive_for(policy, smaller, "EUR", 0)
    high = incentive_for(policy, bigger, "EUR", 0)
    if low is not None:
        assert high is not None
        assert high.tier.min_total >= low.tier.min_total
        assert (high.percent_off or 0) >= (low.percent_off or 0)
    if high is not None:
        assert high.tier.min_total <= bigger


def test_pattern_codes_are_deterministic_per_seed() -> None:
    code = code_from_pattern("SAVE-{XXXX}", "cart-1:step-1")
    assert re.fullmatch(r"SAVE-[A-Z0-9]{4}", code)
    assert code == code_from_pattern("SAVE-{XXXX}", "cart-1:step-1")
    assert code_from_pattern("{XXXXXXXX}", "a") != code_from_pattern("{XXXXXXXX}", "b")


@given(st.text(max_size=20))
def test_every_group_is_filled_and_the_rest_kept(seed: str) -> None:
    assert re.fullmatch(r"X-[A-Z0-9]{3}-MID-[A-Z0-9]{6}", code_from_pattern("X-{XXX}-MID-{XXXXXX}", seed))


def test_a_pattern_without_a_group_is_refused() -> None:
    with pytest.raises(ValueError, match="group"):
        code_from_pattern("SAVE10", "seed")


def test_pool_codes_are_taken_in_order_and_used_once() -> None:
    pool = ["A1", "B2", "C3"]
    assert take_code(pool, set()) == "A1"
    assert take_code(pool, {"A1"}) == "B2"
    assert take_code(pool, set(pool)) is None
    assert take_code([], set()) is None
