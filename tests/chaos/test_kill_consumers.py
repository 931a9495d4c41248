"""Consumers killed with SIGKILL at seeded random moments while events flow through two replicas of
each: afterwards every lead's score and stage equal the pure scoring model's, no email went out twice,
and every due email step is accounted for.

CI tier by default (10,000 events, 5 kills, 2 s session timeout). The full run of the report:
FUNNELSTREAM_CHAOS_EVENTS=100000 FUNNELSTREAM_CHAOS_KILLS=50 .venv/bin/pytest tests/chaos -k kill
(FUNNELSTREAM_CHAOS_SEED picks another kill schedule).
"""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from services.nurture.sequences import queries
from services.nurture.sequences.definition import Definition
from services.nurture.templates import repository as templates
from services.nurture.templates.service import TemplateContent
from services.scoring import rulebook
from services.scoring.engine import Effects, Scorer, score_of
from services.scoring.replay import activity_of
from services.scoring.rules import RuleSet
from shared.events import TrackedEvent, derived_id
from tests.chaos.processes import Fleet
from tests.helpers import Env, env, produce
from tests.smtp import SmtpSink

EVENTS = int(os.environ.get("FUNNELSTREAM_CHAOS_EVENTS", "10000"))
KILLS = int(os.environ.get("FUNNELSTREAM_CHAOS_KILLS", "5"))
SEED = int(os.environ.get("FUNNELSTREAM_CHAOS_SEED", "20261123"))
EVENTS_PER_LEAD = 25
SOURCE = uuid.UUID(int=99)

RULES: dict[str, Any] = {
    "behaviour": [
        {"id": "pricing", "event": "Pricing Viewed", "points": 10, "cap_per_day": 3},
        {"id": "demo", "event": "Demo Requested", "points": 30, "cap_lifetime": 1},
        {"id": "careers", "event": "Careers Viewed", "points": -5},
        {"id": "docs", "event": "Docs Viewed", "points": 2},
    ],
    "fit": [{"id": "vp", "conditions": [{"field": "traits.title", "op": "contains", "value": "VP"}], "points": 20}],
    "half_life_days": None,
    "models": [
        {"name": "b2b", "stages": [
            {"name": "visitor"},
            {"name": "lead", "entry": {"all": [{"kind": "known"}]}},
            {"name": "mql", "entry": {"all": [{"kind": "known"}, {"kind": "score", "gte": 60}]},
             "exit": {"all": [{"kind": "score", "lt": 40}]}},
        ]},
    ],
    "primary_model": "b2b",
}  # fmt: skip
NAMES = ["Pricing Viewed", "Demo Requested", "Careers Viewed", "Docs Viewed"]
TITLES = ["VP Marketing", "Engineer", "VP Sales", "Analyst"]


def generate(rng: random.Random, leads: int, sink: SmtpSink) -> tuple[dict[str, list[TrackedEvent]], dict[str, str]]:
    """Per lead: identify (email, title), Signed Up (the welcome sequence's trigger), then random events
    an hour apart; so per-lead order is event-time order."""
    start = datetime.now(UTC) - timedelta(days=30)
    by_user: dict[str, list[TrackedEvent]] = {}
    emails: dict[str, str] = {}
    for i in range(leads):
        user = f"chaos-{i}"
        emails[user] = sink.address(user)
        calls: list[tuple[str, str | None, dict[str, Any]]] = [
            ("identify", None, {"email": emails[user], "title": rng.choice(TITLES)}),
            ("track", "Signed Up", {}),
        ]
        calls += [("track", rng.choice(NAMES), {}) for _ in range(EVENTS_PER_LEAD - 2)]
        events = []
        for n, (kind, name, traits) in enumerate(calls):
            at = start + timedelta(hours=n, seconds=i)
            mid = f"{user}-{n}"
            events.append(
                TrackedEvent(
                    event_id=derived_id(SOURCE, mid), source_id=SOURCE, message_id=mid, type=kind,
                    event=name, user_id=user, traits=traits, timestamp=at, received_at=at,
                )
            )  # fmt: skip
        by_user[user] = events
    return by_user, emails


def expected(scorer: Scorer, by_user: dict[str, list[TrackedEvent]]) -> dict[str, tuple[Decimal, str]]:
    """What the pure model computes from the same events, in each lead's order."""
    out = {}
    for user, events in by_user.items():
        state = scorer.new_state(user_id=user)
        fx = Effects()
        for event in events:
            email = event.traits.get("email") if event.type == "identify" else None
            scorer.apply(state, activity_of(event, email), fx)
        score, _, _ = score_of(scorer, state, events[-1].timestamp)
        out[user] = (score, state.stages["b2b"])
    return out


def interleave(rng: random.Random, by_user: dict[str, list[TrackedEvent]]) -> list[TrackedEvent]:
    """All events in a random global order that keeps each lead's own order (as many sites would send)."""
    cursors = dict.fromkeys(by_user, 0)
    out: list[TrackedEvent] = []
    while cursors:
        user = rng.choice(list(cursors))
        out.append(by_user[user][cursors[user]])
        cursors[user] += 1
        if cursors[user] == len(by_user[user]):
            del cursors[user]
    return out


async def prepare(e: Env) -> Scorer:
    async with e.sessionmaker() as session, session.begin():
        row = await rulebook.add(session, RuleSet.model_validate(RULES), "chaos")
        await rulebook.activate(session, row.version)
        template = await templates.add_template(
            session, name="welcome", description="", kind="transactional", topic=None,
            content=TemplateContent(subject="Welcome", html="<p>Welcome {{ lead.user_id }}</p>", text=None),
            sample_extra={}, note="chaos",
        )  # fmt: skip
        assert template is not None
        definition = {
            "trigger": {"kind": "event", "event": "Signed Up"},
            "reentry": "never",
            "steps": [{"id": "welcome", "type": "send_email", "template_id": str(template.id)}],
        }
        sequence = await queries.create(
            session, name="welcome", description="", message_class="transactional", topic=None, exempt=True,
            definition=Definition.model_validate(definition),
        )  # fmt: skip
        assert sequence is not None
        await queries.set_status(session, sequence, "active")
    return Scorer(RuleSet.model_validate(RULES), row.version)


async def settled(e: Env, events: int, leads: int, deadline: float) -> None:
    loop = asyncio.get_running_loop()
    last: tuple[Any, ...] = ()
    while loop.time() < deadline:
        last = (
            await e.scalar("SELECT count(*) FROM lead_events"),
            await e.scalar("SELECT count(*) FROM email_sends WHERE status IN ('sent', 'failed', 'unknown')"),
            await e.scalar("SELECT count(*) FROM enrollments WHERE status = 'active'"),
        )
        if last == (events, leads, 0):
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"not settled: (lead events, finished sends, active enrollments) = {last}")


async def test_sigkilled_consumers_lose_nothing_double_nothing_and_send_once(
    settings_kwargs: dict[str, Any], smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    rng = random.Random(SEED)  # noqa: S311 - a reproducible kill schedule, not a secret
    leads = max(1, EVENTS // EVENTS_PER_LEAD)
    async with env(settings_kwargs) as e:
        scorer = await prepare(e)
        by_user, emails = generate(rng, leads, smtp_sink)
        stream = interleave(rng, by_user)
        settings = {
            "FUNNELSTREAM_DATABASE_URL": settings_kwargs["database_url"],
            "FUNNELSTREAM_KAFKA_BOOTSTRAP_SERVERS": settings_kwargs["kafka_bootstrap_servers"],
            "FUNNELSTREAM_KAFKA_IDEMPOTENCE": str(settings_kwargs["kafka_idempotence"]).lower(),
            "FUNNELSTREAM_TOPIC_PREFIX": settings_kwargs["topic_prefix"],
            "FUNNELSTREAM_KAFKA_SESSION_TIMEOUT_MS": str(settings_kwargs["kafka_session_timeout_ms"]),
            "FUNNELSTREAM_SECRET_KEY": "chaos-secret",
            "FUNNELSTREAM_SMTP_HOST": smtp_sink.host,
            "FUNNELSTREAM_SMTP_PORT": str(smtp_sink.port),
            "FUNNELSTREAM_SCHEDULER_POLL_SECONDS": "0.1",
            "FUNNELSTREAM_SEND_LEASE_SECONDS": "30",
            "FUNNELSTREAM_SEND_SWEEP_SECONDS": "1",
            "FUNNELSTREAM_TICK_SECONDS": "1",
        }
        fleet = Fleet.of(["scoring", "scoring", "nurture", "nurture"], settings, tmp_path)
        fleet.start()
        chunks = [stream[i : i + 500] for i in range(0, len(stream), 500)]
        window = 0.4 * len(chunks) + 4  # producing takes about 0.4 s a chunk; kills also hit the catch-up
        kill_at = sorted(rng.uniform(1, window) for _ in range(KILLS))
        loop = asyncio.get_running_loop()
        began = loop.time()

        async def killer() -> None:
            for at in kill_at:
                await asyncio.sleep(max(0.0, began + at - loop.time()))
                victim = rng.choice(fleet.replicas)
                victim.kill()
                await asyncio.sleep(rng.uniform(0.1, 1.0))
                victim.start()

        try:
            kills = asyncio.create_task(killer())
            for chunk in chunks:
                by_key: dict[str, list[bytes]] = defaultdict(list)
                for event in chunk:
                    by_key[event.lead_key].append(event.to_bytes())
                for key, values in by_key.items():
                    await produce(e.producer, e.topics.events, values, key=key.encode())
                await asyncio.sleep(0.4)
            await kills
            await settled(e, len(stream), leads, loop.time() + 240 + EVENTS / 100)
        except BaseException:
            fleet.stop()
            print(fleet.logs())  # noqa: T201 - shown with the failure
            raise
        fleet.stop()
        assert sum(r.kills for r in fleet.replicas) == KILLS

        want = expected(scorer, by_user)
        rows = {}
        for user in by_user:
            row = await e.row("SELECT score, stage FROM leads WHERE user_id = :u AND merged_into IS NULL", u=user)
            assert row is not None, user
            rows[user] = (Decimal(row["score"]).quantize(Decimal("0.0001")), row["stage"])
        wrong = {
            u: (rows[u], want[u]) for u in by_user if rows[u] != (want[u][0].quantize(Decimal("0.0001")), want[u][1])
        }
        assert wrong == {}, f"{len(wrong)} leads differ from the pure model, e.g. {list(wrong.items())[:3]}"
        assert len({stage for _, stage in want.values()}) > 1  # the data moves leads to different stages

        received = Counter(addr for addr in emails.values() for _ in smtp_sink.received(addr))
        assert max(received.values(), default=0) <= 1, "an email went out twice"
        statuses: Counter[str] = Counter()
        for addr in emails.values():
            found = await e.row("SELECT status FROM email_sends WHERE to_email = :a", a=addr)
            statuses[found["status"] if found else "missing"] += 1
        assert set(statuses) <= {"sent", "failed", "unknown"}, statuses
        assert sum(statuses.values()) == leads
        # What SMTP received is what the sends table says was sent (an `unknown` may or may not have arrived).
        assert statuses["sent"] <= len(received) <= statuses["sent"] + statuses["unknown"]
