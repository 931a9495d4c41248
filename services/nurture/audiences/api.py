"""Admin API routes for retargeting audiences, their members, change log, counts and destinations."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import StreamingResponse

from services.admin.api import ERRORS, AdminDep, SessionDep
from services.nurture.audiences import membership, queries
from services.nurture.audiences.definition import AudienceDefinition
from services.nurture.audiences.exports import csv_lines
from services.nurture.audiences.repository import members_of
from services.nurture.audiences.schemas import (
    AudienceCreate,
    AudienceEdit,
    AudienceOut,
    ChangeOut,
    CountOut,
    DestinationCreate,
    DestinationOut,
    MemberOut,
)
from services.nurture.audiences.service import Changes, LiveAudience
from services.nurture.audiences.sync_repository import queue_members


def mask(credentials: dict[str, Any]) -> dict[str, str]:
    """Stored secrets are never returned: only their last 4 characters."""
    return {k: "…" + str(v)[-4:] if len(str(v)) > 8 else "…" for k, v in credentials.items()}


def destination_out(row: dict[str, Any]) -> DestinationOut:
    return DestinationOut(**(row | {"credentials": mask(row["credentials"])}))


def audiences_router() -> APIRouter:
    router = APIRouter(prefix="/api", dependencies=[AdminDep], responses=ERRORS, tags=["audiences"])

    async def found(session: SessionDep, audience_id: uuid.UUID) -> dict[str, Any]:
        row = await queries.get(session, audience_id)
        if row is None:
            raise HTTPException(404, f"no audience {audience_id}")
        return row

    @router.post("/audiences", status_code=201, response_model=AudienceOut)
    async def create(body: AudienceCreate, session: SessionDep) -> AudienceOut:
        """A new audience; its membership is backfilled from the current data by the nurture process."""
        definition = body.definition.model_dump(mode="json", by_alias=True)
        audience_id = await queries.create(session, body.name, body.description, definition)
        if audience_id is None:
            raise HTTPException(409, f"an audience named {body.name!r} exists")
        return AudienceOut(**await found(session, audience_id))

    @router.get("/audiences", response_model=list[AudienceOut])
    async def listing(session: SessionDep) -> list[AudienceOut]:
        return [AudienceOut(**row) for row in await queries.listing(session)]

    @router.get("/audiences/{audience_id}", response_model=AudienceOut)
    async def detail(audience_id: uuid.UUID, session: SessionDep) -> AudienceOut:
        return AudienceOut(**await found(session, audience_id))

    @router.patch("/audiences/{audience_id}", response_model=AudienceOut)
    async def edit(audience_id: uuid.UUID, body: AudienceEdit, session: SessionDep) -> AudienceOut:
        """A new definition is backfilled again: every lead is evaluated against it."""
        await found(session, audience_id)
        definition = None if body.definition is None else body.definition.model_dump(mode="json", by_alias=True)
        await queries.edit(session, audience_id, body.description, definition)
        return AudienceOut(**await found(session, audience_id))

    @router.delete("/audiences/{audience_id}", response_model=AudienceOut)
    async def archive(audience_id: uuid.UUID, session: SessionDep) -> AudienceOut:
        """Archive: every member leaves, and the removals go to every destination."""
        row = await found(session, audience_id)
        audience = LiveAudience(row["id"], row["name"], AudienceDefinition.model_validate(row["definition"]))
        leaving = await members_of(session, audience.name, None, 10_000_000)
        await queries.archive(session, audience_id)
        await membership.write(
            session, Changes(left=[(audience, lead) for lead in leaving]), datetime.now(UTC), "archived"
        )
        return AudienceOut(**await found(session, audience_id))

    @router.get("/audiences/{audience_id}/members", response_model=list[MemberOut])
    async def members(
        audience_id: uuid.UUID,
        session: SessionDep,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
        after: uuid.UUID | None = None,
    ) -> list[MemberOut]:
        """Current members in lead id order; page with `after` = the last lead id seen."""
        row = await found(session, audience_id)
        return [MemberOut(**m) for m in await queries.members(session, row["name"], limit, after)]

    @router.get("/audiences/{audience_id}/changes", response_model=list[ChangeOut])
    async def changes(
        audience_id: uuid.UUID, session: SessionDep, limit: Annotated[int, Query(ge=1, le=10_000)] = 100
    ) -> list[ChangeOut]:
        """Who entered and left, newest first."""
        await found(session, audience_id)
        return [ChangeOut(**c) for c in await queries.changes(session, audience_id, limit)]

    @router.get("/audiences/{audience_id}/counts", response_model=list[CountOut])
    async def counts(
        audience_id: uuid.UUID,
        session: SessionDep,
        bucket: Literal["minute", "hour", "day", "week"] = "day",
        days: Annotated[float, Query(gt=0, le=3650)] = 30,
    ) -> list[CountOut]:
        """Entered, left and members per bucket over the last `days`."""
        await found(session, audience_id)
        since = datetime.now(UTC) - timedelta(days=days)
        return [CountOut(**c) for c in await queries.counts(session, audience_id, bucket, since)]

    @router.get("/audiences/{audience_id}/export.csv", response_class=StreamingResponse)
    async def export(audience_id: uuid.UUID, session: SessionDep, format: Literal["meta", "google"] = "meta") -> Any:  # noqa: A002
        """The current members as a customer-list file (SHA-256 hashes only) for Meta or Google Ads."""
        row = await found(session, audience_id)
        hashed = await queries.member_hashes(session, row["name"])
        filename = f"audience-{row['name'].replace(' ', '_')}-{format}.csv"
        return StreamingResponse(
            csv_lines(format, hashed),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    @router.post("/audiences/{audience_id}/destinations", status_code=201, response_model=DestinationOut)
    async def add_destination(audience_id: uuid.UUID, body: DestinationCreate, session: SessionDep) -> DestinationOut:
        """A push destination; the audience's current members are queued for it at once."""
        await found(session, audience_id)
        if body.kind == "webhook" and not await queries.endpoint_active(session, uuid.UUID(body.config["endpoint_id"])):
            raise HTTPException(400, "no active webhook endpoint with this id")
        destination_id = await queries.add_destination(
            session, audience_id, body.kind, body.name, body.config, body.credentials
        )
        await queue_members(session, destination_id)
        return destination_out((await queries.destinations(session, audience_id, destination_id))[0])

    @router.get("/audiences/{audience_id}/destinations", response_model=list[DestinationOut])
    async def list_destinations(audience_id: uuid.UUID, session: SessionDep) -> list[DestinationOut]:
        """Each destination's sync status, last error, pending changes and counts pushed and removed."""
        await found(session, audience_id)
        return [destination_out(d) for d in await queries.destinations(session, audience_id)]

    async def one_destination(session: SessionDep, audience_id: uuid.UUID, destination_id: uuid.UUID) -> None:
        if not await queries.destinations(session, audience_id, destination_id):
            raise HTTPException(404, f"no destination {destination_id} for audience {audience_id}")

    @router.post("/audiences/{audience_id}/destinations/{destination_id}/retry", response_model=DestinationOut)
    async def retry(audience_id: uuid.UUID, destination_id: uuid.UUID, session: SessionDep) -> DestinationOut:
        """Try a failed destination now instead of after its backoff."""
        await one_destination(session, audience_id, destination_id)
        await queries.retry_now(session, destination_id)
        return destination_out((await queries.destinations(session, audience_id, destination_id))[0])

    @router.delete("/audiences/{audience_id}/destinations/{destination_id}", response_model=DestinationOut)
    async def remove_destination(
        audience_id: uuid.UUID, destination_id: uuid.UUID, session: SessionDep
    ) -> DestinationOut:
        """Stop syncing to the destination (what it holds stays there)."""
        await one_destination(session, audience_id, destination_id)
        await queries.remove_destination(session, destination_id)
        return destination_out((await queries.destinations(session, audience_id, destination_id))[0])

    return router
