"""Pure decisions of the scoring admin API: what a lead looks like now, paging cursors, sales decisions
as events, and counting a dry run's replays. No I/O and no clock: callers pass `at`."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from fastapi.exceptions import RequestValidationError
from sqlalchemy import RowMapping

from services.admin.schemas import LeadOut
from services.admin.scoring_repository import LeadHistory
from services.admin.scoring_schemas import (
    DryRunLead,
    LeadAccount,
    LeadDetail,
    LedgerEntryOut,
    LedgerTotals,
    RecentEvent,
    SalesDecision,
    StageChangeOut,
)
from services.predictive.schemas import LeadPredictionOut
from services.scoring.engine import SALES_DECISION, Effects, Scorer, score_of
from services.scoring.replay import rebuild, state_of
from services.scoring.repository import HistoryEvent, LeadRow
from services.scoring.rules import FunnelModel, RuleSet
from shared.events import TrackedEvent, derived_id
from shared.scoring_models import ScoreLedgerEntry

# The source of sales decisions made through the admin API (a fixed id: no write key stands behind it).
ADMIN_SOURCE = derived_id("funnelstream-admin")
Q = Decimal("0.0001")


def bad(field: str, message: str) -> RequestValidationError:
    """A 400 naming `field`, rendered like every validation error of the API."""
    return RequestValidationError([{"loc": ("body", *field.split(".")), "msg": message, "type": "value_error"}])


def quantized(value: float | Decimal) -> Decimal:
    return Decimal(value).quantize(Q)


# -- cursors --------------------------------------------------------------------------------------


def encode_cursor(*parts: object) -> str:
    """An opaque cursor: the sort key of the last row of a page."""
    return base64.urlsafe_b64encode(orjson.dumps(parts, default=str)).decode().rstrip("=")


def decode_cursor(token: str, *types: type[Any]) -> tuple[Any, ...]:
    """The parts of a cursor made by `encode_cursor`, converted to `types`; 400 naming `after` if it is not."""
    try:
        parts = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if not isinstance(parts, list) or len(parts) != len(types):
            raise ValueError("wrong shape")
        return tuple(_as(t, p) for t, p in zip(types, parts, strict=True))
    except (ValueError, TypeError, binascii.Error, ArithmeticError):
        raise bad("after", "not a cursor of this list (use `next` from the previous page)") from None


def _as(kind: type[Any], value: Any) -> Any:
    if kind is datetime:
        parsed = datetime.fromisoformat(str(value))
        if parsed.tzinfo is None:
            raise ValueError("naive time")
        return parsed
    if kind is float and not isinstance(value, int | float):
        raise ValueError("not a number")
    return kind(value if kind is float else str(value))


# -- leads ----------------------------------------------------------------------------------------


def lead_out(row: RowMapping, at: datetime) -> LeadOut:
    """A row of `scoring_repository.list_leads` as the API shows it."""
    return LeadOut(
        lead_id=row["lead_id"],
        user_id=row["user_id"],
        anonymous_id=row["anonymous_id"],
        email=row["email"],
        score=quantized(row["score_now"]),
        fit=quantized(row["fit"]),
        engagement=quantized(row["engagement_now"]),
        grade=row["grade_now"],
        stage=row["stage"],
        stages=row["stages"],
        traits=row["traits"],
        last_seen_at=row["last_seen_at"],
        rule_set_version=row["rule_set_version"],
        scored_at=at,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def lead_detail(
    scorer: Scorer, row: LeadRow, times: tuple[datetime, datetime], history: LeadHistory, at: datetime
) -> LeadDetail:
    """The lead as of `at` under the active rules: engagement decayed, grade recomputed."""
    if row.score_state:
        state = state_of(scorer, row)
        fit, engagement, alerts = state.fit, scorer.engagement_at(state, at), list(state.alerts)
        stages = state.stages
    else:  # never scored by the engine: the stored score is all there is
        fit, engagement, alerts, stages = row.fit, float(row.score) - row.fit, [], dict(row.stages)
    return LeadDetail(
        lead_id=row.lead_id,
        user_id=row.user_id,
        anonymous_id=row.anonymous_id,
        email=row.email,
        score=quantized(fit + engagement),
        fit=quantized(fit),
        engagement=quantized(engagement),
        grade=scorer.grade(fit, engagement),
        stage=row.stage,
        stages=stages,
        traits=row.traits,
        last_seen_at=row.last_seen_at,
        rule_set_version=row.rule_set_version,
        scored_at=at,
        created_at=times[0],
        updated_at=times[1],
        engagement_at=row.engagement_at,
        alerts=alerts,
        stage_history=[
            StageChangeOut(
                model=c.model,
                from_stage=c.from_stage,
                to=c.to_stage,
                kind=c.kind,
                reason=c.reason,
                details=c.details,
                cause_event_id=c.cause_event_id,
                at=c.occurred_at,
            )
            for c in history.stage_history
        ],
        recent_events=[
            RecentEvent(event_id=e.event_id, type=e.type, name=e.name, occurred_at=e.occurred_at, bot=e.bot)
            for e in history.events
        ],
        ledger=[ledger_entry(e) for e in history.ledger],
        accounts=[LeadAccount(account_id=a.account_id, score=a.score) for a in history.accounts],
        predictions=[LeadPredictionOut.model_validate(p) for p in history.predictions],
    )


def ledger_entry(entry: ScoreLedgerEntry) -> LedgerEntryOut:
    return LedgerEntryOut(
        rule_id=entry.rule_id, kind=entry.kind, points=entry.points, event_id=entry.event_id, at=entry.occurred_at
    )


def ledger_totals(row: LeadRow, fit_sum: float, other_sum: float) -> LedgerTotals:
    """The sum check: fit entries add up to fit, the others to engagement as of `engagement_at`."""

    def close(a: float, b: float) -> bool:
        return abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b))

    return LedgerTotals(
        fit=fit_sum,
        engagement=other_sum,
        lead_fit=row.fit,
        lead_engagement=row.engagement,
        engagement_at=row.engagement_at,
        balanced=close(fit_sum, row.fit) and close(other_sum, row.engagement),
    )


# -- sales decisions ------------------------------------------------------------------------------


def funnel_model(rules: RuleSet, name: str | None, field_name: str = "model") -> FunnelModel:
    """The named funnel model (default the primary one); 400 naming `field_name` if there is none."""
    model = rules.model(name or rules.primary_model)
    if model is None:
        known = ", ".join(m.name for m in rules.models)
        raise bad(field_name, f"no funnel model {name!r} in the active rule set (models: {known})")
    return model


def check_stage(model: FunnelModel, stage: str, field_name: str = "stage") -> str:
    names = [s.name for s in model.stages]
    if stage not in names:
        raise bad(field_name, f"no stage {stage!r} in funnel model {model.name!r} (stages: {', '.join(names)})")
    return stage


def decision_properties(rules: RuleSet, stages: Mapping[str, str], body: SalesDecision) -> dict[str, Any]:
    """The sales-decision event's properties, with the model and target stage resolved and checked."""
    model = funnel_model(rules, body.model)
    target = check_stage(model, body.stage) if body.stage is not None else None
    current = stages.get(model.name, model.stages[0].name)
    if target is None and body.decision == "accept":
        # Stages without entry criteria are the ones only sales moves a lead into (sal, sql, ...).
        later = [s.name for s in model.stages[model.index(current) + 1 :] if s.entry is None]
        if not later:
            raise bad("stage", f"no stage after {current!r} is entered only by sales; give the stage")
        target = later[0]
    if target is None and body.decision == "set":
        raise bad("stage", "a `set` decision needs the stage")
    props = body.model_dump(mode="json", exclude_none=True)
    props["model"] = model.name
    if target is not None:
        props["stage"] = target
    return props


def decision_event(user_id: str, properties: dict[str, Any], at: datetime) -> TrackedEvent:
    """The track event that carries a sales decision to the scoring consumer, keyed like the lead's events."""
    message_id = str(uuid.uuid4())
    return TrackedEvent(
        event_id=derived_id(ADMIN_SOURCE, message_id),
        source_id=ADMIN_SOURCE,
        message_id=message_id,
        type="track",
        event=SALES_DECISION,
        user_id=user_id,
        properties=properties,
        context={"library": {"name": "funnelstream-admin"}},
        timestamp=at,
        received_at=at,
    )


# -- dry run --------------------------------------------------------------------------------------


@dataclass
class Tally:
    """A dry run's running result: entries under the tried rules, and the count under the active ones."""

    model: str
    stage: str
    since: datetime
    until: datetime
    keep: int = 100
    count: int = 0
    compared: int = 0
    replayed: int = 0
    leads: list[DryRunLead] = field(default_factory=list)


def entered(scorer: Scorer, tally: Tally, row: LeadRow, events: list[HistoryEvent]) -> DryRunLead | None:
    """The lead's replay under `scorer`: its first entry into the stage or a later one inside the window."""
    model = scorer.rules.model(tally.model)
    if model is None:
        return None
    floor = model.index(tally.stage)
    fx = Effects()
    state = rebuild(scorer, row, events, tally.until, fx)
    for change in fx.stage_changes:
        if change.model == model.name and tally.since <= change.at <= tally.until:
            if model.index(change.to_stage) >= floor:
                score, _, _ = score_of(scorer, state, tally.until)
                return DryRunLead(
                    lead_id=row.lead_id,
                    user_id=state.user_id or row.user_id,
                    email=state.email,
                    entered_at=change.at,
                    score=score,
                )
    return None


def replay_chunk(
    tried: Scorer,
    active: Scorer | None,
    tally: Tally,
    rows: list[LeadRow],
    history: Mapping[uuid.UUID, list[HistoryEvent]],
) -> None:
    """Replay one chunk of leads under the tried rules and, if given, the active ones (CPU only)."""
    for row in rows:
        events = history.get(row.lead_id, [])
        found = entered(tried, tally, row, events)
        if found is not None:
            tally.count += 1
            tally.leads.append(found)
        if active is tried:
            tally.compared += found is not None
        elif active is not None and entered(active, tally, row, events) is not None:
            tally.compared += 1
        tally.replayed += 1
    tally.leads.sort(key=lambda lead: (lead.entered_at, str(lead.lead_id)))
    del tally.leads[tally.keep :]
