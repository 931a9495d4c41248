"""The one consumer runner every FunnelStream consumer uses.

Per batch: poll, decode each message (undecodable ones go to the dead-letter topic), then in ONE
database transaction claim the event ids (so a replayed message changes nothing), apply the handler
and publish what it emits, commit the transaction, and only then commit the Kafka offsets (offset + 1).
Transient errors (database or broker unreachable, serialization conflicts) are retried with backoff;
a message the handler fails on for any other reason is isolated and dead-lettered, never dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential

from shared.deadletter import DeadLetter, send_dead_letters
from shared.events import InvalidMessage
from shared.kafka import Topics, make_consumer, partition_lag
from shared.metrics import BATCH_SECONDS, BATCH_SIZE, CONSUMER_LAG, DUPLICATES_SKIPPED, ERRORS, EVENTS_CONSUMED
from shared.settings import Settings

log = logging.getLogger(__name__)

LAG_REFRESH_SECONDS = 5.0


class HasEventId(Protocol):
    @property
    def event_id(self) -> uuid.UUID: ...


T = TypeVar("T", bound=HasEventId)


@dataclass(frozen=True)
class Outgoing:
    """A message a handler emits; published before the batch's transaction commits."""

    topic: str
    key: bytes | None
    value: bytes


class Handler(Protocol[T]):
    """What a consumer does: decode a record (pure), and apply a batch inside a transaction."""

    name: str

    def topics(self, topics: Topics) -> list[str]: ...

    def decode(self, record: ConsumerRecord) -> T: ...

    async def apply(self, session: AsyncSession, items: Sequence[T]) -> list[Outgoing]: ...


def is_transient(exc: BaseException) -> bool:
    """Errors worth retrying as they are: lost connections, timeouts, serialization conflicts."""
    if isinstance(exc, OSError | asyncio.TimeoutError | OperationalError | InterfaceError):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        code = getattr(exc.orig, "sqlstate", None) or getattr(getattr(exc.orig, "__cause__", None), "sqlstate", None)
        return code in {"40001", "40P01", "57P01", "57P03", "08000", "08003", "08006"}
    if isinstance(exc, KafkaError):
        return bool(getattr(exc, "retriable", False))
    return False


class _Stopping(Exception):
    """Raised out of a retry loop when the runner must stop: told to stop without draining, or
    draining for longer than the drain timeout while the error persists. The batch is not committed."""


class ConsumerRunner(Generic[T]):
    """Runs one handler in one consumer group until told to stop."""

    def __init__(
        self,
        settings: Settings,
        handler: Handler[T],
        sessionmaker: async_sessionmaker[AsyncSession],
        producer: AIOKafkaProducer,
        *,
        group_id: str | None = None,
        drain_timeout: float = 60.0,
    ) -> None:
        self.settings = settings
        self.handler = handler
        self.sessionmaker = sessionmaker
        self.producer = producer
        self.topics = Topics(settings.topic_prefix)
        self.group_id = group_id or f"{settings.topic_prefix}{handler.name}"
        self.drain_timeout = drain_timeout
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._drain = False
        self._drain_started: float | None = None
        self.started = asyncio.Event()
        self.assigned = asyncio.Event()  # set once the group gave this member its partitions
        self.lag: dict[TopicPartition, int] = {}

    # -- control ---------------------------------------------------------------------------------
    def request_stop(self, *, drain: bool = False) -> None:
        """Stop after the in-flight batch; with drain=True, first consume until the lag is zero."""
        self._drain = self._drain or drain
        if self._drain and self._drain_started is None:
            self._drain_started = time.monotonic()
        self._stop.set()

    @property
    def total_lag(self) -> int:
        return sum(self.lag.values())

    # -- loop ------------------------------------------------------------------------------------
    async def run(self) -> None:
        consumer = make_consumer(self.settings, self.group_id)
        topics = self.handler.topics(self.topics)
        consumer.subscribe(topics, listener=_FlushOnRevoke(self))
        await consumer.start()
        log.info("%s consuming %s as group %s", self.handler.name, ", ".join(topics), self.group_id)
        self.started.set()
        last_lag = 0.0
        try:
            while True:
                if self._stop.is_set() and not self._drain:
                    break
                batch = await consumer.getmany(
                    timeout_ms=self.settings.consumer_poll_ms, max_records=self.settings.consumer_batch_size
                )
                records = [r for rs in batch.values() for r in rs]
                if records:
                    async with self._lock:
                        started = time.perf_counter()
                        try:
                            await self._process(records)
                        except _Stopping as exc:
                            # Nothing of this batch is committed: the group's next owner re-reads it.
                            log.warning("%s stops with an uncommitted batch: %s", self.handler.name, exc.__cause__)
                            break
                        await self._commit(consumer, batch)
                        BATCH_SECONDS.labels(self.handler.name).observe(time.perf_counter() - started)
                now = time.monotonic()
                if not records or now - last_lag > LAG_REFRESH_SECONDS:
                    await self._refresh_lag(consumer)
                    last_lag = now
                if self._stop.is_set() and self._drain and not records and self._drained():
                    break
        finally:
            await self._refresh_lag(consumer)
            await consumer.stop()
            log.info("%s stopped; lag left %d", self.handler.name, self.total_lag)

    def _drain_overdue(self) -> bool:
        return self._drain_started is not None and time.monotonic() - self._drain_started > self.drain_timeout

    def _drained(self) -> bool:
        if self.total_lag == 0:
            log.info("%s drained to zero lag", self.handler.name)
            return True
        if self._drain_overdue():
            log.warning(
                "%s gave up draining after %.0fs with lag %d", self.handler.name, self.drain_timeout, self.total_lag
            )
            return True
        return False

    async def _refresh_lag(self, consumer: AIOKafkaConsumer) -> None:
        try:
            self.lag = await partition_lag(consumer)
        except (KafkaError, OSError) as exc:
            log.debug("lag refresh failed: %s", exc)
            return
        for tp, lag in self.lag.items():
            CONSUMER_LAG.labels(self.handler.name, tp.topic, str(tp.partition)).set(lag)

    async def _commit(self, consumer: AIOKafkaConsumer, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        offsets = {tp: rs[-1].offset + 1 for tp, rs in batch.items() if rs}
        try:
            await consumer.commit(offsets)
        except CommitFailedError as exc:
            # The group moved on; the new owner re-reads these messages and skips them by event id.
            ERRORS.labels(self.handler.name, "commit_failed").inc()
            log.warning("%s offset commit failed after a rebalance: %s", self.handler.name, exc)

    # -- one batch -------------------------------------------------------------------------------
    async def _process(self, records: list[ConsumerRecord]) -> None:
        BATCH_SIZE.labels(self.handler.name).observe(len(records))
        items: list[tuple[ConsumerRecord, T]] = []
        dead: list[DeadLetter] = []
        seen: set[uuid.UUID] = set()
        for record in records:
            try:
                item = self.handler.decode(record)
            except InvalidMessage as exc:
                dead.append(_letter(record, f"invalid: {exc}"))
                continue
            if item.event_id in seen:
                DUPLICATES_SKIPPED.labels(self.handler.name).inc()
                continue
            seen.add(item.event_id)
            items.append((record, item))
        if items:
            try:
                await self._retrying(self._apply, [i for _, i in items])
            except _Stopping:
                raise
            except Exception as exc:  # noqa: BLE001 - isolate the poison message, keep the rest
                ERRORS.labels(self.handler.name, "handler").inc()
                log.warning("%s batch of %d failed (%s); applying one by one", self.handler.name, len(items), exc)
                for record, item in items:
                    try:
                        await self._retrying(self._apply, [item])
                    except _Stopping:
                        raise
                    except Exception as one_exc:  # noqa: BLE001 - recorded with its reason, not dropped
                        log.exception("%s dead-letters %s@%s", self.handler.name, record.topic, record.offset)
                        dead.append(_letter(record, f"handler error: {type(one_exc).__name__}: {one_exc}"))
        if dead:
            await self._retrying(send_dead_letters, self.producer, self.topics.dead_letter, self.handler.name, dead)

    async def _apply(self, items: list[T]) -> None:
        async with self.sessionmaker() as session, session.begin():
            fresh = await claim_event_ids(session, self.handler.name, [i.event_id for i in items])
            todo = [i for i in items if i.event_id in fresh]
            DUPLICATES_SKIPPED.labels(self.handler.name).inc(len(items) - len(todo))
            outgoing = await self.handler.apply(session, todo) if todo else []
            if outgoing:
                futures = [await self.producer.send(o.topic, key=o.key, value=o.value) for o in outgoing]
                await asyncio.gather(*futures)
        EVENTS_CONSUMED.labels(self.handler.name).inc(len(todo))

    async def _retrying(self, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        def give_up(_state: RetryCallState) -> bool:
            if not self._stop.is_set():
                return False
            return not self._drain or self._drain_overdue()

        def log_retry(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            ERRORS.labels(self.handler.name, "transient").inc()
            log.warning("%s transient error, retrying: %s: %s", self.handler.name, type(exc).__name__, exc)

        retrying = AsyncRetrying(
            retry=retry_if_exception(is_transient),
            wait=wait_exponential(multiplier=0.2, max=10),
            stop=give_up,
            before_sleep=log_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await fn(*args)
        except Exception as exc:
            if is_transient(exc) and self._stop.is_set():
                raise _Stopping from exc
            raise


class _FlushOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Waits for the in-flight batch to finish and commit before partitions move to another member."""

    def __init__(self, runner: ConsumerRunner[Any]) -> None:
        self.runner = runner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        async with self.runner._lock:
            log.info("%s partitions revoked: %d", self.runner.handler.name, len(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("%s partitions assigned: %d", self.runner.handler.name, len(assigned))
        self.runner.assigned.set()


async def claim_event_ids(session: AsyncSession, consumer: str, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Record ids as processed by `consumer`; return those not processed before (one statement)."""
    result = await session.execute(
        text(
            "INSERT INTO processed_events (consumer, event_id) "
            "SELECT :consumer, unnest(CAST(:ids AS uuid[])) ON CONFLICT DO NOTHING RETURNING event_id"
        ),
        {"consumer": consumer, "ids": ids},
    )
    return {row[0] for row in result}


def _letter(record: ConsumerRecord, reason: str) -> DeadLetter:
    return DeadLetter(
        key=record.key,
        value=record.value,
        reason=reason,
        original_topic=record.topic,
        original_partition=record.partition,
        original_offset=record.offset,
    )
