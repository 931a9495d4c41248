"""Benchmark: one hot lead sends half of all traffic; are the other leads starved? (issue 9)

Prints ONE JSON object to stdout. Two runs in the same session with the same rate, duration, users,
partitions and consumer settings, each on a fresh copy of the migrated database and its own topics:

- baseline: the events spread evenly over --users leads;
- hot: the same, except that --hot-share of the events (half by default) belong to one lead.

Events are produced straight to the events topic in an open loop at --rate events/s, keyed by lead as
ingest keys them; one `funnelstream scoring` process consumes. An event's latency is the time from its
produce call to `processed_events.processed_at` (the start of the transaction that applied it, same
machine clock). Reported: the other leads' latency percentiles in both runs and the ratio hot/baseline
of their p99 (1.0 = the flood costs the others nothing), the hot lead's own, and whether every event
was applied.

    .venv/bin/python bench/hotlead.py [--rate 1000] [--duration 15] [--users 2000] [--hot-share 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from _stack import Children, Stack, components, database_copy, machine, percentile, product_env, progress, setup_logging

from shared.events import TrackedEvent, derived_id
from shared.kafka import Topics, ensure_topics, make_producer
from shared.settings import Settings, to_libpq_url

SOURCE = derived_id("bench-hotlead")
HOT = "hot-lead"


def settings_of(stack: Stack, database_url: str, prefix: str, args: argparse.Namespace) -> Settings:
    return Settings(
        database_url=database_url,
        kafka_bootstrap_servers=stack.bootstrap,
        kafka_idempotence=stack.kafka_idempotence,
        topic_prefix=prefix,
        partitions=args.partitions,
    )


def event(user: str, n: int, tag: str) -> TrackedEvent:
    now = datetime.now(UTC)
    mid = f"{tag}-{n}"
    return TrackedEvent(
        event_id=derived_id(SOURCE, mid), source_id=SOURCE, message_id=mid, type="page", name="Pricing",
        user_id=user, properties={"path": "/pricing"}, timestamp=now, received_at=now,
    )  # fmt: skip


async def applied(database_url: str) -> dict[uuid.UUID, float]:
    conn = await asyncpg.connect(to_libpq_url(database_url))
    try:
        rows = await conn.fetch(
            "SELECT event_id, extract(epoch FROM processed_at) AS at FROM processed_events WHERE consumer = 'scoring'"
        )
    finally:
        await conn.close()
    return {r["event_id"]: float(r["at"]) for r in rows}


def summary(values: list[float]) -> dict[str, float | int]:
    return {
        "events": len(values),
        "p50_ms": round(percentile(values, 50), 1),
        "p90_ms": round(percentile(values, 90), 1),
        "p99_ms": round(percentile(values, 99), 1),
        "max_ms": round(max(values, default=0.0), 1),
    }


async def one_run(
    stack: Stack, args: argparse.Namespace, children: Children, name: str, share: float
) -> dict[str, Any]:
    rng = random.Random(args.seed)
    async with database_copy(stack, name) as database_url:
        prefix = f"{stack.topic_prefix}{name}."
        settings = settings_of(stack, database_url, prefix, args)
        await ensure_topics(settings)
        env = product_env(
            stack, database_url=database_url, topic_prefix=prefix, partitions=args.partitions,
            consumer_batch_size=args.batch_size, health_port=0,
        )  # fmt: skip
        children.start(f"{name}-scoring", ["scoring"], env)
        producer = make_producer(settings)
        await producer.start()
        topic = Topics(prefix).events
        sent: dict[uuid.UUID, tuple[str, float]] = {}
        try:
            warm = event("warm-up", 0, f"{name}-warm")
            await producer.send_and_wait(topic, warm.to_bytes(), key=warm.lead_key.encode())
            progress(f"{name}: waiting for the consumer to join and apply a first event")
            deadline = time.monotonic() + 60
            while warm.event_id not in await applied(database_url):
                children.check_alive()
                if time.monotonic() > deadline:
                    raise RuntimeError("the consumer applied nothing within 60 s")
                await asyncio.sleep(0.1)
            total = int(args.rate * args.duration)
            progress(f"{name}: {total} events at {args.rate:g}/s, hot share {share:g}")
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            pending = []
            for n in range(total):
                due = t0 + n / args.rate
                if due > loop.time():
                    await asyncio.sleep(due - loop.time())
                user = HOT if rng.random() < share else f"lead-{rng.randrange(args.users)}"
                e = event(user, n, name)
                sent[e.event_id] = (user, time.time())
                pending.append(await producer.send(topic, e.to_bytes(), key=e.lead_key.encode()))
            await asyncio.gather(*pending)
            produced_s = loop.time() - t0
            deadline = time.monotonic() + args.timeout
            found: dict[uuid.UUID, float] = {}
            while time.monotonic() < deadline:
                found = await applied(database_url)
                if all(k in found for k in sent):
                    break
                children.check_alive()
                await asyncio.sleep(0.5)
        finally:
            await producer.stop()
            children.stop([f"{name}-scoring"])
    others = [(found[k] - at) * 1000 for k, (user, at) in sent.items() if user != HOT and k in found]
    hot = [(found[k] - at) * 1000 for k, (user, at) in sent.items() if user == HOT and k in found]
    missing = sum(1 for k in sent if k not in found)
    return {
        "hot_share": share,
        "produce_s": round(produced_s, 2),
        "events": len(sent),
        "not_applied": missing,
        "others": summary(others),
        "hot_lead": summary(hot) if hot else None,
    }


async def bench(stack: Stack, args: argparse.Namespace, children: Children) -> dict[str, Any]:
    baseline = await one_run(stack, args, children, "baseline", 0.0)
    hot = await one_run(stack, args, children, "hot", args.hot_share)
    ratio = hot["others"]["p99_ms"] / baseline["others"]["p99_ms"] if baseline["others"]["p99_ms"] else None
    return {
        "benchmark": "hotlead",
        "config": {
            "rate": args.rate,
            "duration_s": args.duration,
            "users": args.users,
            "hot_share": args.hot_share,
            "partitions": args.partitions,
            "batch_size": args.batch_size,
            "consumer_processes": 1,
            "event": "page Pricing (default rule set)",
            "broker": stack.broker,
            "db": stack.db,
            "kafka_idempotence": stack.kafka_idempotence,
            "machine": machine(),
        },  # fmt: skip
        "baseline": baseline,
        "hot": hot,
        "ratio_others_p99_hot_to_baseline": round(ratio, 2) if ratio else None,
        "complete": baseline["not_applied"] == 0 and hot["not_applied"] == 0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--rate", type=float, default=1000.0, help="events/s produced in each run")
    add("--duration", type=float, default=15.0, help="seconds of producing in each run")
    add("--users", type=int, default=2000, help="leads the other events are spread over")
    add("--hot-share", type=float, default=0.5, help="share of all events that belong to the hot lead")
    add("--partitions", type=int, default=12, help="partitions of every topic")
    add("--batch-size", type=int, default=500, help="FUNNELSTREAM_CONSUMER_BATCH_SIZE")
    add("--timeout", type=float, default=120.0, help="seconds to wait for every event to be applied")
    add("--seed", type=int, default=7, help="seed of the traffic shape")
    add("--verbose", action="store_true", help="FunnelStream's own INFO logs on stderr")
    args = parser.parse_args()
    setup_logging(args.verbose)
    logs = Path(tempfile.mkdtemp(prefix="fs-bench-hotlead-"))
    try:
        with components() as stack, Children(logs) as children:
            result = asyncio.run(bench(stack, args, children))
    except Exception as exc:
        for log_file in sorted(logs.glob("*.log")):
            progress(f"--- {log_file.name}\n{log_file.read_text(errors='replace')[-3000:]}")
        print(json.dumps({"benchmark": "hotlead", "error": f"{type(exc).__name__}: {exc}"}))
        raise
    finally:
        shutil.rmtree(logs, ignore_errors=True)
    print(json.dumps(result))
    return 0 if result["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
