"""The product as `funnelstream dev` runs it, for the console's tests: ingest, admin API and console on one
real HTTP port, mail into a dev mailbox folder, and on demand the scoring and nurture consumers with the
sequence scheduler (quiet hours off, so a test passes at any hour)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import time, timedelta
from pathlib import Path
from typing import Any

import httpx

from funnelstream.apps import create_app
from funnelstream.runtime import make_server, start_server
from services.nurture.delivery.mailer import make_mailer
from services.nurture.handlers import NurtureHandler
from services.nurture.sequences.messaging import SequenceMessenger
from services.nurture.sequences.repository import SequenceCache
from services.nurture.sequences.scheduler import Scheduler, scheduler_loop
from services.nurture.sequences.timing import SendPolicy
from services.scoring.handlers import ScoringHandler
from shared.db import make_engine, make_sessionmaker
from shared.kafka import Topics, ensure_topics, make_producer
from shared.runner import ConsumerRunner
from shared.settings import AdminSettings, IngestSettings, NurtureSettings, ScoringSettings

SECRET = "test-secret"
PASSWORD = "correct horse 1"  # noqa: S105 - a test account's
NO_QUIET_HOURS = SendPolicy(quiet_start=time(0, 0), quiet_end=time(0, 0), cap=timedelta(hours=16))


@dataclass
class Console:
    base_url: str
    admin_token: str
    mailbox: Path

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    async def user(self, client: httpx.AsyncClient, email: str, role: str, password: str = PASSWORD) -> str:
        """A user made with the admin token, and an API token of theirs."""
        r = await client.post(
            f"{self.base_url}/api/users", json={"email": email, "role": role, "password": password}, headers=self.admin
        )
        assert r.status_code == 201, r.text
        t = await client.post(
            f"{self.base_url}/api/users/{r.json()['id']}/tokens", json={"name": "t"}, headers=self.admin
        )
        assert t.status_code == 201, t.text
        token: str = t.json()["token"]
        return token


@asynccontextmanager
async def console_stack(
    settings_kwargs: dict[str, Any],
    mailbox: Path,
    *,
    pipeline: bool = False,
    smtp: tuple[str, int] | None = None,
    **admin_overrides: Any,
) -> AsyncIterator[Console]:
    """With `smtp` (host, port), mail goes to that SMTP server instead of the `mailbox` folder."""
    token = secrets.token_urlsafe(16)
    ingest = IngestSettings(**settings_kwargs, secret_key=SECRET, write_key_cache_seconds=0)
    admin = AdminSettings(**settings_kwargs, secret_key=SECRET, admin_token=token, **admin_overrides)
    mail: dict[str, Any] = {"smtp_host": smtp[0], "smtp_port": smtp[1]} if smtp else {"mailbox_dir": mailbox}
    nurture = NurtureSettings(**settings_kwargs, secret_key=SECRET, **mail)
    await ensure_topics(ingest)
    engine = make_engine(ingest.database_url, pool_size=4)
    maker = make_sessionmaker(engine)
    producer = make_producer(ingest)
    await producer.start()
    runners: list[ConsumerRunner[Any]] = []
    tasks: list[asyncio.Task[Any]] = []
    if pipeline:
        scoring = ScoringSettings(**settings_kwargs)
        runners = [
            ConsumerRunner(scoring, ScoringHandler(Topics(scoring.topic_prefix)), maker, producer),
            ConsumerRunner(nurture, NurtureHandler(SequenceCache(refresh_seconds=0)), maker, producer),
        ]
        tasks = [asyncio.create_task(r.run()) for r in runners]
        messenger = SequenceMessenger(nurture, maker, make_mailer(nurture))
        tasks.append(asyncio.create_task(scheduler_loop(Scheduler(maker, messenger, policy=NO_QUIET_HOURS), 0.05)))
    server = make_server(create_app(ingest=ingest, admin=admin, nurture=nurture), "127.0.0.1", 0)
    server_task = await start_server(server)
    try:
        if runners:
            await asyncio.wait_for(asyncio.gather(*(r.assigned.wait() for r in runners)), 60)
        yield Console(f"http://127.0.0.1:{server.port}", token, mailbox)
    finally:
        server.should_exit = True
        await server_task
        for runner in runners:
            runner.request_stop()
        for task in tasks[len(runners) :]:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await producer.stop()
        await engine.dispose()
