"""A real SMTP server for tests: aiosmtpd on 127.0.0.1, in its own thread, recording what arrives.

Use the session fixture `smtp_sink` (import it into a conftest: `from tests.smtp import smtp_sink`).
Tests isolate themselves by recipient: `smtp_sink.address("welcome")` is a fresh address, and
`await smtp_sink.wait_for(address, n)` returns the messages it received. Scripted answers make the
server misbehave for one address only:

- `smtp_sink.answer_rcpt(address, "451 4.7.1 try later")`: the next RCPT TO for it gets this reply
  (several replies are used one per attempt; then the address is accepted again);
- `smtp_sink.drop_after_data(address)`: the next message for it is read completely, then the
  connection is cut before any reply (the client cannot know whether it was taken).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from typing import Any

import pytest
from aiosmtpd.controller import Controller

DROP = "drop"


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes  # as received, CRLF line endings, dots unstuffed

    @property
    def message(self) -> EmailMessage:
        parsed: EmailMessage = message_from_bytes(self.data, _class=EmailMessage, policy=default)
        return parsed


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        reply = self.sink._next("rcpt", address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        for rcpt in envelope.rcpt_tos:
            if self.sink._next("data", rcpt) == DROP:
                server.transport.abort()  # read it all, answer nothing
                return "250 never seen"
        data = envelope.original_content or envelope.content
        self.sink._store(Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(data)))
        return "250 2.0.0 Ok: queued"


class SmtpSink:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._scripts: dict[tuple[str, str], list[str]] = {}
        self.host = "127.0.0.1"
        self.port = _free_port()
        self.controller = Controller(_Handler(self), hostname=self.host, port=self.port, decode_data=False)

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()

    def address(self, tag: str = "rcpt") -> str:
        return f"{tag}-{uuid.uuid4().hex[:12]}@inbox.example"

    def answer_rcpt(self, address: str, *replies: str) -> None:
        with self._lock:
            self._scripts.setdefault(("rcpt", address.lower()), []).extend(replies)

    def drop_after_data(self, address: str) -> None:
        with self._lock:
            self._scripts.setdefault(("data", address.lower()), []).append(DROP)

    def received(self, address: str) -> list[Received]:
        with self._lock:
            return [r for r in self._received if address.lower() in (a.lower() for a in r.rcpt_tos)]

    async def wait_for(self, address: str, count: int = 1, timeout: float = 10.0) -> list[Received]:
        """The messages for `address` once at least `count` arrived; fails after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.received(address)
            if len(found) >= count:
                return found
            await asyncio.sleep(0.02)
        raise AssertionError(
            f"{count} message(s) to {address} not received within {timeout}s: {self.received(address)}"
        )

    def _next(self, stage: str, address: str) -> str | None:
        with self._lock:
            replies = self._scripts.get((stage, address.lower()))
            return replies.pop(0) if replies else None

    def _store(self, received: Received) -> None:
        with self._lock:
            self._received.append(received)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def smtp_sink() -> Iterator[SmtpSink]:
    """A real SMTP server for the whole session; isolate tests by recipient address."""
    sink = SmtpSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()
