"""Pure ingest decisions, property-tested."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.ingest.schemas import SegmentMessage
from services.ingest.service import build_event, corrected_timestamp

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
