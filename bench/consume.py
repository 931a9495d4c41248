"""Benchmark of the scoring consumer path; prints ONE JSON object to stdout.

Measured: the real ConsumerRunner with the real ScoringHandler (claim event ids; resolve, create, link
and merge leads; apply deltas; write history; publish LeadChanged; commit the transaction, then the
offsets), started with request_stop(drain=True) so it stops once the topic is drained.

Baseline, same run, same topic data, batch size and partitions: a raw aiokafka consumer in a new group
doing the minimum work of "consume a batch, write it in one transaction, commit offsets": per batch one
asyncpg transaction with a single INSERT ... SELECT unnest(...) ON CONFLICT DO UPDATE of per-user counts.

    .venv/bin/python bench/consume.py [--events 50000] [--users 2000] [--batch-size 500] [--partitions 12]
                                      [--rounds 3] [--budget 120] [--run-timeout 90]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from _stack import Stack, components, machine, percentile, progress, setup_logging
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring.handlers import ScoringHandler
from shared.db import make_engine, make_sessionmaker
from shared.events import ScoringTick, TrackedEvent, derived_id
from shared.kafka import Topics, ensure_topics, make_consumer, make_producer
from shared.runner import ConsumerRunner, Outgoing
from shared.settings import ScoringSettings, to_libpq_url


@dataclass
class RunResult:
    """One consume run: wall time from start to drained, and every batch's (start, end, records)."""

    events: int
    wall_s: float
    batches: list[tuple[float, float, int]]
    started_at: float
    # seconds per batch of named parts of the batch window
    phases: dict[str, list[float]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        seconds = [end - start for start, end, _ in self.batches]
        first = self.batches[0][0] if self.batches else self.started_at
        last = self.batches[-1][1] if self.batches else self.started_at
        steady = last - first
        return {
            "events_per_s": round(self.events / self.wall_s, 1) if self.wall_s else 0.0,
            "batch_p50_ms": round(percentile(seconds, 50) * 1000, 2),
            "batch_p99_ms": round(percentile(seconds, 99) * 1000, 2),
            "events_applied": self.events,
            "wall_s": round(self.wall_s, 3),
            "startup_s": round(first - self.started_at, 3),
            "steady_events_per_s": round(self.events / steady, 1) if steady > 0 else 0.0,
            "batches": len(self.batches),
            "mean_batch_records": round(statistics.fmean(n for *_, n in self.batches), 1) if self.batches else 0,
            "phases_p50_ms": {name: round(percentile(v, 50) * 1000, 2) for name, v in self.phases.items()},
        }


# -- input data ----------------------------------------------------------------------------------------
# Mostly events the shipped rules score (with their caps), now and then a demo request.
EVENT_NAMES = ("Product Viewed", "Email Opened", "Product Viewed", "Page Viewed", "Demo Requested", "Product Added")


def make_event(i: int, users: int, source_id: Any, base: datetime) -> TrackedEvent:
    """The i-th event: users take turns; every 20th call is an identify carrying an email; the tracks
    are ones the shipped rules score (product views, email opens, now and then a demo request)."""
    user = i % users
    message_id = f"bench-{i}"
    identify = i % 20 == 0
    at = base + timedelta(milliseconds=i)
    return TrackedEvent(
        event_id=derived_id(source_id, message_id),
        source_id=source_id,
        message_id=message_id,
        type="identify" if identify else "track",
        event=None if identify else EVENT_NAMES[i % len(EVENT_NAMES)],
        user_id=f"user-{user}",
        anonymous_id=f"anon-{user}",
        traits={"email": f"user-{user}@example.com", "plan": "pro"} if identify else {},
        properties={} if identify else {"path": f"/docs/{i % 50}", "value": i % 100},
        context={"library": {"name": "bench", "version": "1"}, "ip": "127.0.0.1"},
        timestamp=at,
        received_at=at,
    )


async def produce_events(settings: ScoringSettings, n: int, users: int) -> float:
    producer = make_producer(settings)
    await producer.start()
    topic = Topics(settings.topic_prefix).events
    source_id = derived_id("bench-source", settings.topic_prefix)
    base = datetime.now(UTC)
    started = time.perf_counter()
    try:
        for start in range(0, n, 5000):
            futures = []
            for i in range(start, min(n, start + 5000)):
                event = make_event(i, users, source_id, base)
                futures.append(await producer.send(topic, key=event.lead_key.encode(), value=event.to_bytes()))
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - started


# -- measured: the product's runner ---------------------------------------------------------------------
class TimedScoringHandler(ScoringHandler):
    """The real scoring handler; records how long each apply (its SQL and planning) takes."""

    def __init__(self, topics: Topics) -> None:
        super().__init__(topics)
        self.apply_seconds: list[float] = []

    async def apply(self, session: AsyncSession, items: Sequence[TrackedEvent | ScoringTick]) -> list[Outgoing]:
        t0 = time.perf_counter()
        try:
            return await super().apply(session, items)
        finally:
            self.apply_seconds.append(time.perf_counter() - t0)


class TimedRunner(ConsumerRunner[TrackedEvent | ScoringTick]):
    """The real runner, timing each batch over the same window as funnelstream_batch_seconds
    (decode + transaction + offset commit), and the parts of that window."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batches: list[tuple[float, float, int]] = []
        self.process_seconds: list[float] = []
        self.transaction_seconds: list[float] = []
        self.commit_seconds: list[float] = []
        self._batch_start = 0.0
        self._batch_records = 0

    async def _process(self, records: list[ConsumerRecord]) -> None:
        self._batch_start = time.perf_counter()
        self._batch_records = len(records)
        await super()._process(records)
        self.process_seconds.append(time.perf_counter() - self._batch_start)

    async def _apply(self, items: list[TrackedEvent | ScoringTick]) -> None:
        t0 = time.perf_counter()
        await super()._apply(items)
        self.transaction_seconds.append(time.perf_counter() - t0)

    async def _commit(self, consumer: AIOKafkaConsumer, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        t0 = time.perf_counter()
        await super()._commit(consumer, batch)
        end = time.perf_counter()
        self.commit_seconds.append(end - t0)
        self.batches.append((self._batch_start, end, self._batch_records))

    def phases(self, handler: TimedScoringHandler) -> dict[str, list[float]]:
        """decode = process - transaction; claim/publish/commit = transaction - handler apply."""
        if not (len(self.process_seconds) == len(self.transaction_seconds) == len(handler.apply_seconds)):
            return {"offset_commit": self.commit_seconds}  # a batch was retried or split: no clean breakdown
        return {
            "decode": [p - t for p, t in zip(self.process_seconds, self.transaction_seconds, strict=True)],
            "handler_apply": handler.apply_seconds,
            "claim_publish_txn_commit": [
                t - a for t, a in zip(self.transaction_seconds, handler.apply_seconds, strict=True)
            ],
            "offset_commit": self.commit_seconds,
        }

    def stop_now(self) -> None:
        """Give up draining: stop after the in-flight batch (request_stop cannot take a drain back)."""
        self._drain = False
        self.request_stop()


async def reset_product_tables(database_url: str) -> None:
    """Empty every table the consumer writes (all but the migration marker, sources and the baseline's)."""
    conn = await asyncpg.connect(to_libpq_url(database_url))
    try:
        names = await conn.fetch(
            "SELECT quote_ident(tablename) AS name FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename NOT IN ('alembic_version', 'sources', 'bench_user_counts')"
        )
        if names:
            await conn.execute("TRUNCATE " + ", ".join(r["name"] for r in names) + " CASCADE")
    finally:
        await conn.close()


async def count_applied(database_url: str) -> int:
    conn = await asyncpg.connect(to_libpq_url(database_url))
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM processed_events WHERE consumer = 'scoring'")
        return count
    finally:
        await conn.close()


async def run_measured(settings: ScoringSettings, round_no: int, timeout: float) -> RunResult:
    if round_no:
        await reset_product_tables(settings.database_url)
    engine = make_engine(settings.database_url, pool_size=4)  # as `funnelstream scoring` builds it
    producer = make_producer(settings)
    await producer.start()
    try:
        handler = TimedScoringHandler(Topics(settings.topic_prefix))
        runner = TimedRunner(
            settings,
            handler,
            make_sessionmaker(engine),
            producer,
            group_id=f"{settings.topic_prefix}scoring-r{round_no}",
        )
        started = time.perf_counter()
        task = asyncio.create_task(runner.run())
        runner.request_stop(drain=True)
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            progress(f"measured run hit --run-timeout {timeout:g}s; stopping after the in-flight batch")
            runner.stop_now()
        await task
        wall = time.perf_counter() - started
    finally:
        await producer.stop()
        await engine.dispose()
    applied = await count_applied(settings.database_url)
    return RunResult(applied, wall, runner.batches, started, runner.phases(handler))


# -- baseline: raw consumer, one unnest upsert per batch ------------------------------------------------
async def run_baseline(settings: ScoringSettings, round_no: int, timeout: float) -> RunResult:
    conn = await asyncpg.connect(to_libpq_url(settings.database_url))
    await conn.execute("CREATE TABLE IF NOT EXISTS bench_user_counts (user_id text PRIMARY KEY, n bigint NOT NULL)")
    await conn.execute("TRUNCATE bench_user_counts")
    upsert = (
        "INSERT INTO bench_user_counts (user_id, n) SELECT * FROM unnest($1::text[], $2::bigint[]) "
        "ON CONFLICT (user_id) DO UPDATE SET n = bench_user_counts.n + EXCLUDED.n"
    )
    consumer = make_consumer(settings, f"{settings.topic_prefix}baseline-r{round_no}")
    consumer.subscribe([Topics(settings.topic_prefix).events])
    batches: list[tuple[float, float, int]] = []
    phases: dict[str, list[float]] = {"db_transaction": [], "offset_commit": []}
    consumed = 0
    started = time.perf_counter()
    deadline = started + timeout
    try:
        await consumer.start()
        while time.perf_counter() < deadline:
            batch = await consumer.getmany(
                timeout_ms=settings.consumer_poll_ms, max_records=settings.consumer_batch_size
            )
            records = [r for rs in batch.values() for r in rs]
            if not records:
                # drained once every assigned partition's position reached its end offset (one request)
                if consumed and await caught_up(consumer):
                    break
                continue
            t0 = time.perf_counter()
            counts = Counter(r.key.decode() if r.key else "" for r in records)
            users = sorted(counts)
            async with conn.transaction():
                await conn.execute(upsert, users, [counts[u] for u in users])
            t1 = time.perf_counter()
            await consumer.commit({tp: rs[-1].offset + 1 for tp, rs in batch.items() if rs})
            t2 = time.perf_counter()
            phases["db_transaction"].append(t1 - t0)
            phases["offset_commit"].append(t2 - t1)
            batches.append((t0, t2, len(records)))
            consumed += len(records)
    finally:
        await consumer.stop()
        wall = time.perf_counter() - started
        total = await conn.fetchval("SELECT coalesce(sum(n), 0) FROM bench_user_counts")
        await conn.close()
    return RunResult(int(total), wall, batches, started, phases)


async def caught_up(consumer: AIOKafkaConsumer) -> bool:
    assigned = list(consumer.assignment())
    ends = await consumer.end_offsets(assigned)
    for tp in assigned:
        if await consumer.position(tp) < ends.get(tp, 0):
            return False
    return True


# -- driver ---------------------------------------------------------------------------------------------
def median_summary(results: Sequence[RunResult]) -> dict[str, Any]:
    """The run with the median events/s, plus every round's events/s."""
    ordered = sorted(results, key=lambda r: r.events / r.wall_s if r.wall_s else 0.0)
    chosen = ordered[len(ordered) // 2].summary()
    chosen["rounds_events_per_s"] = [r.summary()["events_per_s"] for r in results]
    return chosen


async def bench(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    settings = ScoringSettings(
        database_url=stack.database_url,
        kafka_bootstrap_servers=stack.bootstrap,
        kafka_idempotence=stack.kafka_idempotence,
        kafka_session_timeout_ms=stack.session_timeout_ms,
        topic_prefix=stack.topic_prefix,
        partitions=args.partitions,
        consumer_batch_size=args.batch_size,
        consumer_poll_ms=args.poll_ms,
    )
    partitions = await ensure_topics(settings)
    progress(f"producing {args.events} events over {args.users} users to {Topics(settings.topic_prefix).events}")
    produce_s = await produce_events(settings, args.events, args.users)
    progress(f"produced in {produce_s:.1f}s")
    measured: list[RunResult] = []
    baseline: list[RunResult] = []
    budget_end = time.monotonic() + args.budget
    last_round = 0.0
    for round_no in range(args.rounds):
        if round_no and time.monotonic() + last_round > budget_end:
            progress(f"stopping after {round_no} round(s): another would pass --budget {args.budget:g}s")
            break
        round_start = time.monotonic()
        # alternate the order so neither side always runs on a warmer machine
        order = ("measured", "baseline") if round_no % 2 == 0 else ("baseline", "measured")
        for which in order:
            progress(f"round {round_no + 1}/{args.rounds}: {which}")
            if which == "measured":
                result = await run_measured(settings, round_no, args.run_timeout)
                measured.append(result)
            else:
                result = await run_baseline(settings, round_no, args.run_timeout)
                baseline.append(result)
            s = result.summary()
            progress(
                f"  {which}: {s['events_applied']} events in {s['wall_s']}s = {s['events_per_s']}/s, "
                f"batch p50 {s['batch_p50_ms']} ms p99 {s['batch_p99_ms']} ms"
            )
        last_round = time.monotonic() - round_start
    m, b = median_summary(measured), median_summary(baseline)
    complete = m["events_applied"] == args.events and b["events_applied"] == args.events
    return {
        "benchmark": "consume",
        "events": args.events,
        "config": {
            "batch_size": settings.consumer_batch_size,
            "partitions": partitions.get(Topics(settings.topic_prefix).events, args.partitions),
            "poll_ms": settings.consumer_poll_ms,
            "users": args.users,
            "rounds": len(measured),
            "rounds_requested": args.rounds,
            "run_timeout_s": args.run_timeout,
            "broker": stack.broker,
            "db": stack.db,
            "kafka_idempotence": settings.kafka_idempotence,
            "session_timeout_ms": settings.kafka_session_timeout_ms,
            "produce_s": round(produce_s, 2),
            "machine": machine(),
        },
        "measured": {"path": "ConsumerRunner + ScoringHandler", **m},
        "baseline": {"path": "aiokafka getmany + one asyncpg unnest upsert per batch + offset commit", **b},
        "ratio": round(m["events_per_s"] / b["events_per_s"], 3) if b["events_per_s"] else None,
        "ratio_steady": (
            round(m["steady_events_per_s"] / b["steady_events_per_s"], 3) if b["steady_events_per_s"] else None
        ),
        "complete": complete,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000, help="events to pre-produce and consume")
    parser.add_argument("--users", type=int, default=2_000, help="distinct users the events are spread over")
    parser.add_argument("--batch-size", type=int, default=500, help="consumer_batch_size (both sides)")
    parser.add_argument("--partitions", type=int, default=12, help="partitions of the events topic (both sides)")
    parser.add_argument("--poll-ms", type=int, default=100, help="consumer_poll_ms (both sides)")
    parser.add_argument("--rounds", type=int, default=3, help="measured/baseline pairs; the median run is reported")
    parser.add_argument("--run-timeout", type=float, default=90.0, help="seconds one side may take to drain")
    parser.add_argument(
        "--budget", type=float, default=120.0, help="no new round starts if it would end past this many seconds"
    )
    parser.add_argument("--verbose", action="store_true", help="FunnelStream's own INFO logs on stderr")
    args = parser.parse_args()
    setup_logging(args.verbose)
    with contextlib.redirect_stdout(sys.stderr), components() as stack:
        result = asyncio.run(bench(stack, args))
    print(json.dumps(result))
    return 0 if result["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
