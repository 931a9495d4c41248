"""Commerce HTTP routes: a shop's cart-reminder configuration, code pool, carts and recovered revenue
(admin API, `/api/commerce/...`), and the recovery link on the collection edge (`/r/cart/{token}`)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.admin.api import ERRORS, AdminDep, SessionDep
from services.commerce import shop_repository as shops
from services.commerce.links import read_recovery_token
from services.commerce.schemas import (
    DEFAULT_SCHEDULE_SECONDS,
    CartOut,
    CartSummary,
    CodesIn,
    CodesOut,
    RecoveryOut,
    ReminderOut,
    ShopConfig,
    StatsOut,
)
from services.commerce.service import recovery_target
from services.ingest.api import StateDep
from shared.tokens import InvalidToken


def config_error(exc: ValidationError) -> JSONResponse:
    """400 naming the field: the error's location, or the field a cross-field check names first."""
    first = exc.errors()[0]
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    field = ".".join(str(p) for p in first.get("loc", ()))
    if not field and ": " in message:
        field, message = message.split(": ", 1)
    return JSONResponse({"error": f"{field}: {message}" if field else message, "field": field or None}, 400)


async def _shop(session: AsyncSession, source_id: uuid.UUID) -> None:
    if not await shops.source_exists(session, source_id):
        raise HTTPException(404, f"no source {source_id}")


def commerce_router() -> APIRouter:
    router = APIRouter(prefix="/api/commerce", dependencies=[AdminDep], responses=ERRORS, tags=["commerce"])

    @router.put("/shops/{source_id}/settings", response_model=ShopConfig)
    async def put_settings(
        source_id: uuid.UUID, session: SessionDep, body: Annotated[dict[str, Any], Body()]
    ) -> ShopConfig | JSONResponse:
        """Set the shop's reminders (schedule, a template per step, incentive, codes, attribution window);
        open carts are re-planned under the new schedule."""
        await _shop(session, source_id)
        try:
            config = ShopConfig.model_validate(body)
        except ValidationError as exc:
            return config_error(exc)
        missing = await shops.missing_templates(session, config.templates)
        if missing:
            field = f"templates.{missing[0]}"
            return JSONResponse({"error": f"{field}: no such template", "field": field}, 400)
        await shops.save_config(session, source_id, config)
        return config

    @router.get("/shops/{source_id}/settings", response_model=ShopConfig)
    async def get_settings(source_id: uuid.UUID, session: SessionDep) -> ShopConfig:
        config = await shops.get_config(session, source_id)
        if config is None:
            raise HTTPException(404, f"no cart reminder settings for source {source_id}")
        return config

    @router.post("/shops/{source_id}/codes", response_model=CodesOut)
    async def upload_codes(source_id: uuid.UUID, body: CodesIn, session: SessionDep) -> CodesOut:
        """Add single-use codes to the shop's pool; each is given to one reminder, once."""
        await _shop(session, source_id)
        added = await shops.add_codes(session, source_id, body.codes)
        return await shops.code_counts(session, source_id, added)

    @router.get("/shops/{source_id}/codes", response_model=CodesOut)
    async def codes(source_id: uuid.UUID, session: SessionDep) -> CodesOut:
        await _shop(session, source_id)
        return await shops.code_counts(session, source_id)

    @router.get("/shops/{source_id}/stats", response_model=StatsOut)
    async def stats(source_id: uuid.UUID, session: SessionDep) -> StatsOut:
        """Carts abandoned, reminders sent per step, orders and revenue recovered per currency."""
        await _shop(session, source_id)
        config = await shops.get_config(session, source_id)
        first = (config.schedule_seconds if config else DEFAULT_SCHEDULE_SECONDS)[0]
        return await shops.stats(session, source_id, datetime.now(UTC), first)

    @router.get("/shops/{source_id}/recoveries", response_model=list[RecoveryOut])
    async def recoveries(
        source_id: uuid.UUID, session: SessionDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> list[RecoveryOut]:
        """Orders attributed to a reminder, newest first."""
        await _shop(session, source_id)
        return await shops.recoveries(session, source_id, limit)

    @router.get("/shops/{source_id}/carts", response_model=list[CartSummary])
    async def carts(
        source_id: uuid.UUID,
        session: SessionDep,
        status: Annotated[Literal["open", "checkout", "ordered", "emptied"] | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[CartSummary]:
        """The shop's carts, most recently active first; `status` filters."""
        await _shop(session, source_id)
        return [CartSummary.model_validate(row) for row in await shops.carts(session, source_id, status, limit)]

    @router.get("/shops/{source_id}/carts/{cart_id}", response_model=CartOut)
    async def cart(source_id: uuid.UUID, cart_id: str, session: SessionDep) -> CartOut:
        """One cart by the shop's cart (or checkout) id: contents, status, reminders."""
        found = await shops.cart(session, f"{source_id}:{cart_id}")
        if found is None:
            raise HTTPException(404, f"no cart {cart_id}")
        stored, row, reminders = found
        return CartOut(
            **{k: row[k] for k in CartOut.model_fields if k in row and k not in ("steps_sent",)},
            steps_sent=list(stored.steps_sent),
            lines=[line.model_dump(mode="json") for line in stored.state.lines],
            reminders=[ReminderOut.model_validate(r) for r in reminders],
        )

    return router


def recovery_router() -> APIRouter:
    router = APIRouter(tags=["commerce"])

    @router.get("/r/cart/{token}", include_in_schema=False)
    async def recover(token: str, request: Request, state: StateDep) -> Response:
        """Back to the shop's cart: 303 to the cart's URL (checked http(s), never one the token carries)."""
        try:
            link = read_recovery_token(state.settings.secret_key.get_secret_value(), token)
        except InvalidToken:
            return JSONResponse({"error": "invalid link", "field": "token"}, 400)
        maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
        async with maker() as session:
            found = await shops.recovery_target(session, link.cart_key)
        if found is None:
            return JSONResponse({"error": "this cart no longer exists", "field": None}, 404)
        stored, config = found
        url = recovery_target(stored.state, config.cart_url_pattern if config else None)
        if url is None:
            return JSONResponse({"error": "the shop named no address for this cart", "field": None}, 404)
        return RedirectResponse(
            url, status_code=303, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
        )

    return router
