"""Pure ingest decisions: turning a Segment call into the event ingest publishes."""

from __future__ import annotations

import functools
import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from services.ingest.schemas import SegmentMessage
from shared.events import EVENT_NAMESPACE, EventType, TrackedEvent

SCHEMA_VERSION: int = TrackedEvent.model_fields["schema_version"].default


def corrected_timestamp(timestamp: datetime | None, sent_at: datetime | None, received_at: datetime) -> datetime:
    """Segment's clock-skew correction: the device clock is off by (sentAt - receivedAt)."""
    if timestamp is None:
        return received_at
    timestamp = _aware(timestamp)
    if sent_at is None:
        return timestamp
    return received_at - (_aware(sent_at) - timestamp)


@functools.lru_cache(maxsize=4096)
def _source_text(source_id: uuid.UUID) -> tuple[str, bytes]:
    """The source id as text (the database driver's UUID class is not orjson's) and its event-id prefix."""
    text = str(source_id)
    return text, EVENT_NAMESPACE.bytes + f"{text}\x1f".encode()


def event_id(source_id: uuid.UUID, message_id: str) -> str:
    """`str(derived_id(source_id, message_id))` (uuid5), without building two UUID objects per event.

    The id must not change for the same source and message id: consumers deduplicate client retries
    by it, across ingest workers and versions.
    """
    # uuid5 is defined over SHA-1; it names an event, it protects nothing.
    digest = hashlib.sha1(_source_text(source_id)[1] + message_id.encode(), usedforsecurity=False).hexdigest()
    variant = "89ab"[int(digest[16], 16) & 3]  # RFC 4122 variant bits 10xx; the version nibble is 5
    return f"{digest[:8]}-{digest[8:12]}-5{digest[13:16]}-{variant}{digest[17:20]}-{digest[20:32]}"


def event_fields(
    message: SegmentMessage,
    event_type: EventType,
    source_id: uuid.UUID,
    received_at: datetime,
    sent_at: datetime | None,
) -> dict[str, Any]:
    """The TrackedEvent's fields, in the model's order. A message id keeps the event id stable across
    client retries; a message without one gets a random one."""
    message_id = message.messageId or str(uuid.uuid4())
    traits = message.traits
    if event_type == "identify" and not traits:
        context_traits = message.context.get("traits")
        traits = context_traits if isinstance(context_traits, dict) else {}
    sent = message.sentAt or sent_at
    return {
        "schema_version": SCHEMA_VERSION,
        "event_id": event_id(source_id, message_id),
        "source_id": _source_text(source_id)[0],
        "message_id": message_id,
        "type": event_type,
        "event": message.event,
        "name": message.name,
        "user_id": message.userId,
        "anonymous_id": message.anonymousId,
        "previous_id": message.previousId,
        "group_id": message.groupId,
        "traits": traits,
        "properties": message.properties,
        "context": message.context,
        "timestamp": corrected_timestamp(message.timestamp, sent, received_at),
        "received_at": received_at,
        "sent_at": _aware(sent) if sent else None,
        "bot": None,
    }


def build_event(
    message: SegmentMessage,
    event_type: EventType,
    source_id: uuid.UUID,
    received_at: datetime,
    sent_at: datetime | None,
) -> TrackedEvent:
    """The event ingest publishes, as a model (webhooks, pixels; the tracking API uses `encode_event`)."""
    return TrackedEvent.model_validate(event_fields(message, event_type, source_id, received_at, sent_at))


def encode_event(
    message: SegmentMessage,
    event_type: EventType,
    source_id: uuid.UUID,
    received_at: datetime,
    sent_at: datetime | None,
) -> tuple[bytes, bytes]:
    """Partition key and JSON value of `build_event(...)`, serialized straight from its fields.

    Every field is already valid (a validated message, ids and times made here), so building and
    serializing a TrackedEvent would only check them again: about half the CPU of an event in a batch.
    """
    fields = event_fields(message, event_type, source_id, received_at, sent_at)
    key: str = fields["user_id"] or fields["anonymous_id"] or fields["message_id"]  # TrackedEvent.lead_key
    return key.encode(), orjson.dumps(fields, option=orjson.OPT_UTC_Z)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
