"""Kafka plumbing against the real broker."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer

from shared.kafka import ensure_topics, make_producer, send_batched
from shared.settings import Settings


async def partitions_of_keys(bootstrap: str, topic: str, expected: int) -> dict[bytes, set[int]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    seen: dict[bytes, set[int]] = {}
    count = 0
    try:
        while count < expected:
            batch = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 30)
            for records in batch.values():
                for r in records:
                    seen.setdefault(r.key, set()).add(r.partition)
                    count += 1
    finally:
        await consumer.stop()
    return seen


async def test_batched_send_puts_every_key_where_send_would(settings_kwargs: dict[str, Any]) -> None:
    settings = Settings(**{**settings_kwargs, "partitions": 5})
    prefix = settings.topic_prefix
    await ensure_topics(settings, [f"{prefix}one-by-one", f"{prefix}batched"])
    producer = make_producer(settings, max_batch_size=16 * 1024)  # small batches: several per partition
    await producer.start()
    try:
        records = [(f"lead-{i % 37}".encode(), b"x" * 200 + str(i).encode()) for i in range(2000)]
        await asyncio.gather(*[await producer.send(f"{prefix}one-by-one", key=k, value=v) for k, v in records])
        await asyncio.gather(*await send_batched(producer, f"{prefix}batched", records))
    finally:
        await producer.stop()
    single = await partitions_of_keys(settings.kafka_bootstrap_servers, f"{prefix}one-by-one", len(records))
    batched = await partitions_of_keys(settings.kafka_bootstrap_servers, f"{prefix}batched", len(records))
    assert single == batched
    assert all(len(parts) == 1 for parts in batched.values())
    assert len({p for parts in batched.values() for p in parts}) > 1
