"""The `funnelstream` command."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic_settings import BaseSettings

from services.console.cli import users_app
from shared.logs import setup_logging
from shared.settings import (
    AdminSettings,
    DevSettings,
    IngestSettings,
    Settings,
    SettingsError,
    load_settings,
)

app = typer.Typer(
    help="FunnelStream: event-streaming marketing automation. Settings come from FUNNELSTREAM_* variables.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
dlq_app = typer.Typer(help="Inspect and replay the dead-letter topic.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")
analytics_app = typer.Typer(
    help="Funnel analytics: the consumer that keeps the summaries, and their backfill.", no_args_is_help=True
)
app.add_typer(analytics_app, name="analytics")
app.add_typer(users_app, name="users")

S = TypeVar("S", bound=BaseSettings)
T = TypeVar("T")

HostOpt = Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0 for every interface).")]
PortOpt = Annotated[int, typer.Option(help="TCP port to listen on.")]


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run a service's main coroutine on uvloop (what uvicorn itself picks), else on asyncio."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        return asyncio.run(main)
    return uvloop.run(main)


def settings_or_exit(cls: type[S], **overrides: Any) -> S:
    """Settings, or one clear line naming the bad setting and exit code 2."""
    try:
        return load_settings(cls, **overrides)
    except SettingsError as exc:
        typer.echo(f"funnelstream: invalid settings: {exc}", err=True)
        raise typer.Exit(2) from None


def _log(service: str, settings: Settings | None = None) -> None:
    level = settings.log_level if settings else os.environ.get("FUNNELSTREAM_LOG_LEVEL", "INFO")
    setup_logging(service, level)


@app.command()
def dev(
    port: PortOpt = 8000,
    host: HostOpt = "127.0.0.1",
    data_dir: Annotated[
        Path | None, typer.Option(help="Folder for the embedded database and secrets [default: ./.funnelstream]")
    ] = None,
) -> None:
    """Run everything on one port: embedded PostgreSQL and broker, tracking API, admin API, consumers.

    With FUNNELSTREAM_DATABASE_URL / FUNNELSTREAM_KAFKA_BOOTSTRAP_SERVERS set, those are used instead.
    """
    from funnelstream.dev import Dev

    overrides = {"data_dir": data_dir} if data_dir else {}
    settings = settings_or_exit(DevSettings, **overrides)
    _log("dev")
    run(Dev(settings, host, port).run())


@app.command()
def ingest(
    port: PortOpt = 8000,
    host: HostOpt = "127.0.0.1",
    workers: Annotated[int | None, typer.Option(help="Worker processes [default: FUNNELSTREAM_INGEST_WORKERS]")] = None,
) -> None:
    """Run the public collection edge: tracking API, pixels and webhooks."""
    from funnelstream.apps import create_app
    from funnelstream.runtime import run_http

    settings = settings_or_exit(IngestSettings)
    _log("ingest", settings)
    count = workers or settings.ingest_workers
    if count > 1:
        import uvicorn

        uvicorn.run(
            "funnelstream.runtime:ingest_app_factory",
            factory=True,
            host=host,
            port=port,
            workers=count,
            log_config=None,
            access_log=False,
        )
        return
    run(run_http(create_app(ingest=settings), host, port))


@app.command()
def api(port: PortOpt = 8000, host: HostOpt = "127.0.0.1") -> None:
    """Run the admin API and dashboard."""
    from funnelstream.apps import create_app
    from funnelstream.runtime import run_http

    settings = settings_or_exit(AdminSettings)
    _log("api", settings)
    run(run_http(create_app(admin=settings), host, port))


def _consumer(name: str) -> None:
    from funnelstream.runtime import CONSUMERS, run_consumer

    settings = settings_or_exit(CONSUMERS[name][0])
    _log(name, settings)
    run(run_consumer(name, settings))


@app.command()
def scoring() -> None:
    """Run one scoring consumer; N copies share the consumer group. Health on FUNNELSTREAM_HEALTH_PORT."""
    _consumer("scoring")


@app.command()
def nurture() -> None:
    """Run one nurture consumer; N copies share the consumer group. Health on FUNNELSTREAM_HEALTH_PORT."""
    _consumer("nurture")


@app.command()
def train(
    funnel_model: Annotated[
        str | None,
        typer.Option(help="Funnel model to learn [default: FUNNELSTREAM_PREDICTIVE_FUNNEL_MODEL or the primary]"),
    ] = None,
    target_stage: Annotated[
        str | None,
        typer.Option(help="Stage whose reaching is predicted [default: FUNNELSTREAM_PREDICTIVE_TARGET_STAGE]"),
    ] = None,
    horizon_days: Annotated[
        float | None, typer.Option(help="Reached within this many days [default: FUNNELSTREAM_PREDICTIVE_HORIZON_DAYS]")
    ] = None,
    min_positives: Annotated[int | None, typer.Option(help="Positives needed in training and in test")] = None,
    confidence: Annotated[float | None, typer.Option(help="Confidence of the AUC-gain lower bound")] = None,
) -> None:
    """Train a predictive model on the history in PostgreSQL, test it on later leads against the active
    rules, and activate it only if it is reliably better. Progress on stderr, the stored run as JSON."""
    from services.predictive.training import TrainingError, train_once
    from shared.settings import PredictiveSettings

    settings = settings_or_exit(
        PredictiveSettings, kafka_bootstrap_servers=os.environ.get("FUNNELSTREAM_KAFKA_BOOTSTRAP_SERVERS", "unused")
    )
    _log("train", settings)

    def progress(line: str) -> None:
        typer.echo(f"train: {line}", err=True)

    try:
        row = asyncio.run(
            train_once(settings, progress, funnel_model=funnel_model, target_stage=target_stage,
                       horizon_days=horizon_days, min_positives=min_positives, confidence=confidence)
        )  # fmt: skip
    except TrainingError as exc:
        typer.echo(f"funnelstream: {exc.field}: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps({k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in vars(row).items()}))


@app.command()
def migrate() -> None:
    """Apply database migrations (safe to run again; concurrent runs wait for each other)."""
    from funnelstream.migrate import upgrade

    database_url = os.environ.get("FUNNELSTREAM_DATABASE_URL")
    if not database_url:
        typer.echo("funnelstream: invalid settings: FUNNELSTREAM_DATABASE_URL: is not set", err=True)
        raise typer.Exit(2)
    _log("migrate")
    upgrade(database_url)
    typer.echo("database schema is up to date")


@app.command()
def topics(
    check: Annotated[bool, typer.Option("--check", help="Only check; exit 1 if a topic is missing.")] = False,
) -> None:
    """Create missing topics with FUNNELSTREAM_PARTITIONS partitions, or check them; prints partition counts."""
    from shared.kafka import Topics, ensure_topics

    settings = _broker_settings()
    _log("topics", settings)
    wanted = Topics(settings.topic_prefix).all()
    if check:
        counts = asyncio.run(_describe_topics(settings, wanted))
    else:
        counts = asyncio.run(ensure_topics(settings))
    missing = [t for t in wanted if t not in counts]
    for topic in wanted:
        typer.echo(f"{topic}\t{counts.get(topic, 'missing')}")
    if missing:
        raise typer.Exit(1)


async def _describe_topics(settings: Settings, names: list[str]) -> dict[str, int]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        present = [n for n in names if n in existing]
        described = await admin.describe_topics(present) if present else []
        return {d["topic"]: len(d["partitions"]) for d in described}
    finally:
        await admin.close()


def _broker_settings() -> Settings:
    # Topic and DLQ commands need only the broker; the database URL may be absent.
    return settings_or_exit(Settings, database_url=os.environ.get("FUNNELSTREAM_DATABASE_URL", "postgresql://unused"))


@dlq_app.command("list")
def dlq_list(limit: Annotated[int, typer.Option(help="At most this many messages.")] = 100) -> None:
    """Print dead-lettered messages as JSON lines, oldest first, with the reason each was set aside."""
    from funnelstream.dlq import list_dead_letters

    settings = _broker_settings()
    _log("dlq", settings)
    for item in asyncio.run(list_dead_letters(settings, limit)):
        typer.echo(json.dumps(item))


@dlq_app.command("replay")
def dlq_replay(
    limit: Annotated[int | None, typer.Option(help="At most this many messages.")] = None,
    reason_contains: Annotated[str | None, typer.Option(help="Only messages whose reason contains this.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be replayed.")] = False,
) -> None:
    """Publish dead letters back to their original topic, each once; consumers skip already-applied events."""
    from funnelstream.dlq import replay_dead_letters

    settings = _broker_settings()
    _log("dlq", settings)
    items = asyncio.run(replay_dead_letters(settings, limit, reason_contains, dry_run))
    for item in items:
        typer.echo(json.dumps(item))
    verb = "would replay" if dry_run else "replayed"
    typer.echo(f"{verb} {len(items)} message(s)", err=True)


@analytics_app.command("run")
def analytics_run() -> None:
    """Run one analytics consumer (summaries, stalled-lead alert); N copies share the consumer group."""
    _consumer("analytics")


@analytics_app.command("backfill")
def analytics_backfill(
    chunk: Annotated[int, typer.Option(min=1, max=100_000, help="Leads rebuilt per transaction.")] = 500,
) -> None:
    """Empty the analytics summaries and rebuild them from history (stage history, orders), with progress.

    Stop the analytics consumers first: events they apply meanwhile would be counted twice."""
    from services.analytics.backfill import backfill
    from shared.db import make_engine, make_sessionmaker
    from shared.settings import AnalyticsSettings

    settings = settings_or_exit(AnalyticsSettings)
    _log("analytics", settings)

    def progress(done: int, total: int, seconds: float) -> None:
        typer.echo(f"\r{done}/{total} leads ({done / max(total, 1):.0%}) in {seconds:.1f}s", nl=False, err=True)

    async def main() -> None:
        engine = make_engine(settings.database_url, pool_size=2)
        try:
            result = await backfill(make_sessionmaker(engine), settings, chunk, progress)
        finally:
            await engine.dispose()
        typer.echo("", err=True)
        typer.echo(json.dumps({"leads": result.leads, "stage_changes": result.stage_changes,
                               "orders": result.orders, "seconds": round(result.seconds, 2)}))  # fmt: skip

    run(main())


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
