"""SQL for the scoring admin API: leads with their score decayed in SQL, history, ledger, accounts,
rescore jobs and the leads a dry run replays. Repositories never commit; the request boundary does."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Float,
    RowMapping,
    case,
    cast,
    func,
    literal,
    literal_column,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncSession

from services.admin.repository import known_by
from services.predictive.repository import lead_predictions
from services.scoring import rulebook
from services.scoring.engine import Scorer
from services.scoring.repository import LEAD_COLUMNS, LeadRow
from services.scoring.rules import Grades
from shared.models import Lead, LeadEvent
from shared.scoring_models import Account, AccountMember, RescoreJob, ScoreLedgerEntry, StageHistory


@dataclass(frozen=True)
class Decay:
    """How to value a lead at `at`: the active rule set's half-life and grade thresholds."""

    at: datetime
    half_life_s: float | None
    grades: Grades


@dataclass(frozen=True)
class LeadQuery:
    """Filters of a lead list; `after` is the (score, lead id) the previous page ended with."""

    identity: tuple[str, str] | None = None
    account_id: str | None = None
    stage: tuple[str, str, bool] | None = None  # (model, stage, model is the primary one)
    grades: tuple[str, ...] = ()
    min_score: float | None = None
    max_score: float | None = None
    after: tuple[float, uuid.UUID] | None = None
    limit: int = 50
    order: Literal["score", "created"] = "score"


def _letter(value: ColumnElement[float], thresholds: tuple[float, float, float], labels: str) -> ColumnElement[str]:
    return case(*[(value >= t, label) for t, label in zip(thresholds, labels, strict=False)], else_=labels[3])


def _engagement_now(decay: Decay) -> ColumnElement[float]:
    """The engine's `engagement_at` in SQL; a lead never scored by the engine keeps its stored score."""
    decayed: ColumnElement[float] = Lead.engagement.expression
    if decay.half_life_s is not None:
        at = literal(decay.at, DateTime(timezone=True))
        seconds = cast(func.extract("epoch", at - Lead.engagement_at), Float)
        factor = func.power(literal(2.0, Float), -seconds / decay.half_life_s, type_=Float)
        decayed = case(
            (Lead.engagement_at.is_(None) | (Lead.engagement_at >= at), Lead.engagement),
            else_=Lead.engagement * factor,
        )
    legacy = Lead.score_state == literal_column("'{}'::jsonb")
    return case((legacy, cast(Lead.score, Float) - Lead.fit), else_=decayed)


async def list_leads(session: AsyncSession, query: LeadQuery, decay: Decay) -> Sequence[RowMapping]:
    """Live leads with `score_now`, `engagement_now` and `grade_now`; one row more than the limit."""
    where: list[ColumnElement[bool]] = [Lead.merged_into.is_(None)]
    if query.identity is not None:
        where.append(known_by(*query.identity))
    if query.account_id is not None:
        where.append(
            Lead.lead_id.in_(select(AccountMember.lead_id).where(AccountMember.account_id == query.account_id))
        )
    if query.stage is not None:
        model, stage, primary = query.stage
        where.append(Lead.stage == stage if primary else Lead.stages[model].astext == stage)
    inner = (
        select(
            Lead.lead_id, Lead.user_id, Lead.anonymous_id, Lead.email, Lead.fit, Lead.stage, Lead.stages,
            Lead.traits, Lead.last_seen_at, Lead.rule_set_version, Lead.created_at, Lead.updated_at,
            _engagement_now(decay).label("engagement_now"),
        )
        .where(*where)
        .subquery()
    )  # fmt: skip
    score = inner.c.fit + inner.c.engagement_now
    grade = func.concat(
        _letter(inner.c.fit, decay.grades.fit, "ABCD"), _letter(inner.c.engagement_now, decay.grades.engagement, "1234")
    )
    outer = select(inner, score.label("score_now"), grade.label("grade_now"))
    if query.grades:
        outer = outer.where(grade.in_(query.grades))
    if query.min_score is not None:
        outer = outer.where(score >= query.min_score)
    if query.max_score is not None:
        outer = outer.where(score <= query.max_score)
    if query.after is not None:
        last_score, last_id = query.after
        outer = outer.where(tuple_(score, inner.c.lead_id) < tuple_(literal(last_score, Float), literal(last_id, UUID)))
    if query.order == "score":
        outer = outer.order_by(score.desc(), inner.c.lead_id.desc())
    else:
        outer = outer.order_by(inner.c.created_at, inner.c.lead_id)
    return (await session.execute(outer.limit(query.limit + 1))).mappings().all()


async def active_scorer(session: AsyncSession) -> Scorer:
    """The active rule set, prepared for scoring."""
    return rulebook.scorer_of(await rulebook.active(session))


async def lead_id_of_user(session: AsyncSession, user_id: str) -> uuid.UUID | None:
    """The live lead known by this user id (the oldest, should two claim it)."""
    query = select(Lead.lead_id).where(known_by("user_id", user_id), Lead.merged_into.is_(None))
    return await session.scalar(query.order_by(Lead.created_at).limit(1))


async def lead_row(session: AsyncSession, lead_id: uuid.UUID) -> tuple[LeadRow, tuple[datetime, datetime]] | None:
    """The lead as scoring stores it, and its (created_at, updated_at)."""
    sql = f"SELECT {LEAD_COLUMNS}, created_at, updated_at FROM leads WHERE lead_id = :id"  # noqa: S608
    row = (await session.execute(text(sql), {"id": lead_id})).first()
    if row is None:
        return None
    *columns, created_at, updated_at = row
    return LeadRow(*columns), (created_at, updated_at)


@dataclass(frozen=True)
class LeadHistory:
    """What the lead detail shows besides the lead row."""

    stage_history: Sequence[StageHistory]
    events: Sequence[Any]  # rows of event_id, type, name, occurred_at, bot
    ledger: Sequence[ScoreLedgerEntry]
    accounts: Sequence[Any]  # rows of account_id, score
    predictions: Sequence[dict[str, Any]] = ()  # lead_predictions rows, one per funnel model


async def lead_history(session: AsyncSession, lead_id: uuid.UUID) -> LeadHistory:
    """Stage changes (the latest 500, oldest first), the latest 20 events and 50 ledger entries, accounts."""
    changes = await session.scalars(
        select(StageHistory)
        .where(StageHistory.lead_id == lead_id)
        .order_by(StageHistory.occurred_at.desc(), StageHistory.id.desc())
        .limit(500)
    )
    events = await session.execute(
        select(LeadEvent.event_id, LeadEvent.type, LeadEvent.name, LeadEvent.occurred_at, LeadEvent.bot)
        .where(LeadEvent.lead_id == lead_id)
        .order_by(LeadEvent.occurred_at.desc(), LeadEvent.event_id.desc())
        .limit(20)
    )
    ledger = await session.scalars(
        select(ScoreLedgerEntry)
        .where(ScoreLedgerEntry.lead_id == lead_id)
        .order_by(ScoreLedgerEntry.occurred_at.desc(), ScoreLedgerEntry.id.desc())
        .limit(50)
    )
    accounts = await session.execute(
        select(Account.account_id, Account.score)
        .join(AccountMember, AccountMember.account_id == Account.account_id)
        .where(AccountMember.lead_id == lead_id)
        .order_by(Account.account_id)
    )
    predicted = await lead_predictions(session, lead_id)
    return LeadHistory(list(reversed(changes.all())), events.all(), ledger.all(), accounts.all(), predicted)


async def ledger_page(
    session: AsyncSession, lead_id: uuid.UUID, after: tuple[datetime, int] | None, limit: int
) -> Sequence[ScoreLedgerEntry]:
    """Ledger entries oldest first after (occurred_at, id); one more than the limit."""
    query = select(ScoreLedgerEntry).where(ScoreLedgerEntry.lead_id == lead_id)
    if after is not None:
        query = query.where(tuple_(ScoreLedgerEntry.occurred_at, ScoreLedgerEntry.id) > tuple_(*after))
    query = query.order_by(ScoreLedgerEntry.occurred_at, ScoreLedgerEntry.id).limit(limit + 1)
    return (await session.scalars(query)).all()


async def ledger_sums(session: AsyncSession, lead_id: uuid.UUID) -> tuple[float, float]:
    """(sum of fit entries, sum of all other entries) over the lead's whole ledger."""
    is_fit = ScoreLedgerEntry.kind == "fit"
    row = (
        await session.execute(
            select(
                func.coalesce(func.sum(ScoreLedgerEntry.points).filter(is_fit), 0.0),
                func.coalesce(func.sum(ScoreLedgerEntry.points).filter(~is_fit), 0.0),
            ).where(ScoreLedgerEntry.lead_id == lead_id)
        )
    ).one()
    return float(row[0]), float(row[1])


async def event_applied(session: AsyncSession, event_id: uuid.UUID) -> bool:
    """Whether scoring has applied the event (it writes the event's row with the effect)."""
    return await session.scalar(select(LeadEvent.event_id).where(LeadEvent.event_id == event_id)) is not None


# -- accounts -------------------------------------------------------------------------------------


async def list_accounts(
    session: AsyncSession,
    stage: tuple[str, str] | None,
    min_score: float | None,
    after: tuple[Decimal, str] | None,
    limit: int,
) -> Sequence[Account]:
    """Accounts by stored score, highest first, after (score, account id); one more than the limit."""
    query = select(Account)
    if stage is not None:
        query = query.where(Account.stages[stage[0]].astext == stage[1])
    if min_score is not None:
        query = query.where(Account.score >= min_score)
    if after is not None:
        query = query.where(tuple_(Account.score, Account.account_id) < tuple_(*after))
    query = query.order_by(Account.score.desc(), Account.account_id.desc()).limit(limit + 1)
    return (await session.scalars(query)).all()


async def account(session: AsyncSession, account_id: str) -> Account | None:
    return await session.get(Account, account_id)


# -- rescore jobs ---------------------------------------------------------------------------------


async def add_rescore_job(session: AsyncSession, version: int, emit_changes: bool) -> RescoreJob:
    """A job for the scoring consumers: rebuild every live lead under `version`."""
    total = await session.scalar(select(func.count()).select_from(Lead).where(Lead.merged_into.is_(None)))
    job = RescoreJob(id=uuid.uuid4(), rule_set_version=version, emit_changes=emit_changes, total=total or 0)
    session.add(job)
    await session.flush()
    await session.refresh(job)
    return job


async def rescore_job(session: AsyncSession, job_id: uuid.UUID) -> RescoreJob | None:
    return await session.get(RescoreJob, job_id)


# -- dry run --------------------------------------------------------------------------------------


async def leads_active_since(
    session: AsyncSession, since: datetime, after: uuid.UUID | None, limit: int
) -> list[LeadRow]:
    """Live leads with an event at or after `since`, in lead id order after `after`."""
    # Two statements rather than `:after IS NULL OR ...`, which would keep the planner off the key range.
    after_clause = "AND l.lead_id > :after " if after is not None else ""
    rows = await session.execute(
        text(
            f"SELECT {LEAD_COLUMNS} FROM leads l WHERE l.merged_into IS NULL {after_clause}"  # noqa: S608
            "AND EXISTS (SELECT 1 FROM lead_events e WHERE e.lead_id = l.lead_id AND e.occurred_at >= :since) "
            "ORDER BY l.lead_id LIMIT :limit"
        ),
        {"since": since, "limit": limit} | ({"after": after} if after is not None else {}),
    )
    return [LeadRow(*r) for r in rows]
