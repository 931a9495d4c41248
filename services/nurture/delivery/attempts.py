"""Attempts of one send within its claim: retries with backoff while the server has not taken the message."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from tenacity import AsyncRetrying, RetryCallState, retry_if_result, stop_after_attempt, wait_exponential, wait_random
from tenacity.stop import stop_base

from services.nurture.delivery.mailer import Mailer, SendResult
from services.nurture.delivery.message import Outgoing
from shared.settings import NurtureSettings

log = logging.getLogger(__name__)

BACKOFF_CAP_SECONDS = 60.0


@dataclass(frozen=True)
class DeliveryPolicy:
    attempts: int = 4
    backoff_seconds: float = 2.0
    timeout_seconds: float = 30.0
    lease_seconds: float = 600.0

    @classmethod
    def from_settings(cls, settings: NurtureSettings) -> DeliveryPolicy:
        return cls(
            settings.smtp_attempts,
            settings.smtp_backoff_seconds,
            settings.smtp_timeout_seconds,
            settings.send_lease_seconds,
        )

    def deadline(self) -> float:
        """time.monotonic() by which every attempt under a lease taken now must be over: a margin before the
        lease ends, so the sweeper never calls `unknown` what a live process is still sending."""
        return time.monotonic() + self.lease_seconds * 0.9


class _PastDeadline(stop_base):
    """Stop retrying once another attempt could not finish before the deadline."""

    def __init__(self, last_start: float) -> None:
        self.last_start = last_start

    def __call__(self, retry_state: RetryCallState) -> bool:
        return time.monotonic() > self.last_start


async def deliver(mailer: Mailer, policy: DeliveryPolicy, message: Outgoing, deadline: float) -> tuple[SendResult, int]:
    """Send with retries while the error happened before the server took the message; (final result, attempts)."""
    attempts = 0

    async def attempt() -> SendResult:
        nonlocal attempts
        attempts += 1
        return await mailer.send(message, deadline=deadline)

    def last(state: RetryCallState) -> SendResult:
        result: SendResult = state.outcome.result() if state.outcome else SendResult("retry", "not attempted")
        return result

    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.attempts) | _PastDeadline(deadline - policy.timeout_seconds),
        # backoff, 2·backoff, 4·backoff … at most a minute, plus up to one backoff of jitter
        wait=wait_exponential(multiplier=policy.backoff_seconds, max=BACKOFF_CAP_SECONDS)
        + wait_random(0, policy.backoff_seconds),
        retry=retry_if_result(lambda r: r.status == "retry"),
        retry_error_callback=last,
    )
    try:
        result: SendResult = await retrying(attempt)
    except Exception as exc:  # noqa: BLE001 - a bug in a mailer must not lose track of a claimed send
        log.exception("mailer raised; the send is recorded as unknown")
        result = SendResult("unknown", f"mailer error: {type(exc).__name__}: {exc}"[:500])
    return result, attempts


def final_status(result: SendResult, attempts: int) -> tuple[str, str | None]:
    """The send's recorded status and error: transient errors to the end are `failed` (nothing was handed over)."""
    if result.status == "sent":
        return "sent", None
    if result.status == "retry":
        return "failed", f"gave up after {attempts} attempt(s): {result.detail}"
    return result.status, result.detail
