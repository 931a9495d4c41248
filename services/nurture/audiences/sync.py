"""The sync loop of the nurture process: push queued membership changes to each destination.

A destination is leased in a short transaction, pushed over HTTP with no transaction open, and the
outcome recorded in a second one (the pattern of shared/outbox.py). Queued changes of one lead collapse
to the last; a removal sends exactly the hashes that were pushed. A failure keeps the queue and retries
with exponential backoff; a webhook destination hands its change set to the signed outbox instead.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.nurture.audiences import sync_repository as repo
from services.nurture.audiences.destinations import Member, SyncError
from services.nurture.audiences.destinations.google import GoogleCustomerMatch
from services.nurture.audiences.destinations.meta import MetaCustomAudience
from services.nurture.audiences.repository import unsubscribed_leads
from shared import outbox
from shared.events import derived_id
from shared.settings import NurtureSettings

log = logging.getLogger(__name__)

WEBHOOK_EVENT = "audience.members_changed"
WEBHOOK_BATCH = 1000  # changes per webhook delivery
BACKOFF_CAP_SECONDS = 3600.0


def collapse(items: list[repo.QueueItem]) -> tuple[list[uuid.UUID], list[uuid.UUID], list[dict[str, str]]]:
    """(leads to add, leads to remove, hash sets of erased people to remove): a lead's last change wins."""
    last: dict[uuid.UUID, str] = {}
    erased: list[dict[str, str]] = []
    for item in items:
        if item.lead_id is None:
            if item.hashes:
                erased.append(item.hashes)
        else:
            last[item.lead_id] = item.op
    adds = [lead for lead, op in last.items() if op == "add"]
    removes = [lead for lead, op in last.items() if op == "remove"]
    return adds, removes, erased


class Syncer:
    def __init__(
        self, settings: NurtureSettings, sessionmaker: async_sessionmaker[AsyncSession], client: httpx.AsyncClient
    ):
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.client = client

    def _client_for(self, claimed: repo.Claimed) -> MetaCustomAudience | GoogleCustomerMatch:
        s, config = self.settings, claimed.config
        if claimed.kind == "meta":
            return MetaCustomAudience(
                self.client, config.get("base_url") or s.meta_api_base_url, s.meta_api_version,
                str(config["audience_id"]), str(claimed.credentials.get("access_token", "")), s.audience_batch_size,
            )  # fmt: skip
        return GoogleCustomerMatch(
            self.client, config.get("base_url") or s.google_ads_api_base_url, s.google_ads_api_version,
            str(config["customer_id"]), str(config["user_list_id"]), claimed.credentials,
            config.get("login_customer_id"), s.audience_batch_size, google_consent(config),
        )  # fmt: skip

    async def sync_one(self, now: datetime) -> bool:
        """Push one due destination's queued changes; False when none is due."""
        lease = self.settings.audience_http_timeout_seconds * 4 + 60
        async with self.sessionmaker() as session, session.begin():
            claimed = await repo.claim(session, now, lease)
            if claimed is None:
                return False
            # a webhook delivery stays small; a platform gets up to 5 requests of audience_batch_size records
            limit = WEBHOOK_BATCH if claimed.kind == "webhook" else self.settings.audience_batch_size * 5
            items = await repo.queued(session, claimed.id, limit)
            adds, removes, erased = collapse(items)
            if claimed.exclude_unsubscribed:  # consent checked at the last moment before anything leaves
                adds = sorted(set(adds) - await unsubscribed_leads(session, adds))
            current = await repo.current_hashes(session, adds)
            before = await repo.pushed(session, claimed.id, adds + removes)
            added = {lead: current[lead] for lead in adds if lead in current and current[lead]}
            removed = [Member(lead, before[lead]) for lead in removes if lead in before]
            # a member whose email or phone changed since it was pushed: the old hashes go too
            removed += [Member(lead, before[lead]) for lead in added if lead in before and before[lead] != added[lead]]
            removed += [Member(None, h) for h in erased]
            leaving = [m.lead_id for m in removed if m.lead_id is not None]
            values = {v for m in removed for v in m.hashes.values()}
            kept = await repo.held_by_others(session, claimed.id, leaving, values)
            removed = [m for m in removed if not kept & set(m.hashes.values())]
        members = [Member(lead, h) for lead, h in added.items()]
        taken = [i.id for i in items]
        try:
            if claimed.kind == "webhook":
                async with self.sessionmaker() as session, session.begin():
                    await self._to_webhook(session, claimed, members, removed, taken)
                    await repo.record_success(
                        session, claimed.id, taken, added, removes, (len(members), len(removed)), now
                    )
                return True
            await self._client_for(claimed).push(members, removed)
        except Exception as exc:  # noqa: BLE001 - any failure of a push is the destination's error, retried
            error = str(exc) if isinstance(exc, SyncError) else f"{type(exc).__name__}: {exc}"
            delay = outbox.retry_delay(
                claimed.failures + 1,
                self.settings.audience_backoff_seconds,
                BACKOFF_CAP_SECONDS,
                random.random(),  # noqa: S311
            )
            log.warning("audience sync to %s failed (%s); retry in %.0f s", claimed.id, error, delay)
            async with self.sessionmaker() as session, session.begin():
                await repo.record_failure(session, claimed.id, error, now + timedelta(seconds=delay))
            return True
        async with self.sessionmaker() as session, session.begin():
            await repo.record_success(session, claimed.id, taken, added, removes, (len(members), len(removed)), now)
        return True

    async def _to_webhook(
        self, session: AsyncSession, claimed: repo.Claimed, added: list[Member], removed: list[Member], taken: list[int]
    ) -> None:
        endpoint = claimed.config.get("endpoint_id")
        payload = {
            "audience_id": str(claimed.audience_id),
            "audience": claimed.audience,
            "added": [{"lead_id": m.lead_id, **_hash_fields(m)} for m in added],
            "removed": [{"lead_id": m.lead_id, **_hash_fields(m)} for m in removed],
        }
        key = derived_id(claimed.id, min(taken), max(taken))
        queued = await outbox.enqueue_to(session, uuid.UUID(str(endpoint)), WEBHOOK_EVENT, payload, key)
        if queued is None:
            raise SyncError(f"webhook endpoint {endpoint} is not active")


def google_consent(config: dict[str, Any]) -> dict[str, str]:
    """The job's consent from the destination's `ad_user_data` / `ad_personalization` (GRANTED, DENIED)."""
    keys = {"ad_user_data": "adUserData", "ad_personalization": "adPersonalization"}
    return {api: str(config[key]) for key, api in keys.items() if config.get(key)}


def _hash_fields(member: Member) -> dict[str, str]:
    return {f"{k}_sha256": v for k, v in sorted(member.hashes.items())}


async def sync_loop(settings: NurtureSettings, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """Push due destinations until cancelled; a pass that pushed something is followed at once by the next."""
    timeout = httpx.Timeout(settings.audience_http_timeout_seconds)
    async with httpx.AsyncClient(timeout=timeout, headers={"User-Agent": "FunnelStream-Audiences/1"}) as client:
        syncer = Syncer(settings, sessionmaker, client)
        while True:
            try:
                busy = await syncer.sync_one(datetime.now(UTC))
            except Exception:  # noqa: BLE001 - a database outage must not stop the nurture process
                log.exception("audience sync pass failed; retrying")
                busy = False
            if not busy:
                await asyncio.sleep(settings.audience_sync_seconds)
