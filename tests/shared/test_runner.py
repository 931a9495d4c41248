"""The shared consumer runner against the real broker and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from aiokafka import TopicPartition
from sqlalchemy.ext.asyncio import AsyncSession

from funnelstream.dlq import list_dead_letters, replay_dead_letters
from services.scoring.handlers import ScoringHandler
from shared.deadletter import DeadLetter, send_dead_letters
from shared.events import ScoringTick, TrackedEvent
from shared.kafka import make_consumer
from shared.runner import ConsumerRunner, Outgoing
from tests.helpers import Env, env, event, eventually, produce, running


async def test_replayed_event_changes_nothing_even_after_offsets_restart(settings_kwargs: dict[str, Any]) -> None:
    async with env(settings_kwargs) as e:
        await e.send(event("ann", 1), event("ann", 1), event("ann", 2))
        async with running(e.runner()):
            await eventually(lambda: e.score("ann"), what="ann scored")
            await eventually(lambda: _equals(e.score("ann"), Decimal(2)), what="score 2")
        # A new group re-reads the topic from offset 0, as after the embedded broker restarted.
        async with running(e.runner(group_id="fresh-group")) as again:
            await eventually(lambda: _lag_zero(again), what="second group caught up")
        assert await e.score("ann") == 2
        assert await e.scalar("SELECT count(*) FROM processed_events WHERE consumer = 'scoring'") == 2


async def test_undecodable_message_is_dead_lettered_with_reason_and_the_rest_applied(
    settings_kwargs: dict[str, Any],
) -> None:
    async with env(settings_kwargs) as e:
        await produce(e.producer, e.topics.events, [b"{not json", b'{"schema_version": 99}'])
        await e.send(event("bob"))
        async with running(e.runner()):
            await eventually(lambda: e.score("bob"), what="bob scored")
            letters = await eventually(lambda: _letters(e, 2), what="two dead letters")
        reasons = sorted(item["reason"] for item in letters)
        assert reasons[0].startswith("invalid: not JSON")
        assert "unsupported schema_version 99" in reasons[1]
        assert all(item["original_topic"] == e.topics.events for item in letters)
        assert all(item["headers"]["fs-original-offset"].isdigit() for item in letters)


class PoisonHandler(ScoringHandler):
    """Scoring, except that events of user "poison" make it fail the way a bug would."""

    async def apply(self, session: AsyncSession, items: Sequence[TrackedEvent | ScoringTick]) -> list[Outgoing]:
        if any(isinstance(i, TrackedEvent) and i.user_id == "poison" for i in items):
            raise ValueError("cannot score poison")
        return await super().apply(session, items)


async def test_failing_message_is_isolated_and_dead_lettered_not_dropped(settings_kwargs: dict[str, Any]) -> None:
    settings_kwargs["partitions"] = 1  # all in one batch
    async with env(settings_kwargs) as e:
        await e.send(event("a"), event("poison"), event("b"))
        async with running(e.runner(PoisonHandler(e.topics))):
            await eventually(lambda: e.score("b"), what="b scored")
            letters = await eventually(lambda: _letters(e, 1), what="poison dead-lettered")
        assert await e.score("a") == 1
        assert await e.score("poison") is None
        assert letters[0]["reason"] == "handler error: ValueError: cannot score poison"


class FlakyHandler(ScoringHandler):
    """Scoring whose first two attempts lose the connection, as during a database restart."""

    failures = 2

    async def apply(self, session: AsyncSession, items: Sequence[TrackedEvent | ScoringTick]) -> list[Outgoing]:
        if self.failures:
            self.failures -= 1
            raise ConnectionResetError("connection reset by peer")
        return await super().apply(session, items)


async def test_transient_error_is_retried_and_applied_once(settings_kwargs: dict[str, Any]) -> None:
    async with env(settings_kwargs) as e:
        handler = FlakyHandler(e.topics)
        await e.send(event("carl"))
        async with running(e.runner(handler)):
            await eventually(lambda: e.score("carl"), what="carl scored after retries")
        assert handler.failures == 0
        assert await e.score("carl") == 1
        assert await _letters(e, 0, timeout_ok=True) == []


async def test_drain_consumes_to_zero_lag_and_commits_offsets(settings_kwargs: dict[str, Any]) -> None:
    async with env(settings_kwargs) as e:
        await e.send(*[event(f"u{i % 7}", i) for i in range(300)])
        runner = e.runner()
        task = asyncio.create_task(runner.run())
        await runner.started.wait()
        runner.request_stop(drain=True)
        await asyncio.wait_for(task, 60)
        assert runner.total_lag == 0
        assert await e.scalar("SELECT sum(score) FROM leads") == 300
        committed = await _committed(e, runner.group_id)
        assert sum(committed.values()) == 300


async def test_two_members_of_a_group_apply_each_event_exactly_once(settings_kwargs: dict[str, Any]) -> None:
    async with env(settings_kwargs) as e:
        await e.send(*[event(f"u{i % 11}", i) for i in range(200)])
        async with running(e.runner()) as first:
            await first.started.wait()
            async with running(e.runner()):
                await e.send(*[event(f"u{i % 11}", i) for i in range(200, 400)])
                await eventually(lambda: _equals(e.scalar("SELECT sum(score) FROM leads"), 400), 40, "all 400")
        assert await e.scalar("SELECT count(*) FROM processed_events") == 400


async def test_dlq_replay_republishes_to_the_original_topic_once(settings_kwargs: dict[str, Any]) -> None:
    async with env(settings_kwargs) as e:
        parked = DeadLetter(
            key=b"dora", value=event("dora").to_bytes(), reason="broker timeout", original_topic=e.topics.events
        )
        await send_dead_letters(e.producer, e.topics.dead_letter, "ingest", [parked])
        replayed = await replay_dead_letters(e.settings)
        assert [r["reason"] for r in replayed] == ["broker timeout"]
        assert await replay_dead_letters(e.settings) == []  # the replay group remembers
        async with running(e.runner()):
            await eventually(lambda: e.score("dora"), what="replayed event scored")


async def _equals(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


async def _lag_zero(runner: ConsumerRunner[Any]) -> bool:
    return bool(runner.lag) and runner.total_lag == 0


async def _letters(e: Env, count: int, timeout_ok: bool = False) -> list[dict[str, Any]] | None:
    letters = await list_dead_letters(e.settings, limit=100)
    if timeout_ok:
        return letters
    return letters if len(letters) >= count else None


async def _committed(e: Env, group: str) -> dict[int, int]:
    consumer = make_consumer(e.settings, group)
    await consumer.start()
    try:
        parts = [TopicPartition(e.topics.events, p) for p in consumer.partitions_for_topic(e.topics.events) or ()]
        return {tp.partition: (await consumer.committed(tp)) or 0 for tp in parts}
    finally:
        await consumer.stop()


class DownHandler(ScoringHandler):
    """Scoring while the database stays unreachable."""

    attempts = 0

    async def apply(self, session: AsyncSession, items: Sequence[TrackedEvent | ScoringTick]) -> list[Outgoing]:
        self.attempts += 1
        raise ConnectionRefusedError("database unreachable")


async def test_stop_during_an_outage_exits_cleanly_without_committing(settings_kwargs: dict[str, Any]) -> None:
    async with env(settings_kwargs) as e:
        await e.send(event("eve"))
        for drain in (False, True):
            handler = DownHandler(e.topics)
            runner = e.runner(handler, drain_timeout=1.0)
            task = asyncio.create_task(runner.run())
            await eventually(lambda h=handler: _at_least(h.attempts, 2), what="retrying")  # type: ignore[misc]
            runner.request_stop(drain=drain)
            await asyncio.wait_for(task, 30)  # returns, does not raise
            assert await e.score("eve") is None
            assert sum((await _committed(e, runner.group_id)).values()) == 0


async def _at_least(value: int, minimum: int) -> bool:
    return value >= minimum
