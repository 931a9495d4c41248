"""Features of a lead at one moment, from its traits and its events before that moment: pure, no I/O.

Training computes them at past snapshot times from the stored history, the scoring consumer at the
time of the lead's latest event; both call `extract`, so what the model learnt on is what it is
applied to. Counts are log1p-scaled; recency is days since the last such event over the longest
window (1.0 when there was none). Categorical traits and track event names become one-hot keys
(`industry=software`, `event:webinar attended`); training keeps only those common enough.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.scoring.conditions import _number  # the rule DSL's reading of "1,200" and 50.0 alike
from services.scoring.rules import FREE_MAIL_DOMAINS

WINDOWS = (7, 30, 90)  # days
LONGEST = timedelta(days=max(WINDOWS))
MAX_EVENTS = 2000  # a lead's latest events in the longest window that count
CATEGORICAL = ("industry", "country", "seniority")
VOCAB_PREFIXES = tuple(f"{c}=" for c in CATEGORICAL) + ("event:",)

_SENIOR = re.compile(r"(?i)\b(vp|vice president|head|chief|c[etmfo]o|director|founder|owner)\b")
_MANAGER = re.compile(r"(?i)\bmanager\b")
_STUDENT = re.compile(r"(?i)\b(student|intern)\b")


@dataclass(frozen=True)
class Event:
    """What features need of one (human) event."""

    type: str
    name: str | None
    path: str | None
    at: datetime


def _named(*names: str) -> Callable[[Event], bool]:
    wanted = {n.casefold() for n in names}
    return lambda e: e.type == "track" and (e.name or "").casefold() in wanted


def _page(fragment: str | None = None) -> Callable[[Event], bool]:
    if fragment is None:
        return lambda e: e.type == "page"
    return lambda e: e.type == "page" and fragment in (e.path or "").casefold()


# The behaviour a marketer would look at first; every other track event counts by name (`event:`).
KEY_EVENTS: dict[str, Callable[[Event], bool]] = {
    "page": _page(),
    "pricing": _page("/pricing"),
    "careers": _page("/careers"),
    "demo": _named("Demo Requested"),
    "contact": _named("Contact Requested"),
    "form": _named("Form Submitted"),
    "download": _named("File Downloaded"),
    "email_open": _named("Email Opened"),
    "email_click": _named("Email Link Clicked"),
    "product_view": _named("Product Viewed"),
    "cart": _named("Product Added", "Checkout Started"),
    "unsubscribe": _named("Unsubscribed"),
}


def fit_features(traits: dict[str, Any], email: str | None) -> dict[str, float]:
    """Who the lead is: title level, company size, email kind, categorical traits one-hot."""
    out: dict[str, float] = {}
    title = traits.get("title")
    if isinstance(title, str):
        out["title:senior"] = float(bool(_SENIOR.search(title)))
        out["title:manager"] = float(bool(_MANAGER.search(title)))
        out["title:student"] = float(bool(_STUDENT.search(title)))
    employees = _number(traits.get("employees"))
    if employees is not None and employees >= 0:
        out["employees_log"] = math.log1p(employees)
        out["employees_known"] = 1.0
    domain = email.rsplit("@", 1)[1].strip().casefold() if email and "@" in email else None
    if domain is None:
        out["email:none"] = 1.0
    elif domain in FREE_MAIL_DOMAINS:
        out["email:free"] = 1.0
    else:
        out["email:business"] = 1.0
    for key in CATEGORICAL:
        value = traits.get(key)
        if isinstance(value, str) and value.strip():
            out[f"{key}={value.strip().casefold()[:60]}"] = 1.0
    return out


def behaviour_features(events: Iterable[Event], at: datetime) -> dict[str, float]:
    """Counts per window and recency of the key events, and 30-day counts per track event name."""
    counts = {(k, w): 0 for k in KEY_EVENTS for w in WINDOWS}
    last: dict[str, datetime] = {}
    named: dict[str, int] = {}
    days: set[int] = set()
    window = [e for e in events if e.at <= at and at - e.at <= LONGEST]
    if len(window) > MAX_EVENTS:  # one hot lead costs no more than this (serving reads no more either)
        window = sorted(window, key=lambda e: e.at, reverse=True)[:MAX_EVENTS]
    for e in window:
        age = (at - e.at).total_seconds() / 86400
        for key, test in KEY_EVENTS.items():
            if test(e):
                for w in WINDOWS:
                    if age <= w:
                        counts[key, w] += 1
                if key not in last or e.at > last[key]:
                    last[key] = e.at
        if age <= 30:
            days.add(int(age))
            if e.type == "track" and e.name:
                name = f"event:{e.name.casefold()[:80]}"
                named[name] = named.get(name, 0) + 1
    out = {f"{k}_{w}d": math.log1p(n) for (k, w), n in counts.items()}
    longest = LONGEST.total_seconds()
    for key in KEY_EVENTS:
        seen = last.get(key)
        out[f"{key}_recency"] = min((at - seen).total_seconds() / longest, 1.0) if seen else 1.0
    out["active_days_30d"] = float(len(days))
    out.update({name: math.log1p(n) for name, n in named.items()})
    return out


def extract(traits: dict[str, Any], email: str | None, events: Iterable[Event], at: datetime) -> dict[str, float]:
    """Every feature of a lead as of `at` (events after `at` are ignored)."""
    return fit_features(traits, email) | behaviour_features(events, at)


def traits_at(identifies: Iterable[tuple[datetime, dict[str, Any]]], at: datetime) -> dict[str, Any]:
    """The traits a lead had at `at`: its identify calls up to then, merged in event-time order."""
    traits: dict[str, Any] = {}
    for when, values in sorted(identifies, key=lambda item: item[0]):
        if when <= at:
            traits.update(values)
    return traits


def vocabulary(rows: list[dict[str, float]], min_count: int, limit: int = 200) -> list[str]:
    """Feature names to learn on: every fixed feature, and one-hot keys present in `min_count` rows."""
    present: dict[str, int] = {}
    for row in rows:
        for name, value in row.items():
            if value:
                present[name] = present.get(name, 0) + 1
    fixed = sorted(n for n in present if not n.startswith(VOCAB_PREFIXES))
    common = sorted((n for n in present if n.startswith(VOCAB_PREFIXES) and present[n] >= min_count),
                    key=lambda n: (-present[n], n))[:limit]  # fmt: skip
    return fixed + sorted(common)
