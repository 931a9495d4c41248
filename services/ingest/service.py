"""Pure ingest decisions: turning a Segment call into a TrackedEvent."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from services.ingest.schemas import SegmentMessage
from shared.events import EventType, TrackedEvent, derived_id


def corrected_timestamp(timestamp: datetime | None, sent_at: datetime | None, received_at: datetime) -> datetime:
    """Segment's clock-skew correction: the device clock is off by (sentAt - receivedAt)."""
    if timestamp is None:
        return received_at
    timestamp = _aware(timestamp)
    if sent_at is None:
        return timestamp
    return received_at - (_aware(sent_at) - timestamp)


def build_event(
    message: SegmentMessage,
    event_type: EventType,
    source_id: uuid.UUID,
    received_at: datetime,
    sent_at: datetime | None,
) -> TrackedEvent:
    """The event ingest publishes. A message id makes the event id stable across client retries."""
    message_id = message.messageId or str(uuid.uuid4())
    traits = message.traits
    if event_type == "identify" and not traits:
        context_traits = message.context.get("traits")
        traits = context_traits if isinstance(context_traits, dict) else {}
    sent = message.sentAt or sent_at
    return TrackedEvent(
        event_id=derived_id(source_id, message_id),
        source_id=source_id,
        message_id=message_id,
        type=event_type,
        event=message.event,
        name=message.name,
        user_id=message.userId,
        anonymous_id=message.anonymousId,
        previous_id=message.previousId,
        group_id=message.groupId,
        traits=traits,
        properties=message.properties,
        context=message.context,
        timestamp=corrected_timestamp(message.timestamp, sent, received_at),
        received_at=received_at,
        sent_at=_aware(sent) if sent else None,
    )


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
