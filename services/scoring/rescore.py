"""Background work of the scoring process: rescoring under a new rule set, and the scoring tick.

Rescore: after a rule-set version is activated, every lead scored under another version is rebuilt
from its history, in chunks of leads locked with SKIP LOCKED, so live scoring goes on (a lead the
consumer touches first is rebuilt there) and several scoring processes share the work. Backdated
stage transitions are written to the stage history but not announced, unless the job asks for it;
the job's report says what changed.

Tick: the passing of time is an event on the `events` topic. Every process publishes the same tick
(its id derives from its time), the consumer applies it once, and makes the time-driven changes that
are due (inactivity, decay crossing a threshold); their times come from the data, not from the tick.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.scoring import accounts, repository, rulebook
from services.scoring.engine import Effects, Scorer
from services.scoring.replay import rebuild, score_changed, write_of
from services.scoring.repository import LEAD_COLUMNS, HistoryRow, LeadRow, LedgerRow
from shared.events import LeadStageChanged, ScoringTick, derived_id
from shared.kafka import Topics
from shared.settings import ScoringSettings

log = logging.getLogger(__name__)


async def rescore_chunk(
    session: AsyncSession, scorer: Scorer, chunk: int, now: datetime
) -> tuple[int, dict[str, Any], list[tuple[str, bytes, bytes]]]:
    """Rebuild up to `chunk` leads scored under another version; (count, report, messages to announce)."""
    rows = await session.execute(
        text(
            f"SELECT {LEAD_COLUMNS} FROM leads WHERE rule_set_version <> :v AND merged_into IS NULL "  # noqa: S608
            "ORDER BY lead_id LIMIT :n FOR UPDATE SKIP LOCKED"
        ),
        {"v": scorer.version, "n": chunk},
    )
    leads = {r.lead_id: LeadRow(*r) for r in rows}
    if not leads:
        return 0, {}, []
    events = await repository.history(session, leads)
    await repository.replace_ledger(session, list(leads))
    writes, ledger, history, messages = [], [], [], []
    transitions: Counter[str] = Counter()
    scores: Counter[str] = Counter()
    for lead, row in leads.items():
        fx = Effects()
        state = rebuild(scorer, row, events.get(lead, []), now, fx)
        seen = max((e.occurred_at for e in events.get(lead, [])), default=row.last_seen_at)
        write = write_of(scorer, row, state, seen)
        writes.append(write)
        ledger += [LedgerRow(lead, e.rule_id, e.kind, e.points, e.event_id, e.at) for e in fx.ledger]
        history += [
            HistoryRow(lead, c.model, c.from_stage, c.to_stage, c.kind, c.reason, c.details, c.cause_event_id, c.at)
            for c in fx.stage_changes
        ]
        for model, stage in state.stages.items():
            before = row.stages.get(model) or (row.stage if model == scorer.rules.primary_model else None)
            if before != stage:
                transitions[f"{model}: {before} → {stage}"] += 1
                changed = LeadStageChanged(
                    event_id=derived_id("rescore-stage", lead, model, stage, scorer.version),
                    lead_id=lead,
                    user_id=row.user_id,
                    model=model,
                    stage=stage,
                    previous_stage=before,
                    kind="rescore",
                    reason=f"rescored under rule set {scorer.version}",
                    rule_set_version=scorer.version,
                    occurred_at=state.checked_at or now,
                )
                messages.append(("stage", lead.bytes, changed.to_bytes()))
        delta = write.score - row.score
        scores["up" if delta > 0 else "down" if delta < 0 else "unchanged"] += 1
        if delta or write.grade != row.grade:
            at = state.as_of or now
            message = score_changed(row, write, state, derived_id("rescore-score", lead, scorer.version), None, at)
            messages.append(("score", lead.bytes, message.to_bytes()))
    await repository.write_leads(session, writes)
    await repository.insert_ledger(session, scorer.version, ledger)
    await repository.insert_stage_history(session, scorer.version, history)
    await accounts.refresh(session, scorer.rules, list(leads))
    return len(leads), {"stage_changes": dict(transitions), "scores": dict(scores)}, messages


def merge_report(report: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    merged = {key: dict(report.get(key, {})) for key in ("stage_changes", "scores")}
    for key in merged:
        for name, n in more.get(key, {}).items():
            merged[key][name] = merged[key].get(name, 0) + n
    return merged


async def rescore_step(
    sessionmaker: async_sessionmaker[AsyncSession], producer: AIOKafkaProducer, topics: Topics, chunk: int
) -> int:
    """One chunk in one transaction, with the running job's progress; returns the leads rebuilt."""
    async with sessionmaker() as session, session.begin():
        scorer = rulebook.scorer_of(await rulebook.active(session))
        job = (
            await session.execute(
                text(
                    "SELECT id, emit_changes, report FROM rescore_jobs WHERE status = 'running' "
                    "AND rule_set_version = :v ORDER BY started_at DESC LIMIT 1 FOR UPDATE"
                ),
                {"v": scorer.version},
            )
        ).first()
        count, report, messages = await rescore_chunk(session, scorer, chunk, datetime.now(UTC))
        if job is None:
            return count
        if count:
            await session.execute(
                text("UPDATE rescore_jobs SET done = done + :n, report = CAST(:r AS jsonb) WHERE id = :id"),
                {"n": count, "r": _json(merge_report(job.report, report)), "id": job.id},
            )
            if job.emit_changes:
                for _, key, value in messages:
                    await producer.send(topics.lead_changes, value, key=key)
                await producer.flush()
        else:
            left = await session.scalar(
                text("SELECT count(*) FROM leads WHERE rule_set_version <> :v AND merged_into IS NULL"),
                {"v": scorer.version},
            )
            if not left:
                await session.execute(
                    text("UPDATE rescore_jobs SET status = 'done', finished_at = now() WHERE id = :id"), {"id": job.id}
                )
                await session.execute(
                    text(
                        "UPDATE rescore_jobs SET status = 'superseded', finished_at = now() "
                        "WHERE status = 'running' AND id <> :id"
                    ),
                    {"id": job.id},
                )
                log.info("rescore under rule set %d finished: %s", scorer.version, job.report)
        return count


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


async def rescore_loop(
    settings: ScoringSettings,
    sessionmaker: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
) -> None:
    """Rebuild leads under the active rule set whenever some were scored under another one."""
    topics = Topics(settings.topic_prefix)
    while True:
        try:
            count = await rescore_step(sessionmaker, producer, topics, settings.rescore_chunk)
        except Exception:
            log.exception("rescore step failed; retrying")
            count = 0
            await asyncio.sleep(settings.rescore_poll_seconds)
        if count:
            log.info("rescored %d leads", count)
        else:
            await asyncio.sleep(settings.rescore_poll_seconds)


def tick_at(now: datetime, every: float) -> datetime:
    """Tick times on a fixed grid, so every process publishes the same tick."""
    seconds = int(now.timestamp() // every * every)
    return datetime.fromtimestamp(seconds, UTC)


def tick_message(at: datetime) -> ScoringTick:
    return ScoringTick(event_id=derived_id("scoring-tick", at.isoformat()), tick_at=at)


async def tick_loop(settings: ScoringSettings, producer: AIOKafkaProducer) -> None:
    """Publish the scoring tick every `tick_seconds`."""
    topics = Topics(settings.topic_prefix)
    last: datetime | None = None
    while True:
        at = tick_at(datetime.now(UTC), settings.tick_seconds)
        if at != last:
            try:
                await producer.send_and_wait(topics.events, tick_message(at).to_bytes(), key=b"scoring-tick")
                last = at
            except Exception:
                log.exception("could not publish the scoring tick for %s", at.isoformat())
        await asyncio.sleep(max(0.5, settings.tick_seconds / 4))
