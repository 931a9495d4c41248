"""Handing messages to an SMTP server over a few reused connections, and telling what an error means.

An error before the server took the message (connecting, MAIL, RCPT, or an explicit 4xx/5xx reply to
DATA) leaves a definite outcome: `retry` for 4xx and network trouble, `failed` for 5xx. Losing the
connection or the deadline while the message itself is on the wire is `unknown`: the server may have
taken it, so it must not be sent again without an operator's decision.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import aiosmtplib

from services.nurture.delivery.message import Outgoing
from shared.settings import NurtureSettings

log = logging.getLogger(__name__)

ResultStatus = Literal["sent", "failed", "retry", "unknown"]
DETAIL_LIMIT = 500


@dataclass(frozen=True)
class SendResult:
    """One attempt's outcome: `sent`, `failed` (permanent), `retry` (transient, not handed over) or `unknown`."""

    status: ResultStatus
    detail: str = ""


class Mailer(Protocol):
    async def send(self, message: Outgoing, *, deadline: float | None = None) -> SendResult:
        """Make one delivery attempt. `deadline` (time.monotonic()) is when the attempt must be over: an
        attempt that could not finish by then is not started (`retry`)."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout: float = 30.0
    connections: int = 4

    @classmethod
    def from_settings(cls, settings: NurtureSettings) -> SmtpConfig:
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            starttls=settings.smtp_starttls,
            timeout=settings.smtp_timeout_seconds,
            connections=settings.smtp_connections,
        )


class _Connection:
    """One SMTP session, opened on first use and again after any failure."""

    def __init__(self, config: SmtpConfig, local_hostname: str) -> None:
        self.config = config
        self.local_hostname = local_hostname
        self.smtp: aiosmtplib.SMTP | None = None

    async def _connect(self) -> aiosmtplib.SMTP:
        c = self.config
        smtp = aiosmtplib.SMTP(
            hostname=c.host,
            port=c.port,
            username=c.username,
            password=c.password,
            use_tls=c.port == 465,
            start_tls=True if c.starttls and c.port != 465 else False,
            timeout=c.timeout,
            local_hostname=self.local_hostname,
        )
        await smtp.connect()
        self.smtp = smtp
        if smtp.is_ehlo_or_helo_needed:
            await smtp.ehlo()  # now, so the first message already knows the server's SIZE limit
        return smtp

    def close(self) -> None:
        if self.smtp is not None:
            self.smtp.close()
            self.smtp = None

    async def quit(self) -> None:
        if self.smtp is not None and self.smtp.is_connected:
            try:
                await asyncio.wait_for(self.smtp.quit(), 2)
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                pass
        self.close()

    async def deliver(self, sender: str, recipients: list[str], data: bytes) -> SendResult:
        phase = "connect"
        try:
            async with asyncio.timeout(self.config.timeout):
                smtp = self.smtp if self.smtp is not None and self.smtp.is_connected else await self._connect()
                options = [f"SIZE={len(data)}"] if smtp.supports_extension("size") else []
                phase = "MAIL"
                try:
                    await smtp.mail(sender, options=options)
                except aiosmtplib.SMTPServerDisconnected:
                    # The server closed the idle pooled connection; nothing was handed over yet.
                    self.close()
                    phase = "connect"
                    smtp = await self._connect()
                    phase = "MAIL"
                    await smtp.mail(sender, options=options)
                phase = "RCPT"
                for recipient in recipients:
                    await smtp.rcpt(recipient)
                phase = "DATA"
                reply = await smtp.data(data)
            return SendResult("sent", f"{reply.code} {reply.message}"[:DETAIL_LIMIT])
        except aiosmtplib.SMTPResponseException as exc:
            # An explicit answer, even to DATA: the server did not take the message.
            await self._reset(exc.code)
            status: ResultStatus = "retry" if 400 <= exc.code < 500 else "failed"
            return SendResult(status, f"{phase}: {exc.code} {exc.message}"[:DETAIL_LIMIT])
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            self.close()
            what = f"{phase}: {type(exc).__name__}: {exc}"[:DETAIL_LIMIT]
            if phase == "DATA":
                return SendResult("unknown", what + " (the server may have taken the message)")
            return SendResult("retry", what)
        except BaseException:
            self.close()
            raise

    async def _reset(self, code: int) -> None:
        """After a refused MAIL, RCPT or DATA, RSET so the session can carry the next message."""
        if self.smtp is None or code == 421 or not self.smtp.is_connected:
            self.close()
            return
        try:
            await asyncio.wait_for(self.smtp.rset(), self.config.timeout)
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            self.close()


class SmtpMailer:
    """Sends over up to `connections` SMTP sessions kept open and reused; concurrent sends share them."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self._idle: asyncio.LifoQueue[_Connection] | None = None
        self._local_hostname: str | None = None
        self._all: list[_Connection] = []

    async def _pool(self) -> asyncio.LifoQueue[_Connection]:
        if self._idle is None:
            # getfqdn may wait on DNS: once per mailer, off the event loop.
            self._local_hostname = await asyncio.to_thread(socket.getfqdn)
            idle: asyncio.LifoQueue[_Connection] = asyncio.LifoQueue()
            self._all = [_Connection(self.config, self._local_hostname) for _ in range(self.config.connections)]
            for conn in self._all:
                idle.put_nowait(conn)
            self._idle = idle
        return self._idle

    async def send(self, message: Outgoing, *, deadline: float | None = None) -> SendResult:
        idle = await self._pool()
        conn = await idle.get()
        try:
            if deadline is not None and time.monotonic() + self.config.timeout > deadline:
                return SendResult("retry", "not attempted: it could not finish before the claim's lease ends")
            return await conn.deliver(message.sender, list(message.recipients), message.data)
        finally:
            idle.put_nowait(conn)

    async def aclose(self) -> None:
        await asyncio.gather(*(conn.quit() for conn in self._all))


class MailboxMailer:
    """The dev mailbox: each message becomes `<UTC time>-<random>.eml` in `folder`, written atomically
    (a temporary file renamed into place), so a reader never sees half a message."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def send(self, message: Outgoing, *, deadline: float | None = None) -> SendResult:
        try:
            name = await asyncio.to_thread(self._write, message.data)
        except OSError as exc:  # nothing was written (or only the temporary file): safe to try again
            return SendResult("retry", f"mailbox: {exc}"[:DETAIL_LIMIT])
        return SendResult("sent", f"written to {name}")

    def _write(self, data: bytes) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{datetime.now(UTC):%Y%m%dT%H%M%S.%fZ}-{secrets.token_hex(4)}.eml"
        tmp = self.folder / f".{name}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.folder / name)
        return name

    async def aclose(self) -> None:
        return None


def dev_mail_overrides(data_dir: Path, environ: Mapping[str, str]) -> dict[str, Any]:
    """What `funnelstream dev` adds to NurtureSettings: the mailbox `<data dir>/mailbox`, unless the
    environment names an SMTP server or a mailbox folder itself."""
    if "FUNNELSTREAM_SMTP_HOST" in environ or "FUNNELSTREAM_MAILBOX_DIR" in environ:
        return {}
    return {"mailbox_dir": data_dir / "mailbox"}


def make_mailer(settings: NurtureSettings) -> Mailer:
    """The dev mailbox when `mailbox_dir` is set, else SMTP to `smtp_host`."""
    if settings.mailbox_dir is not None:
        return MailboxMailer(settings.mailbox_dir)
    return SmtpMailer(SmtpConfig.from_settings(settings))
