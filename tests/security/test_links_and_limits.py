"""Public links and limits on the running edge: tampered tracking and unsubscribe tokens are refused, click
tracking redirects only to the URL signed into the token, old webhook signatures are refused, each write key
has its own rate limit, and oversized or bomb bodies get a 413 without being inflated."""

from __future__ import annotations

import gzip
import time
import uuid
import zlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from services.nurture.consent.links import unsubscribe_url
from shared.signing import sign
from shared.tokens import make_click_token, make_open_token
from tests.helpers import basic, running_stack
from tests.security.conftest import Edge

SECRET = "test-secret"  # running_stack's secret key
TARGET = "https://shop.example.com/offer?id=7"
EVIL = "https://evil.example"


def tampered(token: str) -> list[str]:
    """The token with one character changed in its payload, in its signature, and cut short."""
    payload, _, signature = token.rpartition(".")
    flip = {"A": "B", "B": "A"}

    def change(text: str, at: int) -> str:
        return text[:at] + flip.get(text[at], "A") + text[at + 1 :]

    return [f"{change(payload, 3)}.{signature}", f"{payload}.{change(signature, 5)}", token[:-4]]


def click(url: str = TARGET, secret: str = SECRET) -> str:
    sent = datetime.now(UTC) - timedelta(minutes=5)
    return make_click_token(secret, url=url, message_id=f"m-{uuid.uuid4()}", sent_at=sent, user_id="u1")


async def test_click_links_redirect_only_to_their_signed_url(edge: Edge) -> None:
    token = click()
    good = await edge.client.get(f"{edge.base}/t/c/{token}", params={"url": EVIL, "next": EVIL, "redirect": EVIL})
    assert good.status_code == 302 and good.headers["location"] == TARGET
    other_key = click(secret="another-secret")
    as_open = make_open_token(SECRET, message_id="m-2", sent_at=datetime.now(UTC), user_id="u1")
    for bad in [*tampered(token), other_key, as_open, EVIL, "//evil.example", "%2F%2Fevil.example", "..%2F..%2Fevil"]:
        r = await edge.client.get(f"{edge.base}/t/c/{bad}")
        assert 400 <= r.status_code < 500 and "location" not in r.headers, (bad, r.status_code, r.headers)


def test_click_tokens_bind_only_absolute_http_urls() -> None:
    for url in ("javascript:alert(1)", "data:text/html,<script>alert(1)</script>", "//evil.example", "/relative"):
        with pytest.raises(ValueError):
            click(url)


async def test_tampered_open_pixels_record_nothing_and_tampered_unsubscribe_links_change_nothing(
    edge: Edge,
) -> None:
    token = make_open_token(SECRET, message_id="m-1", sent_at=datetime.now(UTC), user_id="u1")
    for bad in tampered(token):
        r = await edge.client.get(f"{edge.base}/t/o/{bad}.gif")
        assert r.status_code == 200 and r.headers["content-type"] == "image/gif"  # a mail client sees a pixel
    link = unsubscribe_url(edge.base, SECRET, uuid.uuid4(), "ada@example.com")
    token = link.rsplit("/", 1)[1]
    for bad in [*tampered(token), unsubscribe_url("", "another-secret", uuid.uuid4(), "a@x.y").rsplit("/", 1)[1]]:
        for method in ("GET", "POST"):
            r = await edge.client.request(method, f"{edge.base}/u/{bad}")
            assert r.status_code in (400, 404) and "not valid" in r.text, (method, bad, r.status_code)


async def test_a_webhook_signed_outside_the_replay_window_is_refused(edge: Edge) -> None:
    source = (await edge.admin("POST", "/api/sources", json={"name": "crm"})).json()["id"]
    secret = (await edge.admin("POST", f"/api/sources/{source}/webhook-secrets")).json()["secret"]
    body = orjson.dumps({"type": "track", "userId": "crm-1", "event": "Deal Won", "messageId": "w-1"})
    url = f"{edge.base}/webhooks/generic/{source}"
    now = int(time.time())
    for t in (now - 3600, now - 400, now + 400):
        r = await edge.client.post(url, content=body, headers={"FunnelStream-Signature": sign(secret, body, t)})
        assert r.status_code == 401 and "window" in r.json()["error"], (t, r.text)
    fresh = await edge.client.post(url, content=body, headers={"FunnelStream-Signature": sign(secret, body, now)})
    assert fresh.status_code == 200, fresh.text


@pytest.fixture
async def limited(settings_kwargs: dict[str, Any]) -> AsyncIterator[Edge]:
    async with (
        running_stack(settings_kwargs, consumers=(), rate_limit_per_second=0.2, rate_limit_burst=3) as stack,
        httpx.AsyncClient(timeout=30) as client,
    ):
        yield Edge(stack, client, await stack.create_source(client))


async def test_rate_limits_are_per_write_key_however_it_is_sent(limited: Edge) -> None:
    url, event = f"{limited.base}/v1/track", {"userId": "r", "event": "E"}
    answers = [
        await limited.client.post(url, json=event, headers=basic(limited.write_key)),
        await limited.client.post(url, json={**event, "writeKey": limited.write_key}),
        await limited.client.post(
            f"{limited.base}/v1/batch", json={"batch": [{**event, "type": "track"}]}, headers=basic(limited.write_key)
        ),  # fmt: skip
        await limited.client.post(url, json={**event, "writeKey": limited.write_key}),
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert int(answers[3].headers["Retry-After"]) >= 1
    other = await limited.stack.create_source(limited.client, "other")
    assert (await limited.client.post(url, json=event, headers=basic(other))).status_code == 200


def bomb(inflated: int) -> bytes:
    """A gzip stream inflating to `inflated` zero bytes, followed by garbage: an inflater that went past the
    limit would reach the garbage and answer 400 (not gzip); one that stops at the limit answers 413."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b"0" * 1_000_000
    out = [packer.compress(b'{"batch": [], "pad": "')]
    out += [packer.compress(chunk) for _ in range(inflated // len(chunk))]
    return b"".join(out) + packer.flush(zlib.Z_SYNC_FLUSH) + b"\xff" * 64


async def test_gzip_bombs_and_oversized_bodies_get_413(edge: Edge) -> None:
    headers = {**basic(edge.write_key), "Content-Type": "application/json"}
    big_bomb = bomb(1_000_000_000)  # 1 GB inflated
    assert len(big_bomb) < 2_000_000
    r = await edge.client.post(
        f"{edge.base}/v1/batch", content=big_bomb, headers={**headers, "Content-Encoding": "gzip"}
    )
    assert r.status_code == 413 and "exceeds 500 KB" in r.json()["error"], r.text
    small = gzip.compress(orjson.dumps({"userId": "b", "event": "E", "properties": {"pad": "0" * 100_000}}))
    r = await edge.client.post(f"{edge.base}/v1/track", content=small, headers={**headers, "Content-Encoding": "gzip"})
    assert r.status_code == 413 and "exceeds 32 KB" in r.json()["error"], r.text
    # Sent plain: refused by its declared length, or while streaming when no length is declared.
    plain = b'{"batch": [], "pad": "' + b"0" * 2_000_000 + b'"}'
    r = await edge.client.post(f"{edge.base}/v1/batch", content=plain, headers=headers)
    assert r.status_code == 413, r.text

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(plain), 65_536):
            yield plain[start : start + 65_536]

    r = await edge.client.post(f"{edge.base}/v1/batch", content=chunks(), headers=headers)
    assert r.status_code == 413, r.text
