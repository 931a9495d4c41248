"""Benchmark of funnel analytics (issue 8); prints ONE JSON object to stdout.

Data set of --scale leads over the last 180 days (b2b funnel: each stage reached with a fixed chance,
days apart; a customer orders 1-3 times), 5 sources x 3 utm sources x 5 campaigns. What scoring would
have written and announced is generated: `leads`, `lead_identities`, `lead_events` (first event, orders),
`stage_history` rows (COPY), the first utm-tagged event of each lead on `events` and every stage change
and order on `lead-changes`. From there it is the product's normal path: the real analytics consumer
(ConsumerRunner + AnalyticsHandler) consumes both topics into the summary tables (timed, messages/s);
then `funnelstream analytics backfill`'s function rebuilds them from history (timed). Then --queries
randomised report queries (funnel, trend, time in stage, cohorts, money; random model-day ranges and
dimension filters), each in its own session, no response cache, with p50/p95/p99; baselines in the same
run: a raw asyncpg `SELECT 1`, and the raw-history way to answer the funnel (a `stage_history` scan
grouped by stage over the same range).

    .venv/bin/python bench/analytics.py [--scale 10000] [--queries 300]
    .venv/bin/python bench/analytics.py --scale 1000000   # full scale: a big machine, not a shared one
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
from _stack import Stack, components, machine, percentile, progress, setup_logging

from funnelstream.cli import run as run_loop
from services.analytics.backfill import backfill
from services.analytics.handlers import AnalyticsHandler
from services.analytics.queries import Filters
from services.analytics.reports import Reports
from shared.db import make_engine, make_sessionmaker
from shared.events import LeadActivity, LeadStageChanged, TrackedEvent, derived_id
from shared.kafka import ensure_topics, make_producer
from shared.runner import ConsumerRunner
from shared.settings import AnalyticsSettings, to_libpq_url

STAGES = ["visitor", "lead", "mql", "sal", "sql", "opportunity", "customer"]
CHANCE = [1.0, 0.7, 0.45, 0.6, 0.6, 0.7, 0.5]  # of reaching each stage from the one before
SOURCES = [uuid.UUID(int=i + 1) for i in range(5)]
UTM_SOURCES = ["", "google", "meta"]
CAMPAIGNS = ["", "spring", "summer", "brand", "retarget"]
DAYS = 180
TARGET_MS = 100.0


def generate(n: int, now: datetime, rng: random.Random) -> dict[str, list[Any]]:
    """Rows for the history tables and the messages scoring would have published."""
    leads: list[Any] = []
    identities: list[Any] = []
    events: list[Any] = []
    history: list[Any] = []
    touches: list[Any] = []
    changes: list[Any] = []
    for i in range(n):
        lead = uuid.UUID(int=(1 << 100) + i)
        user = f"u{i}"
        source = rng.choice(SOURCES)
        utm = (rng.choice(UTM_SOURCES), rng.choice(CAMPAIGNS))
        at = now - timedelta(days=rng.uniform(0, DAYS))
        leads.append((lead, user, at))
        identities.append(("user", user, lead))
        first = derived_id("bench-first", i)
        events.append((first, lead, source, "track", "Page Viewed", "{}", at, at))
        campaign = {"source": utm[0], "name": utm[1]} if any(utm) else {}
        touches.append(TrackedEvent(event_id=first, source_id=source, message_id=f"m{i}", type="track",
                                    event="Page Viewed", user_id=user, context={"campaign": campaign},
                                    timestamp=at, received_at=at))  # fmt: skip
        stage = STAGES[0]
        seen = LeadActivity(event_id=derived_id("bench-act", i), lead_id=lead, user_id=user, name="Page Viewed",
                            source_id=source, cause_event_id=first, occurred_at=at)  # fmt: skip
        changes.append(seen)
        for s, chance in zip(STAGES[1:], CHANCE[1:], strict=True):
            if rng.random() > chance:
                break
            at = at + timedelta(days=rng.expovariate(1 / 6))
            if at > now:
                break
            history.append((lead, "b2b", stage, s, "entry", 1, at))
            changes.append(LeadStageChanged(event_id=derived_id("bench-stage", i, s), lead_id=lead, user_id=user,
                                            model="b2b", stage=s, previous_stage=stage, kind="entry",
                                            rule_set_version=1, occurred_at=at))  # fmt: skip
            stage = s
        if stage == "customer":
            for k in range(rng.randint(1, 3)):
                at = at + timedelta(days=rng.uniform(0, 30))
                if at > now:
                    break
                props = {"revenue": round(rng.uniform(20, 400), 2), "currency": rng.choice(["USD", "EUR"])}
                oid = derived_id("bench-order", i, k)
                events.append((oid, lead, source, "track", "Order Completed", json.dumps(props), at, at))
                order = LeadActivity(
                    event_id=oid, lead_id=lead, user_id=user, name="Order Completed", properties=props,
                    source_id=source, cause_event_id=oid, occurred_at=at,
                )  # fmt: skip
                changes.append(order)
    return {"leads": leads, "identities": identities, "events": events, "history": history,
            "touches": touches, "changes": changes}  # fmt: skip


async def write_history(url: str, data: dict[str, list[Any]]) -> None:
    conn = await asyncpg.connect(to_libpq_url(url))
    try:
        await conn.copy_records_to_table("leads", records=data["leads"], columns=["lead_id", "user_id", "created_at"])
        await conn.copy_records_to_table("lead_identities", records=data["identities"],
                                         columns=["kind", "value", "lead_id"])  # fmt: skip
        columns = ["event_id", "lead_id", "source_id", "type", "name", "properties", "occurred_at", "received_at"]
        await conn.copy_records_to_table("lead_events", records=data["events"], columns=columns)
        await conn.copy_records_to_table("stage_history", records=data["history"], columns=[
            "lead_id", "model", "from_stage", "to_stage", "kind", "rule_set_version", "occurred_at"])  # fmt: skip
        await conn.execute("INSERT INTO analytics_rates VALUES ('EUR', 'USD', '2000-01-01', 1.08)")
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def consume(settings: AnalyticsSettings, data: dict[str, list[Any]]) -> dict[str, Any]:
    """Publish the messages and let the real analytics consumer apply them; messages/s."""
    engine = make_engine(settings.database_url, pool_size=4)
    producer = make_producer(settings)
    await producer.start()
    runner = ConsumerRunner(settings, AnalyticsHandler(settings), make_sessionmaker(engine), producer)
    task = asyncio.create_task(runner.run())
    conn = await asyncpg.connect(to_libpq_url(settings.database_url))
    timings: dict[str, Any] = {}
    try:
        await runner.assigned.wait()
        prefix = settings.topic_prefix
        applied = 0
        for topic, messages in (("events", data["touches"]), ("lead-changes", data["changes"])):
            started = time.perf_counter()
            for i in range(0, len(messages), 5000):
                chunk = messages[i : i + 5000]
                futures = [await producer.send(prefix + topic, key=m.lead_key.encode() if topic == "events"
                                               else m.lead_id.bytes, value=m.to_bytes()) for m in chunk]  # fmt: skip
                await asyncio.gather(*futures)
            applied += len(messages)
            while await conn.fetchval("SELECT count(*) FROM processed_events WHERE consumer = 'analytics'") < applied:
                await asyncio.sleep(0.2)
            seconds = time.perf_counter() - started
            timings[topic] = {"messages": len(messages), "seconds": round(seconds, 2),
                              "per_second": round(len(messages) / seconds)}  # fmt: skip
            progress(f"consumed {len(messages)} {topic} messages in {seconds:.1f}s")
    finally:
        runner.request_stop()
        await task
        await conn.close()
        await producer.stop()
        await engine.dispose()
    return timings


async def funnel_totals(url: str) -> dict[str, list[int]]:
    """Entered and exited per stage over all days: the live consumer and the backfill must agree."""
    conn = await asyncpg.connect(to_libpq_url(url))
    try:
        rows = await conn.fetch(
            "SELECT stage, sum(entered)::bigint, sum(exited)::bigint FROM analytics_funnel_daily "
            "WHERE model = 'b2b' GROUP BY stage ORDER BY stage"
        )
    finally:
        await conn.close()
    return {r[0]: [r[1], r[2]] for r in rows}


def _filters(rng: random.Random, today: date) -> Filters:
    span = rng.choice([7, 30, 90, 180])
    end = today - timedelta(days=rng.randint(0, DAYS - span))
    source = rng.choice([None, None, *SOURCES])
    return Filters(
        "b2b", end - timedelta(days=span), end, source,
        rng.choice([None, None, *UTM_SOURCES]), rng.choice([None, None, *CAMPAIGNS]),
    )  # fmt: skip


def _stats(ms: list[float]) -> dict[str, float]:
    return {"n": len(ms), "p50_ms": round(percentile(ms, 50), 2), "p95_ms": round(percentile(ms, 95), 2),
            "p99_ms": round(percentile(ms, 99), 2)}  # fmt: skip


async def queries(settings: AnalyticsSettings, n: int, rng: random.Random) -> dict[str, Any]:
    engine = make_engine(settings.database_url, pool_size=2)
    sessionmaker = make_sessionmaker(engine)
    reports = Reports(settings)
    today = datetime.now(UTC).date()
    kinds = {
        "funnel": lambda s, f: reports.funnel(s, f),
        "trend": lambda s, f: reports.trend(s, f),
        "time_in_stage": lambda s, f: reports.time_in_stage(s, f),
        "cohorts": lambda s, f: reports.cohorts(s, f, "week"),
        "money": lambda s, f: reports.money(s, f),
    }
    times: dict[str, list[float]] = {k: [] for k in [*kinds, "select_1", "raw_history_funnel"]}
    conn = await asyncpg.connect(to_libpq_url(settings.database_url))
    try:
        async with sessionmaker() as session:  # warm the rules cache and the pool
            await reports.funnel(session, _filters(rng, today))
        for i in range(n):
            kind = list(kinds)[i % len(kinds)]
            f = _filters(rng, today)
            started = time.perf_counter()
            async with sessionmaker() as session, session.begin():
                await kinds[kind](session, f)
            times[kind].append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            await conn.fetchval("SELECT 1")
            times["select_1"].append((time.perf_counter() - started) * 1000)
            if i % 5 == 0:
                started = time.perf_counter()
                await conn.fetch(
                    "SELECT to_stage, count(*) FROM stage_history WHERE model = 'b2b' AND occurred_at >= $1 "
                    "AND occurred_at < $2 GROUP BY to_stage", f.start, f.end + timedelta(days=1))  # fmt: skip
                times["raw_history_funnel"].append((time.perf_counter() - started) * 1000)
    finally:
        await conn.close()
        await engine.dispose()
    return {k: _stats(v) for k, v in times.items()}


async def bench(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    settings = AnalyticsSettings(
        database_url=stack.database_url, kafka_bootstrap_servers=stack.bootstrap, topic_prefix=stack.topic_prefix,
        kafka_idempotence=stack.kafka_idempotence, kafka_session_timeout_ms=stack.session_timeout_ms,
        consumer_batch_size=args.batch,
    )  # fmt: skip
    await ensure_topics(settings)
    progress(f"generating {args.scale} leads")
    started = time.perf_counter()
    data = generate(args.scale, datetime.now(UTC), rng)
    await write_history(stack.database_url, data)
    generated = time.perf_counter() - started
    progress(
        f"history written in {generated:.1f}s: {len(data['history'])} stage changes, {len(data['changes'])} messages"
    )
    consumed = await consume(settings, data)
    live = await funnel_totals(stack.database_url)
    engine = make_engine(settings.database_url, pool_size=2)
    try:
        result = await backfill(make_sessionmaker(engine), settings, args.chunk)
    finally:
        await engine.dispose()
    progress(f"backfill of {result.leads} leads in {result.seconds:.1f}s")
    rebuilt = await funnel_totals(stack.database_url)
    measured = await queries(settings, args.queries, rng)
    base = measured["select_1"]["p50_ms"] or None
    raw = measured["raw_history_funnel"]["p50_ms"] or None
    report_kinds = ["funnel", "trend", "time_in_stage", "cohorts", "money"]
    worst_p95 = max(measured[k]["p95_ms"] for k in report_kinds)
    return {
        "benchmark": "analytics",
        "config": {
            "scale": args.scale,
            "queries": args.queries,
            "seed": args.seed,
            "consumer_batch_size": args.batch,
            "backfill_chunk": args.chunk,
            "days": DAYS,
            "db": stack.db,
            "broker": stack.broker,
            "machine": machine(),
        },  # fmt: skip
        "data": {
            "leads": args.scale,
            "stage_changes": len(data["history"]),
            "lead_change_messages": len(data["changes"]),
            "events_messages": len(data["touches"]),
            "history_write_s": round(generated, 2),
        },  # fmt: skip
        "consume": consumed,
        "live_equals_backfill": live == rebuilt,
        "funnel_totals": rebuilt,
        "backfill": {
            "leads": result.leads,
            "stage_changes": result.stage_changes,
            "orders": result.orders,
            "seconds": round(result.seconds, 2),
            "leads_per_second": round(result.leads / result.seconds),
        },  # fmt: skip
        "queries": measured,
        "ratios": {
            f"{k}_p50_to_select_1": round(measured[k]["p50_ms"] / base, 1) if base else None for k in report_kinds
        }
        | {"funnel_p50_to_raw_history_scan": round(measured["funnel"]["p50_ms"] / raw, 3) if raw else None},
        "target_p95_ms": TARGET_MS,
        "pass": worst_p95 < TARGET_MS,
        "complete": live == rebuilt,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--scale", type=int, default=10_000, help="leads in the data set (full scale: 1000000)")
    add("--queries", type=int, default=300, help="randomised report queries")
    add("--batch", type=int, default=1000, help="FUNNELSTREAM_CONSUMER_BATCH_SIZE of the analytics consumer")
    add("--chunk", type=int, default=1000, help="leads per backfill transaction")
    add("--seed", type=int, default=8, help="random seed of the data set and the queries")
    add("--verbose", action="store_true", help="FunnelStream's own INFO logs on stderr")
    args = parser.parse_args()
    setup_logging(args.verbose)
    try:
        with contextlib.redirect_stdout(sys.stderr), components() as stack:
            result = run_loop(bench(stack, args))
    except Exception as exc:
        print(json.dumps({"benchmark": "analytics", "error": f"{type(exc).__name__}: {exc}"}))
        raise
    print(json.dumps(result))
    return 0 if result["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
