"""Per-write-key rate limiting: a token bucket per source, in the worker's memory.

With several ingest workers each keeps its own buckets, so the effective limit of a key is the
per-worker rate times the number of workers that receive its traffic.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """`rate` events per second per key with bursts up to `burst`; rate 0 turns limiting off."""

    def __init__(self, rate: float, burst: int, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: dict[uuid.UUID, _Bucket] = {}

    def retry_after(self, key: uuid.UUID, cost: int, now: float) -> float:
        """0 when `cost` events may pass now (and takes them), else the seconds until they could."""
        if self.rate <= 0:
            return 0.0
        cost = min(cost, self.burst)  # a request larger than the burst passes once the bucket is full
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._buckets.clear()
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            return 0.0
        return (cost - bucket.tokens) / self.rate
