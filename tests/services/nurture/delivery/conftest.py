"""Delivery tests run against the real SMTP server of tests/smtp.py and a real PostgreSQL database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.nurture.delivery.mailer import SmtpConfig, SmtpMailer
from shared.db import make_engine, make_sessionmaker
from shared.settings import NurtureSettings
from tests.smtp import SmtpSink, smtp_sink  # noqa: F401 - the session fixture

SECRET = "test-secret"


@dataclass
class Delivery:
    settings: NurtureSettings
    sessionmaker: async_sessionmaker[AsyncSession]
    mailer: SmtpMailer
    sink: SmtpSink

    async def send_row(self, send_id: Any) -> dict[str, Any]:
        async with self.sessionmaker() as session:
            found = (
                await session.execute(text("SELECT * FROM email_sends WHERE id = :id"), {"id": send_id})
            ).mappings()
            return dict(found.one())

    async def count(self, where: str = "true", **params: Any) -> int:
        async with self.sessionmaker() as session:
            found = await session.scalar(text(f"SELECT count(*) FROM email_sends WHERE {where}"), params)  # noqa: S608
            return int(found or 0)


def nurture_settings(database_url: str, sink: SmtpSink, **overrides: Any) -> NurtureSettings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "kafka_bootstrap_servers": "127.0.0.1:9",  # delivery never talks to the broker
        "secret_key": SECRET,
        "smtp_host": sink.host,
        "smtp_port": sink.port,
        "smtp_timeout_seconds": 5,
        "smtp_backoff_seconds": 0.01,
        "mail_from": "Acme News <news@acme.example>",
        "public_base_url": "https://t.acme.example",
        **overrides,
    }
    return NurtureSettings(**values)


@pytest.fixture
async def delivery(database_url: str, smtp_sink: SmtpSink) -> AsyncIterator[Delivery]:  # noqa: F811
    settings = nurture_settings(database_url, smtp_sink)
    engine = make_engine(database_url, pool_size=4)
    mailer = SmtpMailer(SmtpConfig.from_settings(settings))
    try:
        yield Delivery(settings, make_sessionmaker(engine), mailer, smtp_sink)
    finally:
        await mailer.aclose()
        await engine.dispose()
