"""The durable scheduler: runs due steps of enrollments, shared by every nurture process.

Per round, in one transaction: due rows and their enrollments are locked with SKIP LOCKED (another
process takes the others), each enrollment runs from its due step until it waits, is deferred or
ends, the next due rows are written and the done ones marked. Emails go out through the delivery
module's durable claim keyed by (enrollment, step count), so a round that is cut short and runs again
never sends a second copy. Waits survive restarts because they are rows, not timers.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.nurture.experiments import repository as experiments
from services.nurture.experiments.routing import Choice, choose
from services.nurture.sequences import repository
from services.nurture.sequences.definition import (
    Branch,
    CallWebhook,
    Definition,
    SendEmail,
    Split,
    UpdateAudience,
    Wait,
)
from services.nurture.sequences.repository import DueStep, NewEnrollment, SequenceCache
from services.nurture.sequences.service import LeadView, branch_holds, may_enter
from services.nurture.sequences.timing import SendPolicy, next_send_time, zone
from shared import outbox
from shared.events import derived_id

log = logging.getLogger(__name__)
MAX_CHAIN = 25  # steps one enrollment may run in one round (a branch loop cannot spin forever)


@dataclass(frozen=True)
class EmailJob:
    """One email step ready to go (consent checked, template rendered by the messenger)."""

    send_key: str
    enrollment_id: uuid.UUID
    step_index: int
    lead: LeadView
    template_id: str
    message_class: str
    topic: str | None
    context: dict[str, Any]


class Messenger(Protocol):
    """Consent, rendering and delivery, as the scheduler needs them."""

    async def allowed(
        self, session: AsyncSession, lead: LeadView, message_class: str, topic: str | None
    ) -> tuple[bool, str]: ...

    async def send(self, session: AsyncSession, jobs: list[EmailJob]) -> dict[str, str]:
        """Send (each at most once per send_key); returns send_key → outcome (sent, failed: …, …)."""
        ...

    def timezone_of(self, lead: LeadView) -> str | None: ...


@dataclass
class Round:
    """What one scheduler round writes."""

    done: list[int] = field(default_factory=list)
    moves: list[tuple[uuid.UUID, int | None, int, dict[str, Any] | None]] = field(default_factory=list)
    schedule: list[tuple[uuid.UUID, int, str, datetime]] = field(default_factory=list)
    ended: list[tuple[uuid.UUID, str, str | None]] = field(default_factory=list)
    log: list[tuple[uuid.UUID, int | None, str, dict[str, Any]]] = field(default_factory=list)
    jobs: list[EmailJob] = field(default_factory=list)
    marketing: dict[uuid.UUID, datetime] = field(default_factory=dict)
    enroll: list[NewEnrollment] = field(default_factory=list)
    audiences: list[tuple[str, uuid.UUID, bool, uuid.UUID, int]] = field(default_factory=list)
    exposures: list[experiments.Exposure] = field(default_factory=list)


class Scheduler:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        messenger: Messenger,
        *,
        policy: SendPolicy | None = None,
        batch: int = 500,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.messenger = messenger
        self.policy = policy or SendPolicy()
        self.batch = batch
        self.sequences = SequenceCache()

    async def run_due(self, now: datetime | None = None) -> int:
        """One round: every step due by `now` that no other process holds. Returns the rows handled."""
        now = now or datetime.now(UTC)
        async with self.sessionmaker() as session, session.begin():
            due = await repository.claim_due(session, now, self.batch)
            if not due:
                return 0
            keys = {(d.enrollment.sequence_id, d.enrollment.version) for d in due}
            found = await repository.definitions(session, keys)
            views = await repository.lead_views(session, {d.enrollment.lead_id for d in due})
            last = await repository.last_marketing(session, views)
            work = Round()
            for d in due:
                definition, message_class, topic, exempt, _ = found[(d.enrollment.sequence_id, d.enrollment.version)]
                view = views.get(d.enrollment.lead_id)
                if view is None:  # erased or merged away
                    work.done.append(d.row_id)
                    work.ended.append((d.enrollment.id, "exited", "lead no longer exists"))
                    continue
                await self._run(session, d, definition, message_class, topic, exempt, view, last, now, work)
            outcomes = await self.messenger.send(session, work.jobs) if work.jobs else {}
            for job in work.jobs:
                work.log.append((job.enrollment_id, job.step_index, "email", {"outcome": outcomes.get(job.send_key)}))
            await experiments.record(session, work.exposures)
            await repository.done(session, work.done)
            await repository.move(session, work.moves)
            await repository.schedule(session, work.schedule)
            await repository.log(session, work.log)  # before finish(), which logs the endings after
            await repository.finish(session, work.ended)
            await repository.marketing_sent(session, work.marketing)
            await self._update_audiences(session, work, now)
            await repository.enroll(session, work.enroll)
            return len(due)

    async def _run(
        self, session: AsyncSession, d: DueStep, definition: Definition, message_class: str, topic: str | None,
        exempt: bool, lead: LeadView, last: dict[uuid.UUID, datetime], now: datetime, work: Round,
    ) -> None:  # fmt: skip
        e = d.enrollment
        work.done.append(d.row_id)
        index: int | None = d.step_index
        waiting = e.waiting
        if d.kind == "timeout":
            if not waiting or waiting.get("step") != d.step_index:
                return  # the awaited event came first
            step = definition.steps[d.step_index]
            index = definition.after(d.step_index, getattr(step, "on_timeout", None))
            waiting = None
            work.log.append((e.id, d.step_index, "timeout", {}))
            if index is None:
                work.moves.append((e.id, None, e.steps_taken, None))
                work.ended.append(
                    (e.id, "exited" if getattr(step, "on_timeout", None) == "exit" else "completed", None)
                )
                return
        at = d.due_at  # waits count from when the step was due, not from when it ran
        taken = e.steps_taken
        for _ in range(MAX_CHAIN):
            if index is None or index >= len(definition.steps):
                index = None
                work.ended.append((e.id, "completed", None))
                break
            step = definition.steps[index]
            if isinstance(step, Wait):
                target = definition.after(index, step.next)
                if target is None:
                    target = len(definition.steps)  # a last wait: the enrollment ends when it is over
                work.schedule.append((e.id, target, "step", at + step.duration))
                index, taken = target, taken + 1
                break
            if step.type == "wait_for_event":
                waiting = {"step": index, "event": step.event, "conditions": [c.model_dump() for c in step.conditions]}
                work.schedule.append((e.id, index, "timeout", at + step.timeout))
                work.log.append(
                    (e.id, index, "waiting", {"event": step.event, "until": (at + step.timeout).isoformat()})
                )
                taken += 1
                break
            if isinstance(step, Branch):
                names = {t.has_event for t in step.all if t.has_event}
                seen = {n for n in names if await repository.has_event(session, lead.lead_id, n)}
                taken_branch = branch_holds(step, lead, seen.__contains__)
                work.log.append((e.id, index, "branch", {"then": taken_branch}))
                index = definition.index(step.then) if taken_branch else definition.after(index, step.otherwise)
                taken += 1
                continue
            if isinstance(step, Split):
                choice = await choose(session, e.sequence_id, step, lead.lead_id)
                work.exposures += choice.exposed(lead.lead_id, e.id, f"{e.id}:{taken}", now)
                work.log.append((e.id, index, "split", {"path": choice.variant}))
                index, taken = definition.after(index, choice.next), taken + 1
                continue
            if isinstance(step, SendEmail):
                arm: Choice | None
                queued, arm = len(work.jobs), None
                if step.variants:  # an A/B send: this lead's variant's template
                    arm = await choose(session, e.sequence_id, step, lead.lead_id)
                    step = step.model_copy(update={"template_id": arm.template_id})
                deferred = await self._email(session, e.id, index, taken, step, message_class, topic, exempt, lead,
                                             last, now, e.context, work)  # fmt: skip
                if arm is not None and len(work.jobs) > queued:
                    work.log.append((e.id, index, "variant", {"variant": arm.variant}))
                    work.exposures += arm.exposed(lead.lead_id, e.id, work.jobs[-1].send_key, now)
                if deferred is not None:
                    work.schedule.append((e.id, index, "step", deferred))
                    work.log.append((e.id, index, "deferred", {"until": deferred.isoformat()}))
                    break
                taken += 1
                index = definition.after(index, step.next)
                continue
            if isinstance(step, UpdateAudience):
                work.audiences.append((step.audience, lead.lead_id, step.action == "add", e.id, taken))
                work.log.append((e.id, index, "audience", {"audience": step.audience, "action": step.action}))
                taken += 1
                index = definition.after(index, step.next)
                continue
            if isinstance(step, CallWebhook):
                payload = {"enrollment_id": str(e.id), "sequence_id": str(e.sequence_id), "step": step.id,
                           "lead_id": str(lead.lead_id), "user_id": lead.user_id, "email": lead.email,
                           "traits": lead.traits, "context": e.context}  # fmt: skip
                await outbox.enqueue_to(
                    session, uuid.UUID(step.endpoint_id), "sequence.webhook", payload, derived_id(e.id, taken)
                )
                work.log.append((e.id, index, "webhook", {"endpoint_id": step.endpoint_id}))
                taken += 1
                index = definition.after(index, step.next)
                continue
        work.moves.append((e.id, index, taken, waiting))

    async def _email(
        self, session: AsyncSession, enrollment_id: uuid.UUID, index: int, taken: int, step: SendEmail,
        message_class: str, topic: str | None, exempt: bool, lead: LeadView, last: dict[uuid.UUID, datetime],
        now: datetime, context: dict[str, Any], work: Round,
    ) -> datetime | None:  # fmt: skip
        """Queue the email, skip it (no consent: accounted for in the log), or say until when to defer it."""
        allowed, reason = await self.messenger.allowed(session, lead, message_class, topic)
        if not allowed:
            work.log.append((enrollment_id, index, "skipped", {"reason": reason}))
            return None
        if message_class == "marketing":
            tz = zone(self.messenger.timezone_of(lead))
            when = next_send_time(now, tz, self.policy, last_marketing_at=last.get(lead.lead_id), capped=not exempt)
            if when > now + timedelta(seconds=1):
                return when
            last[lead.lead_id] = now
            work.marketing[lead.lead_id] = now
        work.jobs.append(
            EmailJob(f"{enrollment_id}:{taken}", enrollment_id, index, lead, step.template_id, message_class, topic,
                     context)
        )  # fmt: skip
        return None

    async def _update_audiences(self, session: AsyncSession, work: Round, now: datetime) -> None:
        """The round's audience changes in one statement each way; leads who joined an audience enroll in
        sequences it triggers (re-entry policy permitting)."""
        if not work.audiences:
            return
        joined = await repository.join_audiences(session, [(a, lead) for a, lead, add, _, _ in work.audiences if add])
        await repository.leave_audiences(session, [(a, lead) for a, lead, add, _, _ in work.audiences if not add])
        if not joined:
            return
        live = [
            s for s in await self.sequences.get(session)
            if s.definition.trigger.kind == "audience_joined"
        ]  # fmt: skip
        if not live:
            return
        counts = await repository.enrollment_counts(session, {lead for _, lead in joined})
        for audience, lead, add, cause, taken in work.audiences:
            if not add or (audience, lead) not in joined:
                continue
            for sequence in live:
                trigger = sequence.definition.trigger
                if getattr(trigger, "audience", None) != audience:
                    continue
                active_n, ever = counts.get((lead, sequence.id), (0, 0))
                if may_enter(sequence.definition.reentry, active_n, ever):
                    counts[(lead, sequence.id)] = (active_n + 1, ever + 1)
                    key = derived_id(cause, taken, audience)
                    context = {"trigger": "audience_joined", "audience": audience}
                    work.enroll.append(
                        NewEnrollment(uuid.uuid4(), sequence.id, sequence.version, lead, key, context, now)
                    )


class DueWork(Protocol):
    """A runner of durable due rows (sequence steps, cart reminders): one round, how many it handled."""

    async def run_due(self) -> int: ...


async def scheduler_loop(scheduler: DueWork, poll_seconds: float = 0.25, what: str = "scheduler") -> None:
    """Run due rounds until cancelled; a round that finds work is followed at once by the next."""
    while True:
        try:
            handled = await scheduler.run_due()
        except Exception:
            log.exception("%s round failed; retrying", what)
            handled = 0
            await asyncio.sleep(poll_seconds * 4)
        if not handled:
            await asyncio.sleep(poll_seconds)
