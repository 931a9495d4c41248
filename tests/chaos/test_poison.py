"""A poison message is set aside with its reason, the others flow and lag returns to zero; after the
fix, `funnelstream dlq replay` brings it back and it is applied once."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring.handlers import ScoringHandler
from shared.events import ScoringTick, TrackedEvent
from shared.runner import ConsumerRunner, Outgoing
from tests.funnelstream.test_dev import EXE, clean_env
from tests.helpers import env, event, eventually, running


class BuggyScoring(ScoringHandler):
    """Scoring with a bug that fails on the events of one user, until it is fixed."""

    fixed = False

    async def apply(self, session: AsyncSession, items: Sequence[TrackedEvent | ScoringTick]) -> list[Outgoing]:
        if not self.fixed and any(isinstance(i, TrackedEvent) and i.user_id == "mallory" for i in items):
            raise KeyError("traits.plan")
        return await super().apply(session, items)


def cli(settings_kwargs: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    environment = clean_env(
        FUNNELSTREAM_KAFKA_BOOTSTRAP_SERVERS=settings_kwargs["kafka_bootstrap_servers"],
        FUNNELSTREAM_KAFKA_IDEMPOTENCE=str(settings_kwargs["kafka_idempotence"]).lower(),
        FUNNELSTREAM_TOPIC_PREFIX=settings_kwargs["topic_prefix"],
    )
    return subprocess.run([EXE, "dlq", *args], env=environment, capture_output=True, text=True, timeout=60, check=True)  # noqa: S603


async def caught_up(runner: ConsumerRunner[Any]) -> bool:
    return bool(runner.lag) and runner.total_lag == 0


async def test_poison_message_is_dead_lettered_shown_and_replayed_after_the_fix(
    settings_kwargs: dict[str, Any],
) -> None:
    async with env(settings_kwargs) as e:
        handler = BuggyScoring(e.topics)
        await e.send(event("alice", 1), event("mallory", 1), event("bob", 1), event("alice", 2))
        async with running(e.runner(handler)) as runner:
            await eventually(lambda: e.score("bob"), what="bob scored despite the poison beside him")
            await eventually(lambda: caught_up(runner), what="lag back to zero")
            assert await e.score("alice") == 2
            assert await e.score("mallory") is None

            listed = await eventually(
                lambda: asyncio.to_thread(lambda: cli(settings_kwargs, "list").stdout.strip() or None),
                what="the dead letter listed",
            )
            [letter] = [json.loads(line) for line in listed.splitlines()]
            assert letter["reason"] == "handler error: KeyError: 'traits.plan'"
            assert letter["original_topic"] == e.topics.events

            handler.fixed = True  # the fix is deployed
            replay = await asyncio.to_thread(cli, settings_kwargs, "replay")
            assert "replayed 1 message(s)" in replay.stderr
            await eventually(lambda: e.score("mallory"), what="mallory scored after the replay")
            again = await asyncio.to_thread(cli, settings_kwargs, "replay")
            assert "replayed 0 message(s)" in again.stderr
            await eventually(lambda: caught_up(runner), what="lag back to zero after the replay")
        assert await e.score("mallory") == 1
