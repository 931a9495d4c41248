"""Kafka plumbing: topic names, producer and consumer construction, topic creation."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

from shared.events import LeadScoreChanged, TrackedEvent
from shared.settings import Settings

log = logging.getLogger(__name__)

DEAD_LETTER = "dead-letter"
# Every topic the product uses, without prefix.
TOPICS: tuple[str, ...] = (TrackedEvent.topic, LeadScoreChanged.topic, DEAD_LETTER)
TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True)
class Topics:
    """Fully qualified topic names for one topic prefix."""

    prefix: str

    def name(self, base: str) -> str:
        return f"{self.prefix}{base}"

    @property
    def events(self) -> str:
        return self.name(TrackedEvent.topic)

    @property
    def lead_changes(self) -> str:
        return self.name(LeadScoreChanged.topic)

    @property
    def dead_letter(self) -> str:
        return self.name(DEAD_LETTER)

    def all(self) -> list[str]:
        return [self.name(t) for t in TOPICS]


def make_producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer:
    """A producer that waits for every in-sync replica (acks=all); idempotent where the broker allows."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "acks": "all",
        "enable_idempotence": settings.kafka_idempotence,
        "linger_ms": settings.kafka_linger_ms,
        "compression_type": None if settings.kafka_compression == "none" else settings.kafka_compression,
        "max_batch_size": 256 * 1024,
        "request_timeout_ms": 10_000,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


def make_consumer(settings: Settings, group_id: str, **overrides: Any) -> AIOKafkaConsumer:
    """A consumer with manual offset commits, starting from the earliest offset of a new group."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_partition_fetch_bytes": 4 * 1024 * 1024,
        # aiokafka waits up to 500 ms by default for a fetch to fill: a lone event would wait that long.
        "fetch_max_wait_ms": settings.consumer_fetch_wait_ms,
        "session_timeout_ms": settings.kafka_session_timeout_ms,
        "heartbeat_interval_ms": max(100, settings.kafka_session_timeout_ms // 10),
    }
    options.update(overrides)
    return AIOKafkaConsumer(**options)


async def wait_for_broker(bootstrap: str, timeout: float = 30.0) -> None:
    """Block until the broker answers metadata requests, or raise after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: Exception | None = None
    while asyncio.get_running_loop().time() < deadline:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except (KafkaError, OSError) as exc:
            last = exc
            await asyncio.sleep(0.2)
        finally:
            await admin.close()
    raise KafkaConnectionError(f"broker {bootstrap} did not answer within {timeout:.0f}s: {last}")


async def ensure_topics(settings: Settings, names: Iterable[str] | None = None) -> dict[str, int]:
    """Create missing topics with `settings.partitions` partitions; return every topic's partition count."""
    wanted = list(names) if names is not None else Topics(settings.topic_prefix).all()
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers, request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        if missing:
            replication = 1 if len(await _brokers(admin)) < 3 else 3
            try:
                response = await admin.create_topics(
                    [NewTopic(t, num_partitions=settings.partitions, replication_factor=replication) for t in missing]
                )
            except TopicAlreadyExistsError:
                response = None
            for topic, code, message in getattr(response, "topic_errors", []):
                if code not in (0, TOPIC_ALREADY_EXISTS):
                    raise KafkaError(f"could not create topic {topic}: {message} (error {code})")
            log.info("created topics %s with %d partitions", ", ".join(missing), settings.partitions)
        described = await admin.describe_topics(wanted)
        return {d["topic"]: len(d["partitions"]) for d in described}
    finally:
        await admin.close()


async def _brokers(admin: AIOKafkaAdminClient) -> list[Any]:
    cluster = await admin.describe_cluster()
    return list(cluster.get("brokers", []))


async def partition_lag(consumer: AIOKafkaConsumer) -> dict[TopicPartition, int]:
    """Lag per assigned partition from the consumer's own committed offsets, clamped at 0.

    Some brokers (tansu) report end offsets that trail what a consumer already read, so a
    negative difference means "caught up", never a negative lag.
    """
    assigned = list(consumer.assignment())
    if not assigned:
        return {}
    ends = await consumer.end_offsets(assigned)
    lag = {}
    for tp in assigned:
        committed = await consumer.committed(tp)
        lag[tp] = max(0, ends.get(tp, 0) - (committed or 0))
    return lag
