"""The sync of queued changes to a destination, on the real database, with `now` passed in."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text

from services.nurture.audiences.sync import Syncer
from shared.settings import NurtureSettings
from tests.helpers import Env, env
from tests.services.nurture.audiences.fake_platforms import META_TOKEN, FakePlatforms, fake_platforms

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
DESTINATION = uuid.UUID(int=77)


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


async def sql(e: Env, statement: str, **params: Any) -> None:
    async with e.sessionmaker() as session, session.begin():
        await session.execute(text(statement), params)


async def lead(e: Env, email: str, phone: str | None = None) -> uuid.UUID:
    lead_id = uuid.uuid4()
    traits = json.dumps({"phone": phone} if phone else {})
    insert = "INSERT INTO leads (lead_id, email, traits) VALUES (:l, :m, CAST(:t AS jsonb))"
    await sql(e, insert, l=lead_id, m=email, t=traits)
    return lead_id


async def queue(e: Env, op: str, *leads: uuid.UUID) -> None:
    for lead_id in leads:
        await sql(e, "INSERT INTO audience_sync_queue (destination_id, op, lead_id) VALUES (:d, :o, :l)",
                  d=DESTINATION, o=op, l=lead_id)  # fmt: skip


async def setup(e: Env, fake: FakePlatforms) -> None:
    audience = uuid.uuid4()
    await sql(e, "INSERT INTO audiences (id, name, definition) VALUES (:a, 'a', '{}')", a=audience)
    await sql(
        e, "INSERT INTO audience_destinations (id, audience_id, kind, name, config, credentials, next_attempt_at) "
        "VALUES (:d, :a, 'meta', 'm', CAST(:c AS jsonb), CAST(:s AS jsonb), :at)",
        d=DESTINATION, a=audience, c='{"audience_id": "6001"}', s=json.dumps({"access_token": META_TOKEN}), at=NOW,
    )  # fmt: skip


def syncer(e: Env, settings_kwargs: dict[str, Any], fake: FakePlatforms, client: httpx.AsyncClient) -> Syncer:
    settings = NurtureSettings(
        **settings_kwargs, secret_key="s", meta_api_base_url=fake.url, audience_backoff_seconds=30
    )
    return Syncer(settings, e.sessionmaker, client)


async def test_changes_collapse_per_lead_and_shared_or_changed_hashes_are_handled(
    settings_kwargs: dict[str, Any],
) -> None:
    async with env(settings_kwargs) as e, fake_platforms() as fake, httpx.AsyncClient() as client:
        await setup(e, fake)
        sync = syncer(e, settings_kwargs, fake, client)
        ann, twin, flip = await lead(e, "ann@example.com"), await lead(e, "ANN@example.com "), await lead(e, "f@x.io")
        await queue(e, "add", ann, twin, flip)
        await queue(e, "remove", flip)  # left again before the push: nothing is sent for it
        assert await sync.sync_one(NOW)
        assert fake.meta["6001"] == {(sha("ann@example.com"), "")}
        assert fake.requests == [("POST", "/v25.0/6001/users", 2)]

        await queue(e, "remove", twin)  # ann's merged twin leaves; ann, with the same address, stays
        assert await sync.sync_one(NOW)
        assert fake.meta["6001"] == {(sha("ann@example.com"), "")}

        await sql(
            e,
            "UPDATE leads SET email = 'ann@new.example', traits = '{\"phone\": \"+4915112345678\"}' WHERE lead_id = :l",
            l=ann,
        )
        await queue(e, "add", ann)  # ann's address changed: the old hashes go, the new ones come
        assert await sync.sync_one(NOW)
        assert fake.meta["6001"] == {(sha("ann@new.example"), sha("4915112345678"))}
        assert not await sync.sync_one(NOW)  # nothing left to push
        assert fake.violations == []


async def test_a_failure_backs_off_exponentially_and_keeps_the_queue(settings_kwargs: dict[str, Any]) -> None:
    async with env(settings_kwargs) as e, fake_platforms() as fake, httpx.AsyncClient() as client:
        await setup(e, fake)
        sync = syncer(e, settings_kwargs, fake, client)
        await queue(e, "add", await lead(e, "bob@example.org"))
        fake.fail_next = 2
        delays = []
        at = NOW
        for failures in (1, 2):
            assert await sync.sync_one(at)
            row = await e.row("SELECT status, failures, last_error, next_attempt_at FROM audience_destinations")
            assert row is not None and row["status"] == "error" and row["failures"] == failures
            assert "HTTP 500" in row["last_error"]
            assert not await sync.sync_one(row["next_attempt_at"] - timedelta(seconds=1))  # not due yet
            delays.append((row["next_attempt_at"] - at).total_seconds())
            at = row["next_attempt_at"]
        assert 24 <= delays[0] <= 30 and 48 <= delays[1] <= 60  # 30 s then 60 s, less up to 20 % jitter
        assert await e.scalar("SELECT count(*) FROM audience_sync_queue") == 1
        assert await sync.sync_one(at)
        row = await e.row("SELECT status, failures, last_error, pushed_count FROM audience_destinations")
        assert row == {"status": "ok", "failures": 0, "last_error": None, "pushed_count": 1}
        assert fake.meta["6001"] == {(sha("bob@example.org"), "")}


async def test_consent_is_checked_at_the_last_moment_before_an_add_leaves(settings_kwargs: dict[str, Any]) -> None:
    async with env(settings_kwargs) as e, fake_platforms() as fake, httpx.AsyncClient() as client:
        await setup(e, fake)
        sync = syncer(e, settings_kwargs, fake, client)
        gone, kept = await lead(e, "gone@example.com"), await lead(e, "kept@example.com")
        await queue(e, "add", gone, kept)
        # unsubscribed through the admin API after joining: no event, the membership is still there
        await sql(
            e, "INSERT INTO subscriptions (lead_id, topic, status, method, changed_at) "
            "VALUES (:l, '*', 'unsubscribed', 'admin', :at)", l=gone, at=NOW,
        )  # fmt: skip
        assert await sync.sync_one(NOW)
        assert fake.meta["6001"] == {(sha("kept@example.com"), "")}
        assert await e.scalar("SELECT count(*) FROM audience_sync_queue") == 0
        assert await e.scalar("SELECT pushed_count FROM audience_destinations") == 1
