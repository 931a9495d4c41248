"""Request and response models of the scoring admin API: lead detail, ledger, sales decisions,
accounts, rule sets, rescore jobs and dry runs."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.admin.schemas import LeadOut
from services.predictive.schemas import LeadPredictionOut
from services.scoring.rules import RuleSet

Note = Annotated[str, StringConstraints(max_length=500)]


# -- leads ----------------------------------------------------------------------------------------


class StageChangeOut(BaseModel):
    model: str
    from_stage: str | None = Field(serialization_alias="from", description="null for the first stage")
    to: str
    kind: str = Field(description="entry, exit, sales or merge")
    reason: str | None
    details: dict[str, Any] | None = Field(description="For sales decisions: decision, actor, bant")
    cause_event_id: uuid.UUID | None
    at: datetime


class RecentEvent(BaseModel):
    event_id: uuid.UUID
    type: str
    name: str | None
    occurred_at: datetime
    bot: str | None = Field(description="Why ingest flagged it as a bot; bot events score nothing")


class LedgerEntryOut(BaseModel):
    rule_id: str
    kind: str = Field(description="behaviour, fit, inactivity or decay")
    points: float
    event_id: uuid.UUID | None
    at: datetime


class LeadAccount(BaseModel):
    account_id: str
    score: Decimal


class LeadDetail(LeadOut):
    """A lead with its history: stage changes, recent events, the latest ledger entries, accounts."""

    engagement_at: datetime | None = Field(description="Time the stored engagement is as of")
    alerts: list[str] = Field(description="Attention rules that currently hold")
    stage_history: list[StageChangeOut] = Field(description="Oldest first, every model")
    recent_events: list[RecentEvent] = Field(description="The latest 20 events, newest first")
    ledger: list[LedgerEntryOut] = Field(description="The latest 50 ledger entries, newest first")
    accounts: list[LeadAccount]
    predictions: list[LeadPredictionOut] = Field(
        default_factory=list, description="Predicted probability per funnel model with an active model, and why"
    )


class LedgerTotals(BaseModel):
    """The ledger's sums against the lead's stored numbers (engagement as of `engagement_at`)."""

    fit: float = Field(description="Sum of `fit` entries")
    engagement: float = Field(description="Sum of every other entry (behaviour, inactivity, decay)")
    lead_fit: float
    lead_engagement: float
    engagement_at: datetime | None
    balanced: bool = Field(description="Both sums match the lead's stored fit and engagement")


class LedgerPage(BaseModel):
    entries: list[LedgerEntryOut] = Field(description="Oldest first")
    next: str | None = Field(description="Cursor for the next page (`after=`); null on the last")
    totals: LedgerTotals


class Bant(BaseModel):
    """What sales checked: each true/false or a short note."""

    model_config = ConfigDict(extra="forbid")

    budget: bool | Note | None = None
    authority: bool | Note | None = None
    need: bool | Note | None = None
    timeline: bool | Note | None = None


class SalesDecision(BaseModel):
    """Sales accepts, rejects (recycles) or sets a lead's stage in one funnel model."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(default=None, max_length=80, description="Funnel model; default the primary one")
    stage: str | None = Field(
        default=None,
        max_length=80,
        description="Target stage. accept: default the next stage entered only by sales (e.g. sal); "
        "reject: default one stage back; set: required",
    )
    decision: Literal["accept", "reject", "set"]
    reason: str | None = Field(default=None, max_length=1000)
    bant: Bant | None = None
    actor: str | None = Field(default=None, max_length=200, description="Who decided, e.g. an email")


class DecisionAccepted(BaseModel):
    accepted: Literal[True] = True
    event_id: uuid.UUID = Field(description="Applied soon; its row appears in the lead's recent events")


# -- accounts -------------------------------------------------------------------------------------


class AccountOut(BaseModel):
    account_id: str
    traits: dict[str, Any]
    score: Decimal = Field(description="Roll-up (sum, max or avg per rule set) of member scores as last scored")
    stages: dict[str, str] = Field(description="Furthest stage any member reached, per model")
    member_count: int
    updated_at: datetime


class AccountList(BaseModel):
    accounts: list[AccountOut]
    next: str | None = Field(description="Cursor for the next page (`after=`); null on the last")


class AccountDetail(AccountOut):
    score_now: Decimal = Field(description="The roll-up of the members' scores decayed to `scored_at`")
    scored_at: datetime
    members: list[LeadOut] = Field(description="Highest score first (at most 500)")


# -- rule sets ------------------------------------------------------------------------------------


class RuleSetSummary(BaseModel):
    version: int
    status: Literal["draft", "active", "retired"]
    note: str
    created_at: datetime
    activated_at: datetime | None


class RuleSetOut(RuleSetSummary):
    rules: RuleSet


class RuleSetCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: RuleSet
    note: str = Field(default="", max_length=1000, description="What changed and why")


class Activate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    emit_changes: bool = Field(
        default=False,
        description="Announce the rescore's stage and score changes (lead-changes topic, webhooks)",
    )


class RescoreJobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    rule_set_version: int
    status: str = Field(description="running or done")
    emit_changes: bool
    total: int = Field(description="Live leads when the job started")
    done: int
    report: dict[str, Any]
    started_at: datetime
    finished_at: datetime | None


# -- dry run --------------------------------------------------------------------------------------


class DryRunRequest(BaseModel):
    """Replay recent history under rules (inline, a stored version, or the active ones); writes nothing."""

    model_config = ConfigDict(extra="forbid")

    rules: RuleSet | None = Field(default=None, description="Rules to try; default the active rule set")
    version: int | None = Field(
        default=None, ge=1, le=2**31 - 1, description="A stored version to try instead of `rules`"
    )
    days: int = Field(default=30, ge=1, le=365, description="The window: the last N days")
    model: str | None = Field(default=None, max_length=80, description="Funnel model; default the primary one")
    stage: str = Field(min_length=1, max_length=80, examples=["mql"])


class DryRunLead(BaseModel):
    lead_id: uuid.UUID
    user_id: str | None
    email: str | None
    entered_at: datetime = Field(description="First entry into the stage (or a later one) inside the window")
    score: Decimal = Field(description="Score at the end of the window under the tried rules")


class Window(BaseModel):
    days: int
    since: datetime
    until: datetime


class DryRunOut(BaseModel):
    count: int = Field(description="Leads that entered the stage or a later one inside the window")
    leads: list[DryRunLead] = Field(description="The first 100 by entry time")
    compared_with_active: int | None = Field(
        description="The same count under the active rules; null if they have no such model or stage"
    )
    leads_replayed: int = Field(description="Live leads with events in the window, replayed from their history")
    capped: bool = Field(description="True if more leads had events in the window than `cap`; the rest were skipped")
    cap: int
    window: Window
    model: str
    stage: str
    rule_set_version: int | None = Field(description="The version tried; null for inline rules")
