"""Browser and email tracking over real HTTP with the real broker and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from services.ingest.browser import GIF, TrackingCORSMiddleware
from shared.events import TrackedEvent, decode
from shared.kafka import Topics
from shared.settings import IngestSettings
from shared.tokens import make_click_token, make_open_token
from tests.helpers import eventually, running_stack

BROWSER = {"User-Agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:121.0) Gecko/20100101 Firefox/121.0"}
SECRET = "test-secret"  # what running_stack gives ingest
HOUR_AGO = timedelta(hours=1)


class EventsTopic:
    """Everything published to the test's events topic, read from the beginning without a consumer group."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer, self.seen = consumer, list[TrackedEvent]()

    async def poll(self, timeout: float = 0.2) -> list[TrackedEvent]:
        batches = await self.consumer.getmany(timeout_ms=int(timeout * 1000))
        self.seen += [decode(TrackedEvent, r.value) for records in batches.values() for r in records]
        return self.seen

    async def one(self, match: Callable[[TrackedEvent], bool], what: str) -> TrackedEvent:
        async def probe() -> TrackedEvent | None:
            return next((e for e in await self.poll() if match(e)), None)

        return await eventually(probe, what=what)


@asynccontextmanager
async def events_topic(settings: IngestSettings) -> AsyncIterator[EventsTopic]:
    consumer = AIOKafkaConsumer(
        Topics(settings.topic_prefix).events,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        yield EventsTopic(consumer)
    finally:
        await consumer.stop()


async def metric(client: httpx.AsyncClient, base_url: str, name: str, **labels: str) -> float:
    text = (await client.get(f"{base_url}/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


async def metric_rises(client: httpx.AsyncClient, base_url: str, before: float, name: str, **labels: str) -> None:
    async def risen() -> bool:
        return await metric(client, base_url, name, **labels) > before

    await eventually(risen, what=f"{name}{labels} incremented")


def assert_tracking_gif(r: httpx.Response) -> None:
    assert r.status_code == 200 and r.content == GIF and r.content.startswith(b"GIF89a")
    assert r.headers["content-type"] == "image/gif"
    assert "no-store" in r.headers["cache-control"] and "no-cache" in r.headers["cache-control"]
    assert r.headers["access-control-allow-origin"] == "*"


async def test_pixel_with_a_valid_key_answers_a_gif_and_the_visitor_scores(settings_kwargs: dict[str, Any]) -> None:
    async with running_stack(settings_kwargs, consumers=("scoring",)) as stack, httpx.AsyncClient() as client:
        key = await stack.create_source(client)
        params = {
            "k": key,
            "aid": "anon-pixel",
            "url": "https://shop.example/pricing?plan=pro",
            "ref": "https://news.example/",
            "title": "<script>alert(1)</script>Pricing",
            "utm_source": "newsletter",
            "utm_campaign": "spring",
        }
        r = await client.get(f"{stack.base_url}/t/p.gif", params=params, headers=BROWSER)
        assert_tracking_gif(r)

        async def score() -> Decimal | None:
            r = await client.get(
                f"{stack.base_url}/api/leads", params={"anonymous_id": "anon-pixel"}, headers=stack.admin
            )
            leads = r.json()["leads"]
            return Decimal(leads[0]["score"]) if leads else None

        assert await eventually(score, what="pixel visitor scored") == 1
        async with events_topic(stack.settings) as topic:
            event = await topic.one(lambda e: e.anonymous_id == "anon-pixel", "page event")
        page = {
            "url": "https://shop.example/pricing?plan=pro",
            "path": "/pricing",
            "search": "?plan=pro",
            "referrer": "https://news.example/",
            "title": "<script>alert(1)</script>Pricing",
        }
        assert event.type == "page" and event.properties == page and event.context["page"] == page
        assert event.context["campaign"] == {"source": "newsletter", "name": "spring"}
        assert event.context["userAgent"] == BROWSER["User-Agent"] and event.bot is None


async def test_pixel_with_a_custom_event_is_a_track_call(settings_kwargs: dict[str, Any]) -> None:
    async with running_stack(settings_kwargs, consumers=()) as stack, httpx.AsyncClient() as client:
        key = await stack.create_source(client)
        params = {"writeKey": key, "uid": "user-px", "e": "Video Played", "mid": "px-1", "url": "http://[not-a-url"}
        assert_tracking_gif(await client.get(f"{stack.base_url}/t/p.gif", params=params, headers=BROWSER))
        async with events_topic(stack.settings) as topic:
            event = await topic.one(lambda e: e.user_id == "user-px", "track event")
        assert (event.type, event.event, event.message_id) == ("track", "Video Played", "px-1")
        assert event.properties == {"url": "http://[not-a-url"}


async def test_pixel_with_a_bad_key_or_no_id_still_answers_a_gif_and_publishes_nothing(
    settings_kwargs: dict[str, Any],
) -> None:
    async with running_stack(settings_kwargs, consumers=()) as stack, httpx.AsyncClient() as client:
        key = await stack.create_source(client)
        name = "funnelstream_browser_rejected_total"
        cases = [
            ({"k": "wk_not-a-key", "aid": "anon-bad"}, "unknown-write-key"),
            ({"aid": "anon-bad"}, "missing-write-key"),
            ({"k": key, "url": "https://shop.example/"}, "missing-id"),
            ({"k": key, "aid": "x" * 600}, "invalid"),
        ]
        for params, reason in cases:
            before = await metric(client, stack.base_url, name, endpoint="pixel", reason=reason)
            assert_tracking_gif(await client.get(f"{stack.base_url}/t/p.gif", params=params, headers=BROWSER))
            await metric_rises(client, stack.base_url, before, name, endpoint="pixel", reason=reason)
        async with events_topic(stack.settings) as topic:
            assert await topic.poll(timeout=1.0) == []


async def test_a_broker_that_does_not_answer_in_time_still_gets_browsers_their_answer_and_is_counted(
    settings_kwargs: dict[str, Any],
) -> None:
    async with (
        running_stack(settings_kwargs, consumers=(), produce_timeout_seconds=0.000001) as stack,
        httpx.AsyncClient() as client,
    ):
        key = await stack.create_source(client)
        name = "funnelstream_publish_failures_total"
        before = await metric(client, stack.base_url, name, endpoint="pixel")
        r = await client.get(f"{stack.base_url}/t/p.gif", params={"k": key, "aid": "a1"}, headers=BROWSER)
        assert_tracking_gif(r)
        await metric_rises(client, stack.base_url, before, name, endpoint="pixel")

        before = await metric(client, stack.base_url, name, endpoint="email-click")
        token = make_click_token(
            SECRET, url="https://shop.example/", message_id="m1", sent_at=datetime.now(UTC) - HOUR_AGO, user_id="u1"
        )
        r = await client.get(f"{stack.base_url}/t/c/{token}", headers=BROWSER)
        assert r.status_code == 302 and r.headers["location"] == "https://shop.example/"
        await metric_rises(client, stack.base_url, before, name, endpoint="email-click")


async def test_snippet_is_served_as_cacheable_javascript_with_cors(settings_kwargs: dict[str, Any]) -> None:
    async with running_stack(settings_kwargs, consumers=()) as stack, httpx.AsyncClient() as client:
        r = await client.get(f"{stack.base_url}/t/fs.js", headers={"Origin": "https://shop.example"})
        assert r.status_code == 200 and "javascript" in r.headers["content-type"]
        assert r.headers["access-control-allow-origin"] == "*"
        assert r.headers["cache-control"] == "public, max-age=300"
        assert all(part in r.text for part in ("w.funnelstream = {", "fs_aid", "SameSite=Lax", "sendBeacon"))
        again = await client.get(f"{stack.base_url}/t/fs.js", headers={"If-None-Match": r.headers["etag"]})
        assert again.status_code == 304 and again.content == b""


async def test_the_snippets_text_plain_beacon_with_the_write_key_in_the_body_is_accepted(
    settings_kwargs: dict[str, Any],
) -> None:
    async with running_stack(settings_kwargs, consumers=()) as stack, httpx.AsyncClient() as client:
        key = await stack.create_source(client)
        # What fs.js sends: sendBeacon cannot set Authorization, and text/plain avoids a CORS preflight.
        body = {"type": "track", "writeKey": key, "anonymousId": "beacon", "messageId": "fs-1", "event": "Signed Up"}
        headers = {"Content-Type": "text/plain;charset=UTF-8", "Origin": "https://shop.example"}
        r = await client.post(f"{stack.base_url}/v1/track", content=orjson.dumps(body), headers=headers)
        assert r.status_code == 200, r.text
        async with events_topic(stack.settings) as topic:
            event = await topic.one(lambda e: e.anonymous_id == "beacon", "beacon event")
        assert event.event == "Signed Up"


async def test_cors_preflight_on_tracking_routes_allows_any_origin_without_credentials(
    settings_kwargs: dict[str, Any],
) -> None:
    async with running_stack(settings_kwargs, consumers=()) as stack, httpx.AsyncClient() as client:
        preflight = {
            "Origin": "https://shop.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "content-type",
        }
        for path in ("/t/p.gif", "/t/fs.js"):
            r = await client.options(f"{stack.base_url}{path}", headers=preflight)
            assert r.status_code == 204, path
            assert r.headers["access-control-allow-origin"] == "*"
            assert set(r.headers["access-control-allow-methods"].split(", ")) == {"GET", "POST", "OPTIONS"}
            assert "Authorization" in r.headers["access-control-allow-headers"]
            assert "access-control-allow-credentials" not in r.headers


async def test_email_open_answers_a_gif_and_publishes_email_opened(settings_kwargs: dict[str, Any]) -> None:
    async with running_stack(settings_kwargs, consumers=()) as stack, httpx.AsyncClient() as client:
        token = make_open_token(SECRET, message_id="send-1", sent_at=datetime.now(UTC) - HOUR_AGO, user_id="reader")
        for _ in range(2):
            assert_tracking_gif(await client.get(f"{stack.base_url}/t/o/{token}.gif", headers=BROWSER))
        async with events_topic(stack.settings) as topic:

            async def two_opens() -> list[TrackedEvent] | None:
                opens = [e for e in await topic.poll() if e.user_id == "reader"]
                return opens if len(opens) == 2 else None

            opens = await eventually(two_opens, what="both opens published")
        assert {e.event for e in opens} == {"Email Opened"} and {e.bot for e in opens} == {None}
        assert opens[0].properties["email_id"] == "send-1" and opens[0].event_id != opens[1].event_id


async def test_email_click_redirects_to_the_bound_url_and_publishes_the_click(settings_kwargs: dict[str, Any]) -> None:
    async with running_stack(settings_kwargs, consumers=()) as stack, httpx.AsyncClient() as client:
        url = "https://shop.example/offer?utm_source=email&x=%3Cb%3E"
        token = make_click_token(
            SECRET, url=url, message_id="send-2", sent_at=datetime.now(UTC) - HOUR_AGO, anonymous_id="anon-mail"
        )
        r = await client.get(f"{stack.base_url}/t/c/{token}", headers=BROWSER)
        assert r.status_code == 302 and r.headers["location"] == url
        assert "no-store" in r.headers["cache-control"]
        async with events_topic(stack.settings) as topic:
            event = await topic.one(lambda e: e.anonymous_id == "anon-mail", "click event")
        assert event.event == "Email Link Clicked" and event.bot is None
        assert event.properties["link_url"] == url and event.properties["email_id"] == "send-2"


async def test_a_tampered_or_wrong_purpose_token_never_redirects(settings_kwargs: dict[str, Any]) -> None:
    async with running_stack(settings_kwargs, consumers=()) as stack, httpx.AsyncClient() as client:
        sent = datetime.now(UTC) - HOUR_AGO
        click = make_click_token(SECRET, url="https://shop.example/", message_id="m", sent_at=sent, user_id="u")
        forged = make_click_token(
            "guessed-secret", url="https://evil.example/", message_id="m", sent_at=sent, user_id="u"
        )
        opened = make_open_token(SECRET, message_id="m", sent_at=sent, user_id="u")
        tampered = click[:-5] + ("A" if click[-5] != "A" else "B") + click[-4:]
        name = "funnelstream_browser_rejected_total"
        before = await metric(client, stack.base_url, name, endpoint="email-click", reason="bad-token")
        for bad in (tampered, forged, opened, "nonsense", click + "x"):
            r = await client.get(f"{stack.base_url}/t/c/{bad}", headers=BROWSER)
            assert r.status_code == 404 and "location" not in r.headers, bad
            assert r.headers["content-type"].startswith("text/html") and "not valid" in r.text
        assert await metric(client, stack.base_url, name, endpoint="email-click", reason="bad-token") == before + 5

        before = await metric(client, stack.base_url, name, endpoint="email-open", reason="bad-token")
        assert_tracking_gif(await client.get(f"{stack.base_url}/t/o/{click}.gif", headers=BROWSER))
        assert await metric(client, stack.base_url, name, endpoint="email-open", reason="bad-token") == before + 1
        async with events_topic(stack.settings) as topic:
            assert await topic.poll(timeout=1.0) == []


async def test_bots_and_scanners_are_flagged_not_dropped(settings_kwargs: dict[str, Any]) -> None:
    async with running_stack(settings_kwargs, consumers=()) as stack, httpx.AsyncClient() as client:
        key = await stack.create_source(client)
        googlebot = {"User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"}
        await client.get(f"{stack.base_url}/t/p.gif", params={"k": key, "aid": "crawled"}, headers=googlebot)
        await client.get(f"{stack.base_url}/t/p.gif", params={"k": key, "aid": "no-agent"}, headers={"User-Agent": ""})
        just_sent = make_click_token(
            SECRET, url="https://shop.example/", message_id="m", sent_at=datetime.now(UTC), user_id="scanned"
        )
        r = await client.get(f"{stack.base_url}/t/c/{just_sent}", headers=BROWSER)
        assert r.status_code == 302, "a scanner gets the redirect like anyone"
        async with events_topic(stack.settings) as topic:
            crawled = await topic.one(lambda e: e.anonymous_id == "crawled", "Googlebot page view")
            no_agent = await topic.one(lambda e: e.anonymous_id == "no-agent", "page view without user agent")
            scanned = await topic.one(lambda e: e.user_id == "scanned", "scanner click")
        assert crawled.bot == "bot-user-agent:Googlebot"
        assert no_agent.bot == "bot-user-agent:empty"
        assert scanned.bot is not None and scanned.bot.startswith("scanner:clicked ") and "s after send" in scanned.bot


async def test_v1_cors_middleware_covers_only_the_tracking_api() -> None:
    app = FastAPI()

    @app.post("/v1/track")
    async def track() -> dict[str, bool]:
        return {"success": True}

    @app.get("/api/leads")
    async def leads() -> dict[str, list[str]]:
        return {"leads": []}

    transport = httpx.ASGITransport(app=TrackingCORSMiddleware(app))
    origin = {"Origin": "https://shop.example"}
    async with httpx.AsyncClient(transport=transport, base_url="http://collect.test") as client:
        preflight = {
            **origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        }
        r = await client.options("/v1/track", headers=preflight)
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in r.headers
        r = await client.post("/v1/track", json={}, headers=origin)
        assert r.headers["access-control-allow-origin"] == "*"
        r = await client.get("/api/leads", headers=origin)
        assert "access-control-allow-origin" not in r.headers
        assert (await client.options("/api/leads", headers=preflight)).status_code == 405
