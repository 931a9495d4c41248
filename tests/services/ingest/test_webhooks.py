"""Signed webhooks over real HTTP, with the real broker, PostgreSQL and scoring consumer; signing properties."""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any

import httpx
import orjson
from hypothesis import given
from hypothesis import strategies as st

from services.ingest.shopify import hmac_header
from shared.signing import parse_signature, sign, signature_problem, verify
from tests.helpers import Stack, eventually, running_stack
from tests.services.ingest.test_shopify_mapping import NEW_CUSTOMER, ORDER

CUSTOMER_ID = ORDER["customer"]["id"]
USER = f"shopify:{CUSTOMER_ID}"


async def new_source(stack: Stack, client: httpx.AsyncClient) -> str:
    r = await client.post(f"{stack.base_url}/api/sources", json={"name": "shop"}, headers=stack.admin)
    r.raise_for_status()
    source_id: str = r.json()["id"]
    return source_id


async def add_secret(stack: Stack, client: httpx.AsyncClient, source_id: str, given: str | None = None) -> str:
    body = {"secret": given} if given else None
    r = await client.post(f"{stack.base_url}/api/sources/{source_id}/webhook-secrets", json=body, headers=stack.admin)
    assert r.status_code == 201, r.text
    secret: str = r.json()["secret"]
    return secret


async def post_shopify(
    stack: Stack,
    client: httpx.AsyncClient,
    source_id: str,
    topic: str,
    payload: dict[str, Any],
    secret: str | None,
    webhook_id: str | None = None,
) -> httpx.Response:
    body = orjson.dumps(payload)
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": "acme.myshopify.com",
        "X-Shopify-API-Version": "2026-01",
        "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
    }
    if secret is not None:
        headers["X-Shopify-Hmac-Sha256"] = hmac_header(secret, body)
    return await client.post(f"{stack.base_url}/webhooks/shopify/{source_id}", content=body, headers=headers)


async def post_generic(
    stack: Stack, client: httpx.AsyncClient, source_id: str, body: bytes, signature: str | None
) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["FunnelStream-Signature"] = signature
    return await client.post(f"{stack.base_url}/webhooks/generic/{source_id}", content=body, headers=headers)


async def lead(stack: Stack, client: httpx.AsyncClient, user_id: str) -> dict[str, Any] | None:
    r = await client.get(f"{stack.base_url}/api/leads/{user_id}", headers=stack.admin)
    found: dict[str, Any] | None = r.json() if r.status_code == 200 else None
    return found


async def lead_with_trait(stack: Stack, client: httpx.AsyncClient, user_id: str, key: str) -> dict[str, Any]:
    """The lead once an identify carrying `key` was applied: a barrier after earlier events of that lead.

    One lead's events share a partition and are applied in order, so everything published for the
    lead before the identify has been applied too.
    """

    async def probe() -> dict[str, Any] | None:
        found = await lead(stack, client, user_id)
        return found if found and key in found["traits"] else None

    return await eventually(probe, what=f"{user_id} has trait {key}")


# -- Shopify --------------------------------------------------------------------------------------


async def test_signed_shopify_order_makes_a_scored_lead_with_the_email(settings_kwargs: dict[str, Any]) -> None:
    async with running_stack(settings_kwargs, consumers=("scoring",)) as stack, httpx.AsyncClient() as client:
        source = await new_source(stack, client)
        await add_secret(stack, client, source)
        # The shop's secret is issued by Shopify: imported as the newest, the generated one stays active too.
        shopify_secret = await add_secret(stack, client, source, "shpss_" + secrets.token_hex(16))
        r = await post_shopify(stack, client, source, "orders/create", ORDER, shopify_secret)
        assert r.status_code == 200, r.text
        assert r.json() == {"success": True, "events": 1}

        async def scored() -> dict[str, Any] | None:
            found = await lead(stack, client, USER)
            return found if found and found["score"] == "1.0000" else None

        found = await eventually(scored, what="shopify customer scored")
        assert found["email"] == "jon@example.com" and found["stage"] == "lead"
        by_email = await client.get(
            f"{stack.base_url}/api/leads", params={"email": "jon@example.com"}, headers=stack.admin
        )
        assert [x["user_id"] for x in by_email.json()["leads"]] == [USER]


async def test_a_redelivered_shopify_webhook_counts_once(settings_kwargs: dict[str, Any]) -> None:
    async with running_stack(settings_kwargs, consumers=("scoring",)) as stack, httpx.AsyncClient() as client:
        source = await new_source(stack, client)
        secret = await add_secret(stack, client, source)
        for _ in range(2):
            r = await post_shopify(stack, client, source, "orders/create", ORDER, secret, webhook_id="wh-order-1")
            assert r.status_code == 200, r.text
        barrier = {**NEW_CUSTOMER, "id": CUSTOMER_ID}
        assert (await post_shopify(stack, client, source, "customers/create", barrier, secret)).status_code == 200
        found = await lead_with_trait(stack, client, USER, "firstName")
        assert found["score"] == "2.0000"  # the order once, the identify once


async def test_bad_or_missing_shopify_signature_is_401_and_publishes_nothing(settings_kwargs: dict[str, Any]) -> None:
    async with running_stack(settings_kwargs, consumers=("scoring",)) as stack, httpx.AsyncClient() as client:
        source = await new_source(stack, client)
        secret = await add_secret(stack, client, source)
        unsigned_source = await new_source(stack, client)
        attempts = [
            await post_shopify(stack, client, source, "orders/create", ORDER, "not-the-secret"),
            await post_shopify(stack, client, source, "orders/create", ORDER, None),
            await post_shopify(stack, client, str(uuid.uuid4()), "orders/create", ORDER, secret),
            await post_shopify(stack, client, "not-a-uuid", "orders/create", ORDER, secret),
            await post_shopify(stack, client, unsigned_source, "orders/create", ORDER, secret),
        ]
        body = orjson.dumps(ORDER)
        tampered = body.replace(b"629.95", b"0.01")
        attempts.append(
            await client.post(
                f"{stack.base_url}/webhooks/shopify/{source}",
                content=tampered,
                headers={"X-Shopify-Topic": "orders/create", "X-Shopify-Hmac-Sha256": hmac_header(secret, body)},
            )
        )
        for r in attempts:
            assert r.status_code == 401, r.text
            assert r.json() == {"success": False, "error": "invalid webhook signature"}  # no source is revealed
        barrier = {**NEW_CUSTOMER, "id": CUSTOMER_ID}
        assert (await post_shopify(stack, client, source, "customers/create", barrier, secret)).status_code == 200
        found = await lead_with_trait(stack, client, USER, "firstName")
        assert found["score"] == "1.0000"  # only the identify


async def test_unmapped_shopify_topic_is_acknowledged_and_publishes_nothing(settings_kwargs: dict[str, Any]) -> None:
    async with running_stack(settings_kwargs, consumers=("scoring",)) as stack, httpx.AsyncClient() as client:
        source = await new_source(stack, client)
        secret = await add_secret(stack, client, source)
        r = await post_shopify(stack, client, source, "refunds/create", ORDER, secret)
        assert r.status_code == 200 and r.json()["events"] == 0 and "refunds/create" in r.json()["ignored"]
        barrier = {**NEW_CUSTOMER, "id": CUSTOMER_ID}
        assert (await post_shopify(stack, client, source, "customers/create", barrier, secret)).status_code == 200
        found = await lead_with_trait(stack, client, USER, "firstName")
        assert found["score"] == "1.0000"


# -- generic --------------------------------------------------------------------------------------


async def test_signed_generic_message_and_batch_are_scored_and_a_replay_counts_once(
    settings_kwargs: dict[str, Any],
) -> None:
    async with running_stack(settings_kwargs, consumers=("scoring",)) as stack, httpx.AsyncClient() as client:
        source = await new_source(stack, client)
        secret = await add_secret(stack, client, source)
        single = orjson.dumps({"type": "track", "userId": "crm-7", "event": "Deal Stage Changed"})
        signature = sign(secret, single, int(time.time()))
        for _ in range(2):  # the same signed delivery replayed inside the window
            r = await post_generic(stack, client, source, single, signature)
            assert r.status_code == 200 and r.json() == {"success": True, "events": 1}, r.text
        batch = orjson.dumps(
            {
                "batch": [
                    {"type": "track", "userId": "crm-7", "event": "Form Submitted", "messageId": "form-1"},
                    {"type": "identify", "userId": "crm-7", "traits": {"email": "Ann@Example.com", "plan": "pro"}},
                ],
                "context": {"library": {"name": "crm-sync"}},
            }
        )
        r = await post_generic(stack, client, source, batch, sign(secret, batch, int(time.time())))
        assert r.status_code == 200 and r.json()["events"] == 2, r.text
        found = await lead_with_trait(stack, client, "crm-7", "plan")
        assert found["score"] == "3.0000" and found["email"] == "ann@example.com"


async def test_generic_webhook_refuses_expired_wrong_and_malformed_signatures_and_bad_bodies(
    settings_kwargs: dict[str, Any],
) -> None:
    async with running_stack(settings_kwargs, consumers=("scoring",)) as stack, httpx.AsyncClient() as client:
        source = await new_source(stack, client)
        secret = await add_secret(stack, client, source)
        body = orjson.dumps({"type": "track", "userId": "crm-8", "event": "Should Not Count"})
        now = int(time.time())
        refused = {
            "expired": (source, sign(secret, body, now - 301)),
            "future": (source, sign(secret, body, now + 400)),
            "wrong secret": (source, sign("whsec_wrong", body, now)),
            "unknown source": (str(uuid.uuid4()), sign(secret, body, now)),
            "no header": (source, None),
            "malformed": (source, "v1=abc"),
            "t changed": (source, sign(secret, body, now).replace(f"t={now}", f"t={now - 1}")),
        }
        for case, (target, signature) in refused.items():
            r = await post_generic(stack, client, target, body, signature)
            assert r.status_code == 401, case
            assert r.json()["success"] is False, case
        r = await post_generic(stack, client, source, body, sign(secret, body, now - 301))
        assert "300 s" in r.json()["error"]

        bad_bodies = {
            b"{nope": (None, "body is not valid JSON"),
            orjson.dumps({"userId": "crm-8", "event": "E"}): ("type", "type: must be one of"),
            orjson.dumps({"type": "track", "userId": "crm-8", "event": "E", "timestamp": "yesterday"}): (
                "timestamp",
                "timestamp",
            ),
            orjson.dumps(
                {
                    "batch": [
                        {"type": "track", "userId": "crm-8", "event": "Valid But Refused With Its Batch"},
                        {"type": "track", "userId": "crm-8", "event": "E", "timestamp": "nope"},
                    ]
                }
            ): ("batch.1.timestamp", "batch.1.timestamp"),
        }
        for bad, (field, message) in bad_bodies.items():
            r = await post_generic(stack, client, source, bad, sign(secret, bad, int(time.time())))
            assert r.status_code == 400, bad
            assert r.json().get("field") == field and message in r.json()["error"], r.json()

        barrier = orjson.dumps({"type": "identify", "userId": "crm-8", "traits": {"plan": "free"}})
        r = await post_generic(stack, client, source, barrier, sign(secret, barrier, int(time.time())))
        assert r.status_code == 200
        found = await lead_with_trait(stack, client, "crm-8", "plan")
        assert found["score"] == "1.0000"  # nothing refused was published


async def test_rotation_keeps_the_previous_secret_valid_until_it_is_dropped(settings_kwargs: dict[str, Any]) -> None:
    async with running_stack(settings_kwargs, consumers=()) as stack, httpx.AsyncClient() as client:
        source = await new_source(stack, client)
        secrets_url = f"{stack.base_url}/api/sources/{source}/webhook-secrets"
        body = orjson.dumps({"type": "track", "userId": "rot", "event": "Ping"})

        async def status(*keys: str) -> int:
            t = int(time.time())
            signature = ",".join([f"t={t}", *(sign(k, body, t).split(",")[1] for k in keys)])
            return (await post_generic(stack, client, source, body, signature)).status_code

        old = await add_secret(stack, client, source)
        assert old.startswith("whsec_") and await status(old) == 200
        r = await client.post(secrets_url, headers=stack.admin)
        new = r.json()["secret"]
        assert r.status_code == 201 and r.json()["active_secrets"] == 2 and new != old
        assert await status(old) == 200 and await status(new) == 200
        assert await status("whsec_unrelated", new) == 200  # several v1 entries: any match passes

        r = await client.delete(f"{secrets_url}/previous", headers=stack.admin)
        assert r.status_code == 200 and r.json()["active_secrets"] == 1
        assert await status(old) == 401 and await status(new) == 200
        assert (await client.delete(f"{secrets_url}/previous", headers=stack.admin)).json()["active_secrets"] == 1

        newest = await add_secret(stack, client, source)
        third = await add_secret(stack, client, source)
        assert await status(newest) == 200 and await status(third) == 200
        assert await status(new) == 401  # only the newest two are kept

        listed = await client.get(f"{stack.base_url}/api/sources", headers=stack.admin)
        assert third not in listed.text and newest not in listed.text  # a secret is shown once
        assert (await client.post(secrets_url)).status_code == 401
        missing = f"{stack.base_url}/api/sources/{uuid.uuid4()}/webhook-secrets"
        assert (await client.post(missing, headers=stack.admin)).status_code == 404
        too_short = await client.post(secrets_url, json={"secret": "short"}, headers=stack.admin)
        assert too_short.status_code == 400 and too_short.json()["field"] == "secret"


# -- signing properties ---------------------------------------------------------------------------

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
bodies = st.binary(max_size=2048)
keys = st.text(min_size=1, max_size=64)


@given(body=bodies, secret=keys, t=st.integers(T0, T0 + 10**8), skew=st.integers(-300, 300))
def test_a_signature_verifies_within_the_window(body: bytes, secret: str, t: int, skew: int) -> None:
    header = sign(secret, body, t)
    assert verify(header, body, [secret], now=t + skew)
    assert verify(header, body, ["whsec_newer_secret", secret], now=t + skew)  # the previous secret in rotation
    assert parse_signature(header) is not None


@given(body=bodies, secret=keys, t=st.integers(T0, T0 + 10**8), at=st.integers(min_value=0), bit=st.integers(0, 7))
def test_any_changed_byte_fails(body: bytes, secret: str, t: int, at: int, bit: int) -> None:
    header = sign(secret, body, t)
    if body:
        i = at % len(body)
        changed = body[:i] + bytes([body[i] ^ (1 << bit)]) + body[i + 1 :]
    else:
        changed = b"\x00"
    assert not verify(header, changed, [secret], now=t)


@given(body=bodies, secret=keys, other=keys, t=st.integers(T0, T0 + 10**8), late=st.integers(301, 10**6))
def test_wrong_secret_stale_time_and_changed_time_fail(body: bytes, secret: str, other: str, t: int, late: int) -> None:
    header = sign(secret, body, t)
    if other != secret:
        assert not verify(header, body, [other], now=t)
    assert not verify(header, body, [secret], now=t + late)
    assert not verify(header, body, [secret], now=t - late)
    assert not verify(header.replace(f"t={t}", f"t={t + 1}"), body, [secret], now=t)
    assert not verify(header, body, [], now=t)


def test_malformed_headers_are_refused_with_a_reason() -> None:
    body, t = b"{}", T0
    good = sign("s", body, t)
    for header in (
        None,
        "",
        "v1=abc",
        f"t={t}",
        f"t=x,v1={good[-64:]}",
        f"t={t},t={t},{good.split(',')[1]}",
        "garbage",
    ):
        problem = signature_problem(header, body, ["s"], now=t)
        assert problem is not None and "FunnelStream-Signature" in problem, header
    assert signature_problem(good + ",v0=ignored", body, ["s"], now=t) is None
