"""What the nurture consumer does with lead changes: enroll, wake and exit leads in sequences.

It reads `lead-changes` (scores, stages and each human track event as `lead.activity`, all keyed by
lead, so one lead's messages come in order to one consumer). Per batch: the leads' active
enrollments are locked; each message may exit an enrollment (an exit rule), wake one waiting for an
event, or enroll the lead in a sequence whose trigger it matches (re-entry policy permitting). The
steps themselves run in the scheduler (services/nurture/sequences/scheduler.py), which picks up a new
enrollment's first step at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from aiokafka import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncSession

from services.commerce.handlers import apply_cart_events
from services.nurture.audiences.handlers import on_lead_changes
from services.nurture.sequences import repository
from services.nurture.sequences.definition import WaitForEvent
from services.nurture.sequences.repository import ActiveEnrollment, NewEnrollment, SequenceCache
from services.nurture.sequences.service import exit_reason, may_enter, triggered, wakes
from services.referrals.handlers import apply_referrals
from shared.events import LeadActivity, LeadChange, decode_lead_change
from shared.kafka import Topics
from shared.runner import Outgoing


def _trigger_context(message: LeadChange) -> dict[str, Any]:
    """What a step may use of the message that enrolled the lead (e.g. the cart of a checkout)."""
    context: dict[str, Any] = {"trigger": message.type, "at": message.occurred_at.isoformat()}
    if isinstance(message, LeadActivity):
        context |= {"event": message.name, "properties": message.properties}
    return context


class NurtureHandler:
    name = "nurture"

    def __init__(self, sequences: SequenceCache | None = None, topics: Topics | None = None) -> None:
        self.sequences = sequences or SequenceCache()
        self.names = topics

    def topics(self, topics: Topics) -> list[str]:
        self.names = self.names or topics  # where referral events go: the runner's prefix unless given
        return [topics.lead_changes]

    def decode(self, record: ConsumerRecord) -> LeadChange:
        return decode_lead_change(record.value)

    async def apply(self, session: AsyncSession, items: Sequence[LeadChange]) -> list[Outgoing]:
        await apply_cart_events(session, items)
        await on_lead_changes(session, items, self.sequences)  # retargeting audiences, after the carts' state
        outgoing = await apply_referrals(session, items, self.names or Topics(""))
        await self._sequences(session, items)
        return outgoing

    async def _sequences(self, session: AsyncSession, items: Sequence[LeadChange]) -> None:
        live = await self.sequences.get(session)
        leads = {m.lead_id for m in items}
        active = await repository.lock_active(session, leads)
        if not live and not active:
            return
        by_lead: dict[uuid.UUID, list[ActiveEnrollment]] = {}
        for enrollment in active:
            by_lead.setdefault(enrollment.lead_id, []).append(enrollment)
        found = await repository.definitions(session, {(e.sequence_id, e.version) for e in active})
        definitions = {key: value[0] for key, value in found.items()}
        definitions |= {(s.id, s.version): s.definition for s in live}
        counts = await repository.enrollment_counts(session, leads) if live else {}
        now = datetime.now(UTC)
        new: list[NewEnrollment] = []
        ended: dict[uuid.UUID, tuple[str, str | None]] = {}
        woken: list[tuple[uuid.UUID, int | None, int]] = []
        for message in items:
            for enrollment in by_lead.get(message.lead_id, []):
                if enrollment.id in ended:
                    continue
                definition = definitions[(enrollment.sequence_id, enrollment.version)]
                reason = exit_reason(definition.exit, message)
                if reason is not None:
                    ended[enrollment.id] = ("exited", reason)
                    continue
                waiting = enrollment.waiting
                if waiting is not None and wakes(waiting, message):
                    step = definition.steps[waiting["step"]]
                    target = definition.after(
                        waiting["step"], step.on_event if isinstance(step, WaitForEvent) else None
                    )
                    woken.append((enrollment.id, target, enrollment.steps_taken))
                    by_lead[message.lead_id] = [
                        e if e.id != enrollment.id else _no_longer_waiting(e) for e in by_lead[message.lead_id]
                    ]
            for sequence in live:
                if not triggered(sequence.definition.trigger, message):
                    continue
                active_n, ever = counts.get((message.lead_id, sequence.id), (0, 0))
                if not may_enter(sequence.definition.reentry, active_n, ever):
                    continue
                enrollment_id = uuid.uuid4()
                new.append(
                    NewEnrollment(
                        enrollment_id, sequence.id, sequence.version, message.lead_id, message.event_id,
                        _trigger_context(message), now,
                    )
                )  # fmt: skip
                counts[(message.lead_id, sequence.id)] = (active_n + 1, ever + 1)
                by_lead.setdefault(message.lead_id, []).append(
                    ActiveEnrollment(enrollment_id, sequence.id, sequence.version, message.lead_id, 0, 0, None, {})
                )
        created = set(await repository.enroll(session, new))
        await repository.finish(
            session, [(e, status, reason) for e, (status, reason) in ended.items() if e not in _lost(new, created)]
        )
        moves = [w for w in woken if w[0] not in ended]
        await repository.cancel_scheduled(session, [w[0] for w in moves], kind="timeout")
        await repository.move(session, [(e, target, taken, None) for e, target, taken in moves])
        await repository.schedule(session, [(e, target, "step", now) for e, target, _ in moves if target is not None])
        await repository.finish(session, [(e, "completed", None) for e, target, _ in moves if target is None])
        await repository.log(session, [(e, target, "event_arrived", {}) for e, target, _ in moves])


def _no_longer_waiting(e: ActiveEnrollment) -> ActiveEnrollment:
    return ActiveEnrollment(e.id, e.sequence_id, e.version, e.lead_id, e.step_index, e.steps_taken, None, e.context)


def _lost(new: list[NewEnrollment], created: set[uuid.UUID]) -> set[uuid.UUID]:
    """Enrollments of this batch that already existed (a redelivered trigger): nothing to end."""
    return {n.id for n in new} - created
