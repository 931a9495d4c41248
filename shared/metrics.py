"""Prometheus metrics shared by every service (one registry per process)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_CONSUMED = Counter(
    "funnelstream_events_consumed_total", "Messages a consumer applied (after dedup)", ["consumer"]
)
DUPLICATES_SKIPPED = Counter(
    "funnelstream_duplicates_skipped_total", "Messages skipped because their event id was already applied", ["consumer"]
)
BATCH_SIZE = Histogram(
    "funnelstream_batch_size",
    "Messages per consumed batch",
    ["consumer"],
    buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000),
)
BATCH_SECONDS = Histogram("funnelstream_batch_seconds", "Time to process and commit one batch", ["consumer"])
CONSUMER_LAG = Gauge(
    "funnelstream_consumer_lag", "Messages not yet committed, per partition", ["consumer", "topic", "partition"]
)
ERRORS = Counter("funnelstream_errors_total", "Errors by component and kind", ["component", "kind"])
DEAD_LETTERED = Counter("funnelstream_dead_lettered_total", "Messages sent to the dead-letter topic", ["component"])
EVENTS_PUBLISHED = Counter(
    "funnelstream_events_published_total", "Events ingest published and the broker acknowledged", ["type"]
)
PUBLISH_FAILURES = Counter(
    "funnelstream_publish_failures_total", "Events ingest could not publish in time", ["endpoint"]
)
RATE_LIMITED = Counter("funnelstream_rate_limited_total", "Events refused with 429 by the per-key rate limit")
