"""An audience definition: who belongs, as validated JSON. Property and trait tests are scoring's
`Condition`; score, fit, engagement, grade and trait conditions are scoring's stage criteria.

A lead is a member when every `include` condition holds and no `exclude` condition does; customers and
unsubscribed people are excluded unless the definition says otherwise.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

# Score, fit, engagement, grade and trait tests are scoring's stage criteria, in the same language.
from services.scoring.rules import Condition, GradeCriterion, PredictionCriterion, ScoreCriterion, TraitCriterion

# Track events that mean a purchase (Segment e-commerce spec; Shopify orders map to them).
ORDER_EVENTS = ("Order Completed", "Order Paid")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StageIn(_Strict):
    """The lead's stage in a funnel model (`model` null: the primary model's stage) is one of `stages`."""

    kind: Literal["stage"]
    model: str | None = None
    stages: list[str] = Field(min_length=1)


class EventInLast(_Strict):
    """The lead sent track event `name` (matching every property condition) at least `count` times in the
    last `days` days, by event time. Bot events never count."""

    kind: Literal["event"]
    name: str = Field(min_length=1, max_length=200)
    days: float = Field(gt=0, le=3650)
    conditions: list[Condition] = Field(default_factory=list)
    count: int = Field(default=1, ge=1, le=10_000)


class CartAbandoned(_Strict):
    """An open or checkout cart with items has been idle at least `minutes`, and no order came after it."""

    kind: Literal["cart_abandoned"]
    minutes: float = Field(default=60, gt=0, le=60 * 24 * 365)
    min_total: float | None = Field(default=None, ge=0)


class IsCustomer(_Strict):
    """The lead ordered (an order event or an ordered cart) or is at a `customer` stage."""

    kind: Literal["customer"]


class IsUnsubscribed(_Strict):
    """The lead unsubscribed from everything, bounced, complained, or their address is suppressed."""

    kind: Literal["unsubscribed"]


AudienceCondition = Annotated[
    StageIn
    | EventInLast
    | CartAbandoned
    | ScoreCriterion
    | GradeCriterion
    | TraitCriterion
    | PredictionCriterion
    | IsCustomer
    | IsUnsubscribed,
    Field(discriminator="kind"),
]


class AudienceDefinition(_Strict):
    include: list[AudienceCondition] = Field(min_length=1, max_length=50, description="All must hold")
    exclude: list[AudienceCondition] = Field(default_factory=list, max_length=50, description="None may hold")
    exclude_customers: bool = True
    exclude_unsubscribed: bool = True

    def conditions(self) -> list[AudienceCondition]:
        return [*self.include, *self.exclude]

    def event_names(self) -> set[str]:
        return {c.name for c in self.conditions() if isinstance(c, EventInLast)}

    def event_days(self) -> float:
        return max((c.days for c in self.conditions() if isinstance(c, EventInLast)), default=0.0)

    def uses_carts(self) -> bool:
        return any(isinstance(c, CartAbandoned) for c in self.conditions())

    def time_driven(self) -> bool:
        """Whether membership can change with nothing happening (a window ages, a cart goes idle)."""
        return bool(self.event_names()) or self.uses_carts()
