"""Browser and email tracking: the page pixel, the fs.js snippet, the email open pixel and click redirect.

Best effort by design: these answer the browser at once (a GIF, the script, a redirect) and publish
after the response is sent, so a slow or absent broker never delays a page or a click. An event
that could not be published is counted in /metrics (`funnelstream_publish_failures_total`, by
endpoint), a request that published nothing on purpose in `funnelstream_browser_rejected_total`.
Bots and mail scanners are flagged on the event (`bot`), never dropped (see services/ingest/bots.py).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from prometheus_client import Counter
from starlette.background import BackgroundTask
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from services.ingest.api import IngestError, IngestState, StateDep, parse_message, publish
from services.ingest.bots import bot_reason, scanner_reason
from services.ingest.service import build_event
from shared.events import EventType
from shared.tokens import InvalidToken, read_click_token, read_open_token

log = logging.getLogger(__name__)

BROWSER_REJECTED = Counter(
    "funnelstream_browser_rejected_total",
    "Pixel, open and click requests answered without publishing, by reason",
    ["endpoint", "reason"],
)

GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
MAX_TEXT = 2048  # url, referrer, title: longer values are cut
MAX_CAMPAIGN = 256  # each utm_* value
MAX_KEY = 256
MAX_TOKEN = 4096
SCANNER_SECONDS = 10.0
UTM = {
    "utm_source": "source",
    "utm_medium": "medium",
    "utm_campaign": "name",
    "utm_term": "term",
    "utm_content": "content",
}

CORS = {"Access-Control-Allow-Origin": "*", "Cross-Origin-Resource-Policy": "cross-origin"}
PREFLIGHT = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, Authorization",
    "Access-Control-Max-Age": "86400",
}
NO_CACHE = {"Cache-Control": "no-cache, no-store, must-revalidate, private", "Pragma": "no-cache", "Expires": "0"}
NOT_FOUND_PAGE = (
    "<!doctype html><meta charset=utf-8><title>Link not found</title>"
    "<h1>This link is not valid</h1><p>It may have been cut off when it was copied. "
    "Try clicking it in the original email.</p>"
)


class Rejected(Exception):
    """A browser request that publishes nothing; `reason` labels the metric."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TrackingCORSMiddleware:
    """CORS for `/v1/*`, which websites call cross-origin: any origin, no credentials.

    Scoped to those paths so the admin API stays same-origin; `/t/*` answers CORS itself.
    """

    def __init__(self, app: ASGIApp, prefixes: tuple[str, ...] = ("/v1/",)) -> None:
        self.app, self.prefixes = app, prefixes
        self.cors = CORSMiddleware(
            app,
            allow_origins=["*"],
            allow_credentials=False,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Content-Type", "Authorization"],
            max_age=86400,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Requests without an Origin header (server-side SDKs, the bulk of tracking traffic) need no
        # CORS headers; skipping the wrapper saves a send() indirection per request.
        if (
            scope["type"] == "http"
            and str(scope["path"]).startswith(self.prefixes)
            and any(name == b"origin" for name, _ in scope["headers"])
        ):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def pixel_message(params: Mapping[str, str], referer: str | None) -> tuple[EventType, dict[str, Any]]:
    """The Segment call a `/t/p.gif` query string stands for: a track if `e` is given, else a page view."""
    if not params.get("aid") and not params.get("uid"):
        raise Rejected("missing-id")
    url = params.get("url") or referer or ""
    page = {
        "url": url[:MAX_TEXT],
        "referrer": params.get("ref", "")[:MAX_TEXT],
        "title": params.get("title", "")[:MAX_TEXT],
    }
    try:
        parts = urlsplit(page["url"])
        page.update(path=parts.path, search=f"?{parts.query}" if parts.query else "")
    except ValueError:
        pass  # a malformed URL is still recorded as sent, without path and search
    page = {k: v for k, v in page.items() if v}
    campaign = {name: params[p][:MAX_CAMPAIGN] for p, name in UTM.items() if params.get(p)}
    data: dict[str, Any] = {
        "anonymousId": params.get("aid") or None,
        "userId": params.get("uid") or None,
        "messageId": params.get("mid") or None,
        "properties": page,
        "context": {"page": page, "campaign": campaign, "library": {"name": "fs-pixel", "version": "1"}},
    }
    event = params.get("e")
    if event:
        return "track", {**data, "event": event}
    return "page", data


def email_message(
    event: str, user_id: str | None, anonymous_id: str | None, properties: dict[str, Any]
) -> dict[str, Any]:
    """A track call for an email open or click; a fresh message id each time, since every open is an event."""
    return {
        "event": event,
        "userId": user_id,
        "anonymousId": anonymous_id,
        "messageId": str(uuid.uuid4()),
        "properties": properties,
        "context": {"library": {"name": "fs-email", "version": "1"}},
    }


def browser_router() -> APIRouter:
    router = APIRouter(tags=["browser"])
    script = files("services.ingest").joinpath("static/fs.js").read_bytes()
    script_etag = '"' + hashlib.sha256(script).hexdigest()[:32] + '"'

    def gif(task: BackgroundTask | None) -> Response:
        return Response(GIF, media_type="image/gif", headers={**NO_CACHE, **CORS}, background=task)

    @router.get(
        "/t/p.gif",
        summary="Page view or custom event pixel",
        response_class=Response,
        responses={200: {"content": {"image/gif": {}}, "description": "Always a 1×1 GIF"}},
    )
    async def pixel(request: Request, state: StateDep) -> Response:
        """Query: `k` (write key), `aid` and/or `uid`, `e` (event; absent: page view), `url`, `ref`, `title`,
        `utm_source`/`medium`/`campaign`/`term`/`content`, `mid` (message id, dedupes retries)."""
        params = dict(request.query_params)
        return gif(BackgroundTask(record_pixel, state, params, request.headers, datetime.now(UTC)))

    @router.get(
        "/t/fs.js",
        summary="The tracking snippet websites load",
        response_class=Response,
        responses={200: {"content": {"text/javascript": {}}, "description": "JavaScript"}},
    )
    async def snippet(request: Request) -> Response:
        headers = {
            **CORS,
            "Cache-Control": "public, max-age=300",
            "ETag": script_etag,
            "X-Content-Type-Options": "nosniff",
        }
        if request.headers.get("if-none-match") == script_etag:
            return Response(status_code=304, headers=headers)
        return Response(script, media_type="text/javascript; charset=utf-8", headers=headers)

    @router.get(
        "/t/o/{token}.gif",
        summary="Email open pixel",
        response_class=Response,
        responses={200: {"content": {"image/gif": {}}, "description": "Always a 1×1 GIF"}},
    )
    async def email_open(token: str, request: Request, state: StateDep) -> Response:
        now = datetime.now(UTC)
        try:
            opened = read_open_token(state.settings.secret_key.get_secret_value(), token[:MAX_TOKEN])
        except InvalidToken:
            BROWSER_REJECTED.labels("email-open", "bad-token").inc()
            return gif(None)
        user_agent = request.headers.get("user-agent")
        bot = bot_reason(user_agent) or scanner_reason(opened.sent_at, now, SCANNER_SECONDS, action="opened")
        properties = {"email_id": opened.message_id, "email_sent_at": opened.sent_at.isoformat()}
        data = email_message("Email Opened", opened.user_id, opened.anonymous_id, properties)
        return gif(BackgroundTask(record, state, "email-open", data, opened.source_id, user_agent, bot, now))

    @router.get(
        "/t/c/{token}",
        summary="Email click redirect",
        response_class=Response,
        responses={302: {"description": "To the URL bound in the token"}, 404: {"description": "Invalid token"}},
    )
    async def email_click(token: str, request: Request, state: StateDep) -> Response:
        now = datetime.now(UTC)
        try:
            clicked = read_click_token(state.settings.secret_key.get_secret_value(), token[:MAX_TOKEN])
        except InvalidToken:
            BROWSER_REJECTED.labels("email-click", "bad-token").inc()
            return HTMLResponse(NOT_FOUND_PAGE, status_code=404, headers=NO_CACHE)
        user_agent = request.headers.get("user-agent")
        bot = bot_reason(user_agent) or scanner_reason(clicked.sent_at, now, SCANNER_SECONDS, action="clicked")
        properties = {
            "email_id": clicked.message_id,
            "email_sent_at": clicked.sent_at.isoformat(),
            "link_url": clicked.url,
        }
        data = email_message("Email Link Clicked", clicked.user_id, clicked.anonymous_id, properties)
        task = BackgroundTask(record, state, "email-click", data, clicked.source_id, user_agent, bot, now)
        return RedirectResponse(clicked.url, status_code=302, headers=NO_CACHE, background=task)

    @router.options("/t/{path:path}", include_in_schema=False)
    async def preflight(path: str) -> Response:
        return Response(status_code=204, headers=PREFLIGHT)

    return router


async def record_pixel(state: IngestState, params: dict[str, str], headers: Mapping[str, str], now: datetime) -> None:
    """Authenticate and publish one pixel hit, after its GIF was sent."""
    try:
        key = params.get("k") or params.get("writeKey")
        if not key:
            raise Rejected("missing-write-key")
        event_type, data = pixel_message(params, headers.get("referer"))
        source_id = await state.sources.source_for(key[:MAX_KEY])
        if source_id is None:
            raise Rejected("unknown-write-key")
        if state.limiter.retry_after(source_id, 1, time.monotonic()) > 0:
            raise Rejected("rate-limited")
    except Rejected as exc:
        BROWSER_REJECTED.labels("pixel", exc.reason).inc()
        return
    except Exception:
        BROWSER_REJECTED.labels("pixel", "error").inc()
        log.exception("pixel: write key lookup failed")
        return
    user_agent = headers.get("user-agent")
    await record(state, "pixel", data, source_id, user_agent, bot_reason(user_agent), now, event_type)


async def record(
    state: IngestState,
    endpoint: str,
    data: dict[str, Any],
    source_id: uuid.UUID,
    user_agent: str | None,
    bot: str | None,
    now: datetime,
    event_type: EventType = "track",
) -> None:
    """Validate and publish one event; count it instead of raising, since the browser has its answer."""
    if user_agent:
        data = {**data, "context": {**data["context"], "userAgent": user_agent[:MAX_TEXT]}}
    try:
        message = parse_message(data, event_type)
    except IngestError:
        BROWSER_REJECTED.labels(endpoint, "invalid").inc()
        return
    event = build_event(message, event_type, source_id, now, None).model_copy(update={"bot": bot})
    try:
        await publish(state, [event], endpoint)
    except IngestError:
        pass  # publish counted it in funnelstream_publish_failures_total{endpoint} and logged it
