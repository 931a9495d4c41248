"""Between stored rows and the engine: states from rows, activities from events, rebuilds from history."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from services.scoring.engine import Activity, Effects, LeadState, Scorer, score_of
from services.scoring.repository import HistoryEvent, LeadRow, LeadWrite
from shared.events import LeadScoreChanged, TrackedEvent

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def state_of(scorer: Scorer, row: LeadRow) -> LeadState:
    """The engine state stored in a lead row (a lead never scored gets the initial state)."""
    if not row.score_state:
        state = scorer.new_state(user_id=row.user_id)
        state.traits, state.trait_times = dict(row.traits), dict(row.trait_times)
        return state
    stages = {m.name: row.stages.get(m.name, m.stages[0].name) for m in scorer.rules.models}
    return LeadState.from_parts(
        row.score_state,
        stages=stages,
        traits=row.traits,
        trait_times=row.trait_times,
        email=row.email,
        user_id=row.user_id,
        fit=row.fit,
        engagement=row.engagement,
        grade=row.grade,
    )


def activity_of(event: TrackedEvent, email: str | None) -> Activity:
    """The engine's view of a tracked event (`email` as the identity planner found it)."""
    return Activity(
        event_id=event.event_id,
        type=event.type,
        name=event.event if event.type == "track" else event.name,
        at=event.timestamp,
        properties=event.properties,
        traits=event.traits if event.type == "identify" else {},
        email=email,
        user_id=event.user_id,
        bot=event.bot is not None,
    )


def activity_from_history(event: HistoryEvent) -> Activity:
    identify = event.type == "identify"
    traits = event.properties if identify else {}
    email = traits.get("email") if identify else None
    return Activity(
        event_id=event.event_id,
        type=event.type,
        name=event.name,
        at=event.occurred_at,
        properties={} if identify else event.properties,
        traits=traits,
        email=email.strip().lower() if isinstance(email, str) and "@" in email else None,
        bot=event.bot is not None,
    )


def rebuild(scorer: Scorer, row: LeadRow, events: list[HistoryEvent], until: datetime, fx: Effects) -> LeadState:
    """The lead's state under `scorer`'s rules from its retained history, advanced to `until`.

    Traits start as the lead's current ones (history may be shorter than the lead's life); an identify
    in history only overrides a trait it set later than the stored value.
    """
    state = scorer.new_state(user_id=row.user_id, email=row.email)
    state.traits, state.trait_times = dict(row.traits), dict(row.trait_times)
    state.predictions = dict(row.score_state.get("predictions", {}))  # from the models, not the rules
    scorer.refit(state, events[0].occurred_at if events else until, None, fx)
    for event in events:
        scorer.apply(state, activity_from_history(event), fx)
    scorer.advance(state, until, fx)
    if state.checked_at is None:
        scorer.evaluate(state, until, None, fx)
    return state


def write_of(scorer: Scorer, lead: LeadRow, state: LeadState, seen: datetime | None) -> LeadWrite:
    at = state.as_of or state.checked_at or EPOCH
    score, _, _ = score_of(scorer, state, at)
    return LeadWrite(
        lead_id=lead.lead_id,
        email=state.email,
        traits=state.traits if state.traits != lead.traits else None,
        trait_times=state.trait_times if state.trait_times != lead.trait_times else None,
        score=score,
        fit=state.fit,
        engagement=state.engagement,
        engagement_at=state.as_of,
        grade=state.grade,
        stage=state.stages.get(scorer.rules.primary_model, "visitor"),
        stages=state.stages,
        score_state=state.to_json(),
        next_due_at=scorer.next_change(state),
        rule_set_version=scorer.version,
        last_seen_at=seen,
    )


def predictions_of(row: LeadRow) -> dict[str, float]:
    """The predictions stored with the lead row (before this batch)."""
    stored = (row.score_state or {}).get("predictions") or {}
    return {str(model): float(p) for model, p in stored.items()}


def score_changed(
    row: LeadRow, write: LeadWrite, state: LeadState, event_id: uuid.UUID, cause: uuid.UUID | None, at: datetime
) -> LeadScoreChanged:
    """The `lead.score_changed` message of a write: the values as stored, against the row before."""
    q = Decimal("0.0001")
    return LeadScoreChanged(
        event_id=event_id,
        lead_id=row.lead_id,
        user_id=row.user_id or state.user_id,
        score=write.score,
        fit=Decimal(write.fit).quantize(q),
        engagement=Decimal(write.engagement).quantize(q),
        grade=write.grade,
        previous_score=row.score,
        previous_grade=row.grade,
        stages=write.stages,
        predictions=dict(state.predictions),
        previous_predictions=predictions_of(row),
        rule_set_version=write.rule_set_version,
        cause_event_id=cause,
        occurred_at=at,
    )
