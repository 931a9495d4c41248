"""Who is in an audience: a pure decision over plain facts about a lead, with `now` passed in."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from services.nurture.audiences.definition import (
    AudienceCondition,
    AudienceDefinition,
    CartAbandoned,
    EventInLast,
    IsCustomer,
    IsUnsubscribed,
    StageIn,
)
from services.scoring.conditions import holds
from services.scoring.rules import GradeCriterion, PredictionCriterion, ScoreCriterion, TraitCriterion

OPEN_CART = ("open", "checkout")


@dataclass(frozen=True)
class EventFact:
    name: str
    occurred_at: datetime
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CartFact:
    status: str
    item_count: int
    total: float | None
    started_at: datetime | None
    last_activity_at: datetime


@dataclass(frozen=True)
class LeadFacts:
    """What the rules look at, read in one pass per batch (services/nurture/audiences/repository.py)."""

    lead_id: uuid.UUID
    email: str | None = None
    stage: str = "visitor"
    stages: Mapping[str, str] = field(default_factory=dict)
    score: float = 0.0
    fit: float = 0.0
    engagement: float = 0.0
    grade: str = ""
    traits: Mapping[str, Any] = field(default_factory=dict)
    events: tuple[EventFact, ...] = ()
    carts: tuple[CartFact, ...] = ()
    last_order_at: datetime | None = None
    unsubscribed: bool = False
    predictions: Mapping[str, float] = field(default_factory=dict)  # funnel model -> predicted probability
    primary_model: str | None = None  # of the active rules: a prediction condition without `model` reads it

    @property
    def customer(self) -> bool:
        ordered = self.last_order_at is not None or any(c.status == "ordered" for c in self.carts)
        return ordered or self.stage == "customer" or "customer" in self.stages.values()


def _event_holds(condition: EventInLast, facts: LeadFacts, now: datetime) -> bool:
    since = now - timedelta(days=condition.days)
    found = 0
    for event in facts.events:
        if event.name.casefold() != condition.name.casefold() or not since <= event.occurred_at <= now:
            continue
        data = {"properties": event.properties, "event": event.name, "name": event.name}
        if all(holds(c, data) for c in condition.conditions):
            found += 1
            if found >= condition.count:
                return True
    return False


def _cart_abandoned(condition: CartAbandoned, facts: LeadFacts, now: datetime) -> bool:
    idle_since = now - timedelta(minutes=condition.minutes)
    for cart in facts.carts:
        if cart.status not in OPEN_CART or cart.item_count <= 0 or cart.last_activity_at > idle_since:
            continue
        if condition.min_total is not None and (cart.total is None or cart.total < condition.min_total):
            continue
        started = cart.started_at or cart.last_activity_at
        if facts.last_order_at is not None and facts.last_order_at >= started:
            continue  # the lead ordered after this cart started (maybe on another cart): not abandoned
        return True
    return False


def condition_holds(condition: AudienceCondition, facts: LeadFacts, now: datetime) -> bool:
    """Whether one condition is true of the lead at `now`."""
    if isinstance(condition, StageIn):
        stage = facts.stage if condition.model is None else facts.stages.get(condition.model)
        return stage in condition.stages
    if isinstance(condition, EventInLast):
        return _event_holds(condition, facts, now)
    if isinstance(condition, CartAbandoned):
        return _cart_abandoned(condition, facts, now)
    if isinstance(condition, ScoreCriterion):
        value = {"score": facts.score, "fit": facts.fit, "engagement": facts.engagement}[condition.kind]
        return (condition.gte is None or value >= condition.gte) and (condition.lt is None or value < condition.lt)
    if isinstance(condition, GradeCriterion):
        return facts.grade in condition.in_
    if isinstance(condition, TraitCriterion):
        return holds(condition.condition, {"traits": dict(facts.traits), "email": facts.email})
    if isinstance(condition, PredictionCriterion):
        model = condition.model or facts.primary_model
        p = facts.predictions.get(model) if model else None
        return (
            p is not None
            and (condition.gte is None or p >= condition.gte)
            and (condition.lt is None or p < condition.lt)
        )
    if isinstance(condition, IsCustomer):
        return facts.customer
    if isinstance(condition, IsUnsubscribed):
        return facts.unsubscribed
    raise TypeError(f"unknown condition {condition!r}")


def is_member(definition: AudienceDefinition, facts: LeadFacts | None, now: datetime) -> bool:
    """Whether the lead belongs to the audience at `now`; an unknown (erased, merged) lead never does."""
    if facts is None:
        return False
    if definition.exclude_customers and facts.customer:
        return False
    if definition.exclude_unsubscribed and facts.unsubscribed:
        return False
    if any(condition_holds(c, facts, now) for c in definition.exclude):
        return False
    return all(condition_holds(c, facts, now) for c in definition.include)


@dataclass(frozen=True)
class LiveAudience:
    id: uuid.UUID
    name: str
    definition: AudienceDefinition


@dataclass
class Changes:
    """(audience, lead) pairs that entered and that left."""

    entered: list[tuple[LiveAudience, uuid.UUID]] = field(default_factory=list)
    left: list[tuple[LiveAudience, uuid.UUID]] = field(default_factory=list)


def membership_changes(
    audiences: Iterable[LiveAudience],
    leads: Iterable[uuid.UUID],
    facts: Mapping[uuid.UUID, LeadFacts],
    current: set[tuple[str, uuid.UUID]],
    now: datetime,
) -> Changes:
    """Evaluate each lead against each audience once; `current` holds the (audience name, lead) members now."""
    changes = Changes()
    wanted = sorted(set(leads))
    for audience in audiences:
        for lead in wanted:
            member = is_member(audience.definition, facts.get(lead), now)
            was = (audience.name, lead) in current
            if member and not was:
                changes.entered.append((audience, lead))
            elif was and not member:
                changes.left.append((audience, lead))
    return changes
