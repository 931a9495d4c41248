"""Bot and scanner detection: known bots and scanners are named, browsers and mail image proxies are not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.ingest.bots import MAX_REASON, bot_reason, scanner_reason

BROWSERS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 "
    "Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile "
    "Safari/537.36",
    # Apple Mail and mail image proxies fetch the open pixel when a person opens the email.
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
    "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.4266; Pro)",
]

BOTS = [
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "Googlebot"),
    ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", "bingbot"),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0", "Headless"),
    ("python-requests/2.31.0", "python-requests"),
    ("curl/8.4.0", "curl"),
    ("Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)", "UptimeRobot"),
    ("Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)", "Pingdom"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/91.0 Safari/537.36 StatusCake", "StatusCake"),
    ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", "Slackbot"),
    ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", "facebookexternalhit"),
    ("Mozilla/5.0 (compatible; SomeCrawler/1.0)", "SomeCrawl"),
    ("Mozilla/5.0 (compatible; some spider)", "spider"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0 Safari/537.36 SafeLinks", "Microsoft SafeLinks"),
    ("BarracudaCentral/1.0", "Barracuda"),
    ("Proofpoint URL Defense", "Proofpoint"),
    ("Mozilla/5.0 Mimecast", "Mimecast"),
    ("Symantec Email Security", "Symantec"),
    ("Microsoft Office Existence Discovery", "Microsoft Office Existence Discovery"),
]


@pytest.mark.parametrize("agent", BROWSERS)
def test_browsers_and_mail_image_proxies_are_people(agent: str) -> None:
    assert bot_reason(agent) is None


@pytest.mark.parametrize(("agent", "name"), BOTS)
def test_known_bots_and_scanners_are_named_in_the_reason(agent: str, name: str) -> None:
    assert bot_reason(agent) == f"bot-user-agent:{name}"


@pytest.mark.parametrize("agent", [None, "", "   "])
def test_a_missing_user_agent_counts_as_a_bot(agent: str | None) -> None:
    assert bot_reason(agent) == "bot-user-agent:empty"


@given(st.text(max_size=2000))
def test_any_reason_fits_the_bot_column(agent: str) -> None:
    reason = bot_reason(agent)
    assert reason is None or (reason.startswith("bot-user-agent:") and len(reason) <= MAX_REASON)


SENT = datetime(2025, 10, 26, 0, 59, 55, tzinfo=UTC)


def test_a_click_within_seconds_of_the_send_is_a_scanner() -> None:
    assert scanner_reason(SENT, SENT + timedelta(seconds=3.7)) == "scanner:clicked 3s after send"
    assert scanner_reason(SENT, SENT + timedelta(seconds=1), action="opened") == "scanner:opened 1s after send"


def test_a_click_after_the_threshold_or_without_send_time_is_a_person() -> None:
    assert scanner_reason(SENT, SENT + timedelta(seconds=10)) is None
    assert scanner_reason(SENT, SENT + timedelta(hours=5)) is None
    assert scanner_reason(None, SENT) is None
    assert scanner_reason(SENT, SENT + timedelta(seconds=30), threshold_seconds=60) is not None


def test_a_send_time_in_the_future_counts_as_zero_seconds() -> None:
    assert scanner_reason(SENT + timedelta(seconds=2), SENT) == "scanner:clicked 0s after send"
