"""Inspecting and replaying the dead-letter topic."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from shared.deadletter import H_REASON, H_TOPIC, header_dict
from shared.kafka import Topics, make_consumer, make_producer
from shared.settings import Settings

REPLAY_GROUP = "dlq-replay"


def describe(record: ConsumerRecord) -> dict[str, Any]:
    headers = header_dict(record.headers)
    value: bytes = record.value or b""
    return {
        "partition": record.partition,
        "offset": record.offset,
        "reason": headers.get(H_REASON, ""),
        "original_topic": headers.get(H_TOPIC, ""),
        "headers": headers,
        "value": value.decode(errors="replace")[:2000],
    }


async def _records(consumer: AIOKafkaConsumer, limit: int | None) -> AsyncIterator[ConsumerRecord]:
    """Records from the consumer's positions up to the end offsets seen at the start."""
    parts = list(consumer.assignment())
    ends = await consumer.end_offsets(parts)
    seen = 0
    idle = 0
    while idle < 3:
        batch = await consumer.getmany(timeout_ms=500, max_records=500)
        if not batch:
            positions = [await consumer.position(tp) for tp in parts]
            caught_up = all(pos >= ends[tp] for pos, tp in zip(positions, parts, strict=True))
            idle = 3 if caught_up else idle + 1
            continue
        idle = 0
        for records in batch.values():
            for record in records:
                yield record
                seen += 1
                if limit is not None and seen >= limit:
                    return


async def list_dead_letters(settings: Settings, limit: int | None = 100) -> list[dict[str, Any]]:
    """Read the dead-letter topic from the beginning, without a consumer group (nothing is committed)."""
    topic = Topics(settings.topic_prefix).dead_letter
    consumer = make_consumer(settings, group_id=None)  # type: ignore[arg-type]
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        await consumer.seek_to_beginning()
        return [describe(r) async for r in _records(consumer, limit)]
    finally:
        await consumer.stop()


async def replay_dead_letters(
    settings: Settings, limit: int | None = None, reason_contains: str | None = None, dry_run: bool = False
) -> list[dict[str, Any]]:
    """Publish dead letters back to their original topic once each (tracked by the `dlq-replay` group).

    Consumers skip what they already applied by event id, so replaying twice is harmless.
    """
    topics = Topics(settings.topic_prefix)
    consumer = make_consumer(settings, group_id=f"{settings.topic_prefix}{REPLAY_GROUP}")
    producer = make_producer(settings)
    consumer.subscribe([topics.dead_letter])
    await consumer.start()
    await producer.start()
    replayed: list[dict[str, Any]] = []
    done: dict[TopicPartition, int] = {}
    try:
        for _ in range(50):  # wait for the group assignment
            if consumer.assignment():
                break
            await asyncio.sleep(0.1)
        async for record in _records(consumer, limit):
            info = describe(record)
            done[TopicPartition(record.topic, record.partition)] = record.offset + 1
            if reason_contains and reason_contains not in info["reason"]:
                continue
            target = info["original_topic"]
            if not target.startswith(settings.topic_prefix):
                continue
            if not dry_run:
                await producer.send_and_wait(target, key=record.key, value=record.value)
            replayed.append(info)
        if not dry_run and done:
            await consumer.commit(done)
    finally:
        await producer.stop()
        await consumer.stop()
    return replayed
