"""Reading the dev mailbox: the .eml files MailboxMailer wrote, newest first."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import default
from pathlib import Path

NAME = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,200}\.eml$")


@dataclass(frozen=True)
class MailboxEntry:
    name: str
    size: int
    modified_at: datetime
    subject: str | None
    from_: str | None
    to: str | None
    message_id: str | None


def list_mailbox(folder: Path, limit: int) -> list[MailboxEntry]:
    """The newest `limit` messages (names sort by the time they were written), reading headers only."""
    if not folder.is_dir():
        return []
    names = sorted((p.name for p in folder.iterdir() if NAME.match(p.name)), reverse=True)[:limit]
    entries = []
    parser = BytesHeaderParser(policy=default)
    for name in names:
        path = folder / name
        try:
            with open(path, "rb") as f:
                headers = parser.parse(f)
            stat = path.stat()
        except FileNotFoundError:  # removed meanwhile
            continue
        entries.append(
            MailboxEntry(
                name=name,
                size=stat.st_size,
                modified_at=datetime.fromtimestamp(stat.st_mtime, UTC),
                subject=_text(headers["Subject"]),
                from_=_text(headers["From"]),
                to=_text(headers["To"]),
                message_id=_text(headers["Message-ID"]),
            )
        )
    return entries


def read_mailbox(folder: Path, name: str) -> bytes | None:
    """One message's raw bytes; None for a name that is not a mailbox file (no path tricks)."""
    if not NAME.match(name):
        return None
    try:
        return (folder / name).read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        return None


def _text(value: object) -> str | None:
    return None if value is None else str(value)
