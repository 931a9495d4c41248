"""Admin routes of scoring: a lead's ledger, sales decisions, rule sets, rescores and dry runs.

A sales decision is not written here: it is published as a `funnelstream.sales_decision` track event on
the lead's partition, so the scoring consumer applies it in order with the lead's other events (and a
rebuild from history replays it). The route waits a few seconds for it to be applied.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from aiokafka import AIOKafkaProducer
from fastapi import APIRouter, Body, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.admin import scoring_repository as repo
from services.admin import scoring_service as svc
from services.admin.api import ERRORS, AdminDep, SessionDep, VersionPath, lead_detail
from services.admin.schemas import Problem
from services.admin.scoring_schemas import (
    Activate,
    DecisionAccepted,
    DryRunOut,
    DryRunRequest,
    LeadDetail,
    LedgerPage,
    RescoreJobOut,
    RuleSetCreate,
    RuleSetOut,
    RuleSetSummary,
    SalesDecision,
    Window,
)
from services.scoring import rulebook
from services.scoring.engine import Scorer
from services.scoring.repository import history
from services.scoring.rulebook import RuleSetRow
from shared.events import TrackedEvent
from shared.kafka import Topics
from shared.settings import Settings

log = logging.getLogger(__name__)

APPLY_WAIT_SECONDS = 5.0
PUBLISH_TIMEOUT_SECONDS = 5.0
DRY_RUN_CHUNK = 500  # leads per query: bounds the history held in memory at once
DRY_RUN_CAP = 100_000


def rule_set_out(row: RuleSetRow) -> RuleSetOut:
    return RuleSetOut.model_validate(row, from_attributes=True)


async def publish(producer: AIOKafkaProducer, topic: str, event: TrackedEvent) -> None:
    """Send keyed by the lead's key (its partition, in order with its events); 503 if not acknowledged."""
    try:
        async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
            sent = await producer.send(topic, key=event.lead_key.encode(), value=event.to_bytes())
            await sent
    except Exception as exc:  # noqa: BLE001 - not acknowledged means not decided: the caller must retry
        log.warning("publishing sales decision %s failed: %s: %s", event.event_id, type(exc).__name__, exc)
        raise HTTPException(503, "event store unavailable, retry later", headers={"Retry-After": "5"}) from None


async def applied(maker: async_sessionmaker[AsyncSession], event_id: uuid.UUID, seconds: float) -> bool:
    """Wait up to `seconds` for scoring to apply the event; one short transaction per look."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        async with maker() as session:
            if await repo.event_applied(session, event_id):
                return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.05)


def scoring_router(settings: Settings) -> APIRouter:
    topics = Topics(settings.topic_prefix)
    router = APIRouter(prefix="/api", dependencies=[AdminDep], responses=ERRORS)

    # -- leads ------------------------------------------------------------------------------------

    @router.get("/leads/{user_id}/ledger", response_model=LedgerPage, tags=["leads"])
    async def lead_ledger(
        user_id: str,
        session: SessionDep,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        after: Annotated[str | None, Query(max_length=500, description="`next` of the previous page")] = None,
    ) -> LedgerPage:
        """Every ledger entry of the lead, oldest first, and the sum check: `fit` entries add up to the
        lead's fit, all others (behaviour, inactivity, decay) to its engagement as of `engagement_at`."""
        lead_id = await repo.lead_id_of_user(session, user_id)
        found = await repo.lead_row(session, lead_id) if lead_id is not None else None
        if found is None:
            raise HTTPException(404, f"no lead with user id {user_id!r}")
        row = found[0]
        cursor = svc.decode_cursor(after, datetime, int) if after is not None else None
        entries = await repo.ledger_page(session, row.lead_id, cursor, limit)
        page = entries[:limit]
        more = len(entries) > limit
        return LedgerPage(
            entries=[svc.ledger_entry(e) for e in page],
            next=svc.encode_cursor(page[-1].occurred_at.isoformat(), page[-1].id) if more else None,
            totals=svc.ledger_totals(row, *await repo.ledger_sums(session, row.lead_id)),
        )

    @router.post(
        "/leads/{user_id}/stage",
        response_model=LeadDetail,
        responses={
            202: {"model": DecisionAccepted, "description": "Published, not applied within 5 s yet"},
            503: {"model": Problem, "description": "The broker did not acknowledge in time; retry"},
        },
        tags=["leads"],
    )
    async def sales_decision(user_id: str, body: SalesDecision, request: Request) -> LeadDetail | JSONResponse:
        """A sales decision: `accept` (default target: the next stage only sales enters, e.g. sal), `reject`
        (recycled one stage back, or to `stage`; no automatic re-entry for the rule set's recycle_days) or
        `set`, with reason, BANT and actor kept in the stage history. 200 with the lead once applied."""
        maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
        async with maker() as session, session.begin():
            lead_id = await repo.lead_id_of_user(session, user_id)
            found = await repo.lead_row(session, lead_id) if lead_id is not None else None
            if found is None:
                raise HTTPException(404, f"no lead with user id {user_id!r}")
            scorer = await repo.active_scorer(session)
            properties = svc.decision_properties(scorer.rules, found[0].stages, body)
        event = svc.decision_event(user_id, properties, datetime.now(UTC))
        await publish(request.app.state.producer, topics.events, event)
        if await applied(maker, event.event_id, APPLY_WAIT_SECONDS):
            async with maker() as session, session.begin():
                detail = await lead_detail(session, user_id)
            if detail is not None:
                return detail
        return JSONResponse(DecisionAccepted(event_id=event.event_id).model_dump(mode="json"), status_code=202)

    # -- rule sets and rescores -------------------------------------------------------------------

    @router.get("/scoring/rule-sets", response_model=list[RuleSetSummary], tags=["scoring"])
    async def list_rule_sets(session: SessionDep) -> list[RuleSetSummary]:
        """Every rule-set version, newest first, with its status: draft, active or retired."""
        await rulebook.active(session)  # the shipped defaults become version 1 on first use
        return [RuleSetSummary.model_validate(r, from_attributes=True) for r in await rulebook.all_versions(session)]

    @router.get("/scoring/rule-sets/active", response_model=RuleSetOut, tags=["scoring"])
    async def active_rule_set(session: SessionDep) -> RuleSetOut:
        """The rule set scoring uses now."""
        return rule_set_out(await rulebook.active(session))

    @router.get("/scoring/rule-sets/{version}", response_model=RuleSetOut, tags=["scoring"])
    async def get_rule_set(version: VersionPath, session: SessionDep) -> RuleSetOut:
        """One rule-set version with its rules."""
        row = await rulebook.get(session, version)
        if row is None:
            raise HTTPException(404, f"no rule set version {version}")
        return rule_set_out(row)

    @router.post("/scoring/rule-sets", status_code=201, response_model=RuleSetOut, tags=["scoring"])
    async def create_rule_set(body: RuleSetCreate, session: SessionDep) -> RuleSetOut:
        """Store rules as a new draft version (validated; a 400 names the field path). Try it with a dry
        run, then activate it."""
        return rule_set_out(await rulebook.add(session, body.rules, body.note))

    @router.post(
        "/scoring/rule-sets/{version}/activate",
        status_code=202,
        response_model=RescoreJobOut,
        responses={409: {"model": Problem, "description": "The version is already active"}},
        tags=["scoring"],
    )
    async def activate_rule_set(
        version: VersionPath, session: SessionDep, body: Annotated[Activate | None, Body()] = None
    ) -> RescoreJobOut:
        """Make a version the active one and start a rescore job: every lead is rebuilt from its history
        under it. Events scored meanwhile use the new rules already. Follow the job at /scoring/rescores/{id}."""
        row = await rulebook.get(session, version)
        if row is None:
            raise HTTPException(404, f"no rule set version {version}")
        if row.status == "active":
            raise HTTPException(409, f"rule set version {version} is already active")
        await rulebook.activate(session, version)
        job = await repo.add_rescore_job(session, version, body.emit_changes if body else False)
        return RescoreJobOut.model_validate(job)

    @router.get("/scoring/rescores/{job_id}", response_model=RescoreJobOut, tags=["scoring"])
    async def get_rescore(job_id: uuid.UUID, session: SessionDep) -> RescoreJobOut:
        """A rescore job's progress: status, leads done of total, and its report."""
        job = await repo.rescore_job(session, job_id)
        if job is None:
            raise HTTPException(404, f"no rescore job {job_id}")
        return RescoreJobOut.model_validate(job)

    # -- dry run ----------------------------------------------------------------------------------

    @router.post("/scoring/dry-run", response_model=DryRunOut, tags=["scoring"])
    async def dry_run(body: DryRunRequest, session: SessionDep) -> DryRunOut:
        """With these rules, who would have entered `stage` (or a later stage) in the last `days` days?
        Replays every live lead with events in the window from its history, under the given rules and
        the active ones; writes nothing. At most 100,000 leads are replayed (`capped` says if more had
        events)."""
        if body.rules is not None and body.version is not None:
            raise svc.bad("version", "give rules or version, not both")
        active = await repo.active_scorer(session)
        tried: Scorer = active
        version: int | None = active.version
        if body.rules is not None:
            tried, version = Scorer(body.rules), None
        elif body.version is not None and body.version != active.version:
            row = await rulebook.get(session, body.version)
            if row is None:
                raise HTTPException(404, f"no rule set version {body.version}")
            tried, version = rulebook.scorer_of(row), row.version
        model = svc.funnel_model(tried.rules, body.model)
        svc.check_stage(model, body.stage)
        compare: Scorer | None = active
        active_model = active.rules.model(model.name)
        if active_model is None or body.stage not in [s.name for s in active_model.stages]:
            compare = None
        until = datetime.now(UTC)
        tally = svc.Tally(model.name, body.stage, until - timedelta(days=body.days), until)
        after: uuid.UUID | None = None
        while tally.replayed < DRY_RUN_CAP:
            rows = await repo.leads_active_since(session, tally.since, after, DRY_RUN_CHUNK)
            rows = rows[: DRY_RUN_CAP - tally.replayed]
            if not rows:
                break
            events = await history(session, [r.lead_id for r in rows])
            # Replays are CPU work: a thread keeps this worker answering other requests meanwhile.
            await asyncio.to_thread(svc.replay_chunk, tried, compare, tally, rows, events)
            after = rows[-1].lead_id
        capped = tally.replayed >= DRY_RUN_CAP and bool(await repo.leads_active_since(session, tally.since, after, 1))
        return DryRunOut(
            count=tally.count,
            leads=tally.leads,
            compared_with_active=tally.compared if compare is not None else None,
            leads_replayed=tally.replayed,
            capped=capped,
            cap=DRY_RUN_CAP,
            window=Window(days=body.days, since=tally.since, until=tally.until),
            model=model.name,
            stage=body.stage,
            rule_set_version=version,
        )

    return router
