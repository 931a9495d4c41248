"""Retention removes idle anonymous leads, old history and expired dedup ids, and nothing else."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from services.scoring.retention import RetentionResult, apply_retention
from shared.settings import ScoringSettings
from tests.helpers import env

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=200)  # past the 90-day anonymous retention
ANCIENT = NOW - timedelta(days=400)  # past the 395-day event retention


async def test_retention_keeps_known_and_recent_leads(settings_kwargs: dict[str, Any]) -> None:
    async with env(settings_kwargs) as e:
        ids = {name: uuid.uuid4() for name in ("old_anon", "new_anon", "old_known", "old_email", "folded")}
        async with e.sessionmaker() as session, session.begin():
            for name, user, email, at, merged in [
                ("old_anon", None, None, OLD, None),
                ("new_anon", None, None, NOW, None),
                ("old_known", "u", None, OLD, None),
                ("old_email", None, "e@x.io", OLD, None),
                ("folded", None, None, OLD, "old_anon"),
            ]:
                await session.execute(
                    text(
                        "INSERT INTO leads (lead_id, user_id, email, updated_at, merged_into) "
                        "VALUES (:i, :u, :e, :t, :m)"
                    ),
                    {"i": ids[name], "u": user, "e": email, "t": at, "m": ids[merged] if merged else None},
                )
            await session.execute(
                text("INSERT INTO lead_identities (kind, value, lead_id) VALUES ('anonymous', 'x', :i)"),
                {"i": ids["old_anon"]},
            )
            for lead, at in [("old_anon", NOW), ("old_known", ANCIENT), ("old_known", OLD)]:
                await session.execute(
                    text(
                        "INSERT INTO lead_events (event_id, lead_id, source_id, type, occurred_at, received_at) "
                        "VALUES (:e, :l, :s, 'track', :t, :t)"
                    ),
                    {"e": uuid.uuid4(), "l": ids[lead], "s": uuid.uuid4(), "t": at},
                )
            await session.execute(
                text(
                    "INSERT INTO processed_events (consumer, event_id, processed_at) "
                    "VALUES ('s', :a, :old), ('s', :b, :now)"
                ),
                {"a": uuid.uuid4(), "b": uuid.uuid4(), "old": NOW - timedelta(hours=30), "now": NOW},
            )
        settings = ScoringSettings(**settings_kwargs)
        result = await apply_retention(e.sessionmaker, settings, NOW)
        assert result == RetentionResult(anonymous_leads=1, events=1, processed_ids=1)
        remaining = await e.scalar("SELECT string_agg(lead_id::text, ',') FROM leads")
        assert set(remaining.split(",")) == {str(ids[n]) for n in ("new_anon", "old_known", "old_email")}
        assert await e.scalar("SELECT count(*) FROM lead_identities") == 0
        assert await e.scalar("SELECT count(*) FROM lead_events") == 1  # the recent event of the known lead
        assert await e.scalar("SELECT count(*) FROM processed_events") == 1
        again = await apply_retention(e.sessionmaker, settings, NOW)
        assert again == RetentionResult()


async def test_zero_days_keeps_everything(settings_kwargs: dict[str, Any]) -> None:
    async with env(settings_kwargs) as e:
        async with e.sessionmaker() as session, session.begin():
            await session.execute(
                text("INSERT INTO leads (lead_id, updated_at) VALUES (:i, :t)"), {"i": uuid.uuid4(), "t": OLD}
            )
        settings = ScoringSettings(**settings_kwargs, anonymous_retention_days=0, event_retention_days=0)
        assert await apply_retention(e.sessionmaker, settings, NOW) == RetentionResult()
        assert await e.scalar("SELECT count(*) FROM leads") == 1
