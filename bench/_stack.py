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
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import asyncpg
import psutil

from funnelstream.embedded import EmbeddedBroker, EmbeddedPostgres
from funnelstream.migrate import upgrade
from funnelstream.processes import spawn
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
    # the server's own URL (not the run's database), for CREATE DATABASE ... TEMPLATE copies
    server_url: str = ""

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
def components(broker: bool = True) -> Iterator[Stack]:
    """Start (or attach to) PostgreSQL and the broker; create and migrate a fresh database; clean up.

    `broker=False` for benchmarks that never talk to Kafka: none is started (`bootstrap` is empty)."""
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
        if not broker:
            bootstrap, broker_kind = "", "none"
            idempotence, session_timeout = False, 0
        elif bootstrap:
            broker_kind = f"external Kafka {bootstrap}"
            idempotence, session_timeout = True, 10_000
        else:
            progress("starting embedded tansu broker")
            tansu = EmbeddedBroker(tmp / "tansu-run")
            bootstrap = tansu.start()
            broker_kind = f"embedded tansu (in-memory) {bootstrap}"
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
            broker=broker_kind,
            db=f"{db_kind} {version}",
            run_id=run_id,
            pids=pids,
            server_url=server_url,
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


@contextlib.asynccontextmanager
async def database_copy(stack: Stack, suffix: str) -> AsyncIterator[str]:
    """A fresh copy of the run's migrated (and otherwise untouched) database; dropped afterwards.

    CREATE DATABASE ... TEMPLATE needs no session on the template: keep the run's database unused.
    """
    name = f"bench_{stack.run_id}_{suffix}"
    server_url = stack.server_url or stack.database_url
    await _admin_sql(server_url, f'CREATE DATABASE "{name}" TEMPLATE "bench_{stack.run_id}"')
    try:
        yield _with_database(server_url, name)
    finally:
        with contextlib.suppress(Exception):
            await _admin_sql(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU of these processes and all their live descendants so far."""
    total = 0.0
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            for p in [proc, *proc.children(recursive=True)]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    times = p.cpu_times()
                    total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def product_env(stack: Stack, **settings: object) -> dict[str, str]:
    """Environment for a `funnelstream` process of this run: the stack's settings plus `settings`
    (lower-case names without the prefix); FUNNELSTREAM_* variables of the caller are dropped."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNNELSTREAM_")}
    base: dict[str, object] = {
        "database_url": stack.database_url,
        "kafka_bootstrap_servers": stack.bootstrap,
        "kafka_idempotence": stack.kafka_idempotence,
        "kafka_session_timeout_ms": stack.session_timeout_ms,
        "topic_prefix": stack.topic_prefix,
        "log_level": "WARNING",
    }
    for name, value in {**base, **settings}.items():
        env[f"FUNNELSTREAM_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


class Children:
    """`funnelstream` CLI processes of a run, each logging to its own file in `log_dir`.

    Children get SIGTERM when this process dies (even by SIGKILL); leaving the block stops those
    still running (SIGTERM, then SIGKILL after `timeout`). Start them from the main thread.
    """

    def __init__(self, log_dir: Path, timeout: float = 15.0) -> None:
        self.log_dir = log_dir
        self.timeout = timeout
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, args: Sequence[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        cli = Path(sys.executable).parent / "funnelstream"
        proc = spawn([str(cli), *args], log_file=self.log_file(name), death_signal=signal.SIGTERM, env=env)
        self.procs[name] = proc
        return proc

    def log_file(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def tail(self, name: str, chars: int = 3000) -> str:
        try:
            return self.log_file(name).read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def check_alive(self) -> None:
        """Raise, with the end of its log, if a child has exited."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.tail(name)}")

    def stop(self, names: Sequence[str] | None = None) -> dict[str, int | None]:
        """SIGTERM every named child (all by default) at once, wait for each (SIGKILL after `timeout`);
        their exit codes. One signal only: a second one could hit a child already shutting down."""
        chosen = {n: p for n, p in self.procs.items() if names is None or n in names}
        for proc in chosen.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.timeout
        for name, proc in chosen.items():
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s ignored SIGTERM for %.0fs; killing it", name, self.timeout)
                proc.kill()
                proc.wait(5)
            del self.procs[name]
        return {name: proc.returncode for name, proc in chosen.items()}

    def __enter__(self) -> Children:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
