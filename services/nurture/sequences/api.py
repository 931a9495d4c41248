"""Admin API routes for nurture sequences and enrollments."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from services.admin.api import ERRORS, AdminDep, SessionDep
from services.nurture.sequences import queries
from services.nurture.sequences.definition import Definition
from services.nurture.sequences.schemas import (
    DryRun,
    DryRunOut,
    EnrollmentOut,
    SequenceCreate,
    SequenceEdit,
    SequenceOut,
    VersionOut,
)


def _enrollment(row: dict[str, Any], log: list[dict[str, Any]]) -> EnrollmentOut:
    definition = Definition.model_validate(row["definition"])
    index = row["step_index"]
    step = definition.steps[index].id if index is not None and index < len(definition.steps) else None
    # (an index past the last step: the enrollment waits out a final wait, then ends)
    return EnrollmentOut(
        id=row["id"],
        sequence_id=row["sequence_id"],
        sequence=row["sequence"],
        version=row["version"],
        lead_id=row["lead_id"],
        user_id=row["user_id"],
        status=row["status"],
        step=step,
        waiting_for=row["waiting"],
        next_due_at=row["next_due_at"],
        exit_reason=row["exit_reason"],
        entered_at=row["entered_at"],
        finished_at=row["finished_at"],
        log=log,
    )


def sequences_router() -> APIRouter:
    router = APIRouter(prefix="/api", dependencies=[AdminDep], responses=ERRORS, tags=["sequences"])

    async def detail(session: SessionDep, sequence_id: uuid.UUID) -> SequenceOut:
        found = await queries.get(session, sequence_id)
        if found is None:
            raise HTTPException(404, f"no sequence {sequence_id}")
        versions = await queries.versions(session, sequence_id)
        steps: dict[str, dict[str, int]] = {}
        definitions = {v["version"]: Definition.model_validate(v["definition"]) for v in versions}
        for (version, index), counts in (await queries.step_counts(session, sequence_id)).items():
            definition = definitions.get(version)
            if definition is None or index >= len(definition.steps):
                continue
            into = steps.setdefault(definition.steps[index].id, {})
            for key, n in counts.items():
                into[key] = into.get(key, 0) + n
        return SequenceOut(
            **found,
            enrollments=await queries.status_counts(session, sequence_id),
            steps=steps,
            versions=[VersionOut(**v) for v in versions],
        )

    @router.post("/sequences", status_code=201, response_model=SequenceOut)
    async def create(body: SequenceCreate, session: SessionDep) -> SequenceOut:
        """A draft sequence (version 1). Activate it to start enrolling leads."""
        sequence_id = await queries.create(
            session,
            name=body.name,
            description=body.description,
            message_class=body.message_class,
            topic=body.topic,
            exempt=body.exempt_from_cap,
            definition=body.definition,
        )
        if sequence_id is None:
            raise HTTPException(409, f"a sequence named {body.name!r} exists")
        return await detail(session, sequence_id)

    @router.get("/sequences", response_model=list[SequenceOut])
    async def list_sequences(session: SessionDep) -> list[SequenceOut]:
        return [await detail(session, row["id"]) for row in await queries.all_sequences(session)]

    @router.get("/sequences/{sequence_id}", response_model=SequenceOut)
    async def get_sequence(sequence_id: uuid.UUID, session: SessionDep) -> SequenceOut:
        """The sequence, its versions, enrollments per status and, per step, who is there and what happened."""
        return await detail(session, sequence_id)

    @router.put("/sequences/{sequence_id}", response_model=SequenceOut)
    async def edit(sequence_id: uuid.UUID, body: SequenceEdit, session: SessionDep) -> SequenceOut:
        """A new version; leads already inside keep the version they entered with."""
        if await queries.edit(session, sequence_id, body.definition, body.note) is None:
            raise HTTPException(404, f"no sequence {sequence_id}")
        return await detail(session, sequence_id)

    for action, status in (("activate", "active"), ("pause", "paused"), ("archive", "archived")):

        async def change(sequence_id: uuid.UUID, session: SessionDep, status: str = status) -> SequenceOut:
            if not await queries.set_status(session, sequence_id, status):
                raise HTTPException(404, f"no sequence {sequence_id}")
            return await detail(session, sequence_id)

        router.add_api_route(
            f"/sequences/{{sequence_id}}/{action}",
            change,
            methods=["POST"],
            response_model=SequenceOut,
            summary=f"{action.capitalize()} a sequence",
            description={
                "activate": "New leads matching the trigger enroll from now on.",
                "pause": "No new enrollments and no steps run; waits keep their place and resume on activate.",
                "archive": "Like pause, and hidden from the console's default list.",
            }[action],
        )

    @router.get("/sequences/{sequence_id}/enrollments", response_model=list[EnrollmentOut])
    async def sequence_enrollments(
        sequence_id: uuid.UUID,
        session: SessionDep,
        status: Annotated[str | None, Query(pattern="^(active|completed|exited)$")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[EnrollmentOut]:
        rows = await queries.enrollments(session, sequence_id=sequence_id, status=status, limit=limit)
        logs = await queries.enrollment_log(session, [r["id"] for r in rows])
        return [_enrollment(r, logs.get(r["id"], [])) for r in rows]

    @router.get("/leads/{user_id}/enrollments", response_model=list[EnrollmentOut])
    async def lead_enrollments(user_id: str, session: SessionDep) -> list[EnrollmentOut]:
        """Where the lead is in each sequence, what it waits for, and what was sent."""
        lead_id = await queries.lead_by_user(session, user_id)
        if lead_id is None:
            raise HTTPException(404, f"no lead with user id {user_id!r}")
        rows = await queries.enrollments(session, lead_id=lead_id, limit=1000)
        logs = await queries.enrollment_log(session, [r["id"] for r in rows])
        return [_enrollment(r, logs.get(r["id"], [])) for r in rows]

    @router.post("/sequences/{sequence_id}/dry-run", response_model=DryRunOut)
    async def dry_run(sequence_id: uuid.UUID, body: DryRun, session: SessionDep) -> DryRunOut:
        """How many leads would have entered over the last N days (with this or the current definition)."""
        definition = body.definition
        if definition is None:
            found = await queries.versions(session, sequence_id)
            if not found:
                raise HTTPException(404, f"no sequence {sequence_id}")
            definition = Definition.model_validate(found[0]["definition"])
        count, sample, note = await queries.dry_run(session, definition, datetime.now(UTC), body.days)
        return DryRunOut(trigger=definition.trigger.kind, days=body.days, leads=count, sample=sample, note=note)

    return router
