"""A scoring rule set: what marketers configure, validated once, versioned in the database.

One rule set holds behaviour rules (event → points, with caps), fit rules (traits → points),
inactivity rules, the engagement half-life, the grade thresholds, the funnel models with their stage
criteria, and attention alerts. Publishing a new version rescores every lead from its history.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Op = Literal[
    "eq",
    "ne",
    "in",
    "not_in",
    "contains",
    "not_contains",
    "starts_with",
    "ends_with",
    "gt",
    "gte",
    "lt",
    "lte",
    "exists",
    "not_exists",
    "matches",
    "domain_in",
    "free_email",
    "business_email",
]
VALUELESS_OPS = {"exists", "not_exists", "free_email", "business_email"}
LIST_OPS = {"in", "not_in", "domain_in"}
NUMBER_OPS = {"gt", "gte", "lt", "lte"}
EventKind = Literal["track", "page", "screen", "identify", "group", "alias"]

# Mailbox providers anyone can sign up with: an address there says nothing about an employer.
FREE_MAIL_DOMAINS = frozenset(
    """gmail.com googlemail.com yahoo.com yahoo.co.uk yahoo.fr yahoo.de ymail.com hotmail.com hotmail.co.uk
    hotmail.fr hotmail.de outlook.com live.com msn.com aol.com icloud.com me.com mac.com gmx.com gmx.de gmx.net
    web.de mail.com mail.ru yandex.ru yandex.com proton.me protonmail.com pm.me zoho.com qq.com 163.com 126.com
    sina.com naver.com hanmail.net t-online.de orange.fr free.fr laposte.net libero.it virgilio.it
    seznam.cz wp.pl o2.pl interia.pl tutanota.com fastmail.com hey.com""".split()
)

Name = Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_.:-]+$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Condition(_Strict):
    """A test on one field: `properties.path`, `traits.title`, `email`, `event`, `name`.

    String comparisons ignore case. `domain_in`, `free_email` and `business_email` look at an email
    address's domain.
    """

    field: str = Field(min_length=1, max_length=200, examples=["properties.path", "traits.seniority"])
    op: Op = "eq"
    value: Any = None

    @model_validator(mode="after")
    def _value_fits_op(self) -> Condition:
        if self.op in VALUELESS_OPS:
            return self
        if self.value is None:
            raise ValueError(f"op {self.op!r} needs a value")
        if self.op in LIST_OPS and not isinstance(self.value, list):
            raise ValueError(f"op {self.op!r} needs a list value")
        if self.op in NUMBER_OPS and (isinstance(self.value, bool) or not isinstance(self.value, int | float)):
            raise ValueError(f"op {self.op!r} needs a number")
        if self.op == "matches":
            try:
                re.compile(str(self.value))
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return self


class BehaviourRule(_Strict):
    """An event (by type and name, plus property conditions) is worth points; negative points allowed."""

    id: Name
    description: str = ""
    type: EventKind | None = Field(default="track", description="Event type; null matches any type")
    event: str | None = Field(default=None, description="Track event name, or page/screen name; null = any")
    conditions: list[Condition] = Field(default_factory=list, description="All must hold")
    points: Decimal = Field(ge=-1000, le=1000)
    cap_per_day: int | None = Field(default=None, ge=1, description="Counts at most this often per UTC day")
    cap_lifetime: int | None = Field(default=None, ge=1, description="Counts at most this often per lead")


class FitRule(_Strict):
    """Traits that say who the lead is are worth points while they hold (not decayed)."""

    id: Name
    description: str = ""
    conditions: list[Condition] = Field(min_length=1, description="All must hold")
    points: Decimal = Field(ge=-1000, le=1000)


class InactivityRule(_Strict):
    """Points (usually negative) once per quiet spell, when a lead has done nothing for `days`."""

    id: Name
    days: float = Field(gt=0, le=3650)
    points: Decimal = Field(ge=-1000, le=1000)


class ScoreCriterion(_Strict):
    kind: Literal["score", "fit", "engagement"]
    gte: float | None = None
    lt: float | None = None

    @model_validator(mode="after")
    def _bound(self) -> ScoreCriterion:
        if self.gte is None and self.lt is None:
            raise ValueError("give gte, lt or both")
        return self


class GradeCriterion(_Strict):
    kind: Literal["grade"]
    in_: list[str] = Field(alias="in", min_length=1)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class EventCriterion(_Strict):
    """The lead has sent one of these track events at least `count` times (bot events never count)."""

    kind: Literal["event"]
    names: list[str] = Field(min_length=1)
    count: int = Field(default=1, ge=1)


class TraitCriterion(_Strict):
    kind: Literal["trait"]
    condition: Condition


class PredictionCriterion(_Strict):
    """The lead's predicted probability (0–1) from a funnel model's active predictive model; a lead
    without a prediction fails it (see README, *Predictive scoring*)."""

    kind: Literal["prediction"]
    model: Name | None = Field(default=None, description="Funnel model whose prediction; null: the primary model")
    gte: float | None = Field(default=None, ge=0, le=1)
    lt: float | None = Field(default=None, ge=0, le=1)

    @model_validator(mode="after")
    def _bound(self) -> PredictionCriterion:
        if self.gte is None and self.lt is None:
            raise ValueError("give gte, lt or both")
        return self


class KnownCriterion(_Strict):
    """The lead gave contact details: a user id or an email."""

    kind: Literal["known"]


Criterion = Annotated[
    ScoreCriterion | GradeCriterion | EventCriterion | TraitCriterion | KnownCriterion | PredictionCriterion,
    Field(discriminator="kind"),
]


class Criteria(_Strict):
    """True when every `all` criterion holds and, if `any` is given, at least one of those."""

    all: list[Criterion] = Field(default_factory=list)
    any: list[Criterion] = Field(default_factory=list)

    @model_validator(mode="after")
    def _not_empty(self) -> Criteria:
        if not self.all and not self.any:
            raise ValueError("criteria need at least one entry in all or any")
        return self


class Stage(_Strict):
    """A funnel stage. Without entry criteria (other than the first) it is entered only by a sales
    decision (API or CRM webhook). Exit criteria send the lead back to the furthest earlier stage
    whose entry still holds."""

    name: Name
    entry: Criteria | None = None
    exit: Criteria | None = None
    notify_sales: bool = Field(default=False, description="Entering it sends the lead.mql webhook")


class FunnelModel(_Strict):
    name: Name
    stages: list[Stage] = Field(min_length=1)

    @field_validator("stages")
    @classmethod
    def _unique(cls, stages: list[Stage]) -> list[Stage]:
        names = [s.name for s in stages]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"stage names repeat: {', '.join(duplicates)}")
        return stages

    def index(self, stage: str) -> int:
        for i, s in enumerate(self.stages):
            if s.name == stage:
                return i
        return 0


class AttentionRule(_Strict):
    """Sends the lead.attention webhook once when its criteria become true."""

    id: Name
    description: str = ""
    when: Criteria


class Grades(_Strict):
    """Fit letter A–D and engagement digit 1–4: a value at or above a threshold gets that grade."""

    fit: tuple[float, float, float] = Field(default=(40, 20, 5), description="Minimum fit for A, B, C")
    engagement: tuple[float, float, float] = Field(default=(60, 30, 10), description="Minimum engagement for 1, 2, 3")

    @field_validator("fit", "engagement")
    @classmethod
    def _descending(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if not value[0] > value[1] > value[2]:
            raise ValueError("thresholds must be strictly descending")
        return value


class RuleSet(_Strict):
    """Everything that decides scores, grades and stages."""

    behaviour: list[BehaviourRule] = Field(default_factory=list)
    fit: list[FitRule] = Field(default_factory=list)
    inactivity: list[InactivityRule] = Field(default_factory=list)
    half_life_days: float | None = Field(default=30, gt=0, le=3650, description="null: engagement never decays")
    grades: Grades = Field(default_factory=Grades)
    models: list[FunnelModel] = Field(min_length=1)
    primary_model: Name = Field(default="b2b", description="The model whose stage is the lead's `stage`")
    attention: list[AttentionRule] = Field(default_factory=list)
    account_rollup: Literal["sum", "max", "avg"] = "sum"
    recycle_days: float = Field(
        default=30, ge=0, le=3650, description="Days after a sales rejection without automatic re-entry"
    )

    @model_validator(mode="after")
    def _consistent(self) -> RuleSet:
        for kind, ids in (
            ("behaviour", [r.id for r in self.behaviour]),
            ("fit", [r.id for r in self.fit]),
            ("inactivity", [r.id for r in self.inactivity]),
            ("attention", [r.id for r in self.attention]),
        ):
            repeated = sorted({i for i in ids if ids.count(i) > 1})
            if repeated:
                raise ValueError(f"{kind}: rule ids repeat: {', '.join(repeated)}")
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError("models: funnel model names repeat")
        if self.primary_model not in names:
            raise ValueError(f"primary_model: {self.primary_model!r} is not one of the models")
        return self

    def model(self, name: str) -> FunnelModel | None:
        return next((m for m in self.models if m.name == name), None)


def _c(field: str, op: str, value: Any = None) -> dict[str, Any]:
    return {"field": field, "op": op, "value": value}


DEFAULT_RULES: dict[str, Any] = {
    "behaviour": [
        {"id": "pricing-page", "type": "page", "conditions": [_c("properties.path", "contains", "/pricing")],
         "points": 10, "cap_per_day": 3},
        {"id": "demo-request", "event": "Demo Requested", "points": 30, "cap_lifetime": 3},
        {"id": "contact-request", "event": "Contact Requested", "points": 20, "cap_per_day": 1},
        {"id": "download", "event": "File Downloaded", "points": 5, "cap_per_day": 5},
        {"id": "form-submitted", "event": "Form Submitted", "points": 10, "cap_per_day": 2},
        {"id": "email-open", "event": "Email Opened", "points": 1, "cap_per_day": 5},
        {"id": "email-click", "event": "Email Link Clicked", "points": 3, "cap_per_day": 5},
        {"id": "page-view", "type": "page", "points": 1, "cap_per_day": 10},
        {"id": "product-viewed", "event": "Product Viewed", "points": 2, "cap_per_day": 10},
        {"id": "product-added", "event": "Product Added", "points": 5, "cap_per_day": 5},
        {"id": "checkout-started", "event": "Checkout Started", "points": 10, "cap_per_day": 2},
        {"id": "careers-page", "type": "page", "conditions": [_c("properties.path", "contains", "/careers")],
         "points": -10, "cap_lifetime": 1},
        {"id": "unsubscribed", "event": "Unsubscribed", "points": -20, "cap_lifetime": 1},
    ],
    "fit": [
        {"id": "senior-title", "conditions": [_c("traits.title", "matches", r"(?i)\b(vp|vice president|head|chief|c[etmfo]o|director|founder|owner)\b")], "points": 20},  # noqa: E501
        {"id": "manager-title", "conditions": [_c("traits.title", "matches", r"(?i)\bmanager\b")], "points": 10},
        {"id": "company-size", "conditions": [_c("traits.employees", "gte", 50)], "points": 10},
        {"id": "business-email", "conditions": [_c("email", "business_email")], "points": 10},
        {"id": "free-email", "conditions": [_c("email", "free_email")], "points": -5},
        {"id": "student", "conditions": [_c("traits.title", "matches", r"(?i)\b(student|intern)\b")], "points": -15},
    ],
    "inactivity": [{"id": "quiet-30-days", "days": 30, "points": -10}],
    "half_life_days": 30,
    "models": [
        {
            "name": "b2b",
            "stages": [
                {"name": "visitor"},
                {"name": "lead", "entry": {"all": [{"kind": "known"}]}},
                {"name": "mql", "entry": {"all": [{"kind": "known"}, {"kind": "score", "gte": 50}]},
                 "exit": {"all": [{"kind": "score", "lt": 40}]}, "notify_sales": True},
                {"name": "sal"},
                {"name": "sql"},
                {"name": "opportunity"},
                {"name": "customer", "entry": {"any": [{"kind": "event", "names": ["Order Completed", "Deal Won"]}]}},
            ],
        },
        {
            "name": "ecommerce",
            "stages": [
                {"name": "awareness"},
                {"name": "interest", "entry": {"any": [
                    {"kind": "event", "names": ["Product Viewed", "Product List Viewed", "Products Searched"]},
                    {"kind": "known"}]}},
                {"name": "decision", "entry": {"any": [
                    {"kind": "event", "names": ["Product Added", "Cart Viewed", "Checkout Started"]}]}},
                {"name": "purchase", "entry": {"any": [{"kind": "event", "names": ["Order Completed"]}]}},
                {"name": "retention", "entry": {"any": [{"kind": "event", "names": ["Order Completed"], "count": 2}]}},
                {"name": "advocacy", "entry": {"any": [
                    {"kind": "event", "names": [
                        "funnelstream.referral", "Referral Sent", "Product Reviewed", "Review Submitted"]}]}},
            ],
        },
    ],
    "primary_model": "b2b",
    "attention": [
        {"id": "hot-lead", "description": "Fit A and engagement 1", "when": {"all": [{"kind": "grade", "in": ["A1"]}]}},
        {"id": "demo-requested", "when": {"all": [{"kind": "event", "names": ["Demo Requested"]}]}},
    ],
}  # fmt: skip


def default_rule_set() -> RuleSet:
    return RuleSet.model_validate(DEFAULT_RULES)
