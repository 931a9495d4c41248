"""Shared plumbing of the benchmark scripts: real components, a fresh database, stats, stderr progress.

Not a benchmark itself. PostgreSQL and the broker are the embedded ones (started here, from the main
thread, stopped on exit) unless FUNNELSTREAM_DATABASE_URL / FUNNELSTREAM_KAFKA_BOOTSTRAP_SERVERS name
running servers. Either way each run gets its own database (dropped at the end) and topic prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from funnelstream.embedded import EmbeddedBroker, EmbeddedPostgres
from funnelstream.migrate import upgrade
from shared.settings import to_libpq_url

log = logging.getLogger("bench")

_T0 = time.monotonic()


def progress(message: str) -> None:
    """One progress line on stderr (stdout carries only the final JSON object)."""
    print(f"[bench {time.monotonic() - _T0:6.1f}s] {message}", file=sys.stderr, flush=True)


def setup_logging(verbose: bool = False) -> None:
    """Library logs on stderr: warnings and up, or everything of FunnelStream's own with `verbose`."""
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if verbose:
        for name in ("shared", "services", "funnelstream", "bench"):
            logging.getLogger(name).setLevel(logging.INFO)


@dataclass
class Stack:
    """Where the database and broker are for this run, and how to describe them in the JSON."""

    database_url: str
    bootstrap: str
    kafka_idempotence: bool
    session_timeout_ms: int
    broker: str
    db: str
    run_id: str
    # pids of embedded servers (for CPU accounting); empty for external ones
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def topic_prefix(self) -> str:
        return f"bench{self.run_id}."


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of `values`; 0.0 when there are none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def machine() -> dict[str, object]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }


def _with_database(url: str, name: str) -> str:
    head, _, _ = to_libpq_url(url).rpartition("/")
    return f"{head}/{name}"


async def _admin_sql(server_url: str, sql: str) -> str:
    conn = await asyncpg.connect(to_libpq_url(server_url))
    try:
        await conn.execute(sql)
        version: str = await conn.fetchval("SHOW server_version")
        return version
    finally:
        await conn.close()


@contextlib.contextmanager
def components() -> Iterator[Stack]:
    """Start (or attach to) PostgreSQL and the broker; create and migrate a fresh database; clean up."""
    run_id = uuid.uuid4().hex[:10]
    tmp = Path(tempfile.mkdtemp(prefix="fs-bench-"))
    pg: EmbeddedPostgres | None = None
    tansu: EmbeddedBroker | None = None
    server_url = os.environ.get("FUNNELSTREAM_DATABASE_URL")
    bootstrap = os.environ.get("FUNNELSTREAM_KAFKA_BOOTSTRAP_SERVERS")
    db_name = f"bench_{run_id}"
    created = False
    try:
        pids: dict[str, int] = {}
        if server_url:
            db_kind = "external PostgreSQL"
        else:
            progress("starting embedded PostgreSQL")
            pg = EmbeddedPostgres(tmp / "pg-data", tmp / "pg-run")
            server_url = pg.start()
            db_kind = "embedded PostgreSQL (fsync=on)"
            if pg.proc is not None:
                pids["postgres"] = pg.proc.pid
        if bootstrap:
            broker = f"external Kafka {bootstrap}"
            idempotence, session_timeout = True, 10_000
        else:
            progress("starting embedded tansu broker")
            tansu = EmbeddedBroker(tmp / "tansu-run")
            bootstrap = tansu.start()
            broker = f"embedded tansu (in-memory) {bootstrap}"
            # tansu refuses idempotent producers and completes a group join after ~half the session timeout
            idempotence, session_timeout = False, 2000
            if tansu.proc is not None:
                pids["broker"] = tansu.proc.pid
        version = asyncio.run(_admin_sql(server_url, f'CREATE DATABASE "{db_name}"'))
        created = True
        database_url = _with_database(server_url, db_name)
        progress(f"migrating database {db_name}")
        upgrade(database_url)
        yield Stack(
            database_url=database_url,
            bootstrap=bootstrap,
            kafka_idempotence=idempotence,
            session_timeout_ms=session_timeout,
            broker=broker,
            db=f"{db_kind} {version}",
            run_id=run_id,
            pids=pids,
        )
    finally:
        if created and server_url:
            with contextlib.suppress(Exception):
                asyncio.run(_admin_sql(server_url, f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
        if tansu is not None:
            tansu.stop()
        if pg is not None:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        progress("components stopped")
