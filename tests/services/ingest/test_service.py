"""Pure ingest decisions, property-tested."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingest.schemas import SegmentMessage
from services.ingest.service import build_event, corrected_timestamp, encode_event, event_id
from shared.events import TrackedEvent, decode, derived_id

# hypothesis wants naive bounds and adds the zone itself
moments = st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC))  # noqa: DTZ001
skews = st.timedeltas(min_value=timedelta(days=-2), max_value=timedelta(days=2))


@given(moments, skews, st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=6)))
def test_device_clock_skew_is_removed(received: datetime, skew: timedelta, queued: timedelta) -> None:
    # The event happened `queued` before it was sent; the device clock is off by `skew`.
    true_time = received - queued
    device_timestamp = true_time + skew
    device_sent_at = received + skew
    assert corrected_timestamp(device_timestamp, device_sent_at, received) == true_time


@given(moments)
def test_without_timestamp_the_receive_time_is_used(received: datetime) -> None:
    assert corrected_timestamp(None, None, received) == received


@given(st.text(min_size=1, max_size=40))
def test_same_message_id_same_event_id_other_source_other_id(message_id: str) -> None:
    now = datetime.now(UTC)
    message = SegmentMessage(userId="u", event="E", messageId=message_id)
    a1 = build_event(message, "track", uuid.UUID(int=1), now, None)
    a2 = build_event(message, "track", uuid.UUID(int=1), now + timedelta(seconds=5), None)
    b = build_event(message, "track", uuid.UUID(int=2), now, None)
    assert a1.event_id == a2.event_id != b.event_id


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
messages = st.fixed_dictionaries(
    {"userId": st.text(min_size=1, max_size=10), "event": st.text(min_size=1, max_size=10)},
    optional={
        "anonymousId": st.text(min_size=1, max_size=10),
        "messageId": st.text(min_size=1, max_size=10),
        "traits": st.dictionaries(st.text(max_size=5), json_values, max_size=3),
        "properties": st.dictionaries(st.text(max_size=5), json_values, max_size=3),
        "context": st.dictionaries(st.sampled_from(["traits", "ip", "page"]), json_values, max_size=3),
        "timestamp": st.sampled_from(["2026-01-01T10:00:00Z", "2026-01-01T10:00:00", "2026-01-01T10:00:00+02:00"]),
        "sentAt": st.sampled_from(["2026-01-01T10:00:05Z", "2026-01-01T10:00:05"]),
    },
)


@given(messages, st.sampled_from(["track", "identify", "page"]))
def test_built_events_are_what_validation_would_produce(data: dict[str, object], event_type: str) -> None:
    message = SegmentMessage.model_validate({**data, "type": event_type})
    built = build_event(message, event_type, uuid.UUID(int=1), datetime.now(UTC), None)  # type: ignore[arg-type]
    validated = TrackedEvent.model_validate(built.model_dump())
    assert validated == built
    assert validated.timestamp.tzinfo is not None
    assert built.sent_at is None or built.sent_at.tzinfo is not None
    assert decode(TrackedEvent, built.to_bytes()) == validated


def test_numeric_ids_are_strings_as_segment_libraries_send_them() -> None:
    message = SegmentMessage.model_validate({"type": "track", "userId": 42, "event": "E", "messageId": 7.5})
    assert (message.userId, message.messageId) == ("42", "7.5")


_text = st.text(max_size=20)
_values = st.one_of(st.none(), st.booleans(), st.integers(-(10**6), 10**6), _text)


@settings(max_examples=300, deadline=None)
@given(
    st.uuids(),
    st.text(min_size=1, max_size=60),
    st.sampled_from(["track", "identify", "page", "screen", "group", "alias"]),
    st.one_of(st.none(), _text.filter(bool)),
    st.dictionaries(_text, _values, max_size=4),
    moments,
)
def test_the_fast_event_encoding_is_byte_for_byte_the_models(
    source: uuid.UUID, message_id: str, kind: str, user: str | None, props: dict[str, Any], at: datetime
) -> None:
    data: dict[str, Any] = {"messageId": message_id, "anonymousId": "anon-1", "properties": props,
                            "traits": props, "timestamp": at.isoformat()}  # fmt: skip
    if user:
        data["userId"] = user
    if kind == "track":
        data["event"] = "Something Happened"
    if kind == "alias":
        data["previousId"] = "before"
    if kind == "group":
        data["groupId"] = "acme"
    message = SegmentMessage.model_validate({**data, "type": kind})
    received = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    model = build_event(message, kind, source, received, None)  # type: ignore[arg-type]
    key, value = encode_event(message, kind, source, received, None)  # type: ignore[arg-type]
    assert value == model.to_bytes()
    assert key == model.lead_key.encode()
    assert event_id(source, message_id) == str(derived_id(source, message_id)) == str(model.event_id)
