"""Pure report arithmetic over summary rows: conversion and bottleneck, percentiles, money, forecast."""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from services.analytics.summaries import CYCLE, percentile

CENT = Decimal("0.01")


def ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def funnel_rows(stages: Sequence[str], counts: Mapping[str, tuple[int, int]]) -> list[dict[str, Any]]:
    """Each stage: entered, exited, conversion to the next stage (its entries over this one's), drop-off,
    and `bottleneck` on the stage with the biggest relative drop to the next."""
    rows: list[dict[str, Any]] = []
    for i, stage in enumerate(stages):
        entered, exited = counts.get(stage, (0, 0))
        nxt = counts.get(stages[i + 1], (0, 0))[0] if i + 1 < len(stages) else None
        conversion = ratio(nxt, entered) if nxt is not None else None
        drop = round(max(0.0, 1 - conversion), 4) if conversion is not None else None
        rows.append({"stage": stage, "entered": entered, "exited": exited, "conversion": conversion,
                     "drop_off": drop, "bottleneck": False})  # fmt: skip
    candidates = [r for r in rows if r["drop_off"] is not None and r["entered"] > 0]
    if candidates:
        max(candidates, key=lambda r: r["drop_off"])["bottleneck"] = True
    return rows


def named_rates(stages: Sequence[str], counts: Mapping[str, tuple[int, int]]) -> dict[str, float | None]:
    """visitor → lead (first to second stage), MQL → SAL and opportunity → customer where the model has them."""
    entered = {s: counts.get(s, (0, 0))[0] for s in stages}
    out: dict[str, float | None] = {}
    if len(stages) > 1:
        out[f"{stages[0]}_to_{stages[1]}"] = ratio(entered[stages[1]], entered[stages[0]])
    for a, b in (("mql", "sal"), ("opportunity", "customer")):
        if a in entered and b in entered:
            out[f"{a}_to_{b}"] = ratio(entered[b], entered[a])
    return out


def hours(seconds: float | None) -> float | None:
    return round(seconds / 3600, 2) if seconds is not None else None


def duration_rows(stages: Sequence[str], histograms: Mapping[str, Mapping[int, int]]) -> list[dict[str, Any]]:
    """Time in each stage (median, p90, in hours) over the leads that left it; then the sales cycle."""
    rows = []
    for stage in [*stages, CYCLE]:
        h = histograms.get(stage, {})
        rows.append({"stage": "sales cycle" if stage == CYCLE else stage, "leads": sum(h.values()),
                     "median_hours": hours(percentile(h, 0.5)), "p90_hours": hours(percentile(h, 0.9))})  # fmt: skip
    return rows


@dataclass
class Money:
    """Converts amounts into the reporting currency with the rate valid on each day (entered via the API)."""

    reporting: str
    rates: Sequence[tuple[str, str, date, Decimal]]
    missing: set[str] = field(default_factory=set)
    _by_pair: dict[tuple[str, str], tuple[list[date], list[Decimal]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        pairs: dict[tuple[str, str], list[tuple[date, Decimal]]] = defaultdict(list)
        for base, quote, day, rate in self.rates:
            if rate > 0:
                pairs[(base, quote)].append((day, rate))
                pairs[(quote, base)].append((day, Decimal(1) / rate))
        for key, items in pairs.items():
            items.sort()
            self._by_pair[key] = ([d for d, _ in items], [r for _, r in items])

    def convert(self, amount: Decimal, currency: str, day: date) -> Decimal | None:
        """`amount` in the reporting currency, or None (and `currency` noted as missing) without a rate."""
        if currency == self.reporting or not currency:
            return amount
        found = self._by_pair.get((currency, self.reporting))
        if found is None:
            self.missing.add(currency)
            return None
        days, values = found
        i = bisect.bisect_right(days, day) - 1
        return amount * values[max(i, 0)]  # before the first rate: the earliest one

    def total(self, rows: Sequence[tuple[date, str, Decimal]]) -> Decimal:
        total = Decimal(0)
        for day, currency, amount in rows:
            value = self.convert(amount, currency, day)
            if value is not None:
                total += value
        return total


def cents(value: Decimal | None) -> str | None:
    return str(value.quantize(CENT, ROUND_HALF_UP)) if value is not None else None


def per(value: Decimal, count: int) -> Decimal | None:
    return value / count if count else None


def forecast(
    stages: Sequence[str],
    won: str,
    pipeline: Mapping[str, int],
    win_rates: Mapping[str, tuple[int, int]],
    medians: Mapping[str, float | None],
    order_value: Decimal | None,
) -> tuple[list[dict[str, Any]], Decimal]:
    """Expected revenue from leads now in the stages between the first and the won stage: each stage's
    leads × the historical share of leads that reached that stage and then won × the average order value;
    expected days to close = sum of median hours in the stages left (stages nobody left count 0)."""
    if won not in stages:
        return [], Decimal(0)
    end = list(stages).index(won)
    rows, total = [], Decimal(0)
    for i in range(1, end):
        reached, won_after = win_rates.get(stages[i], (0, 0))
        chance = won_after / reached if reached else 0.0
        days = sum((medians.get(stages[j]) or 0.0) for j in range(i, end)) / 24
        leads = pipeline.get(stages[i], 0)
        value = Decimal(leads) * Decimal(str(round(chance, 6))) * (order_value or Decimal(0))
        total += value
        rows.append({"stage": stages[i], "leads": leads, "win_probability": round(chance, 4),
                     "history_reached": reached, "history_won": won_after,
                     "expected_customers": round(leads * chance, 2), "expected_revenue": cents(value),
                     "expected_days_to_close": round(days, 1)})  # fmt: skip
    return rows, total


def cohort_table(
    rows: Sequence[tuple[Any, str, int, int]], stages: Sequence[str], won: str, weeks: int = 8
) -> list[dict[str, Any]]:
    """Per cohort: its size (leads entering the first stage), per later stage how many reached it and the
    share, and `won_by_week`: the cumulative share that had reached the won stage 0, 1, … weeks after
    entering (conversion over time)."""
    by: dict[Any, dict[str, dict[int, int]]] = defaultdict(lambda: defaultdict(dict))
    for key, stage, offset, n in rows:
        by[key][stage][offset] = by[key][stage].get(offset, 0) + n
    out = []
    for key, per_stage in by.items():
        size = sum(per_stage.get(stages[0], {}).values()) if stages else 0
        row: dict[str, Any] = {"cohort": str(key), "leads": size}
        for stage in stages[1:]:
            reached = sum(per_stage.get(stage, {}).values())
            row[stage] = reached
            row[f"{stage}_share"] = ratio(reached, size)
        won_at = per_stage.get(won, {})
        cumulative = [sum(n for o, n in won_at.items() if o <= week) for week in range(weeks)]
        row["won_by_week"] = [ratio(n, size) for n in cumulative]
        out.append(row)
    return out
