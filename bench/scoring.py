"""Benchmark of the scoring service as deployed (issue 5); prints ONE JSON object to stdout.

Drives `funnelstream scoring` only through its public interfaces: OS processes of the CLI, Kafka topics
and the HTTP APIs. Nothing of services/scoring is imported.

Throughput, per round: N Segment-style events pre-produced to a fresh events topic, then 1 and then 2
`funnelstream scoring` processes in a fresh consumer group on a fresh copy of the migrated database,
timed by sampling the group's committed offsets until every event is applied (events/s from the first
applied to the last applied event, and from process start). Baseline in the same round, same events,
batch size and partitions: a raw aiokafka consumer and ONE asyncpg connection doing one transaction
with one INSERT ... SELECT unnest(...) ON CONFLICT DO UPDATE per batch, offsets committed after.

Latency: real `funnelstream ingest`, `funnelstream api` and `funnelstream scoring` processes; a source
made through POST /api/sources; a steady event rate for a fixed time (small /v1/batch calls, or one
event per call with --batch-events 1), every 100th event a /v1/track of a brand-new userId whose lead is
polled with GET /api/leads/{userId} until it answers 200.

With and without a predictive model (issue 10): one `funnelstream scoring` process on the same events
with no model and with an active model stored in its database (alternating which runs first per
round); `predictive_model.ratio_with_to_without` is the throughput ratio.

    .venv/bin/python bench/scoring.py [--events 50000] [--users 2000] [--partitions 12] [--rounds 3]
                                      [--budget 150] [--rate 1000] [--duration 20] [--poll-ms 10]
                                      [--batch-events 20] [--probe-every 100] [--model-rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import orjson
from _stack import (
    Children,
    Stack,
    components,
    cpu_seconds,
    database_copy,
    machine,
    percentile,
    product_env,
    progress,
    setup_logging,
)
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from funnelstream.embedded import free_port
from shared.events import EventType, TrackedEvent, derived_id
from shared.kafka import Topics, ensure_topics, make_consumer, make_producer
from shared.settings import IngestSettings, Settings, to_libpq_url

TARGETS: dict[str, float] = {"ratio_to_baseline": 0.40}
AIMS: dict[str, float] = {"events_per_s_per_process": 10_000, "latency_p99_ms": 250}
DEFAULT_BATCH: int = Settings.model_fields["consumer_batch_size"].default
DEFAULT_POLL_MS: int = Settings.model_fields["consumer_poll_ms"].default
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Safari/605.1.15"

# -- input data: what a B2B website sends ----------------------------------------------------------------
# (type, page name or event name, path, weight %): mostly page and product views, some email engagement,
# a few conversions; names and paths that the shipped rule set scores (and one it scores down)
MIX: tuple[tuple[EventType, str, str, int], ...] = (
    ("page", "Pricing", "/pricing", 12),
    ("page", "Home", "/", 12),
    ("page", "Features", "/features", 10),
    ("page", "Docs", "/docs/getting-started", 8),
    ("page", "Blog", "/blog/lead-scoring-101", 8),
    ("page", "Careers", "/careers", 2),
    ("track", "Product Viewed", "/product/analytics", 20),
    ("track", "Product Added", "/product/analytics", 4),
    ("track", "Email Opened", "/", 10),
    ("track", "Email Link Clicked", "/", 4),
    ("track", "File Downloaded", "/resources/whitepaper", 4),
    ("track", "Form Submitted", "/contact", 2),
    ("track", "Demo Requested", "/demo", 4),
)
TITLES = ("VP Marketing", "Marketing Manager", "Software Engineer", "Head of Growth", "Student")
CYCLE = [(kind, name, path) for kind, name, path, weight in MIX for _ in range(weight)]  # weights sum to 100


def segment_call(i: int, users: int, tag: str) -> tuple[EventType, dict[str, Any]]:
    """The i-th call, as a browser library sends it (the JSON body of POST /v1/<type>).

    Users take turns; every 10th user is an anonymous visitor (anonymousId only, never identifies);
    the others send userId and anonymousId and identify (email, title, company size) about every 20th call."""
    user = i % users
    ids = {"anonymousId": f"anon-{user}"}
    if user % 10 != 9:
        ids["userId"] = f"user-{user}"
    kind, name, path = CYCLE[(i * 37) % len(CYCLE)]  # 37 is coprime with 100: every entry once per 100 calls
    context = {
        "library": {"name": "analytics.js", "version": "5.2.0"},
        "ip": "203.0.113.7",
        "userAgent": BROWSER,
        "page": {"path": path, "url": f"https://example.com{path}", "referrer": "https://www.google.com/"},
    }
    body: dict[str, Any] = {**ids, "messageId": f"{tag}-{i}", "context": context}
    if "userId" in ids and (i // users + user) % 20 == 0:
        domain = "gmail.com" if user % 7 == 0 else f"company{user % 300}.com"
        body["traits"] = {
            "email": f"user-{user}@{domain}",
            "name": f"User {user}",
            "title": TITLES[user % len(TITLES)],
            "company": f"Company {user % 300}",
            "employees": 10 * (user % 60),
        }
        return "identify", body
    if kind == "page":
        body.update(name=name, properties={"path": path, "url": f"https://example.com{path}", "title": name})
    else:
        body.update(event=name, properties={"path": path, "product_id": f"sku-{i % 40}", "value": i % 100})
    return kind, body


def tracked_event(kind: EventType, body: dict[str, Any], source_id: uuid.UUID, at: datetime) -> TrackedEvent:
    """What ingest would publish for this call (event id derived from source and messageId)."""
    return TrackedEvent(
        event_id=derived_id(source_id, body["messageId"]),
        source_id=source_id,
        message_id=body["messageId"],
        type=kind,
        event=body.get("event"),
        name=body.get("name"),
        user_id=body.get("userId"),
        anonymous_id=body.get("anonymousId"),
        traits=body.get("traits", {}),
        properties=body.get("properties", {}),
        context=body["context"],
        timestamp=at,
        received_at=at,
    )


async def produce(settings: Settings, n: int, users: int) -> dict[int, int]:
    """Create the prefix's topics and produce n events; returns each partition's end offset."""
    await ensure_topics(settings)
    topic = Topics(settings.topic_prefix).events
    source_id = derived_id("bench-source", settings.topic_prefix)
    base = datetime.now(UTC) - timedelta(milliseconds=n)
    ends: dict[int, int] = {}
    producer = make_producer(settings)
    await producer.start()
    try:
        for start in range(0, n, 5000):
            futures = []
            for i in range(start, min(n, start + 5000)):
                event = tracked_event(*segment_call(i, users, "bench"), source_id, base + timedelta(milliseconds=i))
                futures.append(await producer.send(topic, key=event.lead_key.encode(), value=event.to_bytes()))
            for meta in await asyncio.gather(*futures):
                ends[meta.partition] = max(ends.get(meta.partition, 0), meta.offset + 1)
    finally:
        await producer.stop()
    return ends


# -- throughput ---------------------------------------------------------------------------------------------
@dataclass
class Run:
    """One side of a round: when it started, when events were first and last seen applied."""

    label: str
    events: int
    started: float
    first_seen: float | None = None
    first_applied: int = 0
    last_seen: float | None = None
    applied: int = 0
    cpu_pct: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        """Events applied after the first observation ÷ time from first to last applied."""
        if self.first_seen is None or self.last_seen is None or self.last_seen <= self.first_seen:
            return 0.0
        return (self.applied - self.first_applied) / (self.last_seen - self.first_seen)

    def summary(self) -> dict[str, Any]:
        done = self.last_seen is not None and self.applied == self.events
        wall = (self.last_seen - self.started) if self.last_seen is not None else None
        return {
            "events_per_s": round(self.events_per_s, 1),
            "events_per_s_incl_join": round(self.applied / wall, 1) if wall else 0.0,
            "startup_s": round(self.first_seen - self.started, 3) if self.first_seen is not None else None,
            "applied_s": (
                round(self.last_seen - self.first_seen, 3)
                if self.first_seen is not None and self.last_seen is not None
                else None
            ),
            "wall_s": round(wall, 3) if wall else None,
            "events_at_first_sample": self.first_applied,
            "events_applied": self.applied,
            "complete": done,
            "cpu_pct": self.cpu_pct,
            **self.extra,
        }


class CommitWatch:
    """Events a consumer group has applied, read from its committed offsets (OffsetFetch) without joining
    the group, clamped at what was produced per partition when known (tansu's admin offset APIs fail)."""

    def __init__(self, bootstrap: str, group_id: str, topic: str, ends: dict[int, int | None]) -> None:
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False)
        self.ends = {TopicPartition(topic, p): end for p, end in ends.items()}

    async def applied(self) -> int:
        tps = list(self.ends)
        committed = await asyncio.gather(*(self.consumer.committed(tp) for tp in tps))
        total = 0
        for tp, offset in zip(tps, committed, strict=True):
            end = self.ends[tp]
            total += (offset or 0) if end is None else min(end, offset or 0)
        return total


def cpu_snapshot(pids: dict[str, list[int]]) -> dict[str, float]:
    return {name: cpu_seconds(p) for name, p in pids.items()} | {"bench": _self_cpu()}


def cpu_pct(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    """CPU over a window as % of one core, per component."""
    return {name: round((after[name] - before[name]) / seconds * 100, 1) for name in before} if seconds > 0 else {}


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def count_rows(database_url: str, table: str) -> int | None:
    try:
        conn = await asyncpg.connect(to_libpq_url(database_url))
        try:
            return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))  # noqa: S608 - a constant name
        finally:
            await conn.close()
    except (OSError, asyncpg.PostgresError):
        return None


async def count_processed(database_url: str) -> int | None:
    """Rows the runner claimed in processed_events for scoring (a cross-check of the offsets)."""
    conn = await asyncpg.connect(to_libpq_url(database_url))
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM processed_events WHERE consumer = 'scoring'")
        return count
    except asyncpg.PostgresError:
        return None
    finally:
        await conn.close()


async def run_product(
    stack: Stack, args: argparse.Namespace, children: Children, prefix: str, ends: dict[int, int], procs: int,
    model: bool = False,
) -> Run:  # fmt: skip
    """`procs` scoring processes in the group of `prefix`; sample its commits until all events are applied.
    With `model`, an active predictive model is stored first, so every batch is also predicted."""
    label = prefix.removeprefix(stack.topic_prefix).strip(".")
    total = sum(ends.values())
    async with database_copy(stack, label) as database_url:
        if model:
            await store_model(database_url)
        env = product_env(
            stack,
            database_url=database_url,
            topic_prefix=prefix,
            partitions=args.partitions,
            consumer_batch_size=args.batch_size,
            consumer_poll_ms=args.consumer_poll_ms,
        )
        watch = CommitWatch(stack.bootstrap, f"{prefix}scoring", Topics(prefix).events, dict(ends))
        await watch.consumer.start()
        names = [f"{label}-scoring{k + 1}" for k in range(procs)]
        try:
            run = Run(label, total, time.perf_counter())
            pids = {"scoring": [children.start(name, ["scoring"], env).pid for name in names]}
            pids |= {name: [pid] for name, pid in stack.pids.items()}
            deadline = run.started + args.run_timeout
            before: dict[str, float] = {}
            while time.perf_counter() < deadline:
                children.check_alive()
                applied = await watch.applied()
                now = time.perf_counter()
                if applied and run.first_seen is None:
                    run.first_seen, run.first_applied, before = now, applied, cpu_snapshot(pids)
                run.applied = applied
                if applied >= total:
                    run.last_seen = now
                    run.cpu_pct = cpu_pct(before, cpu_snapshot(pids), now - (run.first_seen or now))
                    break
                await asyncio.sleep(args.sample_ms / 1000)
            else:
                progress(f"  {label}: --run-timeout {args.run_timeout:g}s reached with {run.applied}/{total} applied")
        finally:
            await watch.consumer.stop()
            codes = children.stop(names)
        run.extra = {
            "processes": procs,
            "exit_codes": list(codes.values()),
            "processed_events_rows": await count_processed(database_url),
        }
        if model:
            run.extra["lead_predictions_rows"] = await count_rows(database_url, "lead_predictions")
    return run


async def run_baseline(stack: Stack, args: argparse.Namespace, prefix: str, ends: dict[int, int]) -> Run:
    """Raw consumer + one connection: per batch one transaction with one unnest upsert, then the commit."""
    total = sum(ends.values())
    settings = stack_settings(stack, args, prefix)
    async with database_copy(stack, prefix.removeprefix(stack.topic_prefix).strip(".")) as url:
        conn = await asyncpg.connect(to_libpq_url(url))
        await conn.execute("CREATE TABLE bench_lead_counts (lead_key text PRIMARY KEY, events bigint NOT NULL)")
        upsert = (
            "INSERT INTO bench_lead_counts (lead_key, events) SELECT * FROM unnest($1::text[], $2::bigint[]) "
            "ON CONFLICT (lead_key) DO UPDATE SET events = bench_lead_counts.events + EXCLUDED.events"
        )
        consumer = make_consumer(settings, f"{prefix}baseline")
        consumer.subscribe([Topics(prefix).events])
        run = Run("baseline", total, time.perf_counter())
        batch_ms: list[float] = []
        consumed = 0
        try:
            await consumer.start()
            while consumed < total and time.perf_counter() < run.started + args.run_timeout:
                batch = await consumer.getmany(timeout_ms=args.consumer_poll_ms, max_records=args.batch_size)
                records = [r for rs in batch.values() for r in rs]
                if not records:
                    continue
                t0 = time.perf_counter()
                counts: Counter[str] = Counter()
                for record in records:  # decode every payload, as any consumer must
                    data = orjson.loads(record.value)
                    counts[data.get("user_id") or data.get("anonymous_id") or data.get("message_id") or ""] += 1
                keys = sorted(counts)
                async with conn.transaction():
                    await conn.execute(upsert, keys, [counts[k] for k in keys])
                await consumer.commit({tp: rs[-1].offset + 1 for tp, rs in batch.items() if rs})
                now = time.perf_counter()
                batch_ms.append((now - t0) * 1000)
                consumed += len(records)
                if run.first_seen is None:
                    run.first_seen, run.first_applied = now, consumed
                run.applied, run.last_seen = consumed, now
        finally:
            await consumer.stop()
            applied_db = await conn.fetchval("SELECT coalesce(sum(events), 0) FROM bench_lead_counts")
            await conn.close()
    if run.applied < total:
        run.last_seen = None
    run.extra = {
        "batches": len(batch_ms),
        "batch_p50_ms": round(percentile(batch_ms, 50), 2),
        "batch_p99_ms": round(percentile(batch_ms, 99), 2),
        "events_in_table": int(applied_db),
    }
    return run


def stack_settings(stack: Stack, args: argparse.Namespace, prefix: str) -> Settings:
    return Settings(
        database_url=stack.database_url,
        kafka_bootstrap_servers=stack.bootstrap,
        kafka_idempotence=stack.kafka_idempotence,
        kafka_session_timeout_ms=stack.session_timeout_ms,
        topic_prefix=prefix,
        partitions=args.partitions,
    )


def median_run(runs: Sequence[Run]) -> dict[str, Any]:
    """The round with the median events/s, plus every round's events/s."""
    ordered = sorted(runs, key=lambda r: r.events_per_s)
    return ordered[len(ordered) // 2].summary() | {"rounds_events_per_s": [round(r.events_per_s, 1) for r in runs]}


SIDES = {"one_process": "p1", "two_processes": "p2", "baseline": "base"}


async def throughput(stack: Stack, args: argparse.Namespace, children: Children) -> dict[str, Any]:
    sides: dict[str, list[Run]] = {side: [] for side in SIDES}
    produce_s: list[float] = []
    budget_end = time.monotonic() + args.budget
    last_round = 0.0
    for round_no in range(args.rounds):
        if round_no and time.monotonic() + last_round > budget_end:
            progress(f"stopping after {round_no} round(s): another would pass --budget {args.budget:g}s")
            break
        round_start = time.monotonic()
        # one topic each: the scoring processes also publish their ticks to the events topic they consume
        prefixes = {side: f"{stack.topic_prefix}r{round_no + 1}{short}." for side, short in SIDES.items()}
        ends: dict[str, dict[int, int]] = {}
        for side, prefix in prefixes.items():
            t0 = time.perf_counter()
            ends[side] = await produce(stack_settings(stack, args, prefix), args.events, args.users)
            produce_s.append(time.perf_counter() - t0)
        progress(f"round {round_no + 1}/{args.rounds}: produced 3 x {args.events} events")
        order = list(sides)
        order = order[round_no % 3 :] + order[: round_no % 3]  # rotate: no side always runs on a warmer machine
        for side in order:
            if side == "baseline":
                run = await run_baseline(stack, args, prefixes[side], ends[side])
            else:
                procs = 2 if side == "two_processes" else 1
                run = await run_product(stack, args, children, prefixes[side], ends[side], procs)
            sides[side].append(run)
            s = run.summary()
            progress(
                f"  {side}: {s['events_applied']}/{args.events} applied, {s['events_per_s']}/s "
                f"({s['events_per_s_incl_join']}/s incl. start-up {s['startup_s']}s)"
            )
        last_round = time.monotonic() - round_start
    one, two, base = (median_run(sides[k]) for k in sides)
    return {
        "rounds": len(sides["baseline"]),
        "produce_s_median": round(statistics.median(produce_s), 2),
        "one_process": {"path": "1 x `funnelstream scoring`", **one},
        "two_processes": {"path": "2 x `funnelstream scoring`, one group", **two},
        "baseline": {"path": "aiokafka getmany + orjson decode + one asyncpg unnest upsert per batch + commit", **base},
        "scaling_ratio_2_vs_1": round(two["events_per_s"] / one["events_per_s"], 3) if one["events_per_s"] else None,
        "ratio_to_baseline": round(one["events_per_s"] / base["events_per_s"], 3) if base["events_per_s"] else None,
        "complete": all(r.summary()["complete"] for runs in sides.values() for r in runs),
    }


# -- with and without a predictive model (issue 10) -------------------------------------------------------------
# A logistic model over the feature names the product computes (services/predictive/features.py), stored
# as the product stores an activated one; the numbers are arbitrary, the work per batch is the real one.
MODEL_KEYS = ("page", "pricing", "careers", "demo", "contact", "form", "download", "email_open", "email_click",
              "product_view", "cart", "unsubscribe")  # fmt: skip
MODEL_FEATURES = (
    [f"{k}_{w}d" for k in MODEL_KEYS for w in (7, 30, 90)]
    + [f"{k}_recency" for k in MODEL_KEYS]
    + ["active_days_30d", "title:senior", "title:manager", "title:student", "employees_log", "employees_known",
       "email:business", "email:free", "email:none", "event:product viewed", "event:demo requested"]
)  # fmt: skip


async def store_model(database_url: str) -> None:
    n = len(MODEL_FEATURES)
    artifact = {
        "format": "logistic-v1",
        "features": MODEL_FEATURES,
        "mean": [0.5] * n,
        "scale": [1.0] * n,
        "coef": [((i * 37) % 11 - 5) / 10 for i in range(n)],
        "intercept": -2.0,
        "calibration": {"a": -1.0, "b": 0.0},
    }
    conn = await asyncpg.connect(to_libpq_url(database_url))
    try:
        await conn.execute(
            "INSERT INTO predictive_models (funnel_model, target_stage, horizon_days, status, decision, reason, "
            "artifact, rule_set_version, activated_at) VALUES ('b2b', 'customer', 30, 'active', 'activate', "
            "'bench', $1::jsonb, 1, now())",
            orjson.dumps(artifact).decode(),
        )
    finally:
        await conn.close()


async def model_comparison(stack: Stack, args: argparse.Namespace, children: Children) -> dict[str, Any]:
    """One scoring process without and with an active model, alternating which goes first, same events."""
    sides: dict[str, list[Run]] = {"without_model": [], "with_model": []}
    predicted: list[int | None] = []
    for round_no in range(args.model_rounds):
        prefixes = {side: f"{stack.topic_prefix}m{round_no + 1}{side.split('_')[0]}." for side in sides}
        ends = {
            side: await produce(stack_settings(stack, args, p), args.events, args.users) for side, p in prefixes.items()
        }
        order = list(sides) if round_no % 2 == 0 else list(reversed(sides))
        for side in order:
            run = await run_product(stack, args, children, prefixes[side], ends[side], 1, model=side == "with_model")
            sides[side].append(run)
            if side == "with_model":
                predicted.append(run.extra.get("lead_predictions_rows"))
            progress(f"  model round {round_no + 1} {side}: {run.summary()['events_per_s']}/s")
    without, with_ = (median_run(sides[k]) for k in sides)
    return {
        "rounds": args.model_rounds,
        "without_model": without,
        "with_model": with_,
        "lead_predictions_rows": predicted,
        "ratio_with_to_without": (
            round(with_["events_per_s"] / without["events_per_s"], 3) if without["events_per_s"] else None
        ),
    }


# -- end-to-end latency ---------------------------------------------------------------------------------------
@dataclass
class Load:
    """What the load generator saw: events acknowledged, call times per endpoint, probe results."""

    acknowledged: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    post_ms: dict[str, list[float]] = field(default_factory=dict)
    e2e_ms: list[float] = field(default_factory=list)
    after_ack_ms: list[float] = field(default_factory=list)
    probe_timeouts: int = 0
    lead_gets: int = 0
    send_lag_ms: list[float] = field(default_factory=list)
    last_ack: float = 0.0


async def wait_ready(client: httpx.AsyncClient, children: Children, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children.check_alive()
        with contextlib.suppress(httpx.HTTPError):
            if (await client.get("/readyz")).status_code == 200:
                return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{client.base_url} not ready after {timeout:.0f}s")


async def post(edge: httpx.AsyncClient, endpoint: str, body: dict[str, Any], events: int, load: Load) -> bool:
    """One tracking call; True once ingest acknowledged every event of it."""
    started = time.perf_counter()
    try:
        response = await edge.post(f"/v1/{endpoint}", content=orjson.dumps(body))
    except httpx.HTTPError as exc:
        load.errors[type(exc).__name__] += 1
        return False
    if response.status_code != 200:
        load.errors[f"http_{response.status_code}"] += 1
        return False
    rejected = len(response.json().get("rejected") or ())
    load.errors["rejected_in_batch"] += rejected
    load.acknowledged += events - rejected
    load.last_ack = time.perf_counter()
    load.post_ms.setdefault(endpoint, []).append((load.last_ack - started) * 1000)
    return rejected == 0


async def probe(
    edge: httpx.AsyncClient, admin: httpx.AsyncClient, user_id: str, args: argparse.Namespace, load: Load
) -> float | None:
    """POST a track of a brand-new user; ms until GET /api/leads/{userId} answers 200 (None: never)."""
    body = {
        "userId": user_id,
        "anonymousId": f"anon-{user_id}",
        "event": "Demo Requested",
        "messageId": user_id,
        "properties": {"path": "/demo", "plan": "enterprise"},
        "context": {"library": {"name": "analytics.js", "version": "5.2.0"}, "userAgent": BROWSER},
    }
    started = time.perf_counter()
    if not await post(edge, "track", body, 1, load):
        return None
    acked = time.perf_counter()
    while time.perf_counter() - started < args.probe_timeout:
        with contextlib.suppress(httpx.HTTPError):
            found = (await admin.get(f"/api/leads/{user_id}")).status_code == 200
            load.lead_gets += 1
            if found:
                seen = time.perf_counter()
                load.e2e_ms.append((seen - started) * 1000)
                load.after_ack_ms.append((seen - acked) * 1000)
                return (seen - started) * 1000
        await asyncio.sleep(args.poll_ms / 1000)
    load.probe_timeouts += 1
    return None


async def drive(
    calls_per_s: float, seconds: float, make: Callable[[int], Coroutine[Any, Any, Any]], load: Load
) -> tuple[int, float, set[asyncio.Task[Any]]]:
    """Open loop: start make(j) at t0 + j/calls_per_s for j < calls_per_s*seconds, whatever the answers
    do; returns (calls started, elapsed, tasks still running)."""
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[Any]] = set()
    n = round(calls_per_s * seconds)
    t0 = loop.time()
    for j in range(n):
        due = t0 + j / calls_per_s
        await asyncio.sleep(max(0.0, due - loop.time()))
        load.send_lag_ms.append((loop.time() - due) * 1000)
        task = asyncio.create_task(make(j))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    return n, loop.time() - t0, tasks


@dataclass
class Sender:
    """Call j carries events j*B .. j*B+B-1 (B = --batch-events): the probes among them (every
    --probe-every-th event) as their own /v1/track calls, the rest as one /v1/batch call (B > 1) or
    as one call to /v1/<type> (B = 1)."""

    edge: httpx.AsyncClient
    admin: httpx.AsyncClient
    args: argparse.Namespace
    tag: str

    @property
    def calls_per_s(self) -> float:
        return float(self.args.rate) / int(self.args.batch_events)

    def maker(self, first_event: int, load: Load, probes: bool) -> Callable[[int], Coroutine[Any, Any, Any]]:
        args, size = self.args, self.args.batch_events

        async def call(j: int) -> None:
            calls: list[Coroutine[Any, Any, object]] = []
            items = []
            for n in range(j * size, (j + 1) * size):
                if probes and n % args.probe_every == 0:
                    calls.append(probe(self.edge, self.admin, f"probe-{self.tag}-{first_event + n}", args, load))
                else:
                    items.append(segment_call(first_event + n, args.users, self.tag))
            if size == 1 and items:
                calls.append(post(self.edge, *items[0], 1, load))
            elif items:
                batch = {"batch": [{"type": kind, **body} for kind, body in items]}
                calls.append(post(self.edge, "batch", batch, len(items), load))
            await asyncio.gather(*calls)

        return call


async def latency(stack: Stack, args: argparse.Namespace, children: Children) -> dict[str, Any]:
    prefix = f"{stack.topic_prefix}lat."
    await ensure_topics(stack_settings(stack, args, prefix))
    async with database_copy(stack, "latency") as database_url:
        token = uuid.uuid4().hex
        env = product_env(
            stack,
            database_url=database_url,
            topic_prefix=prefix,
            partitions=args.partitions,
            consumer_batch_size=args.batch_size,
            consumer_poll_ms=args.consumer_poll_ms,
            secret_key=uuid.uuid4().hex,
            admin_token=token,
        )
        api_port, edge_port = free_port(), free_port()
        loopback = ["--host", "127.0.0.1", "--port"]
        procs = {
            "api": children.start("latency-api", ["api", *loopback, str(api_port)], env),
            "ingest": children.start("latency-ingest", ["ingest", *loopback, str(edge_port)], env),
            "scoring": children.start("latency-scoring", ["scoring"], env),
        }
        pids = {name: [p.pid] for name, p in procs.items()} | {name: [pid] for name, pid in stack.pids.items()}
        limits = httpx.Limits(max_connections=args.connections, max_keepalive_connections=args.connections)
        try:
            admin = httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{api_port}", headers={"Authorization": f"Bearer {token}"}, limits=limits
            )
            async with admin:
                await wait_ready(admin, children)
                created = await admin.post("/api/sources", json={"name": "bench latency"})
                created.raise_for_status()
                edge = httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{edge_port}",
                    auth=httpx.BasicAuth(created.json()["write_key"], ""),
                    headers={"Content-Type": "application/json"},
                    limits=limits,
                    timeout=httpx.Timeout(10.0),
                )
                async with edge:
                    await wait_ready(edge, children)
                    progress("latency: waiting for scoring to join its group (first probe visible)")
                    first = await probe(edge, admin, f"probe-{stack.run_id}-join", args, Load())
                    if first is None:
                        raise RuntimeError(f"first probe not visible after {args.probe_timeout:g}s")
                    sender = Sender(edge, admin, args, f"lat-{stack.run_id}")
                    group = f"{prefix}scoring"
                    watch = CommitWatch(
                        stack.bootstrap, group, Topics(prefix).events, dict.fromkeys(range(args.partitions))
                    )
                    await watch.consumer.start()
                    try:
                        return await measure_latency(sender, watch, pids, first)
                    finally:
                        await watch.consumer.stop()
        finally:
            children.stop([f"latency-{name}" for name in procs])


async def sample_lag(watch: CommitWatch, acknowledged: Callable[[], int], lags: list[int]) -> None:
    """Every 250 ms: events ingest acknowledged that scoring has not committed yet (until cancelled)."""
    while True:
        with contextlib.suppress(KafkaError):
            lags.append(max(0, acknowledged() - await watch.applied()))
        await asyncio.sleep(0.25)


async def measure_latency(
    sender: Sender, watch: CommitWatch, pids: dict[str, list[int]], first_probe_ms: float
) -> dict[str, Any]:
    args = sender.args
    progress(f"latency: warm-up {args.warmup:g}s at {args.rate:g} events/s, {args.batch_events} per call")
    warm = Load()
    _, _, tasks = await drive(sender.calls_per_s, args.warmup, sender.maker(0, warm, probes=False), warm)
    if tasks:
        await asyncio.wait(tasks, timeout=10)

    progress(f"latency: {args.duration:g}s at {args.rate:g} events/s, every {args.probe_every}th event a probe")
    load = Load()
    first_event = round(args.rate * args.warmup) + 1
    lags: list[int] = []
    lag_task = asyncio.create_task(sample_lag(watch, lambda: 1 + warm.acknowledged + load.acknowledged, lags))
    before, started = cpu_snapshot(pids), time.perf_counter()
    calls, elapsed, tasks = await drive(sender.calls_per_s, args.duration, sender.maker(first_event, load, True), load)
    after = cpu_snapshot(pids)
    lag_task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=args.probe_timeout + 5)
    e2e, ack = load.e2e_ms, load.after_ack_ms
    events = calls * args.batch_events
    return {
        "send_mode": (
            "one event per call: POST /v1/page, /v1/track, /v1/identify; probes POST /v1/track"
            if args.batch_events == 1
            else f"every {1000 * args.batch_events / args.rate:g} ms one POST /v1/batch of the "
            f"{args.batch_events} events due, minus the probes among them, each sent as its own POST /v1/track"
        ),
        "target_events_per_s": args.rate,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "events_started_per_s": round(events / elapsed, 1),
        "acknowledged_per_s": round(load.acknowledged / (load.last_ack - started), 1) if load.acknowledged else 0.0,
        "errors": {k: v for k, v in load.errors.items() if v},
        "send_lag_p99_ms": round(percentile(load.send_lag_ms, 99), 2),
        "post_ms": {
            endpoint: {"p50": round(percentile(ms, 50), 2), "p99": round(percentile(ms, 99), 2)}
            for endpoint, ms in sorted(load.post_ms.items())
        },
        "probes": len(e2e) + load.probe_timeouts,
        "probes_visible": len(e2e),
        "probe_timeouts": load.probe_timeouts,
        "probe_timeout_s": args.probe_timeout,
        "e2e_p50_ms": round(percentile(e2e, 50), 1),
        "e2e_p90_ms": round(percentile(e2e, 90), 1),
        "e2e_p99_ms": round(percentile(e2e, 99), 1),
        "e2e_max_ms": round(max(e2e, default=0.0), 1),
        "after_ack_p50_ms": round(percentile(ack, 50), 1),
        "after_ack_p99_ms": round(percentile(ack, 99), 1),
        "first_probe_ms": round(first_probe_ms, 1),
        "scoring_lag_events": {"p50": percentile(lags, 50), "max": max(lags, default=0), "samples": len(lags)},
        "poll_interval_ms": args.poll_ms,
        "lead_gets_per_s": round(load.lead_gets / elapsed, 1),
        "resolution_note": "a probe counts as visible at the end of the first GET answering 200; polls start "
        "when the POST answers and repeat poll_interval_ms after each 404, so each value is late by up to "
        "poll_interval_ms plus one GET",
        "cpu_pct": cpu_pct(before, after, elapsed),
        "rate_limit_per_second": IngestSettings.model_fields["rate_limit_per_second"].default,
    }


# -- driver ---------------------------------------------------------------------------------------------------
async def bench(stack: Stack, args: argparse.Namespace, children: Children) -> dict[str, Any]:
    result = await throughput(stack, args, children) if args.rounds > 0 else None
    with_model = await model_comparison(stack, args, children) if args.model_rounds > 0 else None
    lat = await latency(stack, args, children) if args.duration > 0 else None
    ratio = result["ratio_to_baseline"] if result else None
    per_process = result["one_process"]["events_per_s"] if result else None
    p99 = lat["e2e_p99_ms"] if lat and lat["probes_visible"] else None
    return {
        "benchmark": "scoring",
        "config": {
            "events": args.events,
            "users": args.users,
            "event_mix_pct": {f"{kind} {name}": w for kind, name, _, w in MIX},
            "identify_share": "about 1 in 20 calls of identified users (email, title, size); every 10th user anonymous",
            "partitions": args.partitions,
            "batch_size": args.batch_size,
            "consumer_poll_ms": args.consumer_poll_ms,
            "sample_ms": args.sample_ms,
            "rounds": result.pop("rounds") if result else 0,
            "rounds_requested": args.rounds,
            "budget_s": args.budget,
            "run_timeout_s": args.run_timeout,
            "produce_s_median": result.pop("produce_s_median") if result else None,
            "latency_batch_events": args.batch_events,
            "latency_connections": args.connections,
            "probe_every": args.probe_every,
            "broker": stack.broker,
            "db": stack.db,
            "kafka_idempotence": stack.kafka_idempotence,
            "session_timeout_ms": stack.session_timeout_ms,
            "machine": machine(),
        },
        "throughput": result,
        "predictive_model": with_model,
        "latency": lat,
        "targets": TARGETS,
        "pass": ratio is not None and ratio >= TARGETS["ratio_to_baseline"],
        "aims": AIMS,
        "aims_met": {
            "events_per_s_per_process": per_process is not None and per_process >= AIMS["events_per_s_per_process"],
            "latency_p99_ms": p99 is not None and p99 < AIMS["latency_p99_ms"],
        },
        "complete": (result is None or result["complete"])
        and (lat is None or lat["probe_timeouts"] == 0)
        and (with_model is None or all(r["complete"] for r in (with_model["with_model"], with_model["without_model"]))),
    }


T = TypeVar("T")


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """uvloop when present (the product's processes use it too): a cheaper load generator."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--events", type=int, default=50_000, help="events pre-produced per throughput run")
    add("--users", type=int, default=2_000, help="distinct users the events are spread over")
    add("--partitions", type=int, default=12, help="partitions of every topic")
    add("--batch-size", type=int, default=DEFAULT_BATCH, help="FUNNELSTREAM_CONSUMER_BATCH_SIZE (and baseline's)")
    add("--consumer-poll-ms", type=int, default=DEFAULT_POLL_MS, help="FUNNELSTREAM_CONSUMER_POLL_MS (and baseline's)")
    add(
        "--rounds",
        type=int,
        default=3,
        help="throughput rounds (1 process, 2 processes, baseline), medians reported; 0 skips",
    )
    add("--budget", type=float, default=150.0, help="no new throughput round starts if it would end past this (s)")
    add("--run-timeout", type=float, default=60.0, help="seconds one throughput run may take to apply every event")
    add("--sample-ms", type=float, default=50.0, help="how often the group's committed offsets are read")
    add("--model-rounds", type=int, default=2, help="rounds of 1 process without / with a predictive model; 0 skips")
    add("--rate", type=float, default=1000.0, help="events/s of the latency run")
    add("--duration", type=float, default=20.0, help="seconds of the latency run (0 skips it)")
    add("--warmup", type=float, default=2.0, help="seconds at --rate before the latency window")
    add("--batch-events", type=int, default=20, help="latency load: events per /v1/batch call; 1 = one per call")
    # 20 / 5 ms asks ~1 000 GET/s of the admin API (~4 ms of CPU each here): the polls then swamp the
    # 2-core machine and the run measures its own load; 100 / 10 ms left ingest's answer times as without probes.
    add("--probe-every", type=int, default=100, help="every n-th latency event is a probe of a new user")
    add("--poll-ms", type=float, default=10.0, help="pause between GET /api/leads/{userId} polls of a probe")
    add("--probe-timeout", type=float, default=30.0, help="a probe not visible after this many seconds is lost")
    add("--connections", type=int, default=64, help="HTTP connections per client (ingest, admin) of the latency run")
    add("--verbose", action="store_true", help="FunnelStream's own INFO logs on stderr")
    args = parser.parse_args()
    setup_logging(args.verbose)
    logs = Path(tempfile.mkdtemp(prefix="fs-bench-scoring-"))
    try:
        with contextlib.redirect_stdout(sys.stderr), components() as stack, Children(logs) as children:
            result = run_loop(bench(stack, args, children))
    except Exception as exc:
        for log_file in sorted(logs.glob("*.log")):
            progress(f"--- {log_file.name} (last 3000 chars)\n{log_file.read_text(errors='replace')[-3000:]}")
        lines = str(exc).strip().splitlines() or [""]
        summary = lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}"  # the log tail went to stderr
        print(json.dumps({"benchmark": "scoring", "error": f"{type(exc).__name__}: {summary}"}))
        raise
    finally:
        shutil.rmtree(logs, ignore_errors=True)
    print(json.dumps(result))
    return 0 if result["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
