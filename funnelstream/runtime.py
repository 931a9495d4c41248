"""Running services: HTTP servers and consumer processes, with signals that only set a flag."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Generator
from datetime import timedelta
from typing import Any

import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from funnelstream.apps import create_app
from funnelstream.migrate import wait_for_schema
from services.analytics.alerts import stalled_alert_loop
from services.analytics.handlers import AnalyticsHandler
from services.commerce.reminder_loop import make_reminder_sender, reminder_loop
from services.nurture.audiences.refresh import refresh_loop
from services.nurture.audiences.sync import sync_loop
from services.nurture.delivery.mailer import make_mailer
from services.nurture.delivery.sweeper import sweeper_loop
from services.nurture.experiments.runner import experiment_loop
from services.nurture.handlers import NurtureHandler
from services.nurture.sequences.messaging import SequenceMessenger
from services.nurture.sequences.scheduler import Scheduler, scheduler_loop
from services.nurture.sequences.timing import SendPolicy
from services.predictive.training import training_loop
from services.scoring.handlers import ScoringHandler
from services.scoring.rescore import rescore_loop, tick_loop
from services.scoring.retention import retention_loop
from shared.db import make_engine, make_sessionmaker
from shared.health import broker_check, database_check, health_router
from shared.kafka import Topics, make_producer
from shared.outbox import delivery_loop
from shared.runner import ConsumerRunner, Handler
from shared.settings import (
    AdminSettings,
    AnalyticsSettings,
    IngestSettings,
    NurtureSettings,
    ScoringSettings,
    Settings,
    load_settings,
)

log = logging.getLogger(__name__)


class Server(uvicorn.Server):
    """uvicorn without its own signal handling: the process decides the shutdown order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    @property
    def port(self) -> int:
        for server in self.servers:
            for sock in server.sockets:
                port: int = sock.getsockname()[1]
                return port
        return self.config.port


def make_server(app: FastAPI, host: str, port: int) -> Server:
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, lifespan="on")
    return Server(config)


async def start_server(server: Server) -> asyncio.Task[None]:
    """Start serving and return once the socket listens (or raise if start-up failed)."""
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("HTTP server stopped during start-up")
        await asyncio.sleep(0.02)
    return task


def stop_on_signals(stop: asyncio.Event) -> None:
    """SIGINT and SIGTERM only set `stop`; whoever waits on it shuts down in order."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


def scoring_handler(settings: Settings) -> ScoringHandler:
    return ScoringHandler(Topics(settings.topic_prefix))


def nurture_handler(settings: Settings) -> NurtureHandler:
    return NurtureHandler(topics=Topics(settings.topic_prefix))


def analytics_handler(settings: Settings) -> AnalyticsHandler:
    assert isinstance(settings, AnalyticsSettings)  # noqa: S101 - CONSUMERS pairs the class with it
    return AnalyticsHandler(settings)


CONSUMERS: dict[str, tuple[type[Settings], Callable[[Settings], Handler[Any]]]] = {
    "scoring": (ScoringSettings, scoring_handler),
    "nurture": (NurtureSettings, nurture_handler),
    "analytics": (AnalyticsSettings, analytics_handler),
}


def background_tasks(
    name: str, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], producer: AIOKafkaProducer
) -> list[asyncio.Task[None]]:
    """Periodic work that rides along with a consumer process: with scoring, retention, webhook delivery,
    rescoring after a rule-set change, the scoring tick and, if configured, predictive training; with
    nurture, the step scheduler and the sweeper that marks sends whose process died as `unknown`; with
    analytics, the stalled-lead alert.

    Stopped by cancellation: a delivery cut short mid-POST is retried once its lease expires, and a
    rescore chunk cut short is rolled back and done again."""
    if name == "scoring" and isinstance(settings, ScoringSettings):
        return [
            asyncio.create_task(retention_loop(sessionmaker, settings), name="retention"),
            asyncio.create_task(delivery_loop(settings, sessionmaker, asyncio.Event()), name="webhooks"),
            asyncio.create_task(rescore_loop(settings, sessionmaker, producer), name="rescore"),
            asyncio.create_task(tick_loop(settings, producer), name="tick"),
            asyncio.create_task(training_loop(settings, sessionmaker), name="predictive-training"),
        ]
    if name == "nurture" and isinstance(settings, NurtureSettings):
        scheduler = Scheduler(
            sessionmaker,
            SequenceMessenger(settings, sessionmaker, make_mailer(settings)),
            policy=SendPolicy(
                settings.quiet_hours_start, settings.quiet_hours_end, timedelta(hours=settings.frequency_cap_hours)
            ),
            batch=settings.scheduler_batch,
        )
        return [
            asyncio.create_task(scheduler_loop(scheduler, settings.scheduler_poll_seconds), name="scheduler"),
            asyncio.create_task(sweeper_loop(settings, sessionmaker), name="send-sweeper"),
            asyncio.create_task(refresh_loop(sessionmaker, settings.audience_refresh_seconds), name="audiences"),
            asyncio.create_task(sync_loop(settings, sessionmaker), name="audience-sync"),
            asyncio.create_task(
                reminder_loop(make_reminder_sender(settings, sessionmaker), settings.cart_reminder_poll_seconds),
                name="cart-reminders",
            ),
            asyncio.create_task(experiment_loop(sessionmaker, settings.experiment_check_seconds), name="experiments"),
        ]
    if name == "analytics" and isinstance(settings, AnalyticsSettings):
        return [asyncio.create_task(stalled_alert_loop(settings, sessionmaker), name="stalled-alert")]
    return []


async def run_consumer(name: str, settings: Settings, host: str = "0.0.0.0") -> None:  # noqa: S104
    """One consumer process: the runner plus /healthz, /readyz and /metrics on HEALTH_PORT."""
    _, make_handler = CONSUMERS[name]
    engine = make_engine(settings.database_url, pool_size=4)
    await wait_for_schema(engine)
    producer = make_producer(settings)
    await producer.start()
    sessionmaker = make_sessionmaker(engine)
    runner = ConsumerRunner(settings, make_handler(settings), sessionmaker, producer)
    extra = background_tasks(name, settings, sessionmaker, producer)
    checks = {"database": database_check(engine), "broker": broker_check(producer)}
    health = FastAPI(title=f"FunnelStream {name} health")
    health.include_router(health_router(lambda: checks))
    server = make_server(health, host, settings.health_port)
    stop = asyncio.Event()
    stop_on_signals(stop)
    server_task = await start_server(server)
    log.info("%s health, readiness and metrics on http://%s:%d", name, host, server.port)
    runner_task = asyncio.create_task(runner.run())
    try:
        await _first(stop.wait(), runner_task)
        runner.request_stop(drain=False)
        await runner_task
    finally:
        for task in extra:
            task.cancel()
        server.should_exit = True
        await server_task
        await producer.stop()
        await engine.dispose()


async def run_http(app: FastAPI, host: str, port: int) -> None:
    """One HTTP process until SIGINT/SIGTERM; uvicorn stops accepting, then finishes open requests."""
    server = make_server(app, host, port)
    stop = asyncio.Event()
    stop_on_signals(stop)
    task = await start_server(server)
    log.info("listening on http://%s:%d", host, server.port)
    await _first(stop.wait(), task)
    server.should_exit = True
    await task


def ingest_app_factory() -> FastAPI:
    """For `uvicorn --factory` with several workers: each worker builds its app from the environment."""
    return create_app(ingest=load_settings(IngestSettings))


def admin_app_factory() -> FastAPI:
    return create_app(admin=load_settings(AdminSettings))


async def _first(*aws: Awaitable[Any]) -> None:
    tasks = [a if isinstance(a, asyncio.Task) else asyncio.ensure_future(a) for a in aws]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        if task not in aws:
            task.cancel()
    for task in done:
        if task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
