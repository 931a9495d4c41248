"""What the scoring consumer does with a batch of tracked events and ticks.

Identity (see shared/HARD-PARTS.md): events are keyed by user id, else anonymous id, so a visitor's
anonymous events and their identified events may sit on different partitions and be consumed by
different processes. Every identity lives in `lead_identities` and points at one live lead. When an
event shows two identities are one person (identify with both ids, alias, a shared email), the
anonymous lead folds into the known one: identities, history, ledger, stage history and score move,
the merge is recorded in `lead_merges`, and the folded lead keeps only `merged_into`. If another
consumer merges a lead while this batch works on it, the row lock makes this batch wait, see
`merged_into`, and follow it.

Scoring: the batch's events go into `lead_events` first; only ids new there are scored, so a
redelivered or replayed event changes nothing even after the dedup window. Each lead's events are
applied in order by the pure engine; a lead scored under an older rule-set version is rebuilt from its
history instead. Then one UPDATE for all leads, one INSERT each for ledger and stage history, the
outgoing webhooks in the outbox, and `lead.score_changed` / `lead.stage_changed` on `lead-changes`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncSession

# Erasure tombstones are kept by consent (services/nurture/consent); scoring only reads them.
from services.nurture.consent.repository import erased
from services.predictive import repository as predictions
from services.predictive.features import LONGEST, extract
from services.predictive.serving import ActiveModels, predict_batch
from services.scoring import accounts, repository
from services.scoring.engine import Effects, LeadState, Scorer, score_of
from services.scoring.replay import activity_of, predictions_of, rebuild, score_changed, state_of, write_of
from services.scoring.repository import HistoryRow, LeadRow, LedgerRow
from services.scoring.rulebook import ActiveRules
from services.scoring.service import EventPlan, Identity, fold_direction, plan_batch
from shared import outbox
from shared.events import (
    LeadActivity,
    LeadStageChanged,
    ScoringTick,
    TrackedEvent,
    decode_scoring_input,
    derived_id,
)
from shared.kafka import Topics
from shared.runner import Outgoing

log = logging.getLogger(__name__)
MAX_REDIRECTS = 5
TICK_LEADS = 5000  # leads with due time-driven changes handled per tick


@dataclass
class Work:
    """One batch's leads: locked rows, engine states and effects."""

    rows: dict[uuid.UUID, LeadRow] = field(default_factory=dict)
    states: dict[uuid.UUID, LeadState] = field(default_factory=dict)
    effects: dict[uuid.UUID, Effects] = field(default_factory=dict)
    cause: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)
    seen: dict[uuid.UUID, datetime] = field(default_factory=dict)
    rebuilt: set[uuid.UUID] = field(default_factory=set)
    fresh: set[uuid.UUID] = field(default_factory=set)
    activities: list[tuple[uuid.UUID, TrackedEvent]] = field(default_factory=list)

    def fx(self, lead: uuid.UUID) -> Effects:
        return self.effects.setdefault(lead, Effects())


class ScoringHandler:
    """Folds tracked events into leads' scores and stages."""

    name = "scoring"

    def __init__(
        self, topics: Topics, rules: ActiveRules | None = None, tick_leads: int = TICK_LEADS,
        models: ActiveModels | None = None,
    ) -> None:  # fmt: skip
        self._out = topics
        self.rules = rules or ActiveRules()
        self.tick_leads = tick_leads
        self.models = models or ActiveModels()

    def topics(self, topics: Topics) -> list[str]:
        return [topics.events]

    def decode(self, record: ConsumerRecord) -> TrackedEvent | ScoringTick:
        return decode_scoring_input(record.value)

    async def apply(self, session: AsyncSession, items: Sequence[TrackedEvent | ScoringTick]) -> list[Outgoing]:
        scorer = await self.rules.get(session)
        events = [i for i in items if isinstance(i, TrackedEvent)]
        ticks = [i for i in items if isinstance(i, ScoringTick)]
        work = Work()
        plans, leads, created = await self._resolve(session, plan_batch(events))
        placed = await self._link(session, scorer, plans, leads, work)
        await self._lock(session, placed, work)
        fresh = await repository.insert_events(session, [(plan.event, lead) for plan, lead in placed])
        await self._score(session, scorer, placed, fresh, created, work)
        work.fresh = fresh
        for tick in ticks:
            await self._tick(session, scorer, tick, work)
        await self._predict(session, scorer, work)
        await accounts.join(
            session,
            [
                (p.event.group_id, lead, p.event.traits)
                for p, lead in placed
                if p.event.type == "group" and p.event.group_id
            ],
        )
        return await self._write(session, scorer, work)

    # -- identity --------------------------------------------------------------------------------
    async def _resolve(
        self, session: AsyncSession, plans: list[EventPlan]
    ) -> tuple[list[EventPlan], dict[Identity, uuid.UUID], set[uuid.UUID]]:
        """Every identity the batch mentions, creating leads for unknown primary identities.

        Events of people erased on request are dropped, so replaying the topic cannot bring them back.
        Only identities no lead has are looked up among the tombstones: an erasure deletes a person's
        identities, so a known identity never belongs to an erased person.
        """
        wanted = {p.primary for p in plans} | {link.identity for p in plans for link in p.links}
        leads = await repository.find_leads(session, wanted)
        unknown = wanted - leads.keys()
        gone = await erased(session, unknown) if unknown else set()
        if gone:
            kept = [p for p in plans if p.primary not in gone and not any(k.identity in gone for k in p.links)]
            log.info("dropped %d events of erased people", len(plans) - len(kept))
            plans = kept
        missing = {p.primary for p in plans if p.primary not in leads}
        created = await repository.create_leads(session, missing)
        leads.update(created)
        if len(created) < len(missing):  # another consumer created some of them first
            leads.update(await repository.find_leads(session, missing - created.keys()))
        return plans, leads, set(created.values())

    async def _link(
        self,
        session: AsyncSession,
        scorer: Scorer,
        plans: list[EventPlan],
        leads: dict[Identity, uuid.UUID],
        work: Work,
    ) -> list[tuple[EventPlan, uuid.UUID]]:
        """Attach or merge linked identities in event order; return each event with its lead."""
        await self._attach_new(session, plans, leads)
        placed = []
        for plan in plans:
            lead = leads[plan.primary]
            for link in plan.links:
                other = leads.get(link.identity)
                if other == lead:
                    continue  # the usual case once known: no SQL at all
                if other is None:
                    if link.reason == "alias" and link.identity[0] == "user":
                        continue  # an unknown previous id becomes an anonymous identity (next link)
                    if await repository.add_identity(session, link.identity, lead):
                        leads[link.identity] = lead
                        continue
                    other = (await repository.find_leads(session, [link.identity]))[link.identity]
                lead = await repository.live_lead(session, lead)
                other = await repository.live_lead(session, other)
                rows = await repository.lock_leads(session, [lead, other])
                direction = fold_direction(lead, rows[lead].user_id, other, rows[other].user_id, link)
                if direction is None:
                    if lead != other:
                        log.info("not merging leads %s and %s on %s: both are known users", lead, other, link.reason)
                    continue
                source, target = direction
                await self._merge(session, scorer, rows[source], rows[target], link.reason, plan.event, work)
                for identity, owner in list(leads.items()):
                    if owner == source:
                        leads[identity] = target
                lead = target
            placed.append((plan, lead))
        return placed

    async def _attach_new(
        self, session: AsyncSession, plans: list[EventPlan], leads: dict[Identity, uuid.UUID]
    ) -> None:
        """New identities (a first email, a new anonymous id) attached in one statement.

        Exactly what the event-by-event pass would do, as long as no merge comes first in the event;
        from the first link that needs a merge on, that pass does the work.
        """
        pending: dict[Identity, uuid.UUID] = {}
        for plan in plans:
            lead = leads[plan.primary]
            if any(link.reason == "alias" for link in plan.links):
                continue
            for link in plan.links:
                other = leads.get(link.identity) or pending.get(link.identity)
                if other is None:
                    pending[link.identity] = lead
                elif other != lead:
                    break
        for identity in await repository.add_identities(session, pending):
            leads[identity] = pending[identity]

    async def _merge(
        self, session: AsyncSession, scorer: Scorer, source: LeadRow, target: LeadRow, reason: str,
        event: TrackedEvent, work: Work,
    ) -> None:  # fmt: skip
        if source.merged_into is not None or target.merged_into is not None:
            return  # another consumer merged one of them first; the batch follows merged_into later
        await repository.move_to(session, source.lead_id, target.lead_id, reason, event.event_id)
        into, other = state_of(scorer, target), state_of(scorer, source)
        scorer.merge(into, other, event.timestamp, event.event_id, work.fx(target.lead_id))
        seen = max((t for t in (target.last_seen_at, source.last_seen_at) if t), default=None)
        await repository.write_leads(session, [write_of(scorer, target, into, seen)])
        log.info("merged lead %s into %s (%s)", source.lead_id, target.lead_id, reason)

    async def _lock(self, session: AsyncSession, placed: list[tuple[EventPlan, uuid.UUID]], work: Work) -> None:
        """Lock the batch's leads, following merges made meanwhile by other consumers."""
        for _ in range(MAX_REDIRECTS):
            rows = await repository.lock_leads(session, {lead for _, lead in placed})
            moved = {lead for lead, row in rows.items() if row.merged_into is not None}
            if not moved:
                break
            redirect = {lead: await repository.live_lead(session, lead) for lead in moved}
            placed[:] = [(plan, redirect.get(lead, lead)) for plan, lead in placed]
        work.rows.update(rows)

    # -- scoring ---------------------------------------------------------------------------------
    async def _score(
        self, session: AsyncSession, scorer: Scorer, placed: list[tuple[EventPlan, uuid.UUID]],
        fresh: set[uuid.UUID], created: set[uuid.UUID], work: Work,
    ) -> None:  # fmt: skip
        stale = [
            lead for lead, row in work.rows.items() if row.rule_set_version != scorer.version and lead not in created
        ]
        if stale:
            await self._rebuild(session, scorer, stale, max(p.event.timestamp for p, _ in placed), work)
        for plan, lead in placed:
            event = plan.event
            seen = work.seen.get(lead)
            if seen is None or event.timestamp > seen:
                work.seen[lead] = event.timestamp
            if event.event_id not in fresh or lead in work.rebuilt:
                continue
            state = work.states.get(lead)
            if state is None:
                state = work.states[lead] = state_of(scorer, work.rows[lead])
            scorer.apply(state, activity_of(event, plan.email), work.fx(lead))
            work.cause[lead] = event.event_id
            if event.type == "track" and event.bot is None and event.event:
                work.activities.append((lead, event))

    async def _rebuild(
        self, session: AsyncSession, scorer: Scorer, leads: list[uuid.UUID], until: datetime, work: Work
    ) -> None:
        """Leads last scored under another rule-set version: replay their history under this one."""
        events = await repository.history(session, leads)
        await repository.replace_ledger(session, leads)
        for lead in leads:
            fx = work.effects[lead] = Effects()
            work.states[lead] = rebuild(scorer, work.rows[lead], events.get(lead, []), until, fx)
            work.rebuilt.add(lead)

    async def _tick(self, session: AsyncSession, scorer: Scorer, tick: ScoringTick, work: Work) -> None:
        """Time-driven changes due by the tick's time: inactivity points, decay crossing thresholds."""
        due = await repository.due_leads(session, tick.tick_at, self.tick_leads)
        for lead, row in due.items():
            work.rows.setdefault(lead, row)
        stale = [
            lead for lead, row in due.items() if row.rule_set_version != scorer.version and lead not in work.states
        ]
        if stale:
            await self._rebuild(session, scorer, stale, tick.tick_at, work)
        for lead in due:
            state = work.states.get(lead)
            if state is None:
                state = work.states[lead] = state_of(scorer, work.rows[lead])
            scorer.advance(state, tick.tick_at, work.fx(lead))
        if due:
            log.info("tick %s: %d leads with due time-driven changes", tick.tick_at.isoformat(), len(due))

    async def _predict(self, session: AsyncSession, scorer: Scorer, work: Work) -> None:
        """The active predictive models, applied once to all leads this batch's events touched.

        Features are as of the lead's latest event (event time, so a replay predicts the same); when
        a rule reads predictions, stages are evaluated again with the new ones."""
        leads = [lead for lead in work.cause if lead in work.states]
        models = await self.models.get(session) if leads else []
        if not models:
            return
        at = {}
        for lead in leads:
            state = work.states[lead]
            at[lead] = max(t for t in (work.seen.get(lead), state.last_activity, state.checked_at) if t is not None)
        recent = await predictions.recent_events(session, leads, min(at.values()) - LONGEST)
        rows = [
            extract(work.states[lead].traits, work.states[lead].email, recent.get(lead, ()), at[lead]) for lead in leads
        ]
        writes = []
        for p in predict_batch(models, leads, rows):
            state = work.states[p.lead_id]
            before = state.predictions.get(p.funnel_model)
            state.predictions[p.funnel_model] = p.probability
            writes.append(predictions.PredictionWrite(p.lead_id, p.funnel_model, p.probability, p.version, p.top,
                                                      at[p.lead_id]))  # fmt: skip
            if scorer.uses_prediction and before != p.probability:
                scorer.evaluate(state, at[p.lead_id], work.cause[p.lead_id], work.fx(p.lead_id))
        await predictions.write_predictions(session, writes)

    # -- writing ---------------------------------------------------------------------------------
    async def _write(self, session: AsyncSession, scorer: Scorer, work: Work) -> list[Outgoing]:
        writes, ledger, history, out, hooks = [], [], [], [], []
        for lead, state in work.states.items():
            row = work.rows[lead]
            write = write_of(scorer, row, state, work.seen.get(lead))
            writes.append(write)
            fx = work.effects.get(lead, Effects())
            ledger += [LedgerRow(lead, e.rule_id, e.kind, e.points, e.event_id, e.at) for e in fx.ledger]
            cause = work.cause.get(lead)
            history += [
                HistoryRow(lead, c.model, c.from_stage, c.to_stage, c.kind, c.reason, c.details, c.cause_event_id, c.at)
                for c in fx.stage_changes
            ]
            announce = fx.stage_changes
            if lead in work.rebuilt:
                # Backdated transitions of a rebuild stay quiet; what this batch's own events did is news.
                announce = [c for c in fx.stage_changes if c.cause_event_id in work.fresh]
                fx.sales_stages = [c for c in fx.sales_stages if c.cause_event_id in work.fresh]
                fx.alerts = [a for a in fx.alerts if a.cause_event_id in work.fresh]
            for c in announce:
                message = LeadStageChanged(
                    event_id=_change_id("stage", lead, c.model, c.to_stage, c.at, c.cause_event_id),
                    lead_id=lead,
                    user_id=row.user_id or state.user_id,
                    model=c.model,
                    stage=c.to_stage,
                    previous_stage=c.from_stage,
                    kind=c.kind,
                    reason=c.reason,
                    rule_set_version=scorer.version,
                    cause_event_id=c.cause_event_id,
                    occurred_at=c.at,
                )
                out.append(Outgoing(self._out.lead_changes, lead.bytes, message.to_bytes()))
                hooks.append(("lead.stage_changed", message.model_dump(mode="json"), message.event_id))
            for c in fx.sales_stages:
                payload = _lead_payload(scorer, lead, state, c.at) | {"model": c.model, "stage": c.to_stage}
                hooks.append(
                    ("lead.mql", payload, _change_id("mql", lead, c.model, c.to_stage, c.at, c.cause_event_id))
                )
            for alert in fx.alerts:
                payload = _lead_payload(scorer, lead, state, alert.at) | {"alert": alert.rule_id}
                hooks.append(("lead.attention", payload, _change_id("alert", lead, alert.rule_id, alert.at, None)))
            predicted = state.predictions != predictions_of(row)
            # A lead that only identified has no scoring time yet; a new prediction is still news.
            at = state.as_of or state.checked_at or (work.seen.get(lead) if predicted else None)
            moved = write.score != row.score or write.grade != row.grade or predicted
            if at is not None and (moved or lead in work.rebuilt):
                scored = score_changed(row, write, state, _change_id("score", lead, cause or at), cause, at)
                out.append(Outgoing(self._out.lead_changes, lead.bytes, scored.to_bytes()))
        for lead, event in work.activities:
            activity = LeadActivity(
                event_id=_change_id("activity", event.event_id),
                lead_id=lead,
                user_id=event.user_id,
                name=event.event or "",
                properties=event.properties,
                source_id=event.source_id,
                cause_event_id=event.event_id,
                occurred_at=event.timestamp,
            )
            out.append(Outgoing(self._out.lead_changes, lead.bytes, activity.to_bytes()))
        await repository.write_leads(session, writes)
        await repository.insert_ledger(session, scorer.version, ledger)
        await repository.insert_stage_history(session, scorer.version, history)
        if hooks:
            await outbox.enqueue_many(session, hooks)
        if writes:
            await accounts.refresh(session, scorer.rules, [w.lead_id for w in writes])
        return out


def _change_id(*parts: object) -> uuid.UUID:
    return derived_id("lead-change", *parts)


def _lead_payload(scorer: Scorer, lead: uuid.UUID, state: LeadState, at: datetime) -> dict[str, object]:
    score, fit, engagement = score_of(scorer, state, at)
    return {
        "lead_id": str(lead),
        "user_id": state.user_id,
        "email": state.email,
        "score": str(score),
        "fit": str(fit),
        "engagement": str(engagement),
        "grade": state.grade,
        "stages": state.stages,
        "traits": state.traits,
        "at": at.astimezone(UTC).isoformat(),
    }
