"""Admin API routes for email delivery: sends in doubt, the dev mailbox."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.admin.api import ERRORS, AdminDep, SessionDep
from services.admin.schemas import Problem
from services.nurture.delivery import mailbox, operators, repository
from services.nurture.delivery.mail_settings import InvalidMailSetting, resolve, validate
from services.nurture.delivery.mailer import make_mailer
from services.nurture.delivery.operators import ConsentCheck, SendConflict, SendNotFound
from services.nurture.delivery.schemas import (
    DropIn,
    EffectiveMailSettings,
    MailboxEntryOut,
    MailboxList,
    MailSettingsIn,
    MailSettingsOut,
    SendList,
    SendOut,
    SendResultOut,
    SendStatus,
    TestSendIn,
)
from services.nurture.delivery.service import SendOutcome
from shared.settings import NurtureSettings, SettingsError, load_settings

CONFLICT: dict[int | str, dict[str, Any]] = {409: {"model": Problem}}


@dataclass(frozen=True)
class Delivery:
    settings: NurtureSettings
    consent_check: ConsentCheck | None
    sessionmaker: async_sessionmaker[AsyncSession]


def _result(outcome: SendOutcome) -> SendResultOut:
    return SendResultOut(
        id=outcome.send_id,
        send_key=outcome.send_key,
        status=outcome.status,
        duplicate=outcome.duplicate,
        message_id=outcome.message_id,
        error=outcome.error,
        attempts=outcome.attempts,
    )


def _settings_out(source_id: uuid.UUID, row: dict[str, Any] | None, settings: NurtureSettings) -> MailSettingsOut:
    row = row or {}
    effective = resolve(row, settings)
    return MailSettingsOut(
        source_id=source_id,
        from_address=row.get("from_address"),
        reply_to=row.get("reply_to"),
        dkim_domain=row.get("dkim_domain"),
        dkim_selector=row.get("dkim_selector"),
        has_dkim_private_key=bool(row.get("dkim_private_key")),
        default_timezone=row.get("default_timezone"),
        updated_at=row.get("updated_at"),
        effective=EffectiveMailSettings(
            from_address=effective.from_address,
            reply_to=effective.reply_to,
            sender_domain=effective.sender_domain,
            dkim_domain=effective.dkim.domain if effective.dkim else None,
            dkim_selector=effective.dkim.selector if effective.dkim else None,
            default_timezone=effective.default_timezone,
        ),
    )


def get_delivery(request: Request) -> Delivery:
    """This router's settings, else `app.state.nurture_settings`, else the environment (read once)."""
    settings, consent_check = getattr(request.state, "delivery_config", (None, None))
    state = request.app.state
    resolved: NurtureSettings | None = settings or getattr(state, "nurture_settings", None)
    if resolved is None:
        try:
            resolved = load_settings(NurtureSettings)
        except SettingsError as exc:
            raise HTTPException(503, f"email delivery is not configured in this process: {exc}") from None
        state.nurture_settings = resolved
    check: ConsentCheck | None = consent_check or getattr(state, "consent_check", None)
    return Delivery(resolved, check, state.sessionmaker)


DeliveryDep = Annotated[Delivery, Depends(get_delivery)]


def delivery_router(settings: NurtureSettings | None = None, consent_check: ConsentCheck | None = None) -> APIRouter:
    """Routes under /api. Settings: `settings`, else `app.state.nurture_settings`, else the environment;
    the consent check for marketing resends: `consent_check`, else `app.state.consent_check`."""

    def configure(request: Request) -> None:
        request.state.delivery_config = (settings, consent_check)

    router = APIRouter(prefix="/api", dependencies=[AdminDep, Depends(configure)], responses=ERRORS, tags=["delivery"])

    @router.get("/sends", response_model=SendList)
    async def list_sends(
        session: SessionDep,
        status: Annotated[SendStatus | None, Query(description="e.g. unknown: sends awaiting a decision")] = None,
        lead: Annotated[uuid.UUID | None, Query(description="Only this lead's sends")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> SendList:
        """Email sends, newest first. `status=unknown` lists those whose process stopped mid-SMTP: check the
        mail server's log for their Message-ID, then resend or drop each."""
        rows = await repository.list_sends(session, status=status, lead_id=lead, limit=limit)
        return SendList(sends=[SendOut.model_validate(row) for row in rows])

    @router.get("/sends/{send_id}", response_model=SendOut)
    async def get_send(send_id: uuid.UUID, session: SessionDep) -> SendOut:
        found = await repository.get(session, send_id)
        if found is None:
            raise HTTPException(404, f"no send {send_id}")
        return SendOut.model_validate(found[0])

    @router.post("/sends/{send_id}/resend", response_model=SendResultOut, responses=CONFLICT)
    async def resend(send_id: uuid.UUID, d: DeliveryDep) -> SendResultOut:
        """Send an `unknown` or `failed` send's stored message again (same bytes and Message-ID) as a new send
        keyed `resend:<id>`; the old one becomes `dropped`. Repeating the call returns that new send."""
        mailer = make_mailer(d.settings)
        try:
            outcome = await operators.resend(d.sessionmaker, mailer, d.settings, send_id, consent_check=d.consent_check)
        except SendNotFound as exc:
            raise HTTPException(404, str(exc)) from None
        except SendConflict as exc:
            raise HTTPException(409, str(exc)) from None
        finally:
            await mailer.aclose()
        return _result(outcome)

    @router.post("/sends/{send_id}/drop", response_model=SendOut, responses=CONFLICT)
    async def drop(send_id: uuid.UUID, d: DeliveryDep, body: Annotated[DropIn | None, Body()] = None) -> SendOut:
        """Give up on an `unknown` or `failed` send; the reason is kept in its `note`."""
        try:
            row = await operators.drop(d.sessionmaker, send_id, body.reason if body else "")
        except SendNotFound as exc:
            raise HTTPException(404, str(exc)) from None
        except SendConflict as exc:
            raise HTTPException(409, str(exc)) from None
        return SendOut.model_validate(row)

    @router.post("/sends/test", response_model=SendResultOut)
    async def send_test(body: TestSendIn, d: DeliveryDep) -> SendResultOut:
        """Send a transactional test email through the configured SMTP server (or the dev mailbox)."""
        mailer = make_mailer(d.settings)
        try:
            outcome = await operators.send_test(d.sessionmaker, mailer, d.settings, body.to, source_id=body.source_id)
        finally:
            await mailer.aclose()
        return _result(outcome)

    @router.get("/mailbox", response_model=MailboxList, response_model_by_alias=True)
    async def list_mailbox(d: DeliveryDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> MailboxList:
        """The dev mailbox (FUNNELSTREAM_MAILBOX_DIR), newest first."""
        folder = _mailbox_dir(d)
        entries = mailbox.list_mailbox(folder, limit)
        return MailboxList(
            folder=str(folder), messages=[MailboxEntryOut.model_validate(e, from_attributes=True) for e in entries]
        )

    @router.get(
        "/mailbox/{name}",
        response_class=Response,
        responses={200: {"content": {"message/rfc822": {}}, "description": "The raw .eml file"}},
    )
    async def read_mailbox(name: str, d: DeliveryDep) -> Response:
        data = mailbox.read_mailbox(_mailbox_dir(d), name)
        if data is None:
            raise HTTPException(404, f"no message {name!r} in the mailbox")
        return Response(
            data, media_type="message/rfc822", headers={"Content-Disposition": f'inline; filename="{name}"'}
        )

    @router.get("/sources/{source_id}/mail-settings", response_model=MailSettingsOut, tags=["sources"])
    async def get_mail_settings(source_id: uuid.UUID, session: SessionDep, d: DeliveryDep) -> MailSettingsOut:
        """A source's From, Reply-To, DKIM and time zone, and what its emails go out with after defaults."""
        if not await repository.source_exists(session, source_id):
            raise HTTPException(404, f"no source {source_id}")
        row = (await repository.mail_settings_rows(session, [source_id])).get(source_id)
        return _settings_out(source_id, row, d.settings)

    @router.put("/sources/{source_id}/mail-settings", response_model=MailSettingsOut, tags=["sources"])
    async def put_mail_settings(
        source_id: uuid.UUID, body: MailSettingsIn, session: SessionDep, d: DeliveryDep
    ) -> MailSettingsOut:
        """Replace a source's mail settings. The DKIM key is stored in the database (prefer the
        FUNNELSTREAM_DKIM_* settings from a secret store where that matters) and never shown again."""
        if not await repository.source_exists(session, source_id):
            raise HTTPException(404, f"no source {source_id}")
        values = body.model_dump()
        if "dkim_private_key" not in body.model_fields_set:
            stored = (await repository.mail_settings_rows(session, [source_id])).get(source_id) or {}
            values["dkim_private_key"] = stored.get("dkim_private_key")
        try:
            validate(values)
        except InvalidMailSetting as exc:
            raise RequestValidationError(
                [{"loc": ("body", exc.field), "msg": exc.message, "type": "value_error"}]
            ) from None
        row = await repository.store_mail_settings(session, source_id, values)
        return _settings_out(source_id, row, d.settings)

    return router


def _mailbox_dir(d: Delivery) -> Path:
    if d.settings.mailbox_dir is None:
        raise HTTPException(404, "no dev mailbox here: FUNNELSTREAM_MAILBOX_DIR is not set (mail goes out by SMTP)")
    return d.settings.mailbox_dir
