"""`funnelstream dev`: the whole product in one process, on one port, embedded broker and database.

Start order: database, broker, migrations, topics, a ready source, then the HTTP app (tracking and
admin API on one port) and the scoring and nurture consumers. Stop order (Ctrl-C or SIGTERM): the
HTTP server stops accepting and finishes open requests, the consumers drain to zero lag in pipeline
order, then the broker and the database stop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from funnelstream.apps import create_app
from funnelstream.embedded import EmbeddedBroker, EmbeddedPostgres
from funnelstream.migrate import upgrade
from funnelstream.processes import PidFile
from funnelstream.runtime import CONSUMERS, background_tasks, make_server, start_server, stop_on_signals
from services.nurture.delivery.mailer import dev_mail_overrides
from shared.db import make_engine, make_sessionmaker
from shared.kafka import ensure_topics, make_producer, wait_for_broker
from shared.models import Source
from shared.runner import ConsumerRunner
from shared.security import hash_write_key, new_write_key
from shared.settings import (
    AdminSettings,
    AnalyticsSettings,
    DevSettings,
    IngestSettings,
    NurtureSettings,
    ScoringSettings,
    Settings,
    load_settings,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DevSecrets:
    admin_token: str
    secret_key: str
    write_key: str


def load_or_create_secrets(data_dir: Path, dev: DevSettings) -> DevSecrets:
    """Tokens generated once and kept in the data folder, so links in sent emails survive restarts."""
    path = data_dir / "secrets.json"
    stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    values = {
        "admin_token": stored.get("admin_token") or secrets.token_urlsafe(32),
        "secret_key": stored.get("secret_key") or secrets.token_urlsafe(48),
        "write_key": stored.get("write_key") or new_write_key(),
    }
    if values != stored:
        path.write_text(json.dumps(values, indent=2))
        path.chmod(0o600)
    return DevSecrets(
        admin_token=dev.admin_token.get_secret_value() if dev.admin_token else values["admin_token"],
        secret_key=dev.secret_key.get_secret_value() if dev.secret_key else values["secret_key"],
        write_key=values["write_key"],
    )


async def ensure_dev_source(database_url: str, write_key: str) -> None:
    """A source named "dev" whose write key is the one printed at start-up."""
    engine = make_engine(database_url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            digest = hash_write_key(write_key)
            found = await session.scalar(select(Source.id).where(Source.write_key_hash == digest))
            if found is None:
                session.add(Source(name="dev", write_key_hash=digest))
    finally:
        await engine.dispose()


def say(line: str = "") -> None:
    """Progress and the start-up banner go to stdout, for the person who ran the command."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Dev:
    def __init__(self, dev: DevSettings, host: str, port: int) -> None:
        self.dev = dev
        self.host = host
        self.port = port
        self.data_dir = dev.data_dir.resolve()
        self.run_dir = self.data_dir / "run"
        self.pidfile = PidFile(self.run_dir / "dev.pid")
        self.postgres: EmbeddedPostgres | None = None
        self.broker: EmbeddedBroker | None = None

    def claim_data_dir(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        other = self.pidfile.live_process("funnelstream")
        if other is not None and other.pid != os.getpid():
            raise SystemExit(f"funnelstream dev already runs on {self.data_dir} (pid {other.pid})")
        self.pidfile.clean_stale("funnelstream")
        self.pidfile.write(os.getpid())

    def start_embedded(self) -> tuple[str, str, bool]:
        """Database URL, bootstrap servers, idempotence: given ones are used as they are."""
        database_url = self.dev.database_url
        if database_url is None:
            say(f"starting embedded PostgreSQL in {self.data_dir / 'postgres'} ...")
            self.postgres = EmbeddedPostgres(self.data_dir / "postgres", self.run_dir)
            database_url = self.postgres.start()
        bootstrap = self.dev.kafka_bootstrap_servers
        idempotence = True
        if bootstrap is None:
            say("starting embedded Kafka-protocol broker (tansu, in memory) ...")
            self.broker = EmbeddedBroker(self.run_dir)
            bootstrap = self.broker.start()
            idempotence = False  # tansu refuses InitProducerId
        return database_url, bootstrap, idempotence

    def stop_embedded(self) -> None:
        if self.broker is not None:
            self.broker.stop()
        if self.postgres is not None:
            self.postgres.stop()
        self.pidfile.remove()

    async def run(self) -> None:
        self.claim_data_dir()
        try:
            database_url, bootstrap, idempotence = self.start_embedded()
            secrets_ = load_or_create_secrets(self.data_dir, self.dev)
            common: dict[str, Any] = {
                "database_url": database_url,
                "kafka_bootstrap_servers": bootstrap,
            }
            if self.broker is not None:
                common["kafka_idempotence"] = idempotence
                # tansu completes a group join after about half the session timeout: keep start-up quick.
                if "FUNNELSTREAM_KAFKA_SESSION_TIMEOUT_MS" not in os.environ:
                    common["kafka_session_timeout_ms"] = 6000
            keys = {"secret_key": secrets_.secret_key}
            ingest = load_settings(IngestSettings, **common, **keys)
            admin = load_settings(AdminSettings, **common, **keys, admin_token=secrets_.admin_token)
            consumers: dict[str, Settings] = {
                "scoring": load_settings(ScoringSettings, **common),
                # No SMTP server named: email goes to the dev mailbox folder (and GET /api/mailbox).
                "nurture": load_settings(
                    NurtureSettings, **common, **keys, **dev_mail_overrides(self.data_dir, os.environ)
                ),
                "analytics": load_settings(AnalyticsSettings, **common),
            }
            say("running migrations ...")
            await asyncio.to_thread(upgrade, database_url)
            await wait_for_broker(bootstrap)
            topics = await ensure_topics(ingest)
            say(f"topics ready: {', '.join(f'{t} ({n})' for t, n in sorted(topics.items()))}")
            await ensure_dev_source(database_url, secrets_.write_key)
            await self.serve(ingest, admin, consumers, secrets_, database_url)
        finally:
            self.stop_embedded()
            say("stopped.")

    async def serve(
        self,
        ingest: IngestSettings,
        admin: AdminSettings,
        consumers: dict[str, Settings],
        secrets_: DevSecrets,
        database_url: str,
    ) -> None:
        stop = asyncio.Event()
        stop_on_signals(stop)
        engine = make_engine(database_url, pool_size=4)
        producer = make_producer(ingest)
        await producer.start()
        sessionmaker = make_sessionmaker(engine)
        runners = {
            name: ConsumerRunner(settings, CONSUMERS[name][1](settings), sessionmaker, producer)
            for name, settings in consumers.items()
        }
        runner_tasks = {name: asyncio.create_task(r.run(), name=name) for name, r in runners.items()}
        extra = [t for name, s in consumers.items() for t in background_tasks(name, s, sessionmaker, producer)]
        nurture = consumers.get("nurture")
        app = create_app(ingest=ingest, admin=admin, nurture=nurture if isinstance(nurture, NurtureSettings) else None)
        server = make_server(app, self.host, self.port)
        try:
            server_task = await start_server(server)
            say("waiting for the consumers to join their groups ...")
            joined = asyncio.gather(*(r.assigned.wait() for r in runners.values()))
            await asyncio.wait_for(joined, timeout=120)
            self.banner(server.port, secrets_, ingest, database_url)
            watched = [asyncio.ensure_future(stop.wait()), server_task, *runner_tasks.values()]
            done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not watched[0] and task.exception() is not None:
                    log.error("%s failed: %r", task.get_name(), task.exception())
            say("stopping: ingest stops accepting ...")
            server.should_exit = True
            await asyncio.gather(server_task, return_exceptions=True)
            for name, runner in runners.items():  # pipeline order: scoring feeds nurture and analytics
                say(f"stopping: {name} drains to zero lag ...")
                runner.request_stop(drain=True)
                await asyncio.gather(runner_tasks[name], return_exceptions=True)
        finally:
            for task in [*runner_tasks.values(), *extra]:
                task.cancel()
            await producer.stop()
            await engine.dispose()
        say("stopping: broker and database ...")

    def banner(self, port: int, secrets_: DevSecrets, ingest: IngestSettings, database_url: str) -> None:
        base = f"http://{self.host}:{port}"
        say()
        say(f"FunnelStream is running on {base}")
        say(f"  tracking API   {base}/v1/track   (Segment-compatible; write key as HTTP Basic user)")
        say(f"  admin API      {base}/api/       (Authorization: Bearer <admin token>)")
        say(f"  API docs       {base}/docs")
        say(f"  dashboard      {base}/dashboard   (sign in with the admin token)")
        say(f"  console        {base}/console     (first user: funnelstream users create --email you@example.com)")
        say(f"  health         {base}/healthz  {base}/readyz  {base}/metrics")
        say(f"  admin token    {secrets_.admin_token}")
        say(f"  write key      {secrets_.write_key}")
        say(f"  database       {database_url}")
        say(f"  broker         {ingest.kafka_bootstrap_servers}  (topic prefix {ingest.topic_prefix!r})")
        say(f"  data folder    {self.data_dir}")
        mailbox = os.environ.get("FUNNELSTREAM_MAILBOX_DIR") or (
            None if "FUNNELSTREAM_SMTP_HOST" in os.environ else self.data_dir / "mailbox"
        )
        if mailbox is not None:
            say(f"  email          written to {mailbox} (GET {base}/api/mailbox); set FUNNELSTREAM_SMTP_HOST to send")
        if self.broker is not None:
            say("  note: the embedded broker keeps events in memory; events not yet consumed are lost if")
            say("        this process dies. Use real Kafka (FUNNELSTREAM_KAFKA_BOOTSTRAP_SERVERS) for durability.")
        say("Press Ctrl-C to stop.")
        say()
