"""The dead-letter topic: messages that cannot be processed, with the reason in their headers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer

from shared.metrics import DEAD_LETTERED

H_REASON = "fs-reason"
H_TOPIC = "fs-original-topic"
H_PARTITION = "fs-original-partition"
H_OFFSET = "fs-original-offset"
H_COMPONENT = "fs-component"
H_AT = "fs-dead-lettered-at"


@dataclass(frozen=True)
class DeadLetter:
    """One message to set aside, and why."""

    key: bytes | None
    value: bytes | None
    reason: str
    original_topic: str
    original_partition: int | None = None
    original_offset: int | None = None

    def headers(self, component: str) -> list[tuple[str, bytes]]:
        pairs = {
            H_REASON: self.reason[:2000],
            H_TOPIC: self.original_topic,
            H_PARTITION: "" if self.original_partition is None else str(self.original_partition),
            H_OFFSET: "" if self.original_offset is None else str(self.original_offset),
            H_COMPONENT: component,
            H_AT: datetime.now(UTC).isoformat(),
        }
        return [(k, v.encode()) for k, v in pairs.items()]


async def send_dead_letters(producer: AIOKafkaProducer, topic: str, component: str, letters: list[DeadLetter]) -> None:
    """Publish dead letters and wait until the broker acknowledged all of them."""
    if not letters:
        return
    futures = [
        await producer.send(topic, key=letter.key, value=letter.value or b"", headers=letter.headers(component))
        for letter in letters
    ]
    for future in futures:
        await future
    DEAD_LETTERED.labels(component).inc(len(letters))


def header_dict(headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...] | None) -> dict[str, str]:
    return {k: v.decode(errors="replace") for k, v in (headers or ())}
