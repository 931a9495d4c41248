"""How a source's emails go out: From, Reply-To, the sender domain, DKIM and its time zone.

A source's own values (table `source_mail_settings`) win; what it leaves empty comes from
NurtureSettings (`FUNNELSTREAM_MAIL_FROM`, `FUNNELSTREAM_DKIM_*`, `FUNNELSTREAM_DEFAULT_TIMEZONE`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.ext.asyncio import AsyncSession

from services.nurture.delivery import repository
from services.nurture.delivery.message import address_domain, check_address, dkim_sign
from shared.settings import NurtureSettings

HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")
SELECTOR = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62})$")
_PROBE = (
    b"From: probe@example.com\r\nTo: probe@example.com\r\nSubject: probe\r\n"
    b"Date: Mon, 23 Nov 2026 00:00:00 +0000\r\n\r\nprobe\r\n"
)


class InvalidMailSetting(ValueError):
    """A mail setting is malformed; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class DkimKey:
    domain: str
    selector: str
    private_key: str


@dataclass(frozen=True)
class MailSettings:
    from_address: str
    reply_to: str | None
    sender: str  # the envelope sender (MAIL FROM): From's address
    sender_domain: str
    dkim: DkimKey | None
    default_timezone: str


def resolve(row: dict[str, Any] | None, settings: NurtureSettings) -> MailSettings:
    """A source's stored settings (or None) completed with the process defaults. Pure."""
    row = row or {}
    from_address = row.get("from_address") or settings.mail_from
    dkim = None
    if row.get("dkim_domain") and row.get("dkim_selector") and row.get("dkim_private_key"):
        dkim = DkimKey(row["dkim_domain"], row["dkim_selector"], row["dkim_private_key"])
    elif settings.dkim_domain and settings.dkim_selector and settings.dkim_private_key is not None:
        dkim = DkimKey(settings.dkim_domain, settings.dkim_selector, settings.dkim_private_key.get_secret_value())
    return MailSettings(
        from_address=from_address,
        reply_to=row.get("reply_to"),
        sender=check_address(from_address),
        sender_domain=address_domain(from_address),
        dkim=dkim,
        default_timezone=row.get("default_timezone") or settings.default_timezone,
    )


def validate(values: dict[str, Any]) -> dict[str, Any]:
    """Check a source's settings; raise InvalidMailSetting naming the first bad field. Pure."""
    for field in ("from_address", "reply_to"):
        if values.get(field) is not None:
            try:
                check_address(values[field])
            except ValueError as exc:
                raise InvalidMailSetting(field, str(exc)) from None
    if values.get("default_timezone") is not None:
        check_timezone("default_timezone", values["default_timezone"])
    dkim = [values.get(f) for f in ("dkim_domain", "dkim_selector", "dkim_private_key")]
    if any(v is not None for v in dkim):
        domain, selector, key = dkim
        if domain is None or not HOSTNAME.match(domain):
            raise InvalidMailSetting("dkim_domain", "give the signing domain, e.g. mail.example.com")
        if selector is None or not SELECTOR.match(selector):
            raise InvalidMailSetting("dkim_selector", "give the selector, e.g. fs2026 (letters, digits, . _ -)")
        if key is None:
            raise InvalidMailSetting("dkim_private_key", "give the PEM private key")
        try:
            dkim_sign(_PROBE, selector, domain, key)
        except Exception as exc:  # noqa: BLE001 - whatever dkimpy raises, the key is unusable
            raise InvalidMailSetting("dkim_private_key", f"cannot sign with it ({type(exc).__name__})") from None
    return values


def check_timezone(field: str, name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidMailSetting(field, f"{name!r} is not an IANA time zone such as Europe/Berlin") from None


async def mail_settings_for(
    session: AsyncSession, source_id: uuid.UUID | None, settings: NurtureSettings
) -> MailSettings:
    """The settings emails of `source_id` go out with (the defaults for None or a source without its own)."""
    rows = await repository.mail_settings_rows(session, [source_id] if source_id is not None else [])
    return resolve(rows.get(source_id) if source_id is not None else None, settings)


async def mail_settings_for_many(
    session: AsyncSession, source_ids: Iterable[uuid.UUID | None], settings: NurtureSettings
) -> dict[uuid.UUID | None, MailSettings]:
    """mail_settings_for each of several sources, in one query."""
    wanted = set(source_ids)
    rows = await repository.mail_settings_rows(session, [s for s in wanted if s is not None])
    return {s: resolve(rows.get(s) if s is not None else None, settings) for s in wanted}
