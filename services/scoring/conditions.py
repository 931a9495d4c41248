"""Evaluating rule conditions against plain data: pure, no I/O."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from services.scoring.rules import FREE_MAIL_DOMAINS, Condition

_MISSING = object()


def lookup(data: dict[str, Any], path: str) -> Any:
    """`properties.plan.name` → data["properties"]["plan"]["name"]; missing anywhere → _MISSING."""
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


@lru_cache(maxsize=1024)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _fold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.replace(",", "").strip())
        except ValueError:
            return None
    return None


def _domain(value: Any) -> str | None:
    if isinstance(value, str) and "@" in value:
        return value.rsplit("@", 1)[1].strip().casefold()
    return None


def holds(condition: Condition, data: dict[str, Any]) -> bool:
    """Whether `condition` is true of `data`; a missing field fails every op but `not_exists`/`ne`/`not_in`."""
    op, expected = condition.op, condition.value
    value = lookup(data, condition.field)
    if op == "exists":
        return value is not _MISSING and value is not None
    if op == "not_exists":
        return value is _MISSING or value is None
    if value is _MISSING or value is None:
        return op in {"ne", "not_in", "not_contains"}
    if op in {"free_email", "business_email"}:
        domain = _domain(value)
        if domain is None:
            return False
        return (domain in FREE_MAIL_DOMAINS) == (op == "free_email")
    if op == "domain_in":
        domain = _domain(value)
        return domain is not None and any(domain == str(d).casefold().lstrip("@") for d in expected)
    if op in {"gt", "gte", "lt", "lte"}:
        number = _number(value)
        if number is None:
            return False
        bound = float(expected)
        return {"gt": number > bound, "gte": number >= bound, "lt": number < bound, "lte": number <= bound}[op]
    if op == "matches":
        return isinstance(value, str | int | float) and _regex(str(expected)).search(str(value)) is not None
    folded = _fold(value)
    if op == "eq":
        return bool(folded == _fold(expected))
    if op == "ne":
        return bool(folded != _fold(expected))
    if op == "in":
        return folded in [_fold(e) for e in expected]
    if op == "not_in":
        return folded not in [_fold(e) for e in expected]
    text, needle = str(folded), str(_fold(expected))
    if op == "contains":
        return needle in text
    if op == "not_contains":
        return needle not in text
    if op == "starts_with":
        return text.startswith(needle)
    if op == "ends_with":
        return text.endswith(needle)
    raise ValueError(f"unknown op {op!r}")


def all_hold(conditions: list[Condition], data: dict[str, Any]) -> bool:
    return all(holds(c, data) for c in conditions)
