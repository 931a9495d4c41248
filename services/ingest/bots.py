"""Pure bot and scanner detection for browser and email tracking: flag, never drop.

A flagged event is still published with `TrackedEvent.bot` set to the reason, so the raw history is
kept while scores and rates leave it out (shared/HARD-PARTS.md, "Bots and scanners").

User agents are matched against crawlerdetect (a Python port of JayBizzle/Crawler-Detect, about 1,500
maintained patterns: search engines, headless browsers, HTTP libraries, uptime monitors, link
previews) plus our own list of email security scanners, which it does not know. Mail clients that
fetch images through a proxy when a person opens the email (Gmail, Yahoo, desktop Outlook) are real
opens, so they are not flagged even though crawlerdetect lists them.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

from crawlerdetect import CrawlerDetect  # type: ignore[import-untyped]

MAX_REASON = 60  # lead_events.bot is VARCHAR(60)
MAX_USER_AGENT = 512  # longer user agents are matched on their first 512 characters

# Email security gateways and link scanners: (substring to find, case-insensitive; name in the reason).
SCANNER_AGENTS: tuple[tuple[str, str], ...] = (
    # Office probes a link before opening the browser; the person's own click follows.
    ("existence discovery", "Microsoft Office Existence Discovery"),
    ("safelinks", "Microsoft SafeLinks"),
    ("barracuda", "Barracuda"),
    ("proofpoint", "Proofpoint"),
    ("mimecast", "Mimecast"),
    ("symantec", "Symantec"),
    ("messagelabs", "MessageLabs"),
    ("ironport", "Cisco IronPort"),
    ("forcepoint", "Forcepoint"),
    ("trendmicro", "Trend Micro"),
    ("trend micro", "Trend Micro"),
    ("sophos", "Sophos"),
    ("fireeye", "FireEye"),
    ("trellix", "Trellix"),
    ("zscaler", "Zscaler"),
    ("appriver", "AppRiver"),
    ("spamtitan", "SpamTitan"),
    ("vadesecure", "Vade Secure"),
)

# Image proxies of mail clients: they fetch the open pixel when a person opens the email.
MAIL_PROXY_AGENTS: tuple[str, ...] = ("googleimageproxy", "yahoomailproxy", "microsoft outlook", "ms-office")


def bot_reason(user_agent: str | None) -> str | None:
    """Why this user agent looks like a bot ("bot-user-agent:Googlebot"), or None for a browser."""
    agent = (user_agent or "").strip()[:MAX_USER_AGENT]
    if not agent:
        return "bot-user-agent:empty"
    return _agent_reason(agent)


@lru_cache(maxsize=4096)
def _agent_reason(agent: str) -> str | None:
    lowered = agent.lower()
    for needle, name in SCANNER_AGENTS:
        if needle in lowered:
            return _reason(f"bot-user-agent:{name}")
    if any(proxy in lowered for proxy in MAIL_PROXY_AGENTS):
        return None
    # A new detector per call: CrawlerDetect keeps the last match on the instance.
    detector = CrawlerDetect()
    if detector.is_crawler(agent):
        return _reason(f"bot-user-agent:{detector.get_matches() or 'crawler'}")
    return None


def scanner_reason(
    sent_at: datetime | None, now: datetime, threshold_seconds: float = 10, action: str = "clicked"
) -> str | None:
    """Why an email open or click looks like a security scanner: it came within seconds of the send.

    A person needs longer than `threshold_seconds` to receive, open and click; scanners fetch every
    link of a message on delivery. A send time in the future (clock skew between our hosts) counts as 0 s.
    """
    if sent_at is None:
        return None
    elapsed = max(0.0, (now - sent_at).total_seconds())
    if elapsed >= threshold_seconds:
        return None
    return _reason(f"scanner:{action} {int(elapsed)}s after send")


def _reason(text: str) -> str:
    return text[:MAX_REASON]
