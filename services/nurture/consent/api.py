"""Consent: admin routes (subscriptions, imports, export and erasure) and public pages (unsubscribe,
preferences, bounce and complaint feedback).

Leads are named by an identity in the path: the user id by default, or `?by=email` / `?by=anonymous`
(people known only by an address, such as imported contacts, have no user id).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from services.admin.api import ERRORS, AdminDep, get_session
from services.nurture.consent import import_writer, imports, privacy, repository, settings_repository
from services.nurture.consent.changes import lead_ref
from services.nurture.consent.feedback_api import feedback_router
from services.nurture.consent.pages_api import pages_router
from services.nurture.consent.schemas import (
    ConsentUpdate,
    ConsentUpdated,
    ConsentView,
    DecisionOut,
    ErasureResult,
    IdentityBy,
    ImportResult,
    RejectedRow,
    SourceConsentSettingsIn,
    SourceConsentSettingsOut,
    SubscriptionOut,
    TopicIn,
    TopicOut,
)
from services.nurture.consent.service import GLOBAL, normalize_identity
from shared.consent_models import SourceConsentSettings

# Committed before the answer is sent (scope "function"): a client that got 200 for an erasure or an
# import can rely on it, and a failed commit is a 500, not a 200 followed by a rollback.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
ByQuery = Annotated[IdentityBy, Query(description="Which identity the path names: user id, email or anonymous id")]
CSV_BODY: dict[str, Any] = {
    "requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string", "format": "binary"}}}}
}


async def person_or_404(session: SessionDep, by: str, value: str, *, lock: bool = False) -> privacy.Person:
    person = await privacy.find_person(session, by, value, lock=lock)
    if person is not None:
        return person
    if await repository.erased(session, [(by, value)]):
        raise HTTPException(410, f"the person with {by} {value!r} was erased")
    raise HTTPException(404, f"no lead with {by} {value!r}")


async def consent_view(session: SessionDep, person: privacy.Person) -> ConsentView:
    lead = await lead_ref(session, person.live)
    rows = await repository.person_subscriptions(session, person.live)
    state = repository.state_of(rows)
    effective = {GLOBAL: state.everything.status} if state.everything else {}
    effective |= {topic: c.status for topic, c in sorted(state.topics.items())}
    may_send = {}
    for kind in ("transactional", "marketing"):
        decision = await repository.can_send(
            session, lead_id=person.live, email=None, kind=kind, topic=None, source_id=None
        )
        may_send[kind] = DecisionOut(allowed=decision.allowed, reason=decision.reason)
    return ConsentView(
        lead_id=person.live,
        user_id=lead.user_id if lead else None,
        emails=person.emails,
        effective=effective,
        may_send=may_send,
        subscriptions=[SubscriptionOut(**vars(r)) for r in rows],
        suppressions=await repository.suppressions_of(session, person.emails),
        history=await repository.consent_history(session, person.lead_ids),
    )


async def csv_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > imports.MAX_BYTES:
        raise HTTPException(413, f"file exceeds {imports.MAX_BYTES // (1024 * 1024)} MB")
    body = await request.body()
    if len(body) > imports.MAX_BYTES:
        raise HTTPException(413, f"file exceeds {imports.MAX_BYTES // (1024 * 1024)} MB")
    return body


def import_result(report: import_writer.ImportReport) -> ImportResult:
    data = vars(report) | {"rejected": [RejectedRow(row=r.row, reason=r.reason) for r in report.rejected]}
    return ImportResult(**data)


def consent_admin_router() -> APIRouter:
    router = APIRouter(prefix="/api", dependencies=[AdminDep], responses=ERRORS, tags=["consent"])

    @router.get("/leads/{identity}/consent", response_model=ConsentView)
    async def get_consent(identity: str, session: SessionDep, by: ByQuery = "user") -> ConsentView:
        """Subscriptions (of folded leads too), what may be sent now, suppressions and the full change history."""
        return await consent_view(session, await person_or_404(session, by, identity))

    @router.put("/leads/{identity}/consent", response_model=ConsentUpdated)
    async def put_consent(
        identity: str, body: ConsentUpdate, session: SessionDep, by: ByQuery = "user"
    ) -> ConsentUpdated:
        """Record consent per topic (`*`: everything) with what the person agreed to. An older statement than
        the stored one, or the same status again, changes nothing."""
        topics = [c.topic for c in body.changes]
        if len(set(topics)) != len(topics):
            raise HTTPException(400, "give each topic once")
        person = await person_or_404(session, by, identity)
        now = datetime.now(UTC)
        changes = [
            repository.StatusChange(
                person.live, c.topic, c.status, c.method, c.source, c.consent_text, c.ip, c.at or now, "admin-api"
            )
            for c in body.changes
        ]
        changed = await repository.set_statuses(session, changes)
        view = await consent_view(session, person)
        return ConsentUpdated(**view.model_dump(), changed=sorted(topic for _, topic in changed))

    @router.get("/leads/{identity}/export", tags=["privacy"])
    async def export_lead(identity: str, session: SessionDep, by: ByQuery = "user") -> JSONResponse:
        """Everything stored about the person as JSON (GDPR art. 15 and 20, CCPA): the lead rows, identities,
        and the rows of every table with a `lead_id`, plus suppressions, feedback and webhook deliveries."""
        person = await person_or_404(session, by, identity)
        data = await privacy.export_person(session, person, datetime.now(UTC))
        filename = f"lead-{person.live}.json"
        return JSONResponse(data, headers={"Content-Disposition": f'attachment; filename="{filename}"'})

    @router.delete("/leads/{identity}", response_model=ErasureResult, tags=["privacy"])
    async def erase_lead(identity: str, session: SessionDep, by: ByQuery = "user") -> ErasureResult:
        """Erase the person (GDPR art. 17, CCPA deletion): their rows everywhere, leaving only tombstones
        (hashes of their identities) so that no replayed event and no import brings them back."""
        person = await privacy.find_person(session, by, identity, lock=True)
        if person is None:
            if await repository.erased(session, [(by, normalize_identity(by, identity))]):
                return ErasureResult(erased=True, already=True)
            raise HTTPException(404, f"no lead with {by} {identity!r}")
        result = await privacy.erase_person(session, person, datetime.now(UTC))
        return ErasureResult(erased=True, **result)

    @router.get("/sources/{source_id}/consent-settings", response_model=SourceConsentSettingsOut, tags=["sources"])
    async def get_source_consent(source_id: uuid.UUID, session: SessionDep) -> SourceConsentSettingsOut:
        regime = await session.get(SourceConsentSettings, source_id)
        return SourceConsentSettingsOut(source_id=source_id, opt_out_regime=bool(regime and regime.opt_out_regime))

    @router.put("/sources/{source_id}/consent-settings", response_model=SourceConsentSettingsOut, tags=["sources"])
    async def put_source_consent(
        source_id: uuid.UUID, body: SourceConsentSettingsIn, session: SessionDep
    ) -> SourceConsentSettingsOut:
        """Opt-out regime on: leads of this source with an email but no consent record get marketing until
        they unsubscribe (where the law allows it, e.g. existing customers). Off (default): opt-in needed."""
        if not await settings_repository.set_opt_out_regime(session, source_id, body.opt_out_regime):
            raise HTTPException(404, f"no source {source_id}")
        return SourceConsentSettingsOut(source_id=source_id, opt_out_regime=body.opt_out_regime)

    @router.get("/consent-topics", response_model=list[TopicOut])
    async def list_topics(session: SessionDep) -> list[TopicOut]:
        """The topics of the preference page."""
        return [
            TopicOut(topic=t, label=label, description=d)
            for t, label, d in await settings_repository.list_topics(session)
        ]

    @router.put("/consent-topics/{topic}", response_model=TopicOut)
    async def put_topic(
        topic: Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_.-]{0,79}$", description="a-z, 0-9, _ . -")],
        body: TopicIn,
        session: SessionDep,
    ) -> TopicOut:
        """Add or rename a topic people can choose on the preference page."""
        await settings_repository.put_topic(session, topic, body.label, body.description)
        return TopicOut(topic=topic, label=body.label, description=body.description)

    @router.delete("/consent-topics/{topic}", status_code=204)
    async def delete_topic(topic: str, session: SessionDep) -> Response:
        """Remove a topic from the preference page; subscriptions to it are kept (consent records stay)."""
        if not await settings_repository.delete_topic(session, topic):
            raise HTTPException(404, f"no topic {topic!r}")
        return Response(status_code=204)

    @router.post("/contacts/import", response_model=ImportResult, openapi_extra=CSV_BODY)
    async def import_contacts(
        request: Request,
        session: SessionDep,
        dry_run: Annotated[bool, Query(description="Check every row and report; write nothing")] = False,
        source: Annotated[str, Query(max_length=200, description="Recorded as the consent's source")] = "csv-import",
    ) -> ImportResult:
        """Contacts with their consent from CSV (`text/csv`): columns `email` (required), `user_id`, `consent`
        (subscribed, unsubscribed, none), `consent_text` (required with subscribed), `consent_at`, `topics`,
        and traits (any other column). Creates or updates leads; rejected rows are listed with the reason."""
        try:
            parsed = imports.parse_contacts(await csv_body(request))
        except imports.CsvError as exc:
            raise HTTPException(400, str(exc)) from None
        now = datetime.now(UTC)
        report = await import_writer.import_contacts(session, parsed, dry_run=dry_run, now=now, source=source)
        return import_result(report)

    @router.post("/suppressions/import", response_model=ImportResult, openapi_extra=CSV_BODY)
    async def import_suppressions(
        request: Request,
        session: SessionDep,
        dry_run: Annotated[bool, Query(description="Check every row and report; write nothing")] = False,
        source: Annotated[
            str, Query(max_length=200, description="Recorded as the suppression's source")
        ] = "csv-import",
    ) -> ImportResult:
        """A suppression list from CSV: `email` (required), `reason` (bounced, complained, unsubscribed, manual;
        default manual), `at`. Bounced and complained stop all mail to the address, the others marketing."""
        try:
            parsed = imports.parse_suppressions(await csv_body(request))
        except imports.CsvError as exc:
            raise HTTPException(400, str(exc)) from None
        now = datetime.now(UTC)
        report = await import_writer.import_suppressions(session, parsed, dry_run=dry_run, now=now, source=source)
        return import_result(report)

    @router.delete("/suppressions/{email}", status_code=204)
    async def lift_suppression(email: str, session: SessionDep) -> Response:
        """Take an address off the suppression list (e.g. a mailbox that works again)."""
        if not await repository.unsuppress(session, email):
            raise HTTPException(404, f"{email!r} is not suppressed")
        return Response(status_code=204)

    return router


def consent_public_router() -> APIRouter:
    router = APIRouter(tags=["consent (public)"])
    router.include_router(pages_router())
    router.include_router(feedback_router())
    return router
