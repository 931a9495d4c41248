"""What a marketer defines: a sequence's trigger, steps, exit rules and re-entry policy (one version).

Steps are addressed by their `id`; a step goes to `next` (default: the following step) and the
sequence completes after the last one. Durations are ISO 8601 (`PT4H`, `P3D`) or seconds.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.scoring.rules import Condition

Name = Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_.:-]+$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventTrigger(_Strict):
    """A track event (by name, with property conditions) enrolls its lead."""

    kind: Literal["event"]
    event: str = Field(min_length=1, max_length=200)
    conditions: list[Condition] = Field(default_factory=list)


class StageTrigger(_Strict):
    kind: Literal["stage_entered"]
    model: str = "b2b"
    stage: str


class ScoreTrigger(_Strict):
    """The score rises to or above `gte` (crossing, not merely being above)."""

    kind: Literal["score_crossed"]
    gte: float


class GradeTrigger(_Strict):
    """The grade becomes one of `in` (from a grade outside it)."""

    kind: Literal["grade_reached"]
    in_: list[str] = Field(alias="in", min_length=1)
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class AudienceTrigger(_Strict):
    kind: Literal["audience_joined"]
    audience: str


class PredictionTrigger(_Strict):
    """The lead's predicted probability for a funnel model rises to or above `gte` (see Predictive scoring)."""

    kind: Literal["prediction_crossed"]
    model: str = "b2b"
    gte: float = Field(ge=0, le=1)


Trigger = Annotated[
    EventTrigger | StageTrigger | ScoreTrigger | GradeTrigger | AudienceTrigger | PredictionTrigger,
    Field(discriminator="kind"),
]


class Wait(_Strict):
    id: Name
    type: Literal["wait"]
    duration: timedelta = Field(description="ISO 8601 duration or seconds")
    next: str | None = None


class WaitForEvent(_Strict):
    """Wait until the lead sends `event` (then go to `on_event`) or `timeout` passes (`on_timeout`)."""

    id: Name
    type: Literal["wait_for_event"]
    event: str
    conditions: list[Condition] = Field(default_factory=list)
    timeout: timedelta
    on_event: str | None = Field(default=None, description="Step id; default the next step")
    on_timeout: str | None = Field(default=None, description="Step id, or 'exit'; default the next step")


class BranchTest(_Strict):
    """One test on the lead: a trait condition, a score range, a stage, a past event, or a prediction range."""

    trait: Condition | None = None
    score_gte: float | None = None
    score_lt: float | None = None
    stage: str | None = None
    model: str = "b2b"
    has_event: str | None = Field(default=None, description="The lead sent this track event before")
    prediction_gte: float | None = Field(default=None, ge=0, le=1, description="`model`'s predicted probability")
    prediction_lt: float | None = Field(default=None, ge=0, le=1, description="A lead without a prediction fails")


class Branch(_Strict):
    id: Name
    type: Literal["branch"]
    all: list[BranchTest] = Field(min_length=1, description="All must hold to take `then`")
    then: str
    otherwise: str | None = Field(default=None, description="Step id; default the next step")


class EmailVariant(_Strict):
    """One arm of an A/B send: its own template (subject, content or incentive) and share of the traffic."""

    key: Name
    template_id: str
    weight: float = Field(default=1.0, ge=0, le=1_000_000)


def _arms(arms: list[EmailVariant] | list[SplitPath]) -> None:
    keys = [a.key for a in arms]
    if len(set(keys)) != len(keys):
        raise ValueError("variant keys repeat")
    if not any(a.weight > 0 for a in arms):
        raise ValueError("at least one variant needs a positive weight")


class SendEmail(_Strict):
    id: Name
    type: Literal["send_email"]
    template_id: str = Field(description="The template; with `variants` each lead gets its variant's instead")
    next: str | None = None
    variants: list[EmailVariant] = Field(
        default_factory=list, description="A/B arms: each lead gets one, by a hash of the experiment and lead"
    )

    @model_validator(mode="after")
    def _variants(self) -> SendEmail:
        if self.variants:
            if len(self.variants) < 2:
                raise ValueError("an A/B send step needs at least two variants")
            _arms(self.variants)
        return self


class UpdateAudience(_Strict):
    id: Name
    type: Literal["update_audience"]
    audience: str = Field(min_length=1, max_length=200)
    action: Literal["add", "remove"] = "add"
    next: str | None = None


class CallWebhook(_Strict):
    """Queue a signed POST to a registered webhook endpoint (see Outgoing webhooks)."""

    id: Name
    type: Literal["webhook"]
    endpoint_id: str
    next: str | None = None


class SplitPath(_Strict):
    key: Name
    weight: float = Field(default=1.0, ge=0, le=1_000_000)
    next: str = Field(description="Step id, or 'exit'")


class Split(_Strict):
    """Weighted variant paths: each lead takes one path, always the same (see services/nurture/experiments)."""

    id: Name
    type: Literal["split"]
    paths: list[SplitPath] = Field(min_length=2)

    @model_validator(mode="after")
    def _paths(self) -> Split:
        _arms(self.paths)
        return self


Step = Annotated[
    Wait | WaitForEvent | Branch | SendEmail | UpdateAudience | CallWebhook | Split, Field(discriminator="type")
]


class ExitRule(_Strict):
    """Leave the sequence at once: on an event (e.g. a purchase), on reaching a stage, or on unsubscribing."""

    kind: Literal["event", "stage_reached", "unsubscribed"]
    event: str | None = None
    model: str = "b2b"
    stage: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> ExitRule:
        if self.kind == "event" and not self.event:
            raise ValueError("an event exit rule needs `event`")
        if self.kind == "stage_reached" and not self.stage:
            raise ValueError("a stage_reached exit rule needs `stage`")
        return self


class Definition(_Strict):
    trigger: Trigger
    steps: list[Step] = Field(min_length=1)
    exit: list[ExitRule] = Field(default_factory=lambda: [ExitRule(kind="unsubscribed")])
    reentry: Literal["never", "after_exit", "always"] = Field(
        default="after_exit", description="never: once per lead; after_exit: again once it left; always: in parallel"
    )

    @model_validator(mode="after")
    def _targets_exist(self) -> Definition:
        ids = [s.id for s in self.steps]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"steps: ids repeat: {', '.join(repeated)}")
        known = set(ids)
        for step in self.steps:
            targets = [getattr(step, name, None) for name in ("next", "on_event", "then", "otherwise")]
            targets.append(getattr(step, "on_timeout", None))
            targets.extend(path.next for path in getattr(step, "paths", []))
            for target in targets:
                if target is not None and target not in known and target != "exit":
                    raise ValueError(f"steps: step {step.id!r} goes to unknown step {target!r}")
        return self

    def index(self, step_id: str) -> int:
        for i, step in enumerate(self.steps):
            if step.id == step_id:
                return i
        raise KeyError(step_id)

    def after(self, index: int, target: str | None) -> int | None:
        """The step index to go to next; None when the sequence is done (or `exit`)."""
        if target == "exit":
            return None
        if target is not None:
            return self.index(target)
        return index + 1 if index + 1 < len(self.steps) else None
