"""Benchmark of the collection edge; prints ONE JSON object to stdout.

Measured: the real `funnelstream ingest` process (its own process, real settings, real write key)
loaded by `wrk` in another process: POST /v1/track (one event per request) and POST /v1/batch
(100 events per request), each for a fixed duration at a few connection counts, every event with a
unique messageId. Reported: requests/s, events/s, latency p50/p99 (wrk), and CPU of the load
generator, the server, the broker and the database.

Baselines, same run and machine:
  bare_endpoint  a FastAPI app whose /v1/track only reads the body and answers {"success": true},
                 served the same way (bench/_bare_app.py), hit by the same wrk settings;
  raw_produce    the same event payloads the server would publish, produced with aiokafka and
                 shared.kafka.make_producer's options (acks=all, linger, compression, batch size), pipelined.

Both the server and the raw-produce baseline get the same linger and compression (--linger-ms,
--compression; by default the product's defaults).

    .venv/bin/python bench/ingest.py [--duration 10] [--connections 10,50] [--workers 1] [--linger-ms 2]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from _stack import Stack, components, cpu_seconds, machine, percentile, progress, setup_logging
from aiokafka import AIOKafkaConsumer, TopicPartition

from funnelstream.embedded import free_port
from funnelstream.processes import spawn, terminate
from services.ingest.schemas import SegmentMessage
from services.ingest.service import encode_event
from shared.kafka import Topics, ensure_topics, make_producer
from shared.security import hash_write_key, new_write_key
from shared.settings import IngestSettings, to_libpq_url

BENCH_DIR = Path(__file__).resolve().parent
LUA_SCRIPT = BENCH_DIR / "wrk_segment.lua"
BATCH_EVENTS = 100
TARGETS = {"batch_events_vs_raw_produce": 0.5, "track_rps_vs_bare": 0.5}


# -- payloads --------------------------------------------------------------------------------------------
def segment_event(counter: int, users: int, run_id: str, thread_no: int = 1) -> str:
    """The JSON of one track call exactly as bench/wrk_segment.lua writes it."""
    user = counter % users
    return (
        f'{{"type":"track","userId":"user-{user}","anonymousId":"anon-{user}","event":"Page Viewed",'
        f'"messageId":"{run_id}-{thread_no}-{counter}","properties":{{"path":"/docs/{counter % 50}",'
        f'"value":{counter % 100}}},"context":{{"library":{{"name":"wrk","version":"4.1"}},"ip":"127.0.0.1"}},'
        f'"timestamp":"2026-01-01T00:00:00Z"}}'
    )


def server_payloads(n: int, users: int, run_id: str, source_id: uuid.UUID) -> list[tuple[bytes, bytes]]:
    """(key, value) of what the server publishes for n such calls (validated and encoded by the product's
    own code)."""
    received_at = datetime.now(UTC)
    sent_at = datetime(2026, 1, 1, tzinfo=UTC)
    payloads = []
    for i in range(1, n + 1):
        message = SegmentMessage.model_validate_json(segment_event(i, users, f"raw{run_id}"))
        payloads.append(encode_event(message, "track", source_id, received_at, sent_at))
    return payloads


# -- processes -------------------------------------------------------------------------------------------
def wait_http(url: str, proc: subprocess.Popen[bytes], log_file: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log_file.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own loopback URL
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout:.0f}s:\n{log_file.read_text()[-3000:]}")


@contextlib.contextmanager
def server(argv: list[str], env: dict[str, str], ready_path: str, port: int, log_file: Path) -> Iterator[int]:
    """A server process on 127.0.0.1:port until the block ends; yields its pid."""
    proc = spawn(argv, log_file=log_file, death_signal=signal.SIGTERM, env=env)
    try:
        wait_http(f"http://127.0.0.1:{port}{ready_path}", proc, log_file)
        yield proc.pid
    finally:
        terminate(proc, signal.SIGTERM, timeout=15)


def run_wrk(
    url: str,
    mode: str,
    connections: int,
    duration: float,
    args: argparse.Namespace,
    auth: str,
    run_id: str,
    watch: dict[str, list[int]],
) -> dict[str, Any]:
    """One wrk run; returns its numbers plus CPU use of wrk itself and of every watched process group."""
    argv = [
        args.wrk,
        "-t",
        str(args.threads),
        "-c",
        str(connections),
        "-d",
        f"{duration:g}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA_SCRIPT),
        url,
        "--",
        mode,
        run_id,
        str(args.users),
        str(BATCH_EVENTS),
        auth,
    ]
    before = {name: cpu_seconds(pids) for name, pids in watch.items()}
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + duration + 30
        while True:  # wait4 rather than wait: it hands back wrk's own CPU use
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
                break
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        after = {name: cpu_seconds(pids) for name, pids in watch.items()}
        out.seek(0)
        text = out.read().decode(errors="replace")
    line = next((ln for ln in text.splitlines() if ln.startswith("WRK_RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed (exit {proc.returncode}):\n{text[-2000:]}")
    raw: dict[str, Any] = json.loads(line.removeprefix("WRK_RESULT "))
    seconds = raw["duration_us"] / 1e6
    errors = sum(raw[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts"))
    ok = raw["requests"] - raw["status_errors"]
    per_request = BATCH_EVENTS if mode == "batch" else 1
    lat = raw["latency_us"]
    cpu = {f"{name}_cpu_pct": round((after[name] - before[name]) / elapsed * 100, 1) for name in watch}
    return {
        "connections": connections,
        "duration_s": round(seconds, 2),
        "requests": raw["requests"],
        "events": ok * per_request,
        "requests_per_s": round(ok / seconds, 1),
        "events_per_s": round(ok * per_request / seconds, 1),
        "latency_p50_ms": round(lat["p50"] / 1000, 2),
        "latency_p99_ms": round(lat["p99"] / 1000, 2),
        "latency_max_ms": round(lat["max"] / 1000, 2),
        "errors": errors,
        "loadgen_cpu_pct": round((usage.ru_utime + usage.ru_stime) / elapsed * 100, 1),
        **cpu,
    }


# -- raw produce baseline --------------------------------------------------------------------------------
async def raw_produce(
    settings: IngestSettings, payloads: list[tuple[bytes, bytes]], connections: int
) -> dict[str, Any]:
    """Pipelined (every send queued, then all acks awaited) and windowed (`connections` senders, each
    sending 100 events and awaiting their acks before the next 100, like /v1/batch clients)."""
    topic = Topics(settings.topic_prefix).events
    producer = make_producer(settings)
    await producer.start()
    try:
        # warm-up: connections and metadata for every partition
        await asyncio.gather(*[await producer.send(topic, key=k, value=v) for k, v in payloads[:2000]])

        cpu0, t0 = _self_cpu(), time.perf_counter()
        futures = [await producer.send(topic, key=k, value=v) for k, v in payloads]
        await asyncio.gather(*futures)
        elapsed, cpu = time.perf_counter() - t0, _self_cpu() - cpu0
        pipelined = {
            "events": len(payloads),
            "events_per_s": round(len(payloads) / elapsed, 1),
            "client_cpu_pct": round(cpu / elapsed * 100, 1),
        }

        chunks = [payloads[i : i + BATCH_EVENTS] for i in range(0, len(payloads), BATCH_EVENTS)]
        latencies: list[float] = []

        async def sender(queue: list[list[tuple[bytes, bytes]]]) -> None:
            while queue:
                chunk = queue.pop()
                start = time.perf_counter()
                await asyncio.gather(*[await producer.send(topic, key=k, value=v) for k, v in chunk])
                latencies.append(time.perf_counter() - start)

        cpu0, t0 = _self_cpu(), time.perf_counter()
        await asyncio.gather(*[sender(chunks) for _ in range(connections)])
        elapsed, cpu = time.perf_counter() - t0, _self_cpu() - cpu0
        windowed = {
            "events": len(payloads),
            "senders": connections,
            "events_per_s": round(len(payloads) / elapsed, 1),
            "batch_p50_ms": round(percentile(latencies, 50) * 1000, 2),
            "batch_p99_ms": round(percentile(latencies, 99) * 1000, 2),
            "client_cpu_pct": round(cpu / elapsed * 100, 1),
        }
    finally:
        await producer.stop()
    return {"pipelined": pipelined, "windowed": windowed}


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- setup -----------------------------------------------------------------------------------------------
async def prepare(settings: IngestSettings) -> tuple[str, uuid.UUID]:
    """Topics, and a source with a fresh write key (inserted the way the admin API stores it)."""
    await ensure_topics(settings)
    write_key, source_id = new_write_key(), uuid.uuid4()
    conn = await asyncpg.connect(to_libpq_url(settings.database_url))
    try:
        await conn.execute(
            "INSERT INTO sources (id, name, write_key_hash) VALUES ($1, 'bench', $2)",
            source_id,
            hash_write_key(write_key),
        )
    finally:
        await conn.close()
    return write_key, source_id


async def events_in_topic(settings: IngestSettings) -> int:
    """Sum of the events topic's end offsets: every event the broker acknowledged so far."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await consumer.start()
    try:
        topic = Topics(settings.topic_prefix).events
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(settings.partitions)])
        return int(sum(ends.values()))
    finally:
        await consumer.stop()


def server_env(settings: IngestSettings, workers: int, rate_limit: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNNELSTREAM_")}
    env.update(
        {
            "FUNNELSTREAM_DATABASE_URL": settings.database_url,
            "FUNNELSTREAM_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "FUNNELSTREAM_KAFKA_IDEMPOTENCE": str(settings.kafka_idempotence).lower(),
            # the raw-produce baseline runs with these very settings
            "FUNNELSTREAM_KAFKA_LINGER_MS": str(settings.kafka_linger_ms),
            "FUNNELSTREAM_KAFKA_COMPRESSION": settings.kafka_compression,
            "FUNNELSTREAM_TOPIC_PREFIX": settings.topic_prefix,
            "FUNNELSTREAM_PARTITIONS": str(settings.partitions),
            "FUNNELSTREAM_SECRET_KEY": settings.secret_key.get_secret_value(),
            "FUNNELSTREAM_INGEST_WORKERS": str(workers),
            "FUNNELSTREAM_LOG_LEVEL": "WARNING",
            # the limiter still runs on every request; the benchmark measures capacity, not the limit
            "FUNNELSTREAM_RATE_LIMIT_PER_SECOND": f"{rate_limit:g}",
        }
    )
    return env


def producer_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Linger and compression given on the command line; the product's defaults otherwise."""
    given = {"kafka_linger_ms": args.linger_ms, "kafka_compression": args.compression}
    return {name: value for name, value in given.items() if value is not None}


def bench(stack: Stack, args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    settings = IngestSettings(
        database_url=stack.database_url,
        kafka_bootstrap_servers=stack.bootstrap,
        kafka_idempotence=stack.kafka_idempotence,
        kafka_session_timeout_ms=stack.session_timeout_ms,
        topic_prefix=stack.topic_prefix,
        partitions=args.partitions,
        secret_key=uuid.uuid4().hex,
        **producer_overrides(args),
    )
    write_key, source_id = asyncio.run(prepare(settings))
    auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    env = server_env(settings, args.workers, args.rate_limit)
    infra = {name: [pid] for name, pid in stack.pids.items()}
    conns: list[int] = args.connections
    bin_dir = Path(sys.executable).parent

    port = free_port()
    real_argv = [str(bin_dir / "funnelstream"), "ingest", "--host", "127.0.0.1", "--port", str(port)]
    real_argv += ["--workers", str(args.workers)]
    measured: dict[str, list[dict[str, Any]]] = {"track": [], "batch": []}
    progress(f"starting `funnelstream ingest` on port {port} ({args.workers} worker(s))")
    with server(real_argv, env, "/readyz", port, logs / "ingest.log") as pid:
        watch = {"server": [pid], **infra}
        url = f"http://127.0.0.1:{port}"
        progress(f"warm-up {args.warmup:g}s")
        warmup = run_wrk(url, "track", max(conns), args.warmup, args, auth, f"w{stack.run_id}", watch)
        for mode in ("track", "batch"):
            for c in conns:
                progress(f"ingest /v1/{mode}, {c} connections, {args.duration:g}s")
                result = run_wrk(url, mode, c, args.duration, args, auth, f"{mode}{c}-{stack.run_id}", watch)
                progress(
                    f"  {result['requests_per_s']} req/s, {result['events_per_s']} events/s, "
                    f"p50 {result['latency_p50_ms']} ms, p99 {result['latency_p99_ms']} ms, "
                    f"errors {result['errors']}"
                )
                measured[mode].append(result)
    # 2xx answers wrk saw (warm-up included); the topic may hold a few more: requests in flight at the end
    accepted = warmup["events"] + sum(r["events"] for rs in measured.values() for r in rs)
    in_topic = asyncio.run(events_in_topic(settings))

    port = free_port()
    bare_argv = [sys.executable, str(BENCH_DIR / "_bare_app.py"), "--port", str(port)]
    bare_argv += ["--workers", str(args.workers)]
    bare: list[dict[str, Any]] = []
    progress(f"starting bare endpoint on port {port}")
    with server(bare_argv, env, "/healthz", port, logs / "bare.log") as pid:
        watch = {"server": [pid], **infra}
        url = f"http://127.0.0.1:{port}"
        run_wrk(url, "track", max(conns), args.warmup, args, auth, f"bw{stack.run_id}", watch)
        for c in conns:
            progress(f"bare /v1/track, {c} connections, {args.duration:g}s")
            result = run_wrk(url, "track", c, args.duration, args, auth, f"bare{c}-{stack.run_id}", watch)
            progress(f"  {result['requests_per_s']} req/s, p50 {result['latency_p50_ms']} ms")
            bare.append(result)

    progress(f"raw produce of {args.produce_events} server-built payloads")
    payloads = server_payloads(args.produce_events, args.users, stack.run_id, source_id)
    raw = asyncio.run(raw_produce(settings, payloads, max(conns)))
    progress(f"  pipelined {raw['pipelined']['events_per_s']} events/s, windowed {raw['windowed']['events_per_s']}")

    best_batch = max(r["events_per_s"] for r in measured["batch"])
    best_track = max(r["requests_per_s"] for r in measured["track"])
    best_bare = max(r["requests_per_s"] for r in bare)
    raw_rate = raw["pipelined"]["events_per_s"]
    ratios: dict[str, Any] = {
        "batch_events_vs_raw_produce": round(best_batch / raw_rate, 3),
        "track_rps_vs_bare": round(best_track / best_bare, 3),
        "track_rps_vs_bare_by_connections": {
            str(m["connections"]): round(m["requests_per_s"] / b["requests_per_s"], 3)
            for m, b in zip(measured["track"], bare, strict=True)
        },
        "batch_events_vs_raw_produce_windowed": round(best_batch / raw["windowed"]["events_per_s"], 3),
    }
    errors = sum(r["errors"] for rs in (*measured.values(), bare) for r in rs)
    return {
        "benchmark": "ingest",
        "config": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "connections": conns,
            "wrk_threads": args.threads,
            "workers": args.workers,
            "events_per_batch": BATCH_EVENTS,
            "users": args.users,
            "partitions": settings.partitions,
            "rate_limit_per_second": args.rate_limit,
            "producer": {
                "acks": "all",
                "linger_ms": settings.kafka_linger_ms,
                "compression": settings.kafka_compression,
                "max_batch_size": 256 * 1024,
                "idempotence": settings.kafka_idempotence,
            },
            "broker": stack.broker,
            "db": stack.db,
            "load_generator": _wrk_version(args.wrk),
            "machine": machine(),
        },
        "measured": {
            "track": measured["track"],
            "batch": measured["batch"],
            "events_acknowledged_to_wrk": accepted,
            "events_in_topic": in_topic,
        },
        "baseline": {"bare_endpoint_track": bare, "raw_produce": raw},
        "ratios": ratios,
        "targets": TARGETS,
        "pass": {name: ratios[name] >= target for name, target in TARGETS.items()} | {"no_errors": errors == 0},
    }


def _wrk_version(path: str) -> str:
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    return (out.stdout or out.stderr).splitlines()[0].strip() if (out.stdout or out.stderr) else "wrk"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per server")
    parser.add_argument(
        "--connections",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[10, 50],
        help="comma-separated wrk connection counts",
    )
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (each Lua state counts its own ids)")
    parser.add_argument("--workers", type=int, default=1, help="HTTP worker processes (both servers)")
    parser.add_argument("--users", type=int, default=2_000, help="distinct users the events are spread over")
    parser.add_argument("--partitions", type=int, default=12, help="partitions of the events topic")
    parser.add_argument(
        "--linger-ms", type=int, help="FUNNELSTREAM_KAFKA_LINGER_MS of server and baseline (default: the product's)"
    )
    parser.add_argument(
        "--compression",
        choices=["zstd", "lz4", "gzip", "snappy", "none"],
        help="FUNNELSTREAM_KAFKA_COMPRESSION of server and baseline (default: the product's)",
    )
    parser.add_argument("--produce-events", type=int, default=100_000, help="events of the raw produce baseline")
    parser.add_argument(
        "--rate-limit",
        type=float,
        default=1e9,
        help="FUNNELSTREAM_RATE_LIMIT_PER_SECOND of the server (default: limiter on, never binding)",
    )
    parser.add_argument("--verbose", action="store_true", help="FunnelStream's own INFO logs on stderr")
    args = parser.parse_args()
    setup_logging(args.verbose)
    args.wrk = shutil.which("wrk")
    if args.wrk is None:
        print(json.dumps({"benchmark": "ingest", "error": "wrk not found on PATH; install it: apt-get install -y wrk"}))
        return 2
    logs = Path(tempfile.mkdtemp(prefix="fs-bench-logs-"))
    try:
        with contextlib.redirect_stdout(sys.stderr), components() as stack:
            result = bench(stack, args, logs)
    except Exception:
        for log_file in sorted(logs.glob("*.log")):
            progress(f"--- {log_file.name} (last 3000 chars)\n{log_file.read_text()[-3000:]}")
        raise
    finally:
        shutil.rmtree(logs, ignore_errors=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
