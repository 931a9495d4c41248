"""Generated lead histories for predictive scoring tests, with or without a known signal.

With `signal`, leads with a business email who viewed the pricing page become customers (an
`Order Completed`) within weeks of that view; a few others convert at random. Without it, every lead
converts at a constant rate from its first visit (an exponential time), so at any moment its chance to
convert soon depends on nothing it did, nor on its age. Everyone browses, opens emails
and visits the blog at their own random rate, which the default rules score but which predicts
nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from services.predictive.service import LeadHistory
from services.scoring.repository import HistoryEvent

TITLES = ["Engineer", "Marketing Manager", "VP Sales", "Student", "Founder", "Analyst"]
INDUSTRIES = ["software", "retail", "finance", "education"]


@dataclass
class Generated:
    lead_id: uuid.UUID
    user_id: str
    email: str
    traits: dict[str, Any]
    events: list[tuple[str, str | None, dict[str, Any], datetime]]  # type, name, properties, at
    reached_at: datetime | None

    def history(self) -> LeadHistory:
        rows = [
            HistoryEvent(self.lead_id, uuid.uuid5(self.lead_id, str(i)), t, n, p, None, at)
            for i, (t, n, p, at) in enumerate(sorted(self.events, key=lambda e: e[3]))
        ]
        return LeadHistory(self.lead_id, self.email, self.user_id, rows, self.reached_at)


def generate(n: int, seed: int, now: datetime, signal: bool, days: float = 200) -> list[Generated]:
    rng = np.random.default_rng(seed)
    leads = []
    for i in range(n):
        start = now - timedelta(days=float(rng.uniform(0, days)))
        life = (now - start).total_seconds()

        def at(lo: float = 0.0, _start: datetime = start, _life: float = life) -> datetime:
            return _start + timedelta(seconds=float(rng.uniform(lo * _life, _life)))

        business = bool(rng.random() < 0.5)
        email = f"p{seed}-{i}@" + (f"corp{i}.com" if business else "gmail.com")
        traits = {"email": email, "title": str(rng.choice(TITLES)), "employees": int(rng.integers(1, 2000)),
                  "industry": str(rng.choice(INDUSTRIES))}  # fmt: skip
        events: list[tuple[str, str | None, dict[str, Any], datetime]] = [("identify", None, traits, start)]
        for _ in range(int(rng.poisson(rng.uniform(0, 25)))):
            path = str(rng.choice(["/", "/blog/post", "/docs", "/about"]))
            events.append(("page", None, {"path": path}, at()))
        for _ in range(int(rng.poisson(rng.uniform(0, 10)))):
            events.append(("track", "Email Opened", {}, at()))
        pricing = sorted(at() for _ in range(int(rng.integers(1, 4)))) if rng.random() < 0.4 else []
        events += [("page", None, {"path": "/pricing"}, t) for t in pricing]
        reached = None
        if signal:
            if business and pricing and rng.random() < 0.7:
                reached = pricing[0] + timedelta(days=float(rng.uniform(1, 20)))
            elif rng.random() < 0.03:
                reached = at()
        else:  # memoryless: the chance to convert next month is the same whatever the lead did or its age
            reached = start + timedelta(days=float(rng.exponential(300)))
        if reached is not None and reached > now:
            reached = None
        if reached is not None:
            events = [e for e in events if e[3] < reached] + [("track", "Order Completed", {}, reached)]
        lead_id = uuid.UUID(int=int(rng.integers(0, 2**63)) * 2**64 + i)
        leads.append(Generated(lead_id, f"user-{seed}-{i}", email, traits, events, reached))
    return leads
