"""The scoring consumer under rule sets, against the real broker and PostgreSQL: scores, ledger, stages,
announcements, webhooks, exactly-once, the tick, rescoring and accounts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest
from sqlalchemy import text

from services.nurture.consent.privacy import erase_person, find_person
from services.scoring import rulebook
from services.scoring.handlers import ScoringHandler
from services.scoring.rescore import rescore_step, tick_message
from services.scoring.rulebook import ActiveRules
from services.scoring.rules import DEFAULT_RULES, RuleSet
from shared.events import EventType, TrackedEvent, decode_lead_change, derived_id
from shared.kafka import make_consumer
from tests.helpers import Env, env, eventually, produce, running

SOURCE = uuid.UUID(int=7)


def ev(
    user: str | None,
    name: str | None,
    n: int,
    *,
    type: EventType = "track",
    at: datetime | None = None,
    properties: dict[str, Any] | None = None,
    traits: dict[str, Any] | None = None,
    anonymous_id: str | None = None,
    group_id: str | None = None,
    bot: str | None = None,
) -> TrackedEvent:
    mid = f"{user or anonymous_id}-{name}-{type}-{n}"
    now = datetime.now(UTC)
    return TrackedEvent(
        event_id=derived_id(SOURCE, mid),
        source_id=SOURCE,
        message_id=mid,
        type=type,
        event=name if type == "track" else None,
        name=name if type != "track" else None,
        user_id=user,
        anonymous_id=anonymous_id,
        group_id=group_id,
        traits=traits or {},
        properties=properties or {},
        timestamp=at or now,
        received_at=now,
        bot=bot,
    )


async def activate(e: Env, rules: dict[str, Any]) -> int:
    async with e.sessionmaker() as session, session.begin():
        row = await rulebook.add(session, RuleSet.model_validate(rules), "test")
        await rulebook.activate(session, row.version)
    return row.version


async def lead(e: Env, user: str) -> dict[str, Any] | None:
    return await e.row("SELECT * FROM leads WHERE user_id = :u", u=user)


async def applied(e: Env, n: int) -> bool:
    return bool(await e.scalar("SELECT count(*) FROM processed_events") >= n)


async def test_a_demo_request_makes_an_mql_with_ledger_history_announcements_and_a_webhook(
    settings_kwargs: dict[str, Any],
) -> None:
    async with env(settings_kwargs) as e:
        await activate(e, DEFAULT_RULES)
        async with e.engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO webhook_endpoints (id, url, event_types, secret) VALUES (:id, :u, :t, 's')"),
                {"id": uuid.uuid4(), "u": "http://127.0.0.1:9/sales", "t": ["lead.mql", "lead.attention"]},
            )
        changes = make_consumer(e.settings, group_id=f"{e.settings.topic_prefix}watch")
        changes.subscribe([e.topics.lead_changes])
        await changes.start()
        try:
            events = [
                ev("ann", None, 0, type="identify", traits={"email": "ann@acme.io", "title": "VP Marketing"}),
                ev("ann", "Demo Requested", 1),
                ev("ann", None, 2, type="page", properties={"path": "/pricing"}),
                ev("ann", "Demo Requested", 3, bot="scanner"),  # flagged: scores nothing
            ]
            async with running(e.runner()):
                await e.send(*events)
                await eventually(lambda: applied(e, 4), what="all applied")
            row = await lead(e, "ann")
            assert row is not None
            # Fit 30 (senior title 20, business email 10) is a B; engagement 41 (demo 30, pricing 10, a page 1) a 2.
            assert row["stage"] == "mql" and row["stages"]["b2b"] == "mql" and row["grade"] == "B2"
            assert row["fit"] == 30 and float(row["score"]) == pytest.approx(71, abs=0.001)
            ledger = await e.scalar("SELECT sum(points) FROM score_ledger WHERE lead_id = :l", l=row["lead_id"])
            assert ledger == pytest.approx(71, abs=0.001)
            history = await e.scalar(
                "SELECT string_agg(to_stage, ',' ORDER BY id) FROM stage_history WHERE lead_id = :l AND model = 'b2b'",
                l=row["lead_id"],
            )
            assert history == "lead,mql"
            hooks = await e.scalar("SELECT array_agg(event_type ORDER BY event_type) FROM webhook_deliveries")
            assert hooks == ["lead.attention", "lead.mql"]  # the demo-requested alert, and the MQL
            seen: list[Any] = []
            while not (
                any(getattr(m, "stage", None) == "mql" for m in seen) and any(m.type == "lead.activity" for m in seen)
            ):
                batch = await changes.getmany(timeout_ms=5000)
                assert batch, f"no mql announcement, got {seen}"
                seen += [decode_lead_change(r.value) for rs in batch.values() for r in rs]
            assert {m.type for m in seen} == {"lead.score_changed", "lead.stage_changed", "lead.activity"}
            activities = [m.name for m in seen if m.type == "lead.activity"]
            assert activities == ["Demo Requested"]  # the bot-flagged one is not announced
        finally:
            await changes.stop()


async def test_a_redelivered_batch_changes_nothing(settings_kwargs: dict[str, Any]) -> None:
    async with env(settings_kwargs) as e:
        await activate(e, DEFAULT_RULES)
        events = [ev("bo", "Demo Requested", 0), ev("bo", "File Downloaded", 1)]
        async with running(e.runner()):
            await e.send(*events)
            await eventually(lambda: applied(e, 2), what="applied")
        before = await lead(e, "bo")
        ledger = await e.scalar("SELECT count(*) FROM score_ledger")
        # The dedup window forgot them (as after 24 h); lead_events still knows them.
        async with e.engine.begin() as conn:
            await conn.execute(text("DELETE FROM processed_events"))
        async with running(e.runner(group_id=f"{e.settings.topic_prefix}replay")):
            await e.send(*events)
            await eventually(lambda: applied(e, 2), what="replayed")
        after = await lead(e, "bo")
        assert before is not None and after is not None
        assert (after["score"], after["engagement"]) == (before["score"], before["engagement"])
        assert await e.scalar("SELECT count(*) FROM score_ledger") == ledger


async def test_the_tick_applies_inactivity_at_its_own_time(settings_kwargs: dict[str, Any]) -> None:
    rules = {**DEFAULT_RULES, "half_life_days": None, "inactivity": [{"id": "quiet", "days": 30, "points": -10}]}
    async with env(settings_kwargs) as e:
        await activate(e, rules)
        long_ago = datetime.now(UTC) - timedelta(days=40)
        async with running(e.runner()):
            await e.send(ev("cy", "Demo Requested", 0, at=long_ago))
            await eventually(lambda: applied(e, 1), what="applied")
            row = await lead(e, "cy")
            assert row is not None and Decimal(row["score"]) == 30 and row["next_due_at"] is not None
            tick = tick_message(datetime.now(UTC))
            await produce(e.producer, e.topics.events, [tick.to_bytes()], key=b"scoring-tick")
            await eventually(lambda: e.equals("SELECT score FROM leads WHERE user_id = 'cy'", 20), what="inactivity")
        at = await e.scalar("SELECT occurred_at FROM score_ledger WHERE kind = 'inactivity'")
        assert at == long_ago + timedelta(days=30)


async def test_a_new_rule_set_rescores_from_history_quietly_and_reports(settings_kwargs: dict[str, Any]) -> None:
    async with env(settings_kwargs) as e:
        await activate(e, DEFAULT_RULES)
        people = [f"p{i}" for i in range(5)]
        events = [ev(p, "Demo Requested", 0) for p in people] + [ev("p0", "Demo Requested", 1)]
        async with running(e.runner()):
            await e.send(*events)
            await eventually(lambda: applied(e, len(events)), what="applied")
        assert await e.scalar("SELECT count(*) FROM leads WHERE stage = 'mql'") == 1  # p0: 60 points
        doubled = orjson.loads(orjson.dumps(DEFAULT_RULES))
        next(r for r in doubled["behaviour"] if r["id"] == "demo-request")["points"] = 60
        version = await activate(e, doubled)
        async with e.engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO rescore_jobs (id, rule_set_version, total) VALUES (:id, :v, 5)"),
                {"id": uuid.uuid4(), "v": version},
            )
        while await rescore_step(e.sessionmaker, e.producer, e.topics, chunk=2):
            pass
        await rescore_step(e.sessionmaker, e.producer, e.topics, chunk=2)
        assert (
            await e.scalar("SELECT count(*) FROM leads WHERE stage = 'mql' AND rule_set_version = :v", v=version) == 5
        )
        job = await e.row("SELECT status, done, report FROM rescore_jobs")
        assert job is not None and job["status"] == "done" and job["done"] == 5
        assert job["report"]["stage_changes"]["b2b: lead → mql"] == 4
        # Backdated transitions were written to the history, not announced and not sent to sales.
        assert await e.scalar("SELECT count(*) FROM stage_history WHERE to_stage = 'mql'") == 5
        assert await e.scalar("SELECT count(*) FROM webhook_deliveries") == 0


async def test_a_lead_touched_after_activation_is_rebuilt_under_the_new_rules(settings_kwargs: dict[str, Any]) -> None:
    async with env(settings_kwargs) as e:
        await activate(e, DEFAULT_RULES)
        handler = ScoringHandler(e.topics, ActiveRules(refresh_seconds=0))
        async with running(e.runner(handler)):
            await e.send(ev("dee", "Demo Requested", 0))
            await eventually(lambda: applied(e, 1), what="first")
            doubled = orjson.loads(orjson.dumps(DEFAULT_RULES))
            next(r for r in doubled["behaviour"] if r["id"] == "demo-request")["points"] = 60
            doubled["half_life_days"] = None
            version = await activate(e, doubled)
            await e.send(ev("dee", "Demo Requested", 1))
            await eventually(lambda: applied(e, 2), what="second")
        row = await lead(e, "dee")
        assert row is not None and row["rule_set_version"] == version and Decimal(row["score"]) == 120


async def test_group_members_roll_up_into_an_account(settings_kwargs: dict[str, Any]) -> None:
    async with env(settings_kwargs) as e:
        await activate(e, {**DEFAULT_RULES, "half_life_days": None})
        events = [
            ev("eva", None, 0, type="group", group_id="acme", traits={"name": "Acme", "employees": 900}),
            ev("finn", None, 0, type="group", group_id="acme"),
            ev("eva", "Demo Requested", 1),
            ev("finn", "File Downloaded", 1),
            ev("eva", "Demo Requested", 2),
        ]
        async with running(e.runner()):
            await e.send(*events)
            await eventually(lambda: applied(e, len(events)), what="applied")
            account = await eventually(
                lambda: e.row("SELECT * FROM accounts WHERE account_id = 'acme' AND score = 65"), what="account 65"
            )
        assert account["member_count"] == 2 and account["traits"]["name"] == "Acme"
        assert account["stages"]["b2b"] == "mql"  # eva's 60 points


async def test_a_replay_cannot_bring_back_an_erased_person(settings_kwargs: dict[str, Any]) -> None:
    async with env(settings_kwargs) as e:
        events = [
            ev("gina", None, 0, type="identify", traits={"email": "gina@acme.io"}, anonymous_id="anon-g"),
            ev("gina", "Demo Requested", 1),
            ev(None, None, 2, type="page", anonymous_id="anon-g"),
        ]
        async with running(e.runner()):
            await e.send(*events)
            await eventually(lambda: applied(e, 3), what="applied")
        async with e.sessionmaker() as session, session.begin():
            person = await find_person(session, "user", "gina", lock=True)
            assert person is not None
            await erase_person(session, person, datetime.now(UTC))
        assert await e.scalar("SELECT count(*) FROM leads") == 0
        async with e.engine.begin() as conn:  # as after the dedup window: only the tombstones remember
            await conn.execute(text("DELETE FROM processed_events"))
        async with running(e.runner(group_id=f"{e.settings.topic_prefix}replay")):
            await e.send(*events)
            await eventually(lambda: applied(e, 3), what="replayed")
        assert await e.scalar("SELECT count(*) FROM leads") == 0
        assert await e.scalar("SELECT count(*) FROM lead_events") == 0
