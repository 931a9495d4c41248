"""No 200 for an event the broker did not acknowledge."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from funnelstream.embedded import EmbeddedBroker
from tests.helpers import basic, running_stack


async def test_broker_down_means_503_with_retry_after_within_the_deadline(settings_kwargs: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory(prefix="fs-doomed-broker-") as run_dir:
        broker = EmbeddedBroker(Path(run_dir))
        settings_kwargs = {**settings_kwargs, "kafka_bootstrap_servers": broker.start(), "kafka_idempotence": False}
        try:
            async with (
                running_stack(settings_kwargs, consumers=(), produce_timeout_seconds=1.0) as stack,
                httpx.AsyncClient(timeout=30) as client,
            ):
                key = await stack.create_source(client)
                # Metrics are per process: other tests of this session may have counted failures already.
                before = failures((await client.get(f"{stack.base_url}/metrics")).text)
                track = {"userId": "d", "event": "E"}
                ok = await client.post(f"{stack.base_url}/v1/track", json=track, headers=basic(key))
                assert ok.status_code == 200
                broker.stop()
                for body, path in ((track, "/v1/track"), ({"batch": [{**track, "type": "track"}]}, "/v1/batch")):
                    started = time.monotonic()
                    r = await client.post(stack.base_url + path, json=body, headers=basic(key))
                    assert r.status_code == 503, r.text
                    assert r.headers["Retry-After"] == "5"
                    assert r.json()["success"] is False
                    assert time.monotonic() - started < 10  # the deadline, well below the SDKs' 15 s timeout
                metrics = (await client.get(f"{stack.base_url}/metrics")).text
                assert failures(metrics) == before + 1
        finally:
            broker.stop()


async def test_database_unreachable_for_a_new_key_means_503_not_500(settings_kwargs: dict[str, Any]) -> None:
    import asyncpg

    from shared.settings import to_libpq_url

    async with running_stack(settings_kwargs, consumers=()) as stack, httpx.AsyncClient(timeout=30) as client:
        key = await stack.create_source(client)
        server, _, name = to_libpq_url(settings_kwargs["database_url"]).rpartition("/")
        conn = await asyncpg.connect(f"{server}/postgres")
        try:
            await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        finally:
            await conn.close()
        r = await client.post(f"{stack.base_url}/v1/track", json={"userId": "x", "event": "E"}, headers=basic(key))
        assert r.status_code == 503 and r.headers["Retry-After"] == "5", r.text


def failures(metrics: str) -> float:
    """funnelstream_publish_failures_total of the track endpoint (0 before the first)."""
    prefix = 'funnelstream_publish_failures_total{endpoint="track"} '
    found = [line.removeprefix(prefix) for line in metrics.splitlines() if line.startswith(prefix)]
    return float(found[0]) if found else 0.0
