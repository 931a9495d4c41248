"""Pure aggregation: a batch of lead changes becomes additions to the summary tables.

No I/O and no clock: the caller loads the state of the batch's leads (when first seen, attribution,
current stage per funnel model) and writes the returned `Delta` with one upsert per table. Every lead
is in the first stage of every funnel model from the moment analytics first sees it (scoring never
announces that implicit stage), so visitor counts and time in the first stage are measured too.
"""

from __future__ import annotations

import math
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation

from shared.events import LeadActivity, LeadChange, LeadStageChanged

NIL = uuid.UUID(int=0)
CYCLE = "__cycle__"  # the duration "stage" of the sales cycle: first seen to the won stage
ORDER_EVENTS = frozenset({"Order Completed"})
BASE = 1.1  # duration buckets grow by 10 %: percentiles are exact to about 5 %
MAX_BUCKET = 400

Dims = tuple[uuid.UUID, str, str]  # source id, first-touch utm source, first-touch utm campaign
NO_DIMS: Dims = (NIL, "", "")


@dataclass
class LeadInfo:
    lead_id: uuid.UUID
    first_seen_at: datetime
    dims: Dims = NO_DIMS
    utm_medium: str = ""
    orders: int = 0
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None
    new: bool = False


@dataclass
class StageState:
    lead_id: uuid.UUID
    model: str
    stage: str
    entered_at: datetime
    first_at: datetime
    reached: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Funnels:
    """The funnel models of the active rules: stage names in order, and each model's won stage."""

    stages: Mapping[str, Sequence[str]]
    won: Mapping[str, str]

    @classmethod
    def from_rules(cls, models: Iterable[tuple[str, Sequence[str]]], won_names: Sequence[str]) -> Funnels:
        stages = {name: list(names) for name, names in models if names}
        won = {name: next((s for s in names if s in won_names), names[-1]) for name, names in stages.items()}
        return cls(stages, won)


@dataclass
class Delta:
    funnel: Counter[tuple[date, str, str, Dims, str]] = field(default_factory=Counter)  # ..., "entered"/"exited"
    durations: Counter[tuple[date, str, str, Dims, int]] = field(default_factory=Counter)
    cohorts: Counter[tuple[date, str, str, int, Dims]] = field(default_factory=Counter)
    new_leads: Counter[tuple[date, Dims]] = field(default_factory=Counter)
    orders: Counter[tuple[date, Dims, str, str]] = field(default_factory=Counter)  # ..., "orders"/"first_orders"
    revenue: dict[tuple[date, Dims, str], Decimal] = field(default_factory=dict)
    leads: dict[uuid.UUID, LeadInfo] = field(default_factory=dict)
    stages: dict[tuple[uuid.UUID, str], StageState] = field(default_factory=dict)


def day_of(at: datetime) -> date:
    return at.astimezone(UTC).date()


def week_of(at: datetime) -> date:
    """The Monday (UTC) of the week `at` falls in."""
    d = day_of(at)
    return d - timedelta(days=d.weekday())


def bucket_of(seconds: float) -> int:
    """The histogram bucket of a duration: bucket b holds [BASE**b - 1, BASE**(b+1) - 1) seconds."""
    if seconds <= 0:
        return 0
    return min(MAX_BUCKET, int(math.log1p(seconds) / math.log(BASE)))


def bucket_seconds(bucket: int) -> float:
    """A bucket's representative duration (its geometric middle)."""
    return float(BASE ** (bucket + 0.5) - 1)


def percentile(histogram: Mapping[int, int], q: float) -> float | None:
    """The q-quantile (0..1) in seconds of a bucket histogram, None when it is empty."""
    total = sum(histogram.values())
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return bucket_seconds(bucket)
    return bucket_seconds(max(histogram))


def order_amount(properties: Mapping[str, object], default_currency: str) -> tuple[str, Decimal]:
    """Currency and revenue of an Order Completed event (Segment's `revenue`, else `total` or `value`)."""
    raw = next((properties[k] for k in ("revenue", "total", "value") if properties.get(k) is not None), 0)
    try:
        amount = Decimal(str(raw))
    except InvalidOperation:
        amount = Decimal(0)
    if not amount.is_finite():
        amount = Decimal(0)
    currency = properties.get("currency")
    code = currency.strip().upper()[:8] if isinstance(currency, str) and currency.strip() else default_currency
    return code, amount


def summarize(
    changes: Sequence[LeadChange],
    leads: Mapping[uuid.UUID, LeadInfo],
    stages: dict[tuple[uuid.UUID, str], StageState],
    funnels: Funnels,
    default_currency: str,
) -> Delta:
    """Apply a batch of lead changes, in order, to the leads' state; return what the summaries gain.

    `leads` holds every lead of the batch (new ones marked `new`, first seen at their earliest change);
    `stages` the leads' current stage per model, updated in place."""
    delta = Delta()
    for lead in leads.values():
        if lead.new:
            _first_seen(lead, stages, funnels, delta)
    for change in changes:
        lead = leads[change.lead_id]
        if isinstance(change, LeadStageChanged):
            _stage_changed(change, lead, stages, funnels, delta)
        elif isinstance(change, LeadActivity) and change.name in ORDER_EVENTS:
            _ordered(change, lead, default_currency, delta)
    return delta


def _first_seen(
    lead: LeadInfo, stages: dict[tuple[uuid.UUID, str], StageState], funnels: Funnels, delta: Delta
) -> None:
    at = lead.first_seen_at
    delta.new_leads[(day_of(at), lead.dims)] += 1
    delta.leads[lead.lead_id] = lead
    for model, names in funnels.stages.items():
        if (lead.lead_id, model) in stages:
            continue
        state = stages[(lead.lead_id, model)] = StageState(lead.lead_id, model, names[0], at, at, [names[0]])
        delta.stages[(lead.lead_id, model)] = state
        delta.funnel[(day_of(at), model, names[0], lead.dims, "entered")] += 1
        delta.cohorts[(week_of(at), model, names[0], 0, lead.dims)] += 1


def _stage_changed(
    change: LeadStageChanged,
    lead: LeadInfo,
    stages: dict[tuple[uuid.UUID, str], StageState],
    funnels: Funnels,
    delta: Delta,
) -> None:
    at, model, dims = change.occurred_at, change.model, lead.dims
    key = (lead.lead_id, model)
    state = stages.get(key)
    if state is None:  # a model analytics did not know when it first saw the lead
        start = change.previous_stage or change.stage
        state = stages[key] = StageState(lead.lead_id, model, start, lead.first_seen_at, lead.first_seen_at, [start])
        delta.funnel[(day_of(lead.first_seen_at), model, start, dims, "entered")] += 1
        delta.cohorts[(week_of(lead.first_seen_at), model, start, 0, dims)] += 1
    if state.stage == change.stage:
        return
    day = day_of(at)
    delta.funnel[(day, model, state.stage, dims, "exited")] += 1
    delta.funnel[(day, model, change.stage, dims, "entered")] += 1
    delta.durations[(day, model, state.stage, dims, bucket_of((at - state.entered_at).total_seconds()))] += 1
    if change.stage not in state.reached:
        state.reached = [*state.reached, change.stage]
        offset = max(0, (at - state.first_at).days // 7)
        delta.cohorts[(week_of(state.first_at), model, change.stage, min(offset, 520), dims)] += 1
        if funnels.won.get(model) == change.stage:
            cycle = bucket_of((at - state.first_at).total_seconds())
            delta.durations[(day, model, CYCLE, dims, cycle)] += 1
    state.stage = change.stage
    state.entered_at = at
    delta.stages[key] = state


def _ordered(change: LeadActivity, lead: LeadInfo, default_currency: str, delta: Delta) -> None:
    at = change.occurred_at
    currency, amount = order_amount(change.properties, default_currency)
    day = day_of(at)
    delta.orders[(day, lead.dims, currency, "orders")] += 1
    if lead.orders == 0:
        delta.orders[(day, lead.dims, currency, "first_orders")] += 1
    key = (day, lead.dims, currency)
    delta.revenue[key] = delta.revenue.get(key, Decimal(0)) + amount
    lead.orders += 1
    lead.first_order_at = at if lead.first_order_at is None else min(lead.first_order_at, at)
    lead.last_order_at = at if lead.last_order_at is None else max(lead.last_order_at, at)
    delta.leads[lead.lead_id] = lead
