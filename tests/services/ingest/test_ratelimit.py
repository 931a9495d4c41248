"""Per-write-key rate limit: pure bucket properties, and the 429 a client sees."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from hypothesis import given
from hypothesis import strategies as st

from services.ingest.ratelimit import RateLimiter
from tests.helpers import basic, running_stack

KEY = uuid.UUID(int=5)


@given(
    st.floats(min_value=0.5, max_value=100),
    st.integers(min_value=1, max_value=50),
    st.lists(st.tuples(st.floats(min_value=0, max_value=2), st.integers(min_value=1, max_value=10)), max_size=60),
)
def test_never_more_than_burst_plus_rate_times_elapsed(rate: float, burst: int, calls: list[tuple[float, int]]) -> None:
    limiter = RateLimiter(rate, burst)
    now = 0.0
    passed = 0
    for gap, cost in calls:
        now += gap
        if limiter.retry_after(KEY, cost, now) == 0:
            passed += min(cost, burst)
    assert passed <= burst + rate * now + 1e-6


def test_retry_after_is_when_the_tokens_are_back() -> None:
    limiter = RateLimiter(rate=2, burst=2)
    assert limiter.retry_after(KEY, 2, now=0) == 0
    assert limiter.retry_after(KEY, 1, now=0) == 0.5
    assert limiter.retry_after(KEY, 1, now=0.5) == 0
    assert RateLimiter(rate=0, burst=1).retry_after(KEY, 10**6, now=0) == 0  # 0 = off


async def test_a_key_over_its_rate_gets_429_with_retry_after(settings_kwargs: dict[str, Any]) -> None:
    async with (
        running_stack(settings_kwargs, consumers=(), rate_limit_per_second=0.5, rate_limit_burst=2) as stack,
        httpx.AsyncClient() as client,
    ):
        key = await stack.create_source(client)
        other = await stack.create_source(client, "other")
        track = {"userId": "r", "event": "E"}
        statuses = [(await client.post(f"{stack.base_url}/v1/track", json=track, headers=basic(key))) for _ in range(3)]
        assert [r.status_code for r in statuses] == [200, 200, 429]
        assert statuses[2].headers["Retry-After"] == "2"
        assert statuses[2].json() == {"success": False, "error": "rate limit exceeded for this write key"}
        # Another key has its own bucket.
        assert (await client.post(f"{stack.base_url}/v1/track", json=track, headers=basic(other))).status_code == 200
