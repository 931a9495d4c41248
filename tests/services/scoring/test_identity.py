"""Identity across partitions: anonymous history folds into the known lead exactly once, in any order."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tests.helpers import Env, env, event, eventually, running

LIVE = "SELECT count(*) FROM leads WHERE merged_into IS NULL"


async def live_lead(e: Env, kind: str, value: str) -> dict[str, Any] | None:
    row = await e.row(
        "SELECT l.* FROM lead_identities i JOIN leads l ON l.lead_id = i.lead_id WHERE i.kind = :k AND i.value = :v",
        k=kind,
        v=value,
    )
    return row


async def test_identify_folds_anonymous_history_into_the_known_lead(settings_kwargs: dict[str, Any]) -> None:
    async with env(settings_kwargs) as e, running(e.runner()):
        await e.send(*[event(None, i, anonymous_id="anon-1") for i in range(3)])
        await eventually(lambda: e.equals("SELECT score FROM leads WHERE anonymous_id = 'anon-1'", 3), what="anon 3")
        await e.send(event("user-1", anonymous_id="anon-1", type="identify", traits={"email": "a@x.io"}))
        await eventually(lambda: e.equals("SELECT score FROM leads WHERE user_id = 'user-1'", 4), what="merged 4")
        by_anon = await live_lead(e, "anonymous", "anon-1")
        assert by_anon is not None and by_anon["user_id"] == "user-1" and by_anon["email"] == "a@x.io"
        assert await e.scalar(LIVE) == 1
        assert await e.scalar("SELECT count(*) FROM lead_merges WHERE reason = 'identify'") == 1
        assert await e.scalar("SELECT count(*) FROM lead_events WHERE lead_id = :id", id=by_anon["lead_id"]) == 4
        # A late anonymous event lands on the merged lead.
        await e.send(event(None, 99, anonymous_id="anon-1"))
        await eventually(lambda: e.equals("SELECT score FROM leads WHERE user_id = 'user-1'", 5), what="late event")
        assert await e.scalar(LIVE) == 1


async def test_identify_before_anonymous_events_creates_no_anonymous_lead(settings_kwargs: dict[str, Any]) -> None:
    async with env(settings_kwargs) as e, running(e.runner()):
        await e.send(event("user-2", anonymous_id="anon-2", type="identify", traits={"plan": "pro"}))
        await eventually(lambda: e.equals("SELECT score FROM leads WHERE user_id = 'user-2'", 1), what="identify")
        await e.send(*[event(None, i, anonymous_id="anon-2") for i in range(2)])
        await eventually(lambda: e.equals("SELECT score FROM leads WHERE user_id = 'user-2'", 3), what="anon on user")
        assert await e.scalar(LIVE) == 1
        assert await e.scalar("SELECT count(*) FROM lead_merges") == 0


async def test_alias_folds_the_previous_id_into_the_new_one(settings_kwargs: dict[str, Any]) -> None:
    async with env(settings_kwargs) as e, running(e.runner()):
        await e.send(event("old-id", 1), event("old-id", 2), event("new-id", 1))
        await eventually(lambda: e.equals("SELECT count(*) FROM leads", 2), what="two leads")
        await eventually(lambda: e.equals("SELECT sum(score) FROM leads", 3), what="three events")
        await e.send(event("new-id", 9, type="alias", previous_id="old-id"))
        await eventually(lambda: e.equals(LIVE, 1), what="one live lead")
        lead = await live_lead(e, "user", "old-id")
        assert lead is not None and lead["user_id"] == "new-id" and lead["score"] == 4
        assert await e.scalar("SELECT reason FROM lead_merges") == "alias"


async def test_a_shared_email_folds_an_anonymous_lead_but_never_two_known_users(
    settings_kwargs: dict[str, Any],
) -> None:
    async with env(settings_kwargs) as e, running(e.runner()):
        await e.send(event("known", 1, type="identify", traits={"email": "same@x.io"}))
        await eventually(lambda: e.equals(LIVE, 1), what="known user")
        await e.send(event(None, 1, anonymous_id="form-visitor", type="identify", traits={"email": "Same@X.io"}))
        await eventually(lambda: e.equals("SELECT count(*) FROM lead_merges", 1), what="email merge")
        assert (await live_lead(e, "anonymous", "form-visitor") or {}).get("user_id") == "known"
        await e.send(event("other-user", 1, type="identify", traits={"email": "same@x.io"}))
        await eventually(lambda: e.equals(LIVE, 2), what="second known user kept apart")
        assert await e.scalar("SELECT count(*) FROM lead_merges") == 1


async def test_traits_keep_the_latest_value_by_event_time_not_arrival(settings_kwargs: dict[str, Any]) -> None:
    later, earlier = datetime.now(UTC), datetime.now(UTC) - timedelta(hours=1)
    async with env(settings_kwargs) as e, running(e.runner()):
        await e.send(event("t", 1, type="identify", traits={"plan": "pro", "city": "Oslo"}, at=later))
        await eventually(lambda: e.equals("SELECT score FROM leads", 1), what="first identify")
        await e.send(event("t", 2, type="identify", traits={"plan": "free", "size": "10"}, at=earlier))
        await eventually(lambda: e.equals("SELECT score FROM leads", 2), what="second identify")
        lead = await live_lead(e, "user", "t")
        assert lead is not None and lead["traits"] == {"plan": "pro", "city": "Oslo", "size": "10"}


async def test_many_visitors_across_partitions_and_consumers_end_as_one_lead_each(
    settings_kwargs: dict[str, Any],
) -> None:
    settings_kwargs["partitions"] = 4
    rng = random.Random(7)  # noqa: S311 - a reproducible shuffle, not a secret
    people = 40
    events = []
    for p in range(people):
        anon, user = f"v-anon-{p}", f"v-user-{p}"
        journey = [event(None, i, anonymous_id=anon) for i in range(3)]
        journey.append(event(user, 0, anonymous_id=anon, type="identify", traits={"n": str(p)}))
        journey += [event(None, 10 + i, anonymous_id=anon) for i in range(2)]  # late anonymous events
        journey.append(event(user, 1))
        events += journey
    rng.shuffle(events)  # identify may come before or after the anonymous events, on other partitions
    async with env(settings_kwargs) as e, running(e.runner()), running(e.runner()):
        await e.send(*events)
        await eventually(lambda: e.equals("SELECT count(*) FROM processed_events", len(events)), 60, "all applied")
        await eventually(lambda: e.equals(LIVE, people), 30, "one live lead per person")
        for p in range(people):
            lead = await live_lead(e, "anonymous", f"v-anon-{p}")
            assert lead is not None and lead["user_id"] == f"v-user-{p}"
            assert Decimal(lead["score"]) == 7, lead
        assert await e.scalar("SELECT count(*) FROM lead_events") == len(events)
        assert await e.scalar("SELECT count(DISTINCT lead_id) FROM lead_events") == people
